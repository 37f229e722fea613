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
//! `cargo run --release --example hyper_ceiling -- --listen 127.0.0.1:9101 \
//!     [--body reply-0000.xml --body reply-0001.xml ...]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HeaderName};
use clap::Parser;

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
}

struct Replies {
    bodies: Vec<Bytes>,
    next: AtomicUsize,
}

async fn answer(
    State(replies): State<Arc<Replies>>,
    _request: Bytes,
) -> ([(HeaderName, &'static str); 4], Bytes) {
    let n = replies.next.fetch_add(1, Ordering::Relaxed) % replies.bodies.len();
    (TAXII_11, replies.bodies[n].clone())
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
    let replies = Arc::new(Replies {
        bodies,
        next: AtomicUsize::new(0),
    });
    let app = Router::new().fallback(answer).with_state(replies);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await
}
