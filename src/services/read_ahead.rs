//! The next part of a multi-part poll result, read while the client still
//! receives and reads the part before.
//!
//! A client fetches parts one after the other: without this, the store
//! sits idle while the client reads a part and asks for the next, and the
//! client waits while the store reads it. Read ahead, the two overlap.
//!
//! What is read ahead is the store's blocks as they were, with the labels
//! and sizes that located them. It is used only when locating the part
//! again, at the time it is asked for, finds exactly those: an edit since
//! (a replaced block takes a new label, a removed one is gone) makes it
//! stale, and the part is read afresh. The blocks are filtered for the
//! identity asking at use, as any read is.
//!
//! Bounded: a few parts at once, each no more than the first chunks a
//! response holds anyway; when all slots are taken nothing more is read
//! ahead (so that many pollers at once cannot make it read parts only to
//! evict them), and a part nobody asks for is forgotten after a while.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::parts::{PartKey, lock_whole};
use crate::store::{PollExtent, PollQuery, StoredBlock};

/// Parts held or being read at once.
const SLOTS: usize = 4;
/// How long a part read ahead waits to be asked for.
const KEPT: Duration = Duration::from_secs(10);

/// A part's extent when it was read ahead, and its first chunks.
pub(super) struct ReadAhead {
    pub(super) extent: PollExtent,
    pub(super) chunks: Vec<Vec<StoredBlock>>,
}

struct Slot {
    key: PartKey,
    taken_at: Instant,
    read: oneshot::Receiver<ReadAhead>,
}

#[derive(Default)]
pub(super) struct PartsAhead(Mutex<VecDeque<Slot>>);

impl PartsAhead {
    /// A slot for part `part` of the query's result, unless one is held for
    /// it already or none is free: the sender to fill it with.
    pub(super) fn reserve(
        &self,
        query: &PollQuery,
        part: u64,
    ) -> Option<oneshot::Sender<ReadAhead>> {
        let key = PartKey::new(query, part);
        let mut slots = self.lock();
        let now = Instant::now();
        slots.retain(|slot| now.duration_since(slot.taken_at) < KEPT);
        if slots.len() >= SLOTS || slots.iter().any(|slot| slot.key == key) {
            return None;
        }
        let (fill, read) = oneshot::channel();
        slots.push_back(Slot {
            key,
            taken_at: now,
            read,
        });
        Some(fill)
    }

    /// Part `part` of the query's result as read ahead, once its reading
    /// ends, if it was; its slot is freed either way.
    pub(super) async fn take(&self, query: &PollQuery, part: u64) -> Option<ReadAhead> {
        let key = PartKey::new(query, part);
        let read = {
            let mut slots = self.lock();
            let at = slots.iter().position(|slot| slot.key == key)?;
            slots.remove(at)?.read
        };
        read.await.ok()
    }

    /// The chunks read ahead for part `part` of the query's result if the
    /// part, located now, still has exactly the blocks they were read as;
    /// none when nothing was read ahead or it is stale. Counted by outcome.
    pub(super) async fn take_current(
        &self,
        query: &PollQuery,
        part: u64,
        extent: &PollExtent,
    ) -> Vec<Vec<StoredBlock>> {
        let Some(ahead) = self.take(query, part).await else {
            return Vec::new();
        };
        let current = ahead.extent == *extent;
        metrics::counter!("taxiway_poll_parts_read_ahead_total",
            "feed" => query.feed.clone(),
            "outcome" => if current { "used" } else { "stale" })
        .increment(1);
        if current { ahead.chunks } else { Vec::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Slot>> {
        lock_whole(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Timestamp;
    use crate::services::parts::result_query as query;

    fn read(labels: i64) -> ReadAhead {
        ReadAhead {
            extent: PollExtent {
                blocks: (0..labels)
                    .map(|n| (Timestamp::from_unix(1_600_000_000 + n, 0), 10))
                    .collect(),
                more: false,
            },
            chunks: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_part_is_taken_once_by_its_result_and_number() {
        let ahead = PartsAhead::default();
        let fill = ahead.reserve(&query("a"), 2).expect("a free slot");
        assert!(ahead.reserve(&query("a"), 2).is_none(), "one slot per part");
        fill.send(read(3)).ok().expect("the slot waits");
        assert!(ahead.take(&query("a"), 3).await.is_none());
        assert!(ahead.take(&query("b"), 2).await.is_none());
        let taken = ahead.take(&query("a"), 2).await.expect("read ahead");
        assert_eq!(taken.extent, read(3).extent);
        assert!(ahead.take(&query("a"), 2).await.is_none(), "taken once");
    }

    #[tokio::test]
    async fn a_part_still_being_read_is_awaited_and_an_abandoned_one_is_none() {
        let ahead = PartsAhead::default();
        let fill = ahead.reserve(&query("a"), 2).expect("a free slot");
        let reading = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            fill.send(read(1)).ok();
        });
        assert!(ahead.take(&query("a"), 2).await.is_some());
        reading.await.unwrap();
        drop(ahead.reserve(&query("a"), 3).expect("a free slot"));
        assert!(ahead.take(&query("a"), 3).await.is_none());
    }

    #[test]
    fn nothing_more_is_reserved_while_every_slot_is_held() {
        let ahead = PartsAhead::default();
        let held: Vec<_> = (0..SLOTS as u64)
            .map(|part| ahead.reserve(&query("a"), part).expect("a free slot"))
            .collect();
        assert!(ahead.reserve(&query("a"), 99).is_none());
        assert_eq!(held.len(), SLOTS);
        {
            let mut slots = ahead.lock();
            let kept_since = slots[0].taken_at.checked_sub(KEPT);
            slots[0].taken_at = kept_since.expect("a clock running for longer than KEPT");
        }
        assert!(
            ahead.reserve(&query("a"), 99).is_some(),
            "a part kept too long frees its slot"
        );
    }
}
