//! The HTTP ceilings of bench/compare: the gateway's own stack (axum on
//! hyper and tokio, served as `taxiway serve` serves) answering every
//! request, whatever its method and path, with fixed bytes and the headers
//! of a TAXII 1.1 reply, after reading the request body as taxiway must.
//!
//! With no `--body` the bytes are a TAXII 1.1 Status_Message of SUCCESS:
//! the inbox ceiling. With one or more, request n gets body n modulo their
//! number, so that a single client polling a feed in full is answered with
//! exactly the responses a server gave it before, in order: the poll
//! ceiling.
//!
//! With `--durable DIR`, each request's body is first committed durably
//! to a bare SQLite table in DIR (WAL, synchronous FULL, the requests
//! waiting meanwhile committed together by one writer thread, as
//! taxiway's store does): the least an inbox that acknowledges only after
//! a durable commit must do, without parsing, authentication or routing.
//! The durable inbox ceiling.
//!
//! `cargo run --release --example hyper_ceiling -- --listen 127.0.0.1:9101 \
//!     [--body reply-0000.xml --body reply-0001.xml ...] [--durable DIR]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderName};
use clap::Parser;
use tokio::sync::{mpsc, oneshot};

/// Shaped and sized like taxiway's answer to an inbox message of one block.
const STATUS_SUCCESS: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    r#"<taxii_11:Status_Message xmlns:taxii_11="http://taxii.mitre.org/messages/taxii_xml_binding-1.1" "#,
    r#"message_id="00000000-0000-4000-8000-000000000000" in_response_to="bench-inbox" status_type="SUCCESS">"#,
    "<taxii_11:Message>1 content block(s) stored, 0 forward(s) queued</taxii_11:Message>",
    "</taxii_11:Status_Message>"
);

const TAXII_11: [(HeaderName, &str); 4] = [
    (CONTENT_TYPE, "application/xml"),
    (
        HeaderName::from_static("x-taxii-content-type"),
        "urn:taxii.mitre.org:message:xml:1.1",
    ),
    (
        HeaderName::from_static("x-taxii-protocol"),
        "urn:taxii.mitre.org:protocol:http:1.0",
    ),
    (
        HeaderName::from_static("x-taxii-services"),
        "urn:taxii.mitre.org:services:1.1",
    ),
];

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    /// A file whose bytes are a response; repeat for responses in turn.
    #[arg(long)]
    body: Vec<PathBuf>,
    /// Commit each request body durably to a SQLite file in this directory
    /// before answering.
    #[arg(long)]
    durable: Option<PathBuf>,
}

struct Replies {
    bodies: Vec<Bytes>,
    next: AtomicUsize,
    durable: Option<mpsc::Sender<(Bytes, oneshot::Sender<()>)>>,
}

async fn answer(
    State(replies): State<Arc<Replies>>,
    request: Bytes,
) -> Result<([(HeaderName, &'static str); 4], Bytes), StatusCode> {
    if let Some(durable) = &replies.durable {
        let (done, committed) = oneshot::channel();
        durable
            .send((request, done))
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
        committed
            .await
            .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    }
    let n = replies.next.fetch_add(1, Ordering::Relaxed) % replies.bodies.len();
    Ok((TAXII_11, replies.bodies[n].clone()))
}

/// Commits bodies as they come, all those waiting in one transaction.
fn commit_bodies(
    mut conn: rusqlite::Connection,
    mut queue: mpsc::Receiver<(Bytes, oneshot::Sender<()>)>,
) -> rusqlite::Result<()> {
    let mut batch = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO bodies (body) VALUES (?1)")?;
            for (body, _) in &batch {
                insert.execute([&body[..]])?;
            }
        }
        tx.commit()?;
        for (_, done) in batch.drain(..) {
            let _ = done.send(());
        }
    }
    Ok(())
}

fn durable_writer(
    dir: &std::path::Path,
) -> rusqlite::Result<mpsc::Sender<(Bytes, oneshot::Sender<()>)>> {
    let conn = rusqlite::Connection::open(dir.join("ceiling.sqlite3"))?;
    // taxiway's page size, so that bodies pack into pages as its blocks do.
    conn.pragma_update(None, "page_size", 8192)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
        [],
    )?;
    let (requests, queue) = mpsc::channel(4096);
    std::thread::spawn(move || {
        if let Err(error) = commit_bodies(conn, queue) {
            eprintln!("hyper_ceiling: the durable writer stopped: {error}");
        }
    });
    Ok(requests)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let bodies = if args.body.is_empty() {
        vec![Bytes::from_static(STATUS_SUCCESS.as_bytes())]
    } else {
        args.body
            .iter()
            .map(|path| std::fs::read(path).map(Bytes::from))
            .collect::<std::io::Result<_>>()?
    };
    let durable = match &args.durable {
        Some(dir) => Some(durable_writer(dir).map_err(std::io::Error::other)?),
        None => None,
    };
    let replies = Arc::new(Replies {
        bodies,
        next: AtomicUsize::new(0),
        durable,
    });
    let app = Router::new().fallback(answer).with_state(replies);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await
}
