//! Where the parts of multi-part poll results begin, as found when the
//! part before was located.
//!
//! A result id names the result, not its parts: part n begins after the
//! last block of part n - 1, so finding it from the result's start
//! measures every part before it, and a client reading a result of n parts
//! in turn made the store measure n²/2 parts. Clients ask for part n right
//! after part n - 1; remembering where it begins makes each part one
//! measurement. Forgetting costs only that measurement again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::core::Timestamp;
use crate::store::PollQuery;

/// Part beginnings remembered at most; the oldest is forgotten first.
const REMEMBERED: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PartKey {
    feed: String,
    exclusive_begin: Option<i128>,
    inclusive_end: Option<i128>,
    bindings: Vec<String>,
    part: u64,
}

impl PartKey {
    pub(super) fn new(query: &PollQuery, part: u64) -> PartKey {
        PartKey {
            feed: query.feed.clone(),
            exclusive_begin: query.exclusive_begin.map(|t| t.unix_nanos()),
            inclusive_end: query.inclusive_end.map(|t| t.unix_nanos()),
            bindings: query.bindings.clone(),
            part,
        }
    }
}

#[derive(Default)]
pub(super) struct PartStarts(Mutex<Starts>);

#[derive(Default)]
struct Starts {
    after: HashMap<PartKey, Timestamp>,
    order: VecDeque<PartKey>,
}

impl PartStarts {
    /// The label part `part` of the query's result begins after, if known.
    pub(super) fn get(&self, query: &PollQuery, part: u64) -> Option<Timestamp> {
        self.lock().after.get(&PartKey::new(query, part)).copied()
    }

    /// Remembers that part `part` of the query's result begins after `label`.
    pub(super) fn remember(&self, query: &PollQuery, part: u64, label: Timestamp) {
        let key = PartKey::new(query, part);
        let mut starts = self.lock();
        if starts.after.insert(key.clone(), label).is_none() {
            starts.order.push_back(key);
        }
        while starts.order.len() > REMEMBERED {
            if let Some(oldest) = starts.order.pop_front() {
                starts.after.remove(&oldest);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Starts> {
        lock_whole(&self.0)
    }
}

/// A lock on what each change leaves whole: still used after a panic.
pub(super) fn lock_whole<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A query of a result, for tests of what is kept per result and part.
#[cfg(test)]
pub(super) fn result_query(feed: &str) -> PollQuery {
    PollQuery {
        feed: feed.to_owned(),
        exclusive_begin: None,
        inclusive_end: Some(Timestamp::from_unix(1_700_000_000, 0)),
        bindings: Vec::new(),
        limit: 1000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(feed: &str) -> PollQuery {
        result_query(feed)
    }

    #[test]
    fn a_part_start_is_found_for_its_result_and_part_only() {
        let starts = PartStarts::default();
        let label = Timestamp::from_unix(1_600_000_000, 0);
        starts.remember(&query("a"), 2, label);
        assert_eq!(starts.get(&query("a"), 2), Some(label));
        assert_eq!(starts.get(&query("a"), 3), None);
        assert_eq!(starts.get(&query("b"), 2), None);
        let mut other_end = query("a");
        other_end.inclusive_end = Some(Timestamp::from_unix(1_700_000_001, 0));
        assert_eq!(starts.get(&other_end, 2), None);
    }

    #[test]
    fn the_oldest_are_forgotten_beyond_the_bound() {
        let starts = PartStarts::default();
        let label = Timestamp::from_unix(1_600_000_000, 0);
        for part in 0..(REMEMBERED as u64 + 10) {
            starts.remember(&query("a"), part, label);
        }
        assert_eq!(starts.get(&query("a"), 0), None);
        assert_eq!(starts.get(&query("a"), 9), None);
        assert_eq!(starts.get(&query("a"), 10), Some(label));
        assert_eq!(starts.lock().after.len(), REMEMBERED);
    }
}
