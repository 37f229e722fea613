//! The ceiling for the ROLIE benchmark: the gateway's HTTP stack (axum on
//! hyper and tokio) answering every GET with the same bytes, read once from
//! a file, with the given content type.
//!
//! `cargo run --release --example static_body -- --listen 127.0.0.1:9100 \
//!     --body page.xml --content-type 'application/atom+xml;type=feed'`

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    #[arg(long)]
    body: PathBuf,
    #[arg(long, default_value = "application/octet-stream")]
    content_type: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let body = Bytes::from(std::fs::read(&args.body)?);
    let content_type = args.content_type;
    let app = Router::new().fallback(get(move || {
        let (body, content_type) = (body.clone(), content_type.clone());
        async move { ([(header::CONTENT_TYPE, content_type)], body) }
    }));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    axum::serve(listener, app).await
}
