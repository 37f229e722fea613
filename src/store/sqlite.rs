//! The embedded store: one SQLite file in WAL mode.
//!
//! One writer task owns the only write connection and commits whatever
//! `append` calls are queued in one transaction (group commit): a durable
//! commit costs an fsync, so sharing it is what lets many requests a second
//! through. Being the only writer also makes labels simple: they are assigned
//! in commit order, so a label never becomes visible after a later one.
//! Reads go through a separate pool of read-only connections.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{
    BlockSummary, Commit, Committed, DueDelivery, Edit, EditConflict, EgressRow, NewBlock,
    OutboxDepth, OutboxRow, OutboxState, PollCursor, PollExtent, PollPage, PollQuery, Retry, Store,
    StoreError, StoredBlock, Subscription, SummaryQuery,
};
use crate::core::{
    ContentBinding, ContentBlock, Delivery, Dialect, MessageBinding, ProtocolBinding,
    PushParameters, SubscriptionStatus, Timestamp, XmlContent,
};

const DATABASE_FILE: &str = "taxiway.sqlite3";
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most `append` calls committed together; bounds one transaction's size.
const MAX_REQUESTS_PER_COMMIT: usize = 512;
/// Calls waiting for the writer before `append` waits to enqueue.
const QUEUE_CAPACITY: usize = 4096;
const READ_CONNECTIONS: u32 = 4;

/// Schema migrations in the order they apply; a version is never reused.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../migrations/sqlite/0001_content_blocks.sql"),
    ),
    (
        2,
        include_str!("../../migrations/sqlite/0002_subscriptions_outbox.sql"),
    ),
    (
        3,
        include_str!("../../migrations/sqlite/0003_egress_seen_cursors.sql"),
    ),
    (
        4,
        include_str!("../../migrations/sqlite/0004_feed_changes.sql"),
    ),
];

/// A feed's latest label: of its newest block or of a later removal.
const LATEST_LABEL: &str = "SELECT MAX(label) FROM ( \
     SELECT MAX(label_us) AS label FROM content_blocks WHERE feed = ?1 \
     UNION ALL SELECT changed_us FROM feed_changes WHERE feed = ?1)";

/// Latest label per feed as committed, kept by the writer and read by
/// every request that needs it (ROLIE pages, feed information): a feed
/// not yet in it is read from the database once.
type LatestLabels = Arc<RwLock<HashMap<String, i64>>>;

// Macros rather than constants: sqlx takes only static SQL, built with concat!.
macro_rules! subscription_columns {
    () => {
        "s.id AS s_id, s.feed AS s_feed, s.status AS s_status, \
     s.delivery AS s_delivery, s.push_address AS s_push_address, \
     s.push_protocol AS s_push_protocol, s.message_binding AS s_message_binding, \
     s.content_bindings AS s_content_bindings, s.created_us AS s_created_us, \
     s.created_by AS s_created_by"
    };
}

macro_rules! outbox_columns {
    () => {
        "o.id AS o_id, o.subscription_id AS o_subscription_id, \
     o.block_id AS block_id, o.attempts AS o_attempts, o.next_attempt_us AS o_next_attempt_us, \
     o.state AS o_state, o.last_error AS o_last_error"
    };
}

type Reply = oneshot::Sender<Result<Committed, StoreError>>;

struct CommitRequest {
    commit: Commit,
    reply: Reply,
}

