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
    if headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

/// The payload of a chunked HTTP/1.1 body; panics on a body cut off before
/// its last chunk, as a streamed reply broken midway is.
pub fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line: the body was cut off");
        let size_text = std::str::from_utf8(&raw[..line_end]).expect("an ASCII chunk size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("a hexadecimal chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        assert!(raw.len() >= size + 2, "a chunk was cut off");
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
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
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
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

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A gateway child process, SIGKILLed on drop so that a failing test leaves
/// none behind.
pub struct Running(pub std::process::Child);

impl Running {
    pub fn sigkill(&mut self) {
        // std's Child::kill sends SIGKILL on Unix.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The real binary, serving the default scenario on `address` from `dir`,
/// once its /healthz answers.
pub async fn spawn_binary(address: std::net::SocketAddr, dir: &Path, log: &str) -> Running {
    spawn_binary_with(address, dir, log, &[]).await
}

/// The default scenario with `settings` (`key = value` lines) added to its
/// `[server]` table, written to `dir/taxiway.toml`.
pub fn default_config_with(dir: &Path, settings: &[&str]) -> PathBuf {
    let default =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"))
            .expect("config/default.toml");
    let server = format!("[server]\n{}\n", settings.join("\n"));
    assert!(default.contains("[server]\n"), "a [server] table");
    let path = dir.join("taxiway.toml");
    std::fs::write(&path, default.replacen("[server]\n", &server, 1)).unwrap();
    path
}

/// The real binary, serving on `address` from `dir` with `arguments` after
/// `serve`, once its /healthz answers.
pub async fn spawn_binary_with(
    address: std::net::SocketAddr,
    dir: &Path,
    log: &str,
    arguments: &[&std::ffi::OsStr],
) -> Running {
    let mut command_line: Vec<&std::ffi::OsStr> = vec!["serve".as_ref()];
    command_line.extend(arguments);
    let address_text = address.to_string();
    command_line.extend([
        "--listen".as_ref(),
        address_text.as_ref(),
        "--data-dir".as_ref(),
        dir.as_os_str(),
    ]);
    spawn_command_line(address, &dir.join(log), &command_line).await
}

/// The real binary run with `command_line`, logging to `log`, once its
/// /healthz answers on `address`.
pub async fn spawn_command_line(
    address: std::net::SocketAddr,
    log: &Path,
    command_line: &[&std::ffi::OsStr],
) -> Running {
    let log = std::fs::File::create(log).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_taxiway"))
        .args(command_line)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the binary starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the gateway exited early: {status}");
        }
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            let (code, _, body) = http(address, "GET", "/healthz", &[], b"").await;
            if code == 200 && body.starts_with(b"ok") {
                return Running(child);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never became healthy"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A TAXII request written in `dialect` and POSTed with the headers a
/// well-behaved client of that dialect sends; the reply read as TAXII, with
/// the HTTP headers it came with.
pub async fn post_taxii(
    address: std::net::SocketAddr,
    path: &str,
    dialect: taxiway::core::Dialect,
    body: &str,
    authorization: Option<&str>,
) -> (Vec<(String, String)>, taxiway::core::Message) {
    let ids = taxiway::bindings::taxii_xml::ids().dialect(dialect);
    let mut headers = vec![
        ("Content-Type", "application/xml"),
        ("X-TAXII-Content-Type", ids.content_type.as_str()),
        ("X-TAXII-Accept", ids.content_type.as_str()),
        ("X-TAXII-Protocol", ids.protocol_http.as_str()),
    ];
    if dialect != taxiway::core::Dialect::Draft {
        headers.push(("X-TAXII-Services", ids.services_version.as_str()));
    }
    if let Some(authorization) = authorization {
        headers.push(("Authorization", authorization));
    }
    let (status, headers, reply) = http(address, "POST", path, &headers, body.as_bytes()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    // A test reads the large responses it asks for.
    let limits = taxiway::bindings::taxii_xml::Limits {
        max_body_bytes: usize::MAX,
        ..Default::default()
    };
    let parsed = taxiway::bindings::taxii_xml::parse_with(&reply, &limits).unwrap_or_else(|e| {
        let start = String::from_utf8_lossy(&reply[..reply.len().min(2000)]).into_owned();
        panic!("not TAXII ({e}): {start}")
    });
    assert_eq!(parsed.dialect, dialect);
    (headers, parsed.message)
}

/// The number N of the first `example:p-N` package id in a content block.
pub fn package_number(block: &taxiway::core::ContentBlock) -> usize {
    let content = block.content.as_str();
    let at = content.find("example:p-").expect("a package id") + "example:p-".len();
    let digits: String = content[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a package number")
}
pub mod opentaxii;
pub mod pika;
pub mod rabbit;
pub mod receiver;

/// The content blocks of a feed, by one TAXII 1.1 poll (its first part)
/// with the demo account.
pub async fn poll_blocks(
    address: std::net::SocketAddr,
    path: &str,
    feed: &str,
) -> Vec<taxiway::core::ContentBlock> {
    let request = format!(
        "<t:Poll_Request xmlns:t=\"http://taxii.mitre.org/messages/taxii_xml_binding-1.1\" \
         message_id=\"urn:uuid:poll\" collection_name=\"{feed}\"><t:Poll_Parameters>\
         <t:Response_Type>FULL</t:Response_Type></t:Poll_Parameters></t:Poll_Request>"
    );
    let (_, reply) = post_taxii(
        address,
        path,
        taxiway::core::Dialect::V11,
        &request,
        Some(DEMO_AUTHORIZATION),
    )
    .await;
    match reply.body {
        taxiway::core::Body::PollResponse(response) => response.content_blocks,
        other => panic!("a poll response, not {other:?}"),
    }
}

/// A TAXII 1.1 push subscription of `inbox` to `feed` (at /feeds/pay), with
/// the demo account.
pub async fn subscribe_push(address: std::net::SocketAddr, feed: &str, inbox: &str) {
    let request = format!(
        "<t:Subscription_Management_Request \
         xmlns:t=\"http://taxii.mitre.org/messages/taxii_xml_binding-1.1\" \
         message_id=\"urn:uuid:subscribe\" action=\"SUBSCRIBE\" collection_name=\"{feed}\">\
         <t:Subscription_Parameters><t:Response_Type>FULL</t:Response_Type>\
         </t:Subscription_Parameters><t:Push_Parameters>\
         <t:Protocol_Binding>urn:taxii.mitre.org:protocol:http:1.0</t:Protocol_Binding>\
         <t:Address>{inbox}</t:Address>\
         <t:Message_Binding>urn:taxii.mitre.org:message:xml:1.1</t:Message_Binding>\
         </t:Push_Parameters></t:Subscription_Management_Request>"
    );
    let (_, reply) = post_taxii(
        address,
        "/feeds/pay",
        taxiway::core::Dialect::V11,
        &request,
        Some(DEMO_AUTHORIZATION),
    )
    .await;
    assert!(
        matches!(
            reply.body,
            taxiway::core::Body::SubscriptionManagementResponse(_)
        ),
        "{reply:?}"
    );
}
