//! Hosted feeds: content blocks with their timestamp labels, kept durably.
//!
//! The store knows core types only. Services call it; adapters and codecs
//! never do. The embedded default is SQLite; a PostgreSQL implementation of
//! the same trait comes later.

mod sqlite;

use std::future::Future;

use tokio::sync::watch;

use crate::core::{
    ContentBinding, ContentBlock, Delivery, SubscriptionStatus, Timestamp, XmlContent,
};

pub use sqlite::SqliteStore;

/// A content block to add to a hosted feed; the store gives it its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBlock {
    pub feed: String,
    pub binding: ContentBinding,
    pub content: XmlContent,
    /// The message that carried it (for deduplication and tracing).
    pub source_message_id: String,
}

/// Everything one ingress message leads to, committed in one transaction
/// before the ingress acknowledges it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    pub blocks: Vec<NewBlock>,
    pub egress: Vec<NewEgress>,
    /// When set, the commit is refused as a duplicate (and nothing of it is
    /// stored) if this key was committed within the seen window; otherwise
    /// the key is remembered.
    pub dedup_key: Option<String>,
    /// A poller's position, advanced with the content it fetched.
    pub cursor: Option<PollCursor>,
    /// Blocks replaced or removed; checked before anything else of the
    /// commit is written, which is refused whole if one does not apply.
    pub edits: Vec<Edit>,
}

/// A change to a block already stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// New content for a block: it keeps its id and takes the feed's next
    /// label, so that pollers and subscribers receive it as new content.
    Replace {
        id: i64,
        /// The label the block must still have (its version), if any.
        expected: Option<Timestamp>,
        block: NewBlock,
    },
    /// The block is gone from its feed, with anything still to push of it.
    Remove {
        feed: String,
        id: i64,
        expected: Option<Timestamp>,
    },
}

impl Edit {
    /// The feed, block and expected label the edit applies to.
    pub fn applies_to(&self) -> (&str, i64, Option<Timestamp>) {
        match self {
            Edit::Replace {
                id,
                expected,
                block,
            } => (&block.feed, *id, *expected),
            Edit::Remove { feed, id, expected } => (feed, *id, *expected),
        }
    }
}

impl Commit {
    pub fn blocks(blocks: Vec<NewBlock>) -> Self {
        Commit {
            blocks,
            ..Commit::default()
        }
    }
}

/// What became of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    Stored(Vec<StoredBlock>),
    /// Its dedup key was seen already: nothing was stored.
    Duplicate,
    /// An edit's block is not there, or no longer has the expected label:
    /// nothing was stored.
    Conflict(EditConflict),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditConflict {
    #[error("the block is not there")]
    Missing,
    /// The block's label now.
    #[error("the block has changed (its label is now {0})")]
    Changed(Timestamp),
}

/// A message to deliver to an egress destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEgress {
    /// The configured egress name.
    pub destination: String,
    pub message_id: String,
    /// What the egress needs to write the message, serialised by its owner.
    pub payload: String,
}

/// An egress outbox row due for delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRow {
    pub id: i64,
    pub destination: String,
    pub message_id: String,
    pub payload: String,
    pub attempts: u32,
    pub state: OutboxState,
    pub last_error: Option<String>,
    /// What the egress recorded of a partial delivery.
    pub progress: Option<String>,
}

/// Where a poller stopped in a remote feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollCursor {
    pub poller: String,
    pub feed: String,
    /// The remote's end label, as it wrote it.
    pub end_label: String,
    /// A 1.1 multi-part result being fetched, and the next part to ask for.
    pub result: Option<(String, u64)>,
}

/// A content block as stored: its feed, its place and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlock {
    /// Increases with every block stored, across feeds.
    pub id: i64,
    pub feed: String,
    /// Strictly increasing within a feed, at microsecond resolution (what
    /// TAXII 1.x labels can carry), in UTC.
    pub label: Timestamp,
    pub block: ContentBlock,
}

/// Which blocks of a feed, without content, and in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryQuery {
    pub feed: String,
    /// Labels strictly after this one.
    pub after: Option<Timestamp>,
    /// Labels strictly before this one.
    pub before: Option<Timestamp>,
    pub newest_first: bool,
    pub limit: usize,
}

/// A stored block without its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockSummary {
    pub id: i64,
    pub label: Timestamp,
    pub binding: ContentBinding,
}

