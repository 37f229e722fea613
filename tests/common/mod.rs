// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

//! A gateway started in-process on its default scenario, for tests that
//! talk to it over real sockets.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use taxiway::config::Config;
use taxiway::gateway::Gateway;

/// A fresh, empty directory under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// The seed's Source on an unused port, with its data in a fresh directory.
pub async fn start_default(name: &str) -> Gateway {
    let mut config = Config::default_scenario();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = temp_dir(name);
    Gateway::start(config).await.expect("the gateway starts")
}

pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// The example messages of one folder of shared/spec/examples, sorted.
pub fn examples(folder: &str) -> Vec<PathBuf> {
    let dir = shared().join("spec/examples").join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

/// The Python interpreter of the peers' virtualenv made by scripts/setup.
pub fn peers_bin(tool: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/bin")
        .join(tool);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup to install the Python peers",
        path.display()
    );
    path
}

/// One HTTP/1.1 exchange over a fresh connection: the request as given,
/// then the status, the headers (names lower-cased) and the body.
pub async fn exchange(
    address: std::net::SocketAddr,
    request: Vec<u8>,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the gateway listens");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // The server may answer (a 413, say) and close before reading it all.
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut raw = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
            // A reset after the response (unread request bytes) ends it too.
            Err(_) if !raw.is_empty() => break,
            Err(error) => panic!("no response: {error}"),
        }
    }
    drop(writing.await);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some((_, length)) = headers.iter().find(|(name, _)| name == "content-length") {
        body.truncate(length.parse().expect("a Content-Length"));
    }
    (status, headers, body)
}

/// One HTTP/1.1 request with the given headers and body.
pub async fn http(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    exchange(address, request).await
}

/// The default scenario's demo account (config/default.toml), which the
/// for-pay feeds need.
pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "taxiway-demo";

/// An `Authorization` header value for HTTP Basic.
pub fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{password}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in bytes.chunks(3) {
        let word = chunk
            .iter()
            .enumerate()
            .fold(0u32, |word, (at, &b)| word | u32::from(b) << (16 - 8 * at));
        for at in 0..4 {
            if at <= chunk.len() {
                out.push(ALPHABET[(word >> (18 - 6 * at) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The demo account's `Authorization` header value.
pub fn demo_auth() -> String {
    basic(DEMO_USER, DEMO_PASSWORD)
}

/// `basic(DEMO_USER, DEMO_PASSWORD)`, for header lists of `&'static str`.
pub const DEMO_AUTHORIZATION: &str = "Basic ZGVtbzp0YXhpd2F5LWRlbW8=";

/// Runs one of cabby's commands (with the demo account) against a gateway
/// and returns what it printed; cabby exits 0 even on errors, so a Python
/// traceback fails the test here.
pub async fn cabby(address: std::net::SocketAddr, tool: &'static str, args: Vec<String>) -> String {
    let program = peers_bin(tool);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .args(["--host", "127.0.0.1", "--port", &address.port().to_string()])
            // The demo account: the for-pay services and feeds need one.
            .args(["--username", DEMO_USER])
            .args(["--password", DEMO_PASSWORD])
            .args(&args)
            .output()
            .expect("cabby runs")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!text.contains("Traceback"), "{tool} failed:\n{text}");
    text
}
