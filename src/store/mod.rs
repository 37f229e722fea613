//! Hosted feeds: content blocks with their timestamp labels, kept durably.
//!
//! The store knows core types only. Services call it; adapters and codecs
//! never do. The embedded default is SQLite; a PostgreSQL implementation of
//! the same trait comes later.

mod sqlite;

use std::future::Future;

use crate::core::{ContentBinding, ContentBlock, Timestamp, XmlContent};

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
    /// Adds blocks and returns them labelled, once they are durably
    /// committed. Everything passed in one call commits in one transaction,
    /// or not at all; concurrent calls may share a commit.
    fn append(
        &self,
        blocks: Vec<NewBlock>,
    ) -> impl Future<Output = Result<Vec<StoredBlock>, StoreError>> + Send;

    /// Blocks of a feed with labels in the query's range, oldest first.
    fn poll(&self, query: PollQuery) -> impl Future<Output = Result<PollPage, StoreError>> + Send;

    /// The latest label of a feed, if it holds anything.
    fn latest_label(
        &self,
        feed: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;
}
