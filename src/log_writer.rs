//! Log events written out by a thread of their own, in batches.
//!
//! A busy inbox logs thousands of events a second. Written to standard
//! output one by one, they cost it a tenth of its rate; handed one by one
//! to tracing-appender's writer thread, which spins waiting for the next,
//! they still cost about a seventh of its CPU on two cores. Here an event
//! is appended to a shared buffer, and the thread wakes only when the
//! buffer starts to fill and when it holds a batch's worth: it writes what
//! gathered at most [`FLUSH_INTERVAL`] later, or at once past
//! [`BATCH_BYTES`].
//!
//! Never lossy: events are the audit trail of what came in. Past
//! [`MAX_PENDING_BYTES`] waiting to be written (an output slower than the
//! gateway), whoever logs waits for the thread to take them.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long an event may wait for others to be written with it.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// What is written at once without waiting for the interval.
pub const BATCH_BYTES: usize = 64 << 10;
/// What may wait to be written before whoever logs waits too.
pub const MAX_PENDING_BYTES: usize = 8 << 20;

/// Where events are appended; give it to `tracing_subscriber::fmt().with_writer`.
#[derive(Clone)]
pub struct BatchedLog {
    shared: Arc<Shared>,
}

/// Writes what is still pending and ends the writer thread when dropped.
pub struct Flushed {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// The writer thread waits on it for events.
    pending: Condvar,
    /// Loggers waiting for room wait on it.
    taken: Condvar,
}

#[derive(Default)]
struct State {
    events: Vec<u8>,
    closing: bool,
}

// A logger that panicked mid-append leaves whole events behind it (each
// is appended in one call): a poisoned lock is used on.
impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn wait<'a>(condvar: &Condvar, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    condvar
        .wait(state)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the writer thread, named `thread_name`, writing to `out`.
pub fn batched<W: Write + Send + 'static>(
    out: W,
    thread_name: &str,
) -> std::io::Result<(BatchedLog, Flushed)> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        pending: Condvar::new(),
        taken: Condvar::new(),
    });
    let writer = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || write_batches(&writer, out))?;
    Ok((
        BatchedLog {
            shared: Arc::clone(&shared),
        },
        Flushed {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let closing = {
            let mut state = shared.lock();
            while state.events.is_empty() && !state.closing {
                state = wait(&shared.pending, state);
            }
            // Others are likely to follow the first: gather them.
            if state.events.len() < BATCH_BYTES && !state.closing {
                state = shared
                    .pending
                    .wait_timeout(state, FLUSH_INTERVAL)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            std::mem::swap(&mut batch, &mut state.events);
            state.closing
        };
        shared.taken.notify_all();
        // Nowhere is left to report a failing output to: the events go.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        // A burst's buffer is not kept for good.
        batch.shrink_to(2 * BATCH_BYTES);
        if closing && shared.lock().events.is_empty() {
            return;
        }
    }
}

impl<'a> MakeWriter<'a> for BatchedLog {
    type Writer = Appender<'a>;

    fn make_writer(&'a self) -> Appender<'a> {
        Appender {
            shared: &self.shared,
        }
    }
}

/// Appends one event (tracing-subscriber writes an event in one call).
pub struct Appender<'a> {
    shared: &'a Shared,
}

impl Write for Appender<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock();
        while state.events.len() >= MAX_PENDING_BYTES && !state.closing {
            state = wait(&self.shared.taken, state);
        }
        let before = state.events.len();
        state.events.extend_from_slice(bytes);
        let after = state.events.len();
        drop(state);
        // Woken when a batch starts and when it is full, not for every
        // event: a wake-up is a system call.
        if before == 0 || (before < BATCH_BYTES && after >= BATCH_BYTES) {
            self.shared.pending.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Flushed {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.pending.notify_one();
        self.shared.taken.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            eprintln!("taxiway: the log writer thread failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An output whose bytes and number of writes the test reads.
    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Output {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut output = self.0.lock().unwrap();
            output.0.extend_from_slice(bytes);
            output.1 += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
        }

        fn writes(&self) -> usize {
            self.0.lock().unwrap().1
        }
    }

    #[test]
    fn every_event_is_written_in_order_once_flushed() {
        let output = Output::default();
        let (log, flushed) = batched(output.clone(), "test-log").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for n in 0..5000 {
                        let line = format!("thread {thread} event {n}\n");
                        log.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(flushed);
        let text = output.text();
        assert_eq!(text.lines().count(), 20_000);
        for thread in 0..4 {
            let prefix = format!("thread {thread} event ");
            let order: Vec<usize> = text
                .lines()
                .filter_map(|line| line.strip_prefix(&prefix))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(order, (0..5000).collect::<Vec<_>>());
        }
        // Batches, not a write for each event.
        assert!(output.writes() < 1000, "{} writes", output.writes());
    }

    #[test]
    fn a_lone_event_is_written_without_waiting_for_more() {
        let output = Output::default();
        let (log, _flushed) = batched(output.clone(), "test-log").unwrap();
        log.make_writer().write_all(b"alone\n").unwrap();
        let started = Instant::now();
        while output.text().is_empty() {
            assert!(
                started.elapsed() < FLUSH_INTERVAL * 40,
                "the event was not written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(output.text(), "alone\n");
    }

    #[test]
    fn loggers_wait_when_the_output_falls_behind() {
        /// An output that takes a while for each write.
        struct Slow(Output);
        impl Write for Slow {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                self.0.write(bytes)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let output = Output::default();
        let (log, flushed) = batched(Slow(output.clone()), "test-log").unwrap();
        let event = vec![b'x'; 1 << 20];
        let mut most_pending = 0;
        for _ in 0..40 {
            log.make_writer().write_all(&event).unwrap();
            most_pending = most_pending.max(log.shared.lock().events.len());
        }
        assert!(
            most_pending <= MAX_PENDING_BYTES + event.len(),
            "{most_pending} bytes were pending"
        );
        drop(flushed);
        assert_eq!(output.text().len(), 40 * event.len());
    }
}