/// What a poll asks of one feed: labels in `(exclusive_begin, inclusive_end]`,
/// oldest first, at most `limit` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollQuery {
    pub feed: String,
    pub exclusive_begin: Option<Timestamp>,
    pub inclusive_end: Option<Timestamp>,
    /// Content binding ids to return; empty means any.
    pub bindings: Vec<String>,
    pub limit: usize,
}

/// One page of a poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollPage {
    pub blocks: Vec<StoredBlock>,
    /// Whether more blocks match beyond this page.
    pub more: bool,
}

/// The blocks of a poll page, known by their labels and sizes only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollExtent {
    /// Each block's label and content size in bytes, oldest first.
    pub blocks: Vec<(Timestamp, u64)>,
    /// Whether more blocks match beyond the page.
    pub more: bool,
}

/// A subscription to a hosted feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Unguessable (a random UUID): holding it is what lets a subscriber manage it.
    pub id: String,
    pub feed: String,
    pub status: SubscriptionStatus,
    pub delivery: Delivery,
    /// Content binding ids delivered; empty means any.
    pub content_bindings: Vec<String>,
    pub created: Timestamp,
    /// The identity that subscribed; `None` for anonymous.
    pub created_by: Option<String>,
}

impl Subscription {
    /// Whether blocks of this binding are delivered to it.
    pub fn wants(&self, binding_id: &str) -> bool {
        self.content_bindings.is_empty() || self.content_bindings.iter().any(|b| b == binding_id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutboxState {
    Pending,
    /// Failed too often; waits for an operator's replay.
    Dead,
}

impl OutboxState {
    pub fn name(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Dead => "dead",
        }
    }
}

/// One content block to push to one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub subscription_id: String,
    pub block_id: i64,
    pub attempts: u32,
    pub next_attempt: Timestamp,
    pub state: OutboxState,
    pub last_error: Option<String>,
}

/// Outbox rows by state, delivered ones aside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    pub pending: u64,
    pub dead: u64,
}

/// A claimed outbox row with what delivering it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueDelivery {
    pub row: OutboxRow,
    pub subscription: Subscription,
    pub block: StoredBlock,
}

/// What happens to a row after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    At(Timestamp),
    Dead,
}

impl Retry {
    /// After the `attempts`-th failed attempt: dead at `max_attempts`,
    /// otherwise again after `initial_backoff_ms`, doubled for each failure
    /// after the first, at most an hour.
    pub fn after_failure(attempts: u32, max_attempts: u32, initial_backoff_ms: u64) -> Retry {
        if attempts >= max_attempts {
            return Retry::Dead;
        }
        Retry::At(Timestamp::now().shifted_nanos(backoff_nanos(initial_backoff_ms, attempts)))
    }
}

