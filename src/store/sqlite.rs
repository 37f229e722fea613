//! The embedded store: one SQLite file in WAL mode.
//!
//! One writer thread owns the only write connection and commits whatever
//! `commit` calls are queued in one transaction (group commit): a durable
//! commit costs an fsync, so sharing it is what lets many requests a second
//! through. Being the only writer also makes labels simple: they are assigned
//! in commit order, so a label never becomes visible after a later one.
//! Reads go through a few read-only connections, each used by one blocking
//! thread at a time.
//!
//! SQLite is called synchronously (rusqlite), a whole transaction or read on
//! one thread: a driver that crosses threads at every statement and row
//! (sqlx's SQLite worker) made each group commit wait for the scheduler
//! dozens of times, and the one writer is what every inbox request waits for.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior, params,
};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

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
/// Most `commit` calls committed together; bounds one transaction's size.
const MAX_REQUESTS_PER_COMMIT: usize = 512;
/// Calls waiting for the writer before `commit` waits to enqueue.
const QUEUE_CAPACITY: usize = 4096;
const READ_CONNECTIONS: usize = 4;
/// Page cache of a read connection (SQLite's default is 2 MiB): a large
/// poll streams through pages it reads once, and would leave every read
/// connection's cache full of them; the operating system's file cache
/// keeps the file's hot pages anyway, outside the gateway's memory.
const READ_CACHE_KIB: i64 = 256;
/// Page size of a new database (SQLite's default is 4 KiB). A row that
/// does not fit beside another in a page takes the page alone: a typical
/// STIX package of about 2 KB left half of every 4 KiB page empty, which
/// the writer wrote twice (to the WAL, then in a checkpoint) and a poll
/// read. In 8 KiB pages three such blocks share a page; larger pages cost
/// more for every small row a commit touches (indexes, the outboxes). An
/// existing database keeps the size it was created with.
const PAGE_SIZE: i64 = 8192;
/// Prepared statements kept per connection: more than any one uses.
const STATEMENT_CACHE: usize = 64;

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
    (
        5,
        include_str!("../../migrations/sqlite/0005_content_bytes.sql"),
    ),
    (
        6,
        include_str!("../../migrations/sqlite/0006_delivered_rows_leave.sql"),
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

// Macros rather than constants, so that statements stay literals (concat!).
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

/// A block's columns, first in every statement that reads blocks, so that
/// [`stored_block`] reads them by position.
macro_rules! block_columns {
    () => {
        "b.id, b.label_us, b.binding_id, b.subtype, b.content_kind, b.content"
    };
}

const POLL_BLOCKS: &str = concat!(
    "SELECT ",
    block_columns!(),
    " FROM content_blocks b \
     WHERE b.feed = ?1 AND b.label_us > ?2 AND b.label_us <= ?3 \
       AND (?4 = 0 OR b.binding_id IN (SELECT value FROM json_each(?5))) \
     ORDER BY b.label_us \
     LIMIT ?6"
);

// Answered from the content_blocks_extent index alone.
const POLL_EXTENT: &str = "SELECT label_us, content_bytes FROM content_blocks \
     WHERE feed = ?1 AND label_us > ?2 AND label_us <= ?3 \
       AND (?4 = 0 OR binding_id IN (SELECT value FROM json_each(?5))) \
     ORDER BY label_us \
     LIMIT ?6";

macro_rules! egress_rows {
    () => {
        "SELECT id, destination, message_id, payload, attempts, state, last_error, progress \
         FROM egress_outbox"
    };
}

type Reply = oneshot::Sender<Result<Committed, StoreError>>;

struct CommitRequest {
    commit: Commit,
    reply: Reply,
}

/// What the writer does: commit an ingress's content, or run one of the
/// small writes of subscriptions and outboxes. Both share its transactions,
/// so that no write ever waits for SQLite's lock (whose busy handler sleeps
/// milliseconds at a time) and the small writes ride on the commits'
/// fsyncs.
enum Job {
    Commit(CommitRequest),
    Write(WriteJob),
}

/// One statement run inside the writer's transaction. It answers whether it
/// succeeded and how to tell its caller, once the transaction's outcome is
/// known.
type WriteJob = Box<dyn FnOnce(&Connection) -> (bool, Answer) + Send>;
type Answer = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

/// Hosted feeds in `DATA_DIR/taxiway.sqlite3`.
pub struct SqliteStore {
    requests: mpsc::Sender<Job>,
    outbox_watch: watch::Receiver<u64>,
    readers: Arc<Connections>,
    commits: Arc<AtomicU64>,
    latest: LatestLabels,
    /// Answers once the writer has committed what was queued and closed.
    writer_done: oneshot::Receiver<()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` and brings its
    /// schema up to date. A database written by a newer version is refused.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let data_dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(&data_dir))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the store failed: {e}")))?
    }

    fn open_blocking(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let mut conn = connect(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )?;
        // Before WAL: a database in WAL mode cannot change its page size.
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(|e| map_error("cannot set the page size", e))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| map_error("cannot enter WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{} stays in journal mode {mode}, not WAL",
                path.display()
            )));
        }
        migrate(&mut conn)?;

        // Read-only, so that nothing but the writer can ever write.
        let readers = (0..READ_CONNECTIONS)
            .map(|_| {
                let conn = connect(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                conn.pragma_update(None, "cache_size", -READ_CACHE_KIB)
                    .map_err(|e| map_error("cannot size the page cache", e))?;
                Ok(conn)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;

        let commits = Arc::new(AtomicU64::new(0));
        let latest = LatestLabels::default();
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        let (outbox_changes, outbox_watch) = watch::channel(0);
        let writer = Writer {
            conn,
            latest: Arc::clone(&latest),
            commits: Arc::clone(&commits),
            outbox_changes,
        };
        let (finished, writer_done) = oneshot::channel();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                writer.run(queue);
                let _ = finished.send(());
            })
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the store's writer: {e}"))
            })?;
        Ok(SqliteStore {
            requests,
            outbox_watch,
            readers: Connections::new(readers),
            commits,
            latest,
            writer_done,
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
        if self.writer_done.await.is_err() {
            tracing::error!("the store's writer thread failed");
        }
    }
}

/// A connection with the settings every one of the store's has.
fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| map_error(&format!("cannot open {}", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| map_error("cannot set the busy timeout", e))?;
    // FULL: a commit the writer reports is on disk, even after a power cut.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| map_error("cannot set synchronous", e))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(|e| map_error("cannot enforce foreign keys", e))?;
    // Plans that do not depend on the values bound: otherwise SQLite
    // prepares again a statement whose parameters feed its planner (the
    // outbox claims bind the clock) every time they change.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(|e| map_error("cannot fix query plans", e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Connections lent to blocking threads, one caller per connection at a
/// time, so that async callers never block a runtime worker on SQLite.
struct Connections {
    slots: Vec<Mutex<Connection>>,
    permits: Arc<Semaphore>,
}

impl Connections {
    fn new(connections: Vec<Connection>) -> Arc<Connections> {
        Arc::new(Connections {
            permits: Arc::new(Semaphore::new(connections.len())),
            slots: connections.into_iter().map(Mutex::new).collect(),
        })
    }

    /// Runs `work` on a free connection on a blocking thread.
    async fn with<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        let connections = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // Declared before the connection, so released after it.
            let _permit = permit;
            let conn = connections.free().ok_or_else(|| {
                StoreError::Unavailable("no free connection despite a permit".into())
            })?;
            work(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a store thread failed: {e}")))?
    }

    fn free(&self) -> Option<MutexGuard<'_, Connection>> {
        self.slots.iter().find_map(|slot| match slot.try_lock() {
            Ok(conn) => Some(conn),
            // A panic while reading leaves the connection usable: nothing
            // of a transaction is left open on a read or a single statement.
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        })
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
            .send(Job::Commit(CommitRequest { commit, reply }))
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the store's writer stopped before answering".into())
        })?
    }

    async fn poll(&self, query: PollQuery) -> Result<PollPage, StoreError> {
        self.readers
            .with(move |conn| {
                let (blocks, more) = select_limited(
                    conn,
                    "poll failed",
                    POLL_BLOCKS,
                    poll_parameters(&query)?,
                    query.limit,
                    |row| stored_block(&query.feed, row),
                )?;
                Ok(PollPage { blocks, more })
            })
            .await
    }

    async fn summaries(&self, query: SummaryQuery) -> Result<Vec<BlockSummary>, StoreError> {
        self.readers
            .with(move |conn| {
                let failed = |e| map_error("reading block summaries failed", e);
                // Two statements rather than one with a bound ORDER BY
                // direction, so that each walks the (feed, label) index in
                // its own order.
                let sql = if query.newest_first {
                    "SELECT id, label_us, binding_id, subtype FROM content_blocks \
                     WHERE feed = ?1 AND label_us > ?2 AND label_us < ?3 \
                     ORDER BY label_us DESC LIMIT ?4"
                } else {
                    "SELECT id, label_us, binding_id, subtype FROM content_blocks \
                     WHERE feed = ?1 AND label_us > ?2 AND label_us < ?3 \
                     ORDER BY label_us LIMIT ?4"
                };
                let mut statement = conn.prepare_cached(sql).map_err(failed)?;
                let rows = statement
                    .query_map(
                        params![
                            query.feed,
                            query.after.map_or(i64::MIN, to_micros),
                            query.before.map_or(i64::MAX, to_micros),
                            sql_limit(query.limit),
                        ],
                        |row| {
                            Ok(BlockSummary {
                                id: row.get(0)?,
                                label: from_micros(row.get(1)?),
                                binding: ContentBinding {
                                    id: row.get(2)?,
                                    subtypes: row
                                        .get::<_, Option<String>>(3)?
                                        .into_iter()
                                        .collect(),
                                },
                            })
                        },
                    )
                    .map_err(failed)?;
                rows.collect::<Result<_, _>>().map_err(failed)
            })
            .await
    }

    async fn block(&self, feed: &str, id: i64) -> Result<Option<StoredBlock>, StoreError> {
        let feed = feed.to_owned();
        self.readers
            .with(move |conn| {
                select_one(
                    conn,
                    "reading a block failed",
                    concat!(
                        "SELECT ",
                        block_columns!(),
                        " FROM content_blocks b WHERE b.feed = ?1 AND b.id = ?2"
                    ),
                    params![feed, id],
                    |row| stored_block(&feed, row),
                )
            })
            .await
    }

    async fn poll_extent(&self, query: PollQuery) -> Result<PollExtent, StoreError> {
        self.readers
            .with(move |conn| {
                let context = "measuring a poll failed";
                let (blocks, more) = select_limited(
                    conn,
                    context,
                    POLL_EXTENT,
                    poll_parameters(&query)?,
                    query.limit,
                    |row| {
                        let read = |e| map_error(context, e);
                        let label: i64 = row.get(0).map_err(read)?;
                        let bytes: i64 = row.get(1).map_err(read)?;
                        Ok((from_micros(label), u64::try_from(bytes).unwrap_or(0)))
                    },
                )?;
                Ok(PollExtent { blocks, more })
            })
            .await
    }

    async fn latest_label(&self, feed: &str) -> Result<Option<Timestamp>, StoreError> {
        if let Some(&latest) = read_lock(&self.latest).get(feed) {
            return Ok(Some(from_micros(latest)));
        }
        let owned = feed.to_owned();
        let latest = self
            .readers
            .with(move |conn| latest_label_in(conn, &owned))
            .await?;
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
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO subscriptions \
                     (id, feed, status, delivery, push_address, push_protocol, message_binding, \
                      content_bindings, created_us, created_by) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    subscription.id,
                    subscription.feed,
                    status_text(subscription.status),
                    kind,
                    address,
                    protocol,
                    binding,
                    bindings,
                    to_micros(subscription.created),
                    subscription.created_by,
                ])
            })
            .map_err(|e| map_error("storing a subscription failed", e))?;
            Ok(())
        })
        .await
    }

    async fn subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        let id = id.to_owned();
        self.readers
            .with(move |conn| {
                select_one(
                    conn,
                    "reading a subscription failed",
                    concat!(
                        "SELECT ",
                        subscription_columns!(),
                        " FROM subscriptions s WHERE s.id = ?1"
                    ),
                    [id],
                    subscription_of,
                )
            })
            .await
    }

    async fn subscriptions_of(&self, feed: &str) -> Result<Vec<Subscription>, StoreError> {
        let feed = feed.to_owned();
        self.readers
            .with(move |conn| {
                select(
                    conn,
                    "reading subscriptions failed",
                    concat!(
                        "SELECT ",
                        subscription_columns!(),
                        " FROM subscriptions s WHERE s.feed = ?1 ORDER BY s.created_us, s.id"
                    ),
                    [feed],
                    subscription_of,
                )
            })
            .await
    }

    async fn set_subscription_status(
        &self,
        id: &str,
        status: SubscriptionStatus,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let changed = self
            .write(move |conn| {
                execute(
                    conn,
                    "updating a subscription failed",
                    "UPDATE subscriptions SET status = ?2 WHERE id = ?1",
                    params![id, status_text(status)],
                )
            })
            .await?;
        Ok(changed > 0)
    }

    async fn claim_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let now = to_micros(now);
        self.readers
            .with(move |conn| {
                select(
                    conn,
                    "claiming outbox rows failed",
                    concat!(
                        "SELECT ",
                        block_columns!(),
                        ", ",
                        outbox_columns!(),
                        ", ",
                        subscription_columns!(),
                        " FROM outbox o \
                         JOIN subscriptions s ON s.id = o.subscription_id \
                         JOIN content_blocks b ON b.id = o.block_id \
                         WHERE o.state = 'pending' AND o.next_attempt_us <= ?1 \
                           AND s.status = 'ACTIVE' AND s.delivery = 'push' \
                           AND NOT EXISTS (SELECT 1 FROM outbox e \
                               WHERE e.subscription_id = o.subscription_id \
                                 AND e.state = 'pending' \
                                 AND e.id < o.id AND e.next_attempt_us > ?1) \
                         ORDER BY o.id LIMIT ?2"
                    ),
                    params![now, sql_limit(limit)],
                    |row| {
                        let subscription = subscription_of(row)?;
                        Ok(DueDelivery {
                            row: outbox_row_of(row)?,
                            block: stored_block(&subscription.feed, row)?,
                            subscription,
                        })
                    },
                )
            })
            .await
    }

    async fn mark_delivered(&self, row: i64) -> Result<(), StoreError> {
        self.write(move |conn| {
            execute(
                conn,
                "marking a delivery failed",
                "DELETE FROM outbox WHERE id = ?1",
                [row],
            )
        })
        .await?;
        Ok(())
    }

    async fn record_failure(&self, row: i64, error: &str, retry: Retry) -> Result<(), StoreError> {
        let (state, next) = retry_columns(retry);
        let error = error.to_owned();
        self.write(move |conn| {
            execute(
                conn,
                "recording a failed delivery failed",
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, state = ?3, \
                         next_attempt_us = COALESCE(?4, next_attempt_us) \
                     WHERE id = ?1 AND state = 'pending'",
                params![row, error, state, next],
            )
        })
        .await?;
        Ok(())
    }

    async fn outbox(&self, dead_only: bool, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.readers
            .with(move |conn| {
                select(
                    conn,
                    "listing the outbox failed",
                    concat!(
                        "SELECT ",
                        outbox_columns!(),
                        " FROM outbox o \
                         WHERE o.state = 'dead' OR (?1 = 0 AND o.state = 'pending') \
                         ORDER BY o.id LIMIT ?2"
                    ),
                    params![dead_only, sql_limit(limit)],
                    outbox_row_of,
                )
            })
            .await
    }

    async fn claim_egress(
        &self,
        destination: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<EgressRow>, StoreError> {
        let destination = destination.to_owned();
        let now = to_micros(now);
        self.readers
            .with(move |conn| {
                select(
                    conn,
                    "claiming egress rows failed",
                    concat!(
                        egress_rows!(),
                        " o \
                         WHERE o.destination = ?1 AND o.state = 'pending' \
                           AND o.next_attempt_us <= ?2 \
                           AND o.id < COALESCE((SELECT MIN(e.id) FROM egress_outbox e \
                               WHERE e.destination = ?1 AND e.state = 'pending' \
                                 AND e.next_attempt_us > ?2), 9223372036854775807) \
                         ORDER BY o.id LIMIT ?3"
                    ),
                    params![destination, now, sql_limit(limit)],
                    egress_row_of,
                )
            })
            .await
    }

    async fn egress_delivered(&self, rows: &[i64]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let ids = json_ids(rows)?;
        self.write(move |conn| {
            execute(
                conn,
                "marking egress deliveries failed",
                "DELETE FROM egress_outbox \
                     WHERE state = 'pending' AND id IN (SELECT value FROM json_each(?1))",
                [ids],
            )
        })
        .await?;
        Ok(())
    }

    async fn egress_failed(&self, row: i64, error: &str, retry: Retry) -> Result<(), StoreError> {
        let (state, next) = retry_columns(retry);
        let error = error.to_owned();
        self.write(move |conn| {
            execute(
                conn,
                "recording an egress failure failed",
                "UPDATE egress_outbox SET attempts = attempts + 1, last_error = ?2, \
                         state = ?3, next_attempt_us = COALESCE(?4, next_attempt_us) \
                     WHERE id = ?1 AND state = 'pending'",
                params![row, error, state, next],
            )
        })
        .await?;
        Ok(())
    }

    async fn egress_progress(&self, row: i64, progress: &str) -> Result<(), StoreError> {
        let progress = progress.to_owned();
        self.write(move |conn| {
            execute(
                conn,
                "recording egress progress failed",
                "UPDATE egress_outbox SET progress = ?2 WHERE id = ?1 AND state = 'pending'",
                params![row, progress],
            )
        })
        .await?;
        Ok(())
    }

    async fn poll_cursor(
        &self,
        poller: &str,
        feed: &str,
    ) -> Result<Option<PollCursor>, StoreError> {
        let (poller, feed) = (poller.to_owned(), feed.to_owned());
        self.readers
            .with(move |conn| {
                let row: Option<(String, Option<String>, Option<i64>)> = conn
                    .prepare_cached(
                        "SELECT end_label, result_id, next_part FROM poll_cursors \
                         WHERE poller = ?1 AND feed = ?2",
                    )
                    .and_then(|mut statement| {
                        statement
                            .query_row(params![poller, feed], |row| {
                                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                            })
                            .optional()
                    })
                    .map_err(|e| map_error("reading a poll cursor failed", e))?;
                Ok(row.map(|(end_label, result_id, next_part)| PollCursor {
                    poller,
                    feed,
                    end_label,
                    result: result_id.zip(next_part.map(|n| u64::try_from(n).unwrap_or(1))),
                }))
            })
            .await
    }

    async fn forget_seen(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = to_micros(before);
        let forgotten = self
            .write(move |conn| {
                execute(
                    conn,
                    "forgetting seen message ids failed",
                    "DELETE FROM seen_messages WHERE seen_us < ?1",
                    [before],
                )
            })
            .await?;
        Ok(forgotten as u64)
    }

    async fn egress_outbox(
        &self,
        dead_only: bool,
        limit: usize,
    ) -> Result<Vec<EgressRow>, StoreError> {
        self.readers
            .with(move |conn| {
                select(
                    conn,
                    "listing the egress outbox failed",
                    concat!(
                        egress_rows!(),
                        " WHERE state = 'dead' OR (?1 = 0 AND state = 'pending') \
                         ORDER BY id LIMIT ?2"
                    ),
                    params![dead_only, sql_limit(limit)],
                    egress_row_of,
                )
            })
            .await
    }

    async fn egress_replay(&self, ids: &[i64]) -> Result<u64, StoreError> {
        self.replay_dead("egress_outbox", ids).await
    }

    async fn outbox_depth(&self) -> Result<OutboxDepth, StoreError> {
        self.readers
            .with(|conn| {
                // Each count walks a (state, id) index over its own rows only.
                let (pending, dead): (i64, i64) = conn
                    .prepare_cached(
                        "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending') \
                              + (SELECT COUNT(*) FROM egress_outbox WHERE state = 'pending'), \
                                (SELECT COUNT(*) FROM outbox WHERE state = 'dead') \
                              + (SELECT COUNT(*) FROM egress_outbox WHERE state = 'dead')",
                    )
                    .and_then(|mut statement| {
                        statement.query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                    })
                    .map_err(|e| map_error("measuring the outbox failed", e))?;
                Ok(OutboxDepth {
                    pending: u64::try_from(pending).unwrap_or(0),
                    dead: u64::try_from(dead).unwrap_or(0),
                })
            })
            .await
    }

    async fn replay(&self, ids: &[i64]) -> Result<u64, StoreError> {
        self.replay_dead("outbox", ids).await
    }

    fn outbox_changes(&self) -> watch::Receiver<u64> {
        self.outbox_watch.clone()
    }
}

impl SqliteStore {
    /// Runs one write statement in the writer's next transaction and answers
    /// once that has committed.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: WriteJob = Box::new(move |conn| {
            let outcome = work(conn);
            let succeeded = outcome.is_ok();
            let answer: Answer = Box::new(move |committed| {
                let _ = reply.send(committed.map_err(copy_error).and(outcome));
            });
            (succeeded, answer)
        });
        self.requests
            .send(Job::Write(job))
            .await
            .map_err(|_| StoreError::Unavailable("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store's writer stopped".into()))?
    }

    /// Makes dead rows of an outbox table pending again (those of `ids`, or
    /// all when it is empty), their attempts counted from zero.
    async fn replay_dead(&self, table: &'static str, ids: &[i64]) -> Result<u64, StoreError> {
        let ids = json_ids(ids)?;
        let replayed = self
            .write(move |conn| {
                execute(
                    conn,
                    &format!("replaying the {table} failed"),
                    &format!(
                        "UPDATE {table} SET state = 'pending', attempts = 0, \
                             next_attempt_us = ?1 \
                         WHERE state = 'dead' AND (json_array_length(?2) = 0 \
                           OR id IN (SELECT value FROM json_each(?2)))"
                    ),
                    params![now_micros(), ids],
                )
            })
            .await?;
        Ok(replayed as u64)
    }
}

/// Runs one statement (prepared once per connection); returns the rows it
/// changed.
fn execute(
    conn: &Connection,
    context: &str,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute(parameters))
        .map_err(|e| map_error(context, e))
}

/// The rows a statement selects, each read by `read`.
fn select<T>(
    conn: &Connection,
    context: &str,
    sql: &str,
    parameters: impl rusqlite::Params,
    read: impl FnMut(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    select_limited(conn, context, sql, parameters, usize::MAX, read).map(|(rows, _)| rows)
}

/// The first row a statement selects, if any, read by `read`.
fn select_one<T>(
    conn: &Connection,
    context: &str,
    sql: &str,
    parameters: impl rusqlite::Params,
    read: impl FnMut(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    select_limited(conn, context, sql, parameters, 1, read).map(|(rows, _)| rows.into_iter().next())
}

/// At most `limit` rows of a statement that selects one more than that,
/// and whether it had that one more.
fn select_limited<T>(
    conn: &Connection,
    context: &str,
    sql: &str,
    parameters: impl rusqlite::Params,
    limit: usize,
    mut read: impl FnMut(&Row) -> Result<T, StoreError>,
) -> Result<(Vec<T>, bool), StoreError> {
    let failed = |e| map_error(context, e);
    let mut statement = conn.prepare_cached(sql).map_err(failed)?;
    let mut rows = statement.query(parameters).map_err(failed)?;
    let mut read_rows = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        if read_rows.len() == limit {
            return Ok((read_rows, true));
        }
        read_rows.push(read(row)?);
    }
    Ok((read_rows, false))
}

/// The parameters of [`POLL_BLOCKS`] and [`POLL_EXTENT`]: one more block
/// than the limit, to tell whether there is more.
fn poll_parameters(query: &PollQuery) -> Result<(&str, i64, i64, bool, String, i64), StoreError> {
    // A JSON array keeps the statement fixed whatever the number of bindings.
    let bindings = serde_json::to_string(&query.bindings)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode the bindings: {e}")))?;
    Ok((
        &query.feed,
        query.exclusive_begin.map_or(i64::MIN, to_micros),
        query.inclusive_end.map_or(i64::MAX, to_micros),
        !query.bindings.is_empty(),
        bindings,
        sql_limit(query.limit).saturating_add(1),
    ))
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn json_ids(ids: &[i64]) -> Result<String, StoreError> {
    serde_json::to_string(ids)
        .map_err(|e| StoreError::Invalid(format!("cannot encode the ids: {e}")))
}

fn latest_label_in(conn: &Connection, feed: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached(LATEST_LABEL)
        .and_then(|mut statement| statement.query_row([feed], |row| row.get(0)))
        .map_err(|e| map_error("reading the latest label failed", e))
}

fn subscription_of(row: &Row) -> Result<Subscription, StoreError> {
    let read = |e| map_error("reading a subscription failed", e);
    let id: String = row.get("s_id").map_err(read)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("subscription {id} has {what}"));
    let status = match row.get::<_, String>("s_status").map_err(read)?.as_str() {
        "ACTIVE" => SubscriptionStatus::Active,
        "PAUSED" => SubscriptionStatus::Paused,
        "UNSUBSCRIBED" => SubscriptionStatus::Unsubscribed,
        other => return Err(corrupt(&format!("an unknown status {other:?}"))),
    };
    let binding: Option<String> = row.get("s_message_binding").map_err(read)?;
    let message_binding = binding.as_deref().map(binding_of);
    let delivery = match row.get::<_, String>("s_delivery").map_err(read)?.as_str() {
        "push" => {
            let address: Option<String> = row.get("s_push_address").map_err(read)?;
            let protocol: Option<String> = row.get("s_push_protocol").map_err(read)?;
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
    let bindings: String = row.get("s_content_bindings").map_err(read)?;
    let content_bindings =
        serde_json::from_str(&bindings).map_err(|_| corrupt("unreadable content bindings"))?;
    Ok(Subscription {
        feed: row.get("s_feed").map_err(read)?,
        status,
        delivery,
        content_bindings,
        created: from_micros(row.get("s_created_us").map_err(read)?),
        created_by: row.get("s_created_by").map_err(read)?,
        id,
    })
}

fn egress_row_of(row: &Row) -> Result<EgressRow, StoreError> {
    let read = |e| map_error("reading an egress row failed", e);
    let state: String = row.get("state").map_err(read)?;
    let attempts: i64 = row.get("attempts").map_err(read)?;
    Ok(EgressRow {
        id: row.get("id").map_err(read)?,
        destination: row.get("destination").map_err(read)?,
        message_id: row.get("message_id").map_err(read)?,
        payload: row.get("payload").map_err(read)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        state: outbox_state_of(&state)?,
        last_error: row.get("last_error").map_err(read)?,
        progress: row.get("progress").map_err(read)?,
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
        "dead" => Ok(OutboxState::Dead),
        other => Err(StoreError::Corrupt(format!(
            "an outbox row has an unknown state {other:?}"
        ))),
    }
}

fn outbox_row_of(row: &Row) -> Result<OutboxRow, StoreError> {
    let read = |e| map_error("reading an outbox row failed", e);
    let state = outbox_state_of(&row.get::<_, String>("o_state").map_err(read)?)?;
    let attempts: i64 = row.get("o_attempts").map_err(read)?;
    Ok(OutboxRow {
        id: row.get("o_id").map_err(read)?,
        subscription_id: row.get("o_subscription_id").map_err(read)?,
        block_id: row.get("block_id").map_err(read)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt: from_micros(row.get("o_next_attempt_us").map_err(read)?),
        state,
        last_error: row.get("o_last_error").map_err(read)?,
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
    conn: Connection,
    latest: LatestLabels,
    commits: Arc<AtomicU64>,
    /// Counts the commits that may have made outbox rows due.
    outbox_changes: watch::Sender<u64>,
}

impl Writer {
    fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut commits = Vec::with_capacity(MAX_REQUESTS_PER_COMMIT);
        let mut writes = Vec::new();
        // Waits for one job, then takes whatever else is queued; ends once
        // every sender is gone and the queue is empty.
        while let Some(first) = queue.blocking_recv() {
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Commit(request) => commits.push(request),
                    Job::Write(work) => writes.push(work),
                }
                if commits.len() + writes.len() < MAX_REQUESTS_PER_COMMIT {
                    next = queue.try_recv().ok();
                }
            }
            let jobs = commits.len() + writes.len();
            // Writes replay and reschedule rows.
            let mut queued = !writes.is_empty();
            let mut answers = Vec::with_capacity(writes.len());
            match self.commit(&commits, writes.drain(..), &mut answers, &mut queued) {
                Ok(stored) => {
                    if queued {
                        self.outbox_changes.send_modify(|changes| *changes += 1);
                    }
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("taxiway_store_commits_total").increment(1);
                    metrics::counter!("taxiway_store_committed_requests_total")
                        .increment(jobs as u64);
                    for (request, blocks) in commits.drain(..).zip(stored) {
                        // The caller may have gone; its blocks are committed anyway.
                        let _ = request.reply.send(Ok(blocks));
                    }
                    for answer in answers {
                        answer(Ok(()));
                    }
                }
                Err(error) => {
                    tracing::error!("a commit of {jobs} requests failed: {error}");
                    // The outcome of a failed COMMIT is not certain: reload labels.
                    write_lock(&self.latest).clear();
                    for request in commits.drain(..) {
                        let _ = request.reply.send(Err(copy_error(&error)));
                    }
                    for answer in answers {
                        answer(Err(&error));
                    }
                }
            }
        }
    }

    /// Runs every write, then stores every request's blocks, in one
    /// transaction; labels are only remembered once it has committed. Each
    /// write's answer goes to `answers`, whatever happens; `queued` turns
    /// true when a push or a forward is queued. (Writes first: a
    /// subscription written in the same transaction as content receives it,
    /// as it would a moment later.)
    fn commit(
        &mut self,
        batch: &[CommitRequest],
        writes: impl Iterator<Item = WriteJob>,
        answers: &mut Vec<Answer>,
        queued: &mut bool,
    ) -> Result<Vec<Committed>, StoreError> {
        // IMMEDIATE takes the write lock now, so the clock is read after any wait.
        let tx = WriteTransaction::begin(&self.conn)?;
        for write in writes {
            let (succeeded, answer) = write(&tx);
            answers.push(answer);
            // A failed statement is undone alone, unless SQLite gave up the
            // whole transaction (a full disk, an I/O error).
            if !succeeded && tx.is_autocommit() {
                return Err(StoreError::Unavailable(
                    "a write failed and SQLite rolled the transaction back".into(),
                ));
            }
        }
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
            if let Some(conflict) = edit_conflict(&tx, &commit.edits)? {
                answers.push(Committed::Conflict(conflict));
                continue;
            }
            if let Some(key) = &commit.dedup_key {
                let fresh = execute(
                    &tx,
                    "remembering a message id failed",
                    "INSERT OR IGNORE INTO seen_messages (key, seen_us) VALUES (?1, ?2)",
                    params![key, now],
                )?;
                if fresh == 0 {
                    answers.push(Committed::Duplicate);
                    continue;
                }
            }
            let mut stored = Vec::with_capacity(commit.blocks.len() + commit.edits.len());
            for edit in &commit.edits {
                match edit {
                    Edit::Replace { id, block: new, .. } => {
                        let label = labels.next(&tx, &new.feed)?;
                        let (kind, content) = content_columns(&new.content);
                        execute(
                            &tx,
                            "replacing a content block failed",
                            "UPDATE content_blocks SET label_us = ?1, binding_id = ?2, \
                             subtype = ?3, content_kind = ?4, content = ?5, \
                             content_bytes = ?6, source_message_id = ?7 WHERE id = ?8",
                            params![
                                label,
                                new.binding.id,
                                new.binding.subtypes.first(),
                                kind,
                                content,
                                byte_count(content),
                                new.source_message_id,
                                id
                            ],
                        )?;
                        *queued |= queue_pushes(&tx, &mut pushes, new, *id, now)?;
                        stored.push(stored_new(new, *id, label));
                    }
                    Edit::Remove { feed, id, .. } => {
                        // Nothing is left to push of it; what was delivered
                        // is history of a block that no longer exists.
                        execute(
                            &tx,
                            "removing a block's pushes failed",
                            "DELETE FROM outbox WHERE block_id = ?1",
                            [id],
                        )?;
                        execute(
                            &tx,
                            "removing a content block failed",
                            "DELETE FROM content_blocks WHERE id = ?1",
                            [id],
                        )?;
                        let label = labels.next(&tx, feed)?;
                        execute(
                            &tx,
                            "recording a removal failed",
                            "INSERT INTO feed_changes (feed, changed_us) VALUES (?1, ?2) \
                             ON CONFLICT (feed) DO UPDATE SET changed_us = ?2",
                            params![feed, label],
                        )?;
                    }
                }
            }
            for new in &commit.blocks {
                let label = labels.next(&tx, &new.feed)?;
                let (kind, content) = content_columns(&new.content);
                execute(
                    &tx,
                    "storing a content block failed",
                    "INSERT INTO content_blocks \
                     (feed, label_us, binding_id, subtype, content_kind, content, content_bytes, \
                      source_message_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        new.feed,
                        label,
                        new.binding.id,
                        new.binding.subtypes.first(),
                        kind,
                        content,
                        byte_count(content),
                        new.source_message_id
                    ],
                )?;
                let block_id = tx.last_insert_rowid();
                *queued |= queue_pushes(&tx, &mut pushes, new, block_id, now)?;
                stored.push(stored_new(new, block_id, label));
            }
            for egress in &commit.egress {
                *queued = true;
                execute(
                    &tx,
                    "queueing an egress message failed",
                    "INSERT INTO egress_outbox \
                     (destination, message_id, payload, next_attempt_us, state, created_us) \
                     VALUES (?1, ?2, ?3, ?4, 'pending', ?4)",
                    params![egress.destination, egress.message_id, egress.payload, now],
                )?;
            }
            if let Some(cursor) = &commit.cursor {
                let (result_id, next_part) = match &cursor.result {
                    Some((id, part)) => (
                        Some(id.as_str()),
                        Some(i64::try_from(*part).unwrap_or(i64::MAX)),
                    ),
                    None => (None, None),
                };
                execute(
                    &tx,
                    "advancing a poll cursor failed",
                    "INSERT INTO poll_cursors (poller, feed, end_label, result_id, next_part) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (poller, feed) DO UPDATE SET end_label = ?3, result_id = ?4, \
                       next_part = ?5",
                    params![
                        cursor.poller,
                        cursor.feed,
                        cursor.end_label,
                        result_id,
                        next_part
                    ],
                )?;
            }
            answers.push(Committed::Stored(stored));
        }

        tx.commit()?;
        let given = labels.given;
        let mut latest = write_lock(&self.latest);
        for (feed, label) in given {
            latest.insert(feed.to_owned(), label);
        }
        Ok(answers)
    }
}

/// The writer's transaction, begun and ended by statements prepared once:
/// rusqlite's own transactions parse `BEGIN` and `COMMIT` afresh each time,
/// and the writer commits hundreds of times a second. Rolled back unless
/// committed.
struct WriteTransaction<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> WriteTransaction<'c> {
    fn begin(conn: &'c Connection) -> Result<Self, StoreError> {
        execute(conn, "cannot begin a transaction", "BEGIN IMMEDIATE", [])?;
        Ok(WriteTransaction { conn, open: true })
    }

    fn commit(mut self) -> Result<(), StoreError> {
        execute(self.conn, "committing content blocks failed", "COMMIT", [])?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for WriteTransaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTransaction<'_> {
    fn drop(&mut self) {
        // A failed COMMIT may have ended the transaction already; then
        // ROLLBACK fails harmlessly.
        if self.open
            && !self.conn.is_autocommit()
            && let Err(error) = execute(self.conn, "rolling back failed", "ROLLBACK", [])
        {
            tracing::error!(%error, "the store could not roll back a failed commit");
        }
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
    fn next(&mut self, conn: &Connection, feed: &'a str) -> Result<i64, StoreError> {
        let known = self
            .given
            .get(feed)
            .copied()
            .or_else(|| read_lock(self.committed).get(feed).copied());
        let last = match known {
            Some(last) => Some(last),
            None => latest_label_in(conn, feed)?,
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
fn edit_conflict(conn: &Connection, edits: &[Edit]) -> Result<Option<EditConflict>, StoreError> {
    for edit in edits {
        let (feed, id, expected) = edit.applies_to();
        let label: Option<i64> = conn
            .prepare_cached("SELECT label_us FROM content_blocks WHERE id = ?1 AND feed = ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![id, feed], |row| row.get(0))
                    .optional()
            })
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
/// pending push delivers the new content). Whether it queued any.
fn queue_pushes<'a>(
    conn: &Connection,
    pushes: &mut HashMap<&'a str, Vec<(String, Vec<String>)>>,
    block: &'a NewBlock,
    block_id: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let feed = block.feed.as_str();
    if !pushes.contains_key(feed) {
        pushes.insert(feed, push_subscribers(conn, feed)?);
    }
    let mut queued = false;
    for (subscription, bindings) in &pushes[feed] {
        if !bindings.is_empty() && !bindings.contains(&block.binding.id) {
            continue;
        }
        queued |= 0 < execute(
            conn,
            "queueing a push failed",
            "INSERT INTO outbox (subscription_id, block_id, next_attempt_us, state) \
             SELECT ?1, ?2, ?3, 'pending' WHERE NOT EXISTS ( \
               SELECT 1 FROM outbox WHERE block_id = ?2 AND subscription_id = ?1 \
                 AND state = 'pending')",
            params![subscription, block_id, now],
        )?;
    }
    Ok(queued)
}

fn content_columns(content: &XmlContent) -> (&'static str, &str) {
    match content {
        XmlContent::Text(text) => ("text", text),
        XmlContent::Xml(xml) => ("xml", xml),
    }
}

fn byte_count(content: &str) -> i64 {
    i64::try_from(content.len()).unwrap_or(i64::MAX)
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
fn push_subscribers(
    conn: &Connection,
    feed: &str,
) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let context = "reading push subscriptions failed";
    select(
        conn,
        context,
        "SELECT id, content_bindings FROM subscriptions \
         WHERE feed = ?1 AND delivery = 'push' AND status IN ('ACTIVE', 'PAUSED')",
        [feed],
        |row| {
            let read = |e| map_error(context, e);
            let id: String = row.get(0).map_err(read)?;
            let bindings: String = row.get(1).map_err(read)?;
            let bindings = serde_json::from_str(&bindings).map_err(|_| {
                StoreError::Corrupt(format!("subscription {id} has unreadable content bindings"))
            })?;
            Ok((id, bindings))
        },
    )
}

/// Applies the migrations this version knows and has not yet applied, all in
/// one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map_error("cannot begin the migration", e))?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)",
        [],
    )
    .map_err(|e| map_error("cannot create schema_migrations", e))?;
    let applied: Vec<i64> = tx
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
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
        tx.execute_batch(sql)
            .map_err(|e| map_error(&format!("schema migration {version} failed"), e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            [version],
        )
        .map_err(|e| map_error("cannot record a schema migration", e))?;
    }
    tx.commit()
        .map_err(|e| map_error("committing the schema migrations failed", e))
}

/// A block from the first columns of a row, as [`block_columns!`] selects them.
fn stored_block(feed: &str, row: &Row) -> Result<StoredBlock, StoreError> {
    let read = |e| map_error("reading a content block failed", e);
    let id: i64 = row.get(0).map_err(read)?;
    let label = from_micros(row.get(1).map_err(read)?);
    let binding_id: String = row.get(2).map_err(read)?;
    let subtype: Option<String> = row.get(3).map_err(read)?;
    let content: String = row.get(5).map_err(read)?;
    let content = match row.get_ref(4).map_err(read)?.as_str() {
        Ok("text") => XmlContent::Text(content),
        Ok("xml") => XmlContent::Xml(content),
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

fn map_error(context: &str, error: rusqlite::Error) -> StoreError {
    let corrupt = matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    );
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