/// Hosted feeds in `DATA_DIR/taxiway.sqlite3`.
pub struct SqliteStore {
    requests: mpsc::Sender<CommitRequest>,
    readers: SqlitePool,
    /// One connection for the small writes of subscriptions and the outbox;
    /// SQLite serialises it with the appending writer.
    control: SqlitePool,
    commits: Arc<AtomicU64>,
    latest: LatestLabels,
    writer: JoinHandle<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` and brings its
    /// schema up to date. A database written by a newer version is refused.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);

        let mut conn = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .map_err(|e| map_error(&format!("cannot open {}", path.display()), e))?;
        migrate(&mut conn).await?;

        // Read-only, so that nothing but the writer can ever write.
        let readers = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(base.clone().read_only(true))
            .await
            .map_err(|e| map_error("cannot open the read connections", e))?;
        let control = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base)
            .await
            .map_err(|e| map_error("cannot open the control connection", e))?;

        let commits = Arc::new(AtomicU64::new(0));
        let latest = LatestLabels::default();
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer = tokio::spawn(
            Writer {
                conn,
                latest: Arc::clone(&latest),
                commits: Arc::clone(&commits),
            }
            .run(queue),
        );
        Ok(SqliteStore {
            requests,
            readers,
            control,
            commits,
            latest,
            writer,
        })
    }

    /// Transactions committed by the writer since this store was opened (an
    /// operational metric: appends per commit shows how well commits are shared).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Commits what is already queued, then closes every connection. Dropping
    /// the store does the same in the background.
    pub async fn close(self) {
        drop(self.requests);
        if let Err(e) = self.writer.await {
            tracing::error!("the store's writer task failed: {e}");
        }
        self.readers.close().await;
        self.control.close().await;
    }
}

impl Store for SqliteStore {
    /// If the returned future is dropped after the commit was handed to the
    /// writer, it is still committed.
    async fn commit(&self, commit: Commit) -> Result<Committed, StoreError> {
        if commit.blocks.is_empty()
            && commit.egress.is_empty()
            && commit.dedup_key.is_none()
            && commit.cursor.is_none()
            && commit.edits.is_empty()
        {
            return Ok(Committed::Stored(Vec::new()));
        }
        // Checked here so that one bad call cannot fail a shared commit.
        let replacements = commit.edits.iter().filter_map(|edit| match edit {
            Edit::Replace { block, .. } => Some(block),
            Edit::Remove { .. } => None,
        });
        if let Some(block) = commit
            .blocks
            .iter()
            .chain(replacements)
            .find(|b| b.binding.subtypes.len() > 1)
        {
            return Err(StoreError::Invalid(format!(
                "a content block carries at most one subtype, got {:?}",
                block.binding.subtypes
            )));
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(CommitRequest { commit, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the store's writer stopped before answering".into())
        })?
    }

    async fn poll(&self, query: PollQuery) -> Result<PollPage, StoreError> {
        let begin = query.exclusive_begin.map_or(i64::MIN, to_micros);
        let end = query.inclusive_end.map_or(i64::MAX, to_micros);
        // One more than asked tells whether there is more.
        let limit = i64::try_from(query.limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        // A JSON array keeps the statement fixed whatever the number of bindings.
        let bindings = serde_json::to_string(&query.bindings)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode the bindings: {e}")))?;
        let rows = sqlx::query(
            "SELECT id, label_us, binding_id, subtype, content_kind, content \
             FROM content_blocks \
             WHERE feed = ?1 AND label_us > ?2 AND label_us <= ?3 \
               AND (?4 = 0 OR binding_id IN (SELECT value FROM json_each(?5))) \
             ORDER BY label_us \
             LIMIT ?6",
        )
        .bind(&query.feed)
        .bind(begin)
        .bind(end)
        .bind(i64::from(!query.bindings.is_empty()))
        .bind(bindings)
        .bind(limit)
        .fetch_all(&self.readers)
        .await
        .map_err(|e| map_error("poll failed", e))?;

        let more = rows.len() > query.limit;
        let blocks = rows
            .iter()
            .take(query.limit)
            .map(|row| stored_block(&query.feed, row, "id"))
            .collect::<Result<_, _>>()?;
        Ok(PollPage { blocks, more })
    }

    async fn summaries(&self, query: SummaryQuery) -> Result<Vec<BlockSummary>, StoreError> {
        // Two statements rather than one with a bound ORDER BY direction, so
        // that each walks the (feed, label) index in its own order.
        let sql = if query.newest_first {
            "SELECT id, label_us, binding_id, subtype FROM content_blocks \
             WHERE feed = ?1 AND label_us > ?2 AND label_us < ?3 \
             ORDER BY label_us DESC LIMIT ?4"
        } else {
            "SELECT id, label_us, binding_id, subtype FROM content_blocks \
             WHERE feed = ?1 AND label_us > ?2 AND label_us < ?3 \
             ORDER BY label_us LIMIT ?4"
        };
        let rows: Vec<(i64, i64, String, Option<String>)> = sqlx::query_as(sql)
            .bind(&query.feed)
            .bind(query.after.map_or(i64::MIN, to_micros))
            .bind(query.before.map_or(i64::MAX, to_micros))
            .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.readers)
            .await
            .map_err(|e| map_error("reading block summaries failed", e))?;
        Ok(rows
            .into_iter()
            .map(|(id, label, binding, subtype)| BlockSummary {
                id,
                label: from_micros(label),
                binding: ContentBinding {
                    id: binding,
                    subtypes: subtype.into_iter().collect(),
                },
            })
            .collect())
    }

    async fn block(&self, feed: &str, id: i64) -> Result<Option<StoredBlock>, StoreError> {
        let row = sqlx::query(
            "SELECT id, label_us, binding_id, subtype, content_kind, content \
             FROM content_blocks WHERE feed = ?1 AND id = ?2",
        )
        .bind(feed)
        .bind(id)
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| map_error("reading a block failed", e))?;
        row.as_ref()
            .map(|row| stored_block(feed, row, "id"))
            .transpose()
    }

    async fn poll_extent(&self, query: PollQuery) -> Result<PollExtent, StoreError> {
        let begin = query.exclusive_begin.map_or(i64::MIN, to_micros);
        let end = query.inclusive_end.map_or(i64::MAX, to_micros);
        let limit = i64::try_from(query.limit)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let bindings = serde_json::to_string(&query.bindings)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode the bindings: {e}")))?;
        // octet_length reads the size from the record header, not the content.
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT label_us, octet_length(content) FROM content_blocks \
             WHERE feed = ?1 AND label_us > ?2 AND label_us <= ?3 \
               AND (?4 = 0 OR binding_id IN (SELECT value FROM json_each(?5))) \
             ORDER BY label_us \
             LIMIT ?6",
        )
        .bind(&query.feed)
        .bind(begin)
        .bind(end)
        .bind(i64::from(!query.bindings.is_empty()))
        .bind(bindings)
        .bind(limit)
        .fetch_all(&self.readers)
        .await
        .map_err(|e| map_error("measuring a poll failed", e))?;
        let more = rows.len() > query.limit;
        let blocks = rows
            .into_iter()
            .take(query.limit)
            .map(|(label, bytes)| (from_micros(label), u64::try_from(bytes).unwrap_or(0)))
            .collect();
        Ok(PollExtent { blocks, more })
    }

    async fn latest_label(&self, feed: &str) -> Result<Option<Timestamp>, StoreError> {
        if let Some(&latest) = read_lock(&self.latest).get(feed) {
            return Ok(Some(from_micros(latest)));
        }
        let latest: Option<i64> = sqlx::query_scalar(LATEST_LABEL)
            .bind(feed)
            .fetch_one(&self.readers)
            .await
            .map_err(|e| map_error("reading the latest label failed", e))?;
        let Some(latest) = latest else {
            return Ok(None);
        };
        // Only if absent: the writer may have put a later one in meanwhile.
        let latest = *write_lock(&self.latest)
            .entry(feed.to_owned())
            .or_insert(latest);
        Ok(Some(from_micros(latest)))
    }

    async fn create_subscription(&self, subscription: Subscription) -> Result<(), StoreError> {
        let (kind, address, protocol, binding) = match &subscription.delivery {
            Delivery::Push(push) => (
                "push",
                Some(push.address.clone()),
                Some(protocol_text(&push.protocol)),
                Some(binding_text(&push.message_binding)),
            ),
            Delivery::Poll { message_binding } => (
                "poll",
                None,
                None,
                message_binding.as_ref().map(binding_text),
            ),
        };
        let bindings = serde_json::to_string(&subscription.content_bindings)
            .map_err(|e| StoreError::Invalid(format!("cannot encode the bindings: {e}")))?;
        sqlx::query(
            "INSERT INTO subscriptions \
             (id, feed, status, delivery, push_address, push_protocol, message_binding, \
              content_bindings, created_us, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(&subscription.id)
        .bind(&subscription.feed)
        .bind(status_text(subscription.status))
        .bind(kind)
        .bind(address)
        .bind(protocol)
        .bind(binding)
        .bind(bindings)
        .bind(to_micros(subscription.created))
        .bind(&subscription.created_by)
        .execute(&self.control)
        .await
        .map_err(|e| map_error("storing a subscription failed", e))?;
        Ok(())
    }

    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions s WHERE s.id = ?1"
        ))
        .bind(id)
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| map_error("reading a subscription failed", e))?;
        row.as_ref().map(subscription_of).transpose()
    }

    async fn subscriptions_of(&self, feed: &str) -> Result<Vec<Subscription>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions s WHERE s.feed = ?1 ORDER BY s.created_us, s.id"
        ))
        .bind(feed)
        .fetch_all(&self.readers)
        .await
        .map_err(|e| map_error("reading subscriptions failed", e))?;
        rows.iter().map(subscription_of).collect()
    }

    async fn set_subscription_status(
        &self,
        id: &str,
        status: SubscriptionStatus,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE subscriptions SET status = ?2 WHERE id = ?1")
            .bind(id)
            .bind(status_text(status))
            .execute(&self.control)
            .await
            .map_err(|e| map_error("updating a subscription failed", e))?;
        Ok(done.rows_affected() > 0)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let now = to_micros(now);
        let rows = sqlx::query(concat!(
            "SELECT ",
            outbox_columns!(),
            ", ",
            subscription_columns!(),
            ", b.label_us, b.binding_id, b.subtype, b.content_kind, b.content \
             FROM outbox o \
             JOIN subscriptions s ON s.id = o.subscription_id \
             JOIN content_blocks b ON b.id = o.block_id \
             WHERE o.state = 'pending' AND o.next_attempt_us <= ?1 \
               AND s.status = 'ACTIVE' AND s.delivery = 'push' \
               AND NOT EXISTS (SELECT 1 FROM outbox e \
                   WHERE e.subscription_id = o.subscription_id AND e.state = 'pending' \
                     AND e.id < o.id AND e.next_attempt_us > ?1) \
             ORDER BY o.id LIMIT ?2"
        ))
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| map_error("claiming outbox rows failed", e))?;
        rows.iter()
            .map(|row| {
                let subscription = subscription_of(row)?;
                Ok(DueDelivery {
                    row: outbox_row_of(row)?,
                    block: stored_block(&subscription.feed, row, "block_id")?,
                    subscription,
                })
            })
            .collect()
    }

    async fn mark_delivered(&self, row: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, last_error = NULL \
             WHERE id = ?1",
        )
        .bind(row)
        .execute(&self.control)
        .await
        .map_err(|e| map_error("marking a delivery failed", e))?;
        Ok(())
    }

    async fn record_failure(&self, row: i64, error: &str, retry: Retry) -> Result<(), StoreError> {
        let (state, next) = retry_columns(retry);
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, state = ?3, \
                 next_attempt_us = COALESCE(?4, next_attempt_us) \
             WHERE id = ?1 AND state = 'pending'",
        )
        .bind(row)
        .bind(error)
        .bind(state)
        .bind(next)
        .execute(&self.control)
        .await
        .map_err(|e| map_error("recording a failed delivery failed", e))?;
        Ok(())
    }

    async fn outbox(&self, dead_only: bool, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox o \
             WHERE o.state = 'dead' OR (?1 = 0 AND o.state = 'pending') \
             ORDER BY o.id LIMIT ?2"
        ))
        .bind(i64::from(dead_only))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| map_error("listing the outbox failed", e))?;
        rows.iter().map(outbox_row_of).collect()
    }

    async fn claim_egress(
        &self,
        destination: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<EgressRow>, StoreError> {
        let now = to_micros(now);
        let rows = sqlx::query(
            "SELECT id, destination, message_id, payload, attempts, state, last_error, progress \
             FROM egress_outbox o \
             WHERE o.destination = ?1 AND o.state = 'pending' AND o.next_attempt_us <= ?2 \
               AND o.id < COALESCE((SELECT MIN(e.id) FROM egress_outbox e \
                   WHERE e.destination = ?1 AND e.state = 'pending' \
                     AND e.next_attempt_us > ?2), 9223372036854775807) \
             ORDER BY o.id LIMIT ?3",
        )
        .bind(destination)
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| map_error("claiming egress rows failed", e))?;
        rows.iter().map(egress_row_of).collect()
    }

    async fn egress_delivered(&self, rows: &[i64]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids = serde_json::to_string(rows)
            .map_err(|e| StoreError::Invalid(format!("cannot encode the ids: {e}")))?;
        sqlx::query(
            "UPDATE egress_outbox SET state = 'delivered', attempts = attempts + 1, \
                 last_error = NULL \
             WHERE state = 'pending' AND id IN (SELECT value FROM json_each(?1))",
        )
        .bind(ids)
        .execute(&self.control)
        .await
        .map_err(|e| map_error("marking egress deliveries failed", e))?;
        Ok(())
    }

    async fn egress_failed(&self, row: i64, error: &str, retry: Retry) -> Result<(), StoreError> {
        let (state, next) = retry_columns(retry);
        sqlx::query(
            "UPDATE egress_outbox SET attempts = attempts + 1, last_error = ?2, state = ?3, \
                 next_attempt_us = COALESCE(?4, next_attempt_us) \
             WHERE id = ?1 AND state = 'pending'",
        )
        .bind(row)
        .bind(error)
        .bind(state)
        .bind(next)
        .execute(&self.control)
        .await
        .map_err(|e| map_error("recording an egress failure failed", e))?;
        Ok(())
    }

    async fn egress_progress(&self, row: i64, progress: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE egress_outbox SET progress = ?2 WHERE id = ?1 AND state = 'pending'")
            .bind(row)
            .bind(progress)
            .execute(&self.control)
            .await
            .map_err(|e| map_error("recording egress progress failed", e))?;
        Ok(())
    }

    async fn poll_cursor(
        &self,
        poller: &str,
        feed: &str,
    ) -> Result<Option<PollCursor>, StoreError> {
        let row: Option<(String, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT end_label, result_id, next_part FROM poll_cursors \
             WHERE poller = ?1 AND feed = ?2",
        )
        .bind(poller)
        .bind(feed)
        .fetch_optional(&self.readers)
        .await
        .map_err(|e| map_error("reading a poll cursor failed", e))?;
        Ok(row.map(|(end_label, result_id, next_part)| PollCursor {
            poller: poller.to_owned(),
            feed: feed.to_owned(),
            end_label,
            result: result_id.zip(next_part.map(|n| u64::try_from(n).unwrap_or(1))),
        }))
    }

    async fn forget_seen(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM seen_messages WHERE seen_us < ?1")
            .bind(to_micros(before))
            .execute(&self.control)
            .await
            .map_err(|e| map_error("forgetting seen message ids failed", e))?;
        Ok(done.rows_affected())
    }

    async fn egress_outbox(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> Result<Vec<EgressRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, destination, message_id, payload, attempts, state, last_error, progress \
             FROM egress_outbox \
             WHERE state = 'dead' OR (?1 = 0 AND state = 'pending') \
             ORDER BY id LIMIT ?2",
        )
        .bind(i64::from(dead_only))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.readers)
        .await
        .map_err(|e| map_error("listing the egress outbox failed", e))?;
        rows.iter().map(egress_row_of).collect()
    }

    async fn egress_replay(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let ids = serde_json::to_string(ids)
            .map_err(|e| StoreError::Invalid(format!("cannot encode the ids: {e}")))?;
        let done = sqlx::query(
            "UPDATE egress_outbox SET state = 'pending', attempts = 0, next_attempt_us = ?1 \
             WHERE state = 'dead' \
               AND (json_array_length(?2) = 0 OR id IN (SELECT value FROM json_each(?2)))",
        )
        .bind(now_micros())
        .bind(ids)
        .execute(&self.control)
        .await
        .map_err(|e| map_error("replaying the egress outbox failed", e))?;
        Ok(done.rows_affected())
    }

    async fn outbox_depth(&self) -> Result<OutboxDepth, StoreError> {
        // Each count walks a (state, id) index over its own rows only.
        let (pending, dead): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending') \
                  + (SELECT COUNT(*) FROM egress_outbox WHERE state = 'pending'), \
                    (SELECT COUNT(*) FROM outbox WHERE state = 'dead') \
                  + (SELECT COUNT(*) FROM egress_outbox WHERE state = 'dead')",
        )
        .fetch_one(&self.readers)
        .await
        .map_err(|e| map_error("measuring the outbox failed", e))?;
        Ok(OutboxDepth {
            pending: u64::try_from(pending).unwrap_or(0),
            dead: u64::try_from(dead).unwrap_or(0),
        })
    }

    async fn replay(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let ids = serde_json::to_string(ids)
            .map_err(|e| StoreError::Invalid(format!("cannot encode the ids: {e}")))?;
        let done = sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_us = ?1 \
             WHERE state = 'dead' \
               AND (json_array_length(?2) = 0 OR id IN (SELECT value FROM json_each(?2)))",
        )
        .bind(now_micros())
        .bind(ids)
        .execute(&self.control)
        .await
        .map_err(|e| map_error("replaying the outbox failed", e))?;
        Ok(done.rows_affected())
    }
}

fn subscription_of(row: &SqliteRow) -> Result<Subscription, StoreError> {
    let read = |e| map_error("reading a subscription failed", e);
    let id: String = row.try_get("s_id").map_err(read)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("subscription {id} has {what}"));
    let status = match row.try_get::<String, _>("s_status").map_err(read)?.as_str() {
        "ACTIVE" => SubscriptionStatus::Active,
        "PAUSED" => SubscriptionStatus::Paused,
        "UNSUBSCRIBED" => SubscriptionStatus::Unsubscribed,
        other => return Err(corrupt(&format!("an unknown status {other:?}"))),
    };
    let binding: Option<String> = row.try_get("s_message_binding").map_err(read)?;
    let message_binding = binding.as_deref().map(binding_of);
    let delivery = match row
        .try_get::<String, _>("s_delivery")
        .map_err(read)?
        .as_str()
    {
        "push" => {
            let address: Option<String> = row.try_get("s_push_address").map_err(read)?;
            let protocol: Option<String> = row.try_get("s_push_protocol").map_err(read)?;
            match (address, protocol, message_binding) {
                (Some(address), Some(protocol), Some(message_binding)) => {
                    Delivery::Push(PushParameters {
                        protocol: protocol_of(&protocol),
                        address,
                        message_binding,
                    })
                }
                _ => return Err(corrupt("incomplete push parameters")),
            }
        }
        "poll" => Delivery::Poll { message_binding },
        other => return Err(corrupt(&format!("an unknown delivery {other:?}"))),
    };
    let bindings: String = row.try_get("s_content_bindings").map_err(read)?;
    let content_bindings =
        serde_json::from_str(&bindings).map_err(|_| corrupt("unreadable content bindings"))?;
    Ok(Subscription {
        feed: row.try_get("s_feed").map_err(read)?,
        status,
        delivery,
        content_bindings,
        created: from_micros(row.try_get("s_created_us").map_err(read)?),
        created_by: row.try_get("s_created_by").map_err(read)?,
        id,
    })
}

fn egress_row_of(row: &SqliteRow) -> Result<EgressRow, StoreError> {
    let read = |e| map_error("reading an egress row failed", e);
    let state: String = row.try_get("state").map_err(read)?;
    let attempts: i64 = row.try_get("attempts").map_err(read)?;
    Ok(EgressRow {
        id: row.try_get("id").map_err(read)?,
        destination: row.try_get("destination").map_err(read)?,
        message_id: row.try_get("message_id").map_err(read)?,
        payload: row.try_get("payload").map_err(read)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        state: outbox_state_of(&state)?,
        last_error: row.try_get("last_error").map_err(read)?,
        progress: row.try_get("progress").map_err(read)?,
    })
}

/// The state and next attempt a failed row is left with.
fn retry_columns(retry: Retry) -> (&'static str, Option<i64>) {
    match retry {
        Retry::At(at) => ("pending", Some(to_micros(at))),
        Retry::Dead => ("dead", None),
    }
}

fn outbox_state_of(state: &str) -> Result<OutboxState, StoreError> {
    match state {
        "pending" => Ok(OutboxState::Pending),
        "delivered" => Ok(OutboxState::Delivered),
        "dead" => Ok(OutboxState::Dead),
        other => Err(StoreError::Corrupt(format!(
            "an outbox row has an unknown state {other:?}"
        ))),
    }
}

fn outbox_row_of(row: &SqliteRow) -> Result<OutboxRow, StoreError> {
    let read = |e| map_error("reading an outbox row failed", e);
    let id: i64 = row.try_get("o_id").map_err(read)?;
    let state = outbox_state_of(&row.try_get::<String, _>("o_state").map_err(read)?)?;
    let attempts: i64 = row.try_get("o_attempts").map_err(read)?;
    Ok(OutboxRow {
        id,
        subscription_id: row.try_get("o_subscription_id").map_err(read)?,
        block_id: row.try_get("block_id").map_err(read)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt: from_micros(row.try_get("o_next_attempt_us").map_err(read)?),
        state,
        last_error: row.try_get("o_last_error").map_err(read)?,
    })
}

fn status_text(status: SubscriptionStatus) -> &'static str {
    match status {
        SubscriptionStatus::Active => "ACTIVE",
        SubscriptionStatus::Paused => "PAUSED",
        SubscriptionStatus::Unsubscribed => "UNSUBSCRIBED",
    }
}

fn protocol_text(protocol: &ProtocolBinding) -> String {
    match protocol {
        ProtocolBinding::Http => "http".to_owned(),
        ProtocolBinding::Https => "https".to_owned(),
        ProtocolBinding::Other(uri) => uri.clone(),
    }
}

fn protocol_of(text: &str) -> ProtocolBinding {
    match text {
        "http" => ProtocolBinding::Http,
        "https" => ProtocolBinding::Https,
        other => ProtocolBinding::Other(other.to_owned()),
    }
}

fn binding_text(binding: &MessageBinding) -> String {
    match binding {
        MessageBinding::Xml(dialect) => dialect.name().to_owned(),
        MessageBinding::Other(uri) => uri.clone(),
    }
}

fn binding_of(text: &str) -> MessageBinding {
    match text.parse::<Dialect>() {
        Ok(dialect) => MessageBinding::Xml(dialect),
        Err(_) => MessageBinding::Other(text.to_owned()),
    }
}

struct Writer {
    conn: SqliteConnection,
    latest: LatestLabels,
    commits: Arc<AtomicU64>,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<CommitRequest>) {
        let mut batch = Vec::with_capacity(MAX_REQUESTS_PER_COMMIT);
        // Takes everything queued at once; returns 0 once every sender is gone.
        while queue.recv_many(&mut batch, MAX_REQUESTS_PER_COMMIT).await > 0 {
            match self.commit(&batch).await {
                Ok(stored) => {
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    for (request, blocks) in batch.drain(..).zip(stored) {
                        // The caller may have gone; its blocks are committed anyway.
                        let _ = request.reply.send(Ok(blocks));
                    }
                }
                Err(error) => {
                    tracing::error!("a commit of {} appends failed: {error}", batch.len());
                    // The outcome of a failed COMMIT is not certain: reload labels.
                    write_lock(&self.latest).clear();
                    for request in batch.drain(..) {
                        let _ = request.reply.send(Err(copy_error(&error)));
                    }
                }
            }
        }
        if let Err(e) = self.conn.close().await {
            tracing::error!("closing the store's write connection failed: {e}");
        }
    }

    /// Stores every request's blocks in one transaction; labels are only
    /// remembered once it has committed.
    async fn commit(&mut self, batch: &[CommitRequest]) -> Result<Vec<Committed>, StoreError> {
        // IMMEDIATE takes the write lock now, so the clock is read after any wait.
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| map_error("cannot begin a transaction", e))?;
        let mut labels = Labels {
            now: now_micros(),
            given: HashMap::new(),
            committed: &self.latest,
        };
        let now = labels.now;
        // Push subscriptions per feed, read inside the transaction so that a
        // subscription committed before it gets every later block.
        let mut pushes: HashMap<&str, Vec<(String, Vec<String>)>> = HashMap::new();
        let mut answers = Vec::with_capacity(batch.len());

        for request in batch {
            let commit = &request.commit;
            if let Some(conflict) = edit_conflict(&mut tx, &commit.edits).await? {
                answers.push(Committed::Conflict(conflict));
                continue;
            }
            if let Some(key) = &commit.dedup_key {
                let fresh = sqlx::query(
                    "INSERT OR IGNORE INTO seen_messages (key, seen_us) VALUES (?1, ?2)",
                )
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_error("remembering a message id failed", e))?;
                if fresh.rows_affected() == 0 {
                    answers.push(Committed::Duplicate);
                    continue;
                }
            }
            let mut stored = Vec::with_capacity(commit.blocks.len() + commit.edits.len());
            for edit in &commit.edits {
                match edit {
                    Edit::Replace { id, block: new, .. } => {
                        let label = labels.next(&mut tx, &new.feed).await?;
                        let (kind, content) = content_columns(&new.content);
                        sqlx::query(
                            "UPDATE content_blocks SET label_us = ?1, binding_id = ?2, \
                             subtype = ?3, content_kind = ?4, content = ?5, \
                             source_message_id = ?6 WHERE id = ?7",
                        )
                        .bind(label)
                        .bind(&new.binding.id)
                        .bind(new.binding.subtypes.first())
                        .bind(kind)
                        .bind(content)
                        .bind(&new.source_message_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| map_error("replacing a content block failed", e))?;
                        queue_pushes(&mut tx, &mut pushes, new, *id, now).await?;
                        stored.push(stored_new(new, *id, label));
                    }
                    Edit::Remove { feed, id, .. } => {
                        // Nothing is left to push of it; what was delivered
                        // is history of a block that no longer exists.
                        sqlx::query("DELETE FROM outbox WHERE block_id = ?1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| map_error("removing a block's pushes failed", e))?;
                        sqlx::query("DELETE FROM content_blocks WHERE id = ?1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| map_error("removing a content block failed", e))?;
                        let label = labels.next(&mut tx, feed).await?;
                        sqlx::query(
                            "INSERT INTO feed_changes (feed, changed_us) VALUES (?1, ?2) \
                             ON CONFLICT (feed) DO UPDATE SET changed_us = ?2",
                        )
                        .bind(feed)
                        .bind(label)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| map_error("recording a removal failed", e))?;
                    }
                }
            }
            for new in &commit.blocks {
                let label = labels.next(&mut tx, &new.feed).await?;
                let (kind, content) = content_columns(&new.content);
                let done = sqlx::query(
                    "INSERT INTO content_blocks \
                     (feed, label_us, binding_id, subtype, content_kind, content, source_message_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .bind(&new.feed)
                .bind(label)
                .bind(&new.binding.id)
                .bind(new.binding.subtypes.first())
                .bind(kind)
                .bind(content)
                .bind(&new.source_message_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_error("storing a content block failed", e))?;
                let block_id = done.last_insert_rowid();
                queue_pushes(&mut tx, &mut pushes, new, block_id, now).await?;
                stored.push(stored_new(new, block_id, label));
            }
            for egress in &commit.egress {
                sqlx::query(
                    "INSERT INTO egress_outbox \
                     (destination, message_id, payload, next_attempt_us, state, created_us) \
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?4)",
                )
                .bind(&egress.destination)
                .bind(&egress.message_id)
                .bind(&egress.payload)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_error("queueing an egress message failed", e))?;
            }
            if let Some(cursor) = &commit.cursor {
                let (result_id, next_part) = match &cursor.result {
                    Some((id, part)) => (
                        Some(id.as_str()),
                        Some(i64::try_from(*part).unwrap_or(i64::MAX)),
                    ),
                    None => (None, None),
                };
                sqlx::query(
                    "INSERT INTO poll_cursors (poller, feed, end_label, result_id, next_part) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (poller, feed) DO UPDATE SET end_label = ?3, result_id = ?4, \
                       next_part = ?5",
                )
                .bind(&cursor.poller)
                .bind(&cursor.feed)
                .bind(&cursor.end_label)
                .bind(result_id)
                .bind(next_part)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_error("advancing a poll cursor failed", e))?;
            }
            answers.push(Committed::Stored(stored));
        }

        tx.commit()
            .await
            .map_err(|e| map_error("committing content blocks failed", e))?;
        let given = labels.given;
        let mut latest = write_lock(&self.latest);
        for (feed, label) in given {
            latest.insert(feed.to_owned(), label);
        }
        Ok(answers)
    }
}

/// The labels one transaction gives, feed by feed: each after the feed's
/// last one, whether that was given in this transaction or committed before.
struct Labels<'a> {
    now: i64,
    given: HashMap<&'a str, i64>,
    committed: &'a LatestLabels,
}

impl<'a> Labels<'a> {
    async fn next(
        &mut self,
        conn: &mut SqliteConnection,
        feed: &'a str,
    ) -> Result<i64, StoreError> {
        let known = self
            .given
            .get(feed)
            .copied()
            .or_else(|| read_lock(self.committed).get(feed).copied());
        let last = match known {
            Some(last) => Some(last),
            None => sqlx::query_scalar(LATEST_LABEL)
                .bind(feed)
                .fetch_one(conn)
                .await
                .map_err(|e| map_error("reading the latest label failed", e))?,
        };
        let label = match last {
            Some(last) => self.now.max(last.saturating_add(1)),
            None => self.now,
        };
        self.given.insert(feed, label);
        Ok(label)
    }
}

/// Why an edit cannot apply, if one cannot: its block is gone or has
/// changed since the editor read it.
async fn edit_conflict(
    conn: &mut SqliteConnection,
    edits: &[Edit],
) -> Result<Option<EditConflict>, StoreError> {
    for edit in edits {
        let (feed, id, expected) = edit.applies_to();
        let label: Option<i64> =
            sqlx::query_scalar("SELECT label_us FROM content_blocks WHERE id = ?1 AND feed = ?2")
                .bind(id)
                .bind(feed)
                .fetch_optional(&mut *conn)
                .await
                .map_err(|e| map_error("reading a block to edit failed", e))?;
        match (label, expected) {
            (None, _) => return Ok(Some(EditConflict::Missing)),
            (Some(label), Some(expected)) if label != to_micros(expected) => {
                return Ok(Some(EditConflict::Changed(from_micros(label))));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Queues a block for every push subscription of its feed that wants its
/// binding and has no push of it pending already (a replaced block's
/// pending push delivers the new content).
async fn queue_pushes<'a>(
    conn: &mut SqliteConnection,
    pushes: &mut HashMap<&'a str, Vec<(String, Vec<String>)>>,
    block: &'a NewBlock,
    block_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let feed = block.feed.as_str();
    if !pushes.contains_key(feed) {
        let subscribers = push_subscribers(&mut *conn, feed).await?;
        pushes.insert(feed, subscribers);
    }
    for (subscription, bindings) in &pushes[feed] {
        if !bindings.is_empty() && !bindings.contains(&block.binding.id) {
            continue;
        }
        sqlx::query(
            "INSERT INTO outbox (subscription_id, block_id, next_attempt_us, state) \
             SELECT ?1, ?2, ?3, 'pending' WHERE NOT EXISTS ( \
               SELECT 1 FROM outbox WHERE block_id = ?2 AND subscription_id = ?1 \
                 AND state = 'pending')",
        )
        .bind(subscription)
        .bind(block_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(|e| map_error("queueing a push failed", e))?;
    }
    Ok(())
}

fn content_columns(content: &XmlContent) -> (&'static str, &str) {
    match content {
        XmlContent::Text(text) => ("text", text),
        XmlContent::Xml(xml) => ("xml", xml),
    }
}

fn stored_new(new: &NewBlock, id: i64, label: i64) -> StoredBlock {
    let mut block = ContentBlock::new(new.binding.clone(), new.content.clone());
    let label = from_micros(label);
    block.timestamp_label = Some(label);
    StoredBlock {
        id,
        feed: new.feed.clone(),
        label,
        block,
    }
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves a map that is still
    // whole (each change is one insert): keep using it.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Active and paused push subscriptions of a feed, with their content
/// bindings: paused ones keep queueing so that RESUME leaves no gap.
async fn push_subscribers(
    conn: &mut SqliteConnection,
    feed: &str,
) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, content_bindings FROM subscriptions \
         WHERE feed = ?1 AND delivery = 'push' AND status IN ('ACTIVE', 'PAUSED')",
    )
    .bind(feed)
    .fetch_all(conn)
    .await
    .map_err(|e| map_error("reading push subscriptions failed", e))?;
    rows.iter()
        .map(|row| {
            let read = |e| map_error("reading push subscriptions failed", e);
            let id: String = row.try_get("id").map_err(read)?;
            let bindings: String = row.try_get("content_bindings").map_err(read)?;
            let bindings = serde_json::from_str(&bindings).map_err(|_| {
                StoreError::Corrupt(format!("subscription {id} has unreadable content bindings"))
            })?;
            Ok((id, bindings))
        })
        .collect()
}

/// Applies the migrations this version knows and has not yet applied, all in
/// one transaction.
async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| map_error("cannot begin the migration", e))?;
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
        .execute(&mut *tx)
        .await
        .map_err(|e| map_error("cannot create schema_migrations", e))?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| map_error("cannot read schema_migrations", e))?;
    if let Some(unknown) = applied
        .iter()
        .find(|v| !MIGRATIONS.iter().any(|(known, _)| known == *v))
    {
        return Err(StoreError::Corrupt(format!(
            "schema migration {unknown} is unknown to this version (written by a newer one?)"
        )));
    }
    for &(version, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_error(&format!("schema migration {version} failed"), e))?;
        sqlx::query("INSERT INTO schema_migrations (version) VALUES (?1)")
            .bind(version)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_error("cannot record a schema migration", e))?;
    }
    tx.commit()
        .await
        .map_err(|e| map_error("committing the schema migrations failed", e))
}

fn stored_block(feed: &str, row: &SqliteRow, id_column: &str) -> Result<StoredBlock, StoreError> {
    let read = |e| map_error("reading a content block failed", e);
    let id: i64 = row.try_get(id_column).map_err(read)?;
    let label = from_micros(row.try_get("label_us").map_err(read)?);
    let binding_id: String = row.try_get("binding_id").map_err(read)?;
    let subtype: Option<String> = row.try_get("subtype").map_err(read)?;
    let kind: String = row.try_get("content_kind").map_err(read)?;
    let content: String = row.try_get("content").map_err(read)?;
    let content = match kind.as_str() {
        "text" => XmlContent::Text(content),
        "xml" => XmlContent::Xml(content),
        other => {
            return Err(StoreError::Corrupt(format!(
                "content block {id} has an unknown content kind {other:?}"
            )));
        }
    };
    let binding = ContentBinding {
        id: binding_id,
        subtypes: subtype.into_iter().collect(),
    };
    let mut block = ContentBlock::new(binding, content);
    block.timestamp_label = Some(label);
    Ok(StoredBlock {
        id,
        feed: feed.to_owned(),
        label,
        block,
    })
}

/// Microseconds since the epoch, floored; clamped to what a label can hold.
fn to_micros(t: Timestamp) -> i64 {
    let micros = t.unix_nanos().div_euclid(1000);
    i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX })
}

fn from_micros(micros: i64) -> Timestamp {
    Timestamp::from_unix(
        micros.div_euclid(1_000_000),
        (micros.rem_euclid(1_000_000) * 1000) as u32,
    )
}

fn now_micros() -> i64 {
    // A clock before 1970 still gives increasing labels: the last label + 1 wins.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn map_error(context: &str, error: sqlx::Error) -> StoreError {
    // SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), with or without extended bits.
    let corrupt = error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 11 | 26));
    if corrupt {
        StoreError::Corrupt(format!("{context}: {error}"))
    } else {
        StoreError::Unavailable(format!("{context}: {error}"))
    }
}

fn copy_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Invalid(m) => StoreError::Invalid(m.clone()),
    }
}