fn backoff_nanos(initial_ms: u64, attempts: u32) -> i64 {
    const HOUR_MS: u64 = 3_600_000;
    let doublings = attempts.saturating_sub(1).min(32);
    let millis = initial_ms.saturating_mul(1u64 << doublings).min(HOUR_MS);
    i64::try_from(millis).unwrap_or(i64::MAX) * 1_000_000
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller asked for something the store cannot hold; nothing was stored.
    #[error("refused: {0}")]
    Invalid(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store's data is not what this version expects: {0}")]
    Corrupt(String),
}

/// Where hosted feeds live.
pub trait Store: Send + Sync + 'static {
    /// Commits blocks (labelled), egress rows, a dedup key and a cursor,
    /// and answers once they are durable. Everything passed in one call
    /// commits in one transaction, or not at all; concurrent calls may share
    /// a commit.
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<Committed, StoreError>> + Send;

    /// Adds blocks and returns them labelled, once they are durably committed.
    fn append(
        &self,
        blocks: Vec<NewBlock>,
    ) -> impl Future<Output = Result<Vec<StoredBlock>, StoreError>> + Send {
        let committing = self.commit(Commit::blocks(blocks));
        async move {
            match committing.await? {
                Committed::Stored(blocks) => Ok(blocks),
                Committed::Duplicate | Committed::Conflict(_) => Err(StoreError::Invalid(
                    "a commit without a dedup key or edits cannot be refused".into(),
                )),
            }
        }
    }

    /// Pending egress rows of a destination that are due, oldest first; a
    /// row waiting for a retry holds back the later ones, so that each
    /// destination receives messages in order.
    fn claim_egress(
        &self,
        destination: &str,
        now: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EgressRow>, StoreError>> + Send;

    /// The rows were delivered: they leave the outbox, payload and all.
    fn egress_delivered(&self, rows: &[i64])
    -> impl Future<Output = Result<(), StoreError>> + Send;

    fn egress_failed(
        &self,
        row: i64,
        error: &str,
        retry: Retry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records how far a row going to several receivers got, so that a
    /// retry skips those that have it.
    fn egress_progress(
        &self,
        row: i64,
        progress: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets dedup keys committed before `before`; returns how many.
    fn forget_seen(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// A poller's position in a remote feed, if it has one.
    fn poll_cursor(
        &self,
        poller: &str,
        feed: &str,
    ) -> impl Future<Output = Result<Option<PollCursor>, StoreError>> + Send;

    /// Blocks of a feed with labels in the query's range, oldest first.
    fn poll(&self, query: PollQuery) -> impl Future<Output = Result<PollPage, StoreError>> + Send;

    /// Blocks of a feed labelled in `(after, before)` without their
    /// content, the newest or the oldest of them first, at most `limit`: a
    /// ROLIE feed page, which carries content by reference.
    fn summaries(
        &self,
        query: SummaryQuery,
    ) -> impl Future<Output = Result<Vec<BlockSummary>, StoreError>> + Send;

    /// One block of a feed, by its id.
    fn block(
        &self,
        feed: &str,
        id: i64,
    ) -> impl Future<Output = Result<Option<StoredBlock>, StoreError>> + Send;

    /// What [`Store::poll`] would return for the query, without the
    /// content: a large page is then read in chunks of bounded size, by
    /// label ranges that content arriving meanwhile cannot change.
    fn poll_extent(
        &self,
        query: PollQuery,
    ) -> impl Future<Output = Result<PollExtent, StoreError>> + Send;

    /// The latest label of a feed: of its newest block, or of a later
    /// removal; `None` while nothing was ever stored in it. Every change to
    /// a feed moves it on.
    fn latest_label(
        &self,
        feed: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;

    /// Stores a new subscription; content appended after this returns is
    /// delivered to it (if it is a push subscription).
    fn create_subscription(
        &self,
        subscription: Subscription,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn subscription(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send;

    /// A feed's subscriptions, oldest first.
    fn subscriptions_of(
        &self,
        feed: &str,
    ) -> impl Future<Output = Result<Vec<Subscription>, StoreError>> + Send;

    /// Sets a subscription's status; false if there is no such subscription.
    fn set_subscription_status(
        &self,
        id: &str,
        status: SubscriptionStatus,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Pending outbox rows due at `now` of active subscriptions, oldest first,
    /// at most `limit`. A row is only due once every earlier pending row of
    /// its subscription is due too, so a subscription's content goes in order.
    fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueDelivery>, StoreError>> + Send;

    /// The row was delivered: it leaves the outbox.
    fn mark_delivered(&self, row: i64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Counts a failed attempt and either schedules the next one or gives up.
    fn record_failure(
        &self,
        row: i64,
        error: &str,
        retry: Retry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Outbox rows not yet delivered (pending and dead), or only the dead
    /// ones, oldest first, at most `limit`.
    fn outbox(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxRow>, StoreError>> + Send;

    /// Egress rows not yet delivered (pending and dead), or only the dead
    /// ones, oldest first, at most `limit`.
    fn egress_outbox(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EgressRow>, StoreError>> + Send;

    /// Makes dead egress rows pending again, due now: the given ones, or
    /// every dead one when `ids` is empty. Returns how many were reset.
    fn egress_replay(&self, ids: &[i64]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How many outbox rows (pushes and forwards) wait for delivery, and
    /// how many are dead.
    fn outbox_depth(&self) -> impl Future<Output = Result<OutboxDepth, StoreError>> + Send;

    /// Makes dead rows pending again, due now: the given ones, or every dead
    /// row when `ids` is empty. Returns how many were reset.
    fn replay(&self, ids: &[i64]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Changes whenever a commit may have made outbox rows due (pushes or
    /// forwards queued, rows replayed): a delivery worker that found
    /// nothing to do waits for it rather than only for its next look.
    fn outbox_changes(&self) -> watch::Receiver<u64>;
}

/// How an idle outbox worker waits: until a commit may have made rows due
/// for it, or `idle` has passed (rows scheduled for a retry fall due with
/// no commit).
pub struct OutboxWake(watch::Receiver<u64>);

impl OutboxWake {
    pub fn new(store: &impl Store) -> OutboxWake {
        OutboxWake(store.outbox_changes())
    }

    /// Called before each look at the outbox, so that a commit after the
    /// look ends the wait that follows it.
    pub fn looking(&mut self) {
        self.0.borrow_and_update();
    }

    pub async fn wait(&mut self, idle: std::time::Duration) {
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            // A closed store only leaves the timer.
            Ok(()) = self.0.changed() => {}
        }
    }
}

/// A shared store is a store: the services and the delivery workers hold one each.
impl<T: Store> Store for std::sync::Arc<T> {
    fn commit(&self, commit: Commit) -> impl Future<Output = Result<Committed, StoreError>> + Send {
        (**self).commit(commit)
    }
    fn claim_egress(
        &self,
        destination: &str,
        now: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EgressRow>, StoreError>> + Send {
        (**self).claim_egress(destination, now, limit)
    }
    fn egress_delivered(
        &self,
        rows: &[i64],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).egress_delivered(rows)
    }
    fn egress_failed(
        &self,
        row: i64,
        error: &str,
        retry: Retry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).egress_failed(row, error, retry)
    }
    fn egress_progress(
        &self,
        row: i64,
        progress: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).egress_progress(row, progress)
    }
    fn poll_cursor(
        &self,
        poller: &str,
        feed: &str,
    ) -> impl Future<Output = Result<Option<PollCursor>, StoreError>> + Send {
        (**self).poll_cursor(poller, feed)
    }
    fn forget_seen(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).forget_seen(before)
    }
    fn poll(&self, query: PollQuery) -> impl Future<Output = Result<PollPage, StoreError>> + Send {
        (**self).poll(query)
    }
    fn poll_extent(
        &self,
        query: PollQuery,
    ) -> impl Future<Output = Result<PollExtent, StoreError>> + Send {
        (**self).poll_extent(query)
    }
    fn summaries(
        &self,
        query: SummaryQuery,
    ) -> impl Future<Output = Result<Vec<BlockSummary>, StoreError>> + Send {
        (**self).summaries(query)
    }
    fn block(
        &self,
        feed: &str,
        id: i64,
    ) -> impl Future<Output = Result<Option<StoredBlock>, StoreError>> + Send {
        (**self).block(feed, id)
    }
    fn latest_label(
        &self,
        feed: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send {
        (**self).latest_label(feed)
    }
    fn create_subscription(
        &self,
        subscription: Subscription,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).create_subscription(subscription)
    }
    fn subscription(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Subscription>, StoreError>> + Send {
        (**self).subscription(id)
    }
    fn subscriptions_of(
        &self,
        feed: &str,
    ) -> impl Future<Output = Result<Vec<Subscription>, StoreError>> + Send {
        (**self).subscriptions_of(feed)
    }
    fn set_subscription_status(
        &self,
        id: &str,
        status: SubscriptionStatus,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).set_subscription_status(id, status)
    }
    fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<DueDelivery>, StoreError>> + Send {
        (**self).claim_due(now, limit)
    }
    fn mark_delivered(&self, row: i64) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_delivered(row)
    }
    fn record_failure(
        &self,
        row: i64,
        error: &str,
        retry: Retry,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_failure(row, error, retry)
    }
    fn outbox(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxRow>, StoreError>> + Send {
        (**self).outbox(dead_only, limit)
    }
    fn egress_outbox(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<EgressRow>, StoreError>> + Send {
        (**self).egress_outbox(dead_only, limit)
    }
    fn egress_replay(&self, ids: &[i64]) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).egress_replay(ids)
    }
    fn outbox_depth(&self) -> impl Future<Output = Result<OutboxDepth, StoreError>> + Send {
        (**self).outbox_depth()
    }
    fn replay(&self, ids: &[i64]) -> impl Future<Output = Result<u64, StoreError>> + Send {
        (**self).replay(ids)
    }
    fn outbox_changes(&self) -> watch::Receiver<u64> {
        (**self).outbox_changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let second = 1_000_000_000;
        assert_eq!(backoff_nanos(1000, 1), second);
        assert_eq!(backoff_nanos(1000, 2), 2 * second);
        assert_eq!(backoff_nanos(1000, 4), 8 * second);
        assert_eq!(backoff_nanos(1000, 40), 3600 * second);
        assert_eq!(Retry::after_failure(3, 3, 1000), Retry::Dead);
        assert!(matches!(Retry::after_failure(2, 3, 1000), Retry::At(at) if at > Timestamp::now()));
    }
}
