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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{NewBlock, PollPage, PollQuery, Store, StoreError, StoredBlock};
use crate::core::{ContentBinding, ContentBlock, Timestamp, XmlContent};

const DATABASE_FILE: &str = "taxiway.sqlite3";
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most `append` calls committed together; bounds one transaction's size.
const MAX_REQUESTS_PER_COMMIT: usize = 512;
/// Calls waiting for the writer before `append` waits to enqueue.
const QUEUE_CAPACITY: usize = 4096;
const READ_CONNECTIONS: u32 = 4;

/// Schema migrations in the order they apply; a version is never reused.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    include_str!("../../migrations/sqlite/0001_content_blocks.sql"),
)];

type Reply = oneshot::Sender<Result<Vec<StoredBlock>, StoreError>>;

struct AppendRequest {
    blocks: Vec<NewBlock>,
    reply: Reply,
}

/// Hosted feeds in `DATA_DIR/taxiway.sqlite3`.
pub struct SqliteStore {
    requests: mpsc::Sender<AppendRequest>,
    readers: SqlitePool,
    commits: Arc<AtomicU64>,
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
            .connect_with(base.read_only(true))
            .await
            .map_err(|e| map_error("cannot open the read connections", e))?;

        let commits = Arc::new(AtomicU64::new(0));
        let (requests, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer = tokio::spawn(
            Writer {
                conn,
                last_labels: HashMap::new(),
                commits: Arc::clone(&commits),
            }
            .run(queue),
        );
        Ok(SqliteStore {
            requests,
            readers,
            commits,
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
    }
}

impl Store for SqliteStore {
    /// If the returned future is dropped after the blocks were handed to the
    /// writer, they are still committed.
    async fn append(&self, blocks: Vec<NewBlock>) -> Result<Vec<StoredBlock>, StoreError> {
        if blocks.is_empty() {
            return Ok(Vec::new());
        }
        // Checked here so that one bad call cannot fail a shared commit.
        if let Some(block) = blocks.iter().find(|b| b.binding.subtypes.len() > 1) {
            return Err(StoreError::Invalid(format!(
                "a content block carries at most one subtype, got {:?}",
                block.binding.subtypes
            )));
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(AppendRequest { blocks, reply })
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
            .map(|row| stored_block(&query.feed, row))
            .collect::<Result<_, _>>()?;
        Ok(PollPage { blocks, more })
    }

    async fn latest_label(&self, feed: &str) -> Result<Option<Timestamp>, StoreError> {
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(label_us) FROM content_blocks WHERE feed = ?1")
                .bind(feed)
                .fetch_one(&self.readers)
                .await
                .map_err(|e| map_error("reading the latest label failed", e))?;
        Ok(latest.map(from_micros))
    }
}

struct Writer {
    conn: SqliteConnection,
    /// Last label committed per feed, loaded from the table on first use.
    last_labels: HashMap<String, i64>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::Receiver<AppendRequest>) {
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
                    self.last_labels.clear();
                    for request in batch.drain(..) {
                        let _ = request.reply.send(Err(copy_error(&error)));
                    }
                }
            }
        }
        if let Err(e) = self.conn.close().await {
            tracing::warn!("closing the store's write connection failed: {e}");
        }
    }

    /// Stores every request's blocks in one transaction; labels are only
    /// remembered once it has committed.
    async fn commit(
        &mut self,
        batch: &[AppendRequest],
    ) -> Result<Vec<Vec<StoredBlock>>, StoreError> {
        // IMMEDIATE takes the write lock now, so the clock is read after any wait.
        let mut tx = self
            .conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| map_error("cannot begin a transaction", e))?;
        let now = now_micros();
        // Labels given in this transaction; kept only if it commits.
        let mut labels: HashMap<&str, i64> = HashMap::new();
        let mut answers = Vec::with_capacity(batch.len());

        for request in batch {
            let mut stored = Vec::with_capacity(request.blocks.len());
            for new in &request.blocks {
                let feed = new.feed.as_str();
                let last = match labels.get(feed).or_else(|| self.last_labels.get(feed)) {
                    Some(&last) => Some(last),
                    None => sqlx::query_scalar(
                        "SELECT MAX(label_us) FROM content_blocks WHERE feed = ?1",
                    )
                    .bind(feed)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| map_error("reading the latest label failed", e))?,
                };
                let label = match last {
                    Some(last) => now.max(last.saturating_add(1)),
                    None => now,
                };
                labels.insert(feed, label);

                let (kind, content) = match &new.content {
                    XmlContent::Text(text) => ("text", text),
                    XmlContent::Xml(xml) => ("xml", xml),
                };
                let done = sqlx::query(
                    "INSERT INTO content_blocks \
                     (feed, label_us, binding_id, subtype, content_kind, content, source_message_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .bind(feed)
                .bind(label)
                .bind(&new.binding.id)
                .bind(new.binding.subtypes.first())
                .bind(kind)
                .bind(content)
                .bind(&new.source_message_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| map_error("storing a content block failed", e))?;

                let mut block = ContentBlock::new(new.binding.clone(), new.content.clone());
                let label = from_micros(label);
                block.timestamp_label = Some(label);
                stored.push(StoredBlock {
                    id: done.last_insert_rowid(),
                    feed: new.feed.clone(),
                    label,
                    block,
                });
            }
            answers.push(stored);
        }

        tx.commit()
            .await
            .map_err(|e| map_error("committing content blocks failed", e))?;
        for (feed, label) in labels {
            self.last_labels.insert(feed.to_owned(), label);
        }
        Ok(answers)
    }
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

fn stored_block(feed: &str, row: &SqliteRow) -> Result<StoredBlock, StoreError> {
    let read = |e| map_error("reading a content block failed", e);
    let id: i64 = row.try_get("id").map_err(read)?;
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
