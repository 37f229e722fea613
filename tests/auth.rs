//! Authentication (HTTP Basic against argon2 hashes) and per-feed rights over
//! real HTTP: refusals get UNAUTHORIZED or DENIED in the requester's dialect
//! and store nothing; the free/for-pay split of the default scenario holds;
//! verified credentials are cached.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use taxiway::bindings::taxii_xml::parse;
use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;

const NS_DRAFT: &str = "http://taxii.mitre.org/messages/xml/1";
const NS_10: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1";
const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const DIALECTS: [Dialect; 3] = [Dialect::Draft, Dialect::V10, Dialect::V11];

/// `$argon2id...` of "taxiway-demo" and of "reader-pass".
const DEMO_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$FG4NLQIYf4O8QJoUFaHR7Q$jG7ySf823dzVAYV5nR+gV0B/e83XIu+i03EmfcyQqoc";
const READER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Cbzt2TQyAp5dxloirqeoTg$/2eXv2uSnrunBnuAOdl/XDivvziPcWLW7LSfMM+hMC8";

fn content_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Draft => "TAXII_1.0/TAXII_XML_BINDING_1.0",
        Dialect::V10 => "urn:taxii.mitre.org:message:xml:1.0",
        Dialect::V11 => "urn:taxii.mitre.org:message:xml:1.1",
    }
}

fn protocol(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Draft => "TAXII_HTTP_BINDING_1.0",
        _ => "urn:taxii.mitre.org:protocol:http:1.0",
    }
}

fn poll(dialect: Dialect, feed: &str) -> String {
    match dialect {
        Dialect::Draft => format!(
            "<TAXII_PollRequest xmlns=\"{NS_DRAFT}\" message-id=\"a84798beffe840ee3722c893288bd3aa\">\
             <feed-name>{feed}</feed-name><content-binding>STIX_XML_1.1.1</content-binding>\
             </TAXII_PollRequest>"
        ),
        Dialect::V10 => format!(
            "<t:Poll_Request xmlns:t=\"{NS_10}\" message_id=\"31415926\" feed_name=\"{feed}\"/>"
        ),
        Dialect::V11 => format!(
            "<t:Poll_Request xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:0f1e2d3c-0000-4000-8000-0000000000aa\" \
             collection_name=\"{feed}\"><t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type>\
             </t:Poll_Parameters></t:Poll_Request>"
        ),
    }
}

/// An inbox message with one STIX block, for `destination` (1.1) or, in the
/// older dialects, for every feed of the inbox the sender may fill.
fn inbox(dialect: Dialect, destination: &str) -> String {
    let package = "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-1\" version=\"1.1.1\"/>";
    match dialect {
        Dialect::Draft => format!(
            "<TAXII_STIXMessage xmlns=\"{NS_DRAFT}\" message-id=\"a84798beffe840ee3722c893288bd3ab\">\
             <content-binding>STIX_XML_1.1.1</content-binding>{package}</TAXII_STIXMessage>"
        ),
        Dialect::V10 => format!(
            "<t:Inbox_Message xmlns:t=\"{NS_10}\" message_id=\"31415927\"><t:Content_Block>\
             <t:Content_Binding>urn:stix.mitre.org:xml:1.1.1</t:Content_Binding>\
             <t:Content>{package}</t:Content></t:Content_Block></t:Inbox_Message>"
        ),
        Dialect::V11 => format!(
            "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:0f1e2d3c-0000-4000-8000-0000000000ab\">\
             <t:Destination_Collection_Name>{destination}</t:Destination_Collection_Name>\
             <t:Content_Block><t:Content_Binding binding_id=\"urn:stix.mitre.org:xml:1.1.1\"/>\
             <t:Content>{package}</t:Content></t:Content_Block></t:Inbox_Message>"
        ),
    }
}

fn discovery_11() -> String {
    format!(
        "<t:Discovery_Request xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:0f1e2d3c-0000-4000-8000-0000000000ac\"/>"
    )
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn message(&self, dialect: Dialect) -> Message {
        let parsed = parse(&self.body).unwrap_or_else(|e| {
            panic!(
                "not a TAXII message ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        });
        assert_eq!(parsed.dialect, dialect);
        parsed.message
    }

    /// The status type of a refusal, checking the HTTP status each dialect
    /// gives it: 200 in 1.x, 401 (with a Basic challenge) or 403 in the draft.
    fn refused(&self, dialect: Dialect) -> StatusType {
        let Body::Status(status) = self.message(dialect).body else {
            panic!("a status message: {}", String::from_utf8_lossy(&self.body))
        };
        let expected = match (dialect, &status.status_type) {
            (Dialect::Draft, StatusType::Unauthorized) => 401,
            (Dialect::Draft, StatusType::Denied) => 403,
            _ => 200,
        };
        assert_eq!(self.status, expected, "{:?}", status);
        let challenge = self
            .headers
            .iter()
            .find(|(name, _)| name == "www-authenticate")
            .map(|(_, value)| value.as_str());
        if expected == 401 {
            assert_eq!(challenge, Some("Basic realm=\"taxiway\""));
        }
        assert!(status.message.is_some_and(|m| !m.is_empty()));
        status.status_type
    }

    fn blocks(&self, dialect: Dialect) -> usize {
        match self.message(dialect).body {
            Body::PollResponse(poll) => poll.content_blocks.len(),
            other => panic!("a poll response, not {other:?}"),
        }
    }
}

async fn post(
    address: SocketAddr,
    path: &str,
    dialect: Dialect,
    auth: Option<&str>,
    body: &str,
) -> Reply {
    let mut headers = vec![
        ("Content-Type", "application/xml"),
        ("X-TAXII-Content-Type", content_type(dialect)),
        ("X-TAXII-Accept", content_type(dialect)),
        ("X-TAXII-Protocol", protocol(dialect)),
    ];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    let (status, headers, body) =
        common::http(address, "POST", path, &headers, body.as_bytes()).await;
    Reply {
        status,
        headers,
        body,
    }
}

/// A 1.1 poll of Gold, the for-pay feed, with `auth`.
async fn poll_gold(address: SocketAddr, auth: &str) -> Reply {
    post(
        address,
        "/feeds/pay",
        Dialect::V11,
        Some(auth),
        &poll(Dialect::V11, "Gold"),
    )
    .await
}

/// Blocks of `feed` a rightful identity polls back in 1.1.
async fn stored(address: SocketAddr, path: &str, feed: &str, auth: Option<&str>) -> usize {
    post(address, path, Dialect::V11, auth, &poll(Dialect::V11, feed))
        .await
        .blocks(Dialect::V11)
}

#[tokio::test]
async fn a_wrong_password_or_an_unknown_user_is_unauthorized_and_stores_nothing() {
    let gateway = common::start_default("auth-wrong").await;
    let address = gateway.local_addr;
    let wrong = common::basic("demo", "not-the-password");
    let unknown = common::basic("mallory", common::DEMO_PASSWORD);
    for dialect in DIALECTS {
        for auth in [&wrong, &unknown] {
            // Even where anonymous may write: bad credentials are never anonymous.
            let reply = post(
                address,
                "/inbox",
                dialect,
                Some(auth),
                &inbox(dialect, "Public"),
            )
            .await;
            assert_eq!(
                reply.refused(dialect),
                StatusType::Unauthorized,
                "{dialect}"
            );
            let reply = post(
                address,
                "/feeds/pay",
                dialect,
                Some(auth),
                &poll(dialect, "Gold"),
            )
            .await;
            assert_eq!(
                reply.refused(dialect),
                StatusType::Unauthorized,
                "{dialect}"
            );
        }
    }
    // Malformed credentials too.
    let reply = post(
        address,
        "/feeds/public",
        Dialect::V11,
        Some("Basic %%%"),
        &poll(Dialect::V11, "Public"),
    )
    .await;
    assert_eq!(reply.refused(Dialect::V11), StatusType::Unauthorized);
    let demo = common::demo_auth();
    assert_eq!(stored(address, "/feeds/public", "Public", None).await, 0);
    assert_eq!(stored(address, "/feeds/pay", "Gold", Some(&demo)).await, 0);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn no_credentials_on_a_for_pay_feed_is_unauthorized() {
    let gateway = common::start_default("auth-anonymous").await;
    let address = gateway.local_addr;
    for dialect in DIALECTS {
        for feed in ["Platinum", "Gold"] {
            let reply = post(address, "/feeds/pay", dialect, None, &poll(dialect, feed)).await;
            assert_eq!(
                reply.refused(dialect),
                StatusType::Unauthorized,
                "{dialect} {feed}"
            );
        }
    }
    // Nor may anonymous list the for-pay feeds.
    let request = format!(
        "<t:Collection_Information_Request xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:0f1e2d3c-0000-4000-8000-0000000000ad\"/>"
    );
    let reply = post(address, "/feeds/pay", Dialect::V11, None, &request).await;
    assert_eq!(reply.refused(Dialect::V11), StatusType::Unauthorized);
    gateway.stop().await.unwrap();
}

/// A scenario with one feed that `reader` may only read and `boss` may also fill.
async fn start_with_reader(name: &str) -> Gateway {
    let mut config = Config::from_toml(&format!(
        r#"
[[identities]]
name = "reader"
password_hash = "{READER_HASH}"

[[identities]]
name = "boss"
password_hash = "{DEMO_HASH}"

[[feeds]]
name = "Gold"
description = "For readers."
readers = ["reader", "boss"]
writers = ["boss"]

[[services]]
kind = "discovery"
path = "/"

[[services]]
kind = "poll"
path = "/feeds"
feeds = ["Gold"]

[[services]]
kind = "inbox"
path = "/inbox"
feeds = ["Gold"]
"#
    ))
    .unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir(name);
    Gateway::start(config).await.unwrap()
}

#[tokio::test]
async fn a_reader_trying_to_write_is_denied_and_stores_nothing() {
    let gateway = start_with_reader("auth-reader").await;
    let address = gateway.local_addr;
    let reader = common::basic("reader", "reader-pass");
    let boss = common::basic("boss", common::DEMO_PASSWORD);
    for dialect in DIALECTS {
        let reply = post(
            address,
            "/inbox",
            dialect,
            Some(&reader),
            &inbox(dialect, "Gold"),
        )
        .await;
        assert_eq!(reply.refused(dialect), StatusType::Denied, "{dialect}");
        let reply = post(address, "/inbox", dialect, None, &inbox(dialect, "Gold")).await;
        assert_eq!(
            reply.refused(dialect),
            StatusType::Unauthorized,
            "{dialect}"
        );
    }
    assert_eq!(stored(address, "/feeds", "Gold", Some(&reader)).await, 0);
    // The control: a writer's push is stored and the reader sees it.
    let reply = post(
        address,
        "/inbox",
        Dialect::V11,
        Some(&boss),
        &inbox(Dialect::V11, "Gold"),
    )
    .await;
    let Body::Status(status) = reply.message(Dialect::V11).body else {
        panic!("a status message")
    };
    assert_eq!(status.status_type, StatusType::Success);
    assert_eq!(stored(address, "/feeds", "Gold", Some(&reader)).await, 1);
    assert_eq!(stored(address, "/feeds", "Gold", Some(&boss)).await, 1);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn demo_polls_gold_and_anonymous_polls_public() {
    let gateway = common::start_default("auth-split").await;
    let address = gateway.local_addr;
    let demo = common::demo_auth();
    // The demo's inbox takes anonymous pushes (config/default.toml).
    for feed in ["Gold", "Public"] {
        let reply = post(
            address,
            "/inbox",
            Dialect::V11,
            None,
            &inbox(Dialect::V11, feed),
        )
        .await;
        let Body::Status(status) = reply.message(Dialect::V11).body else {
            panic!("a status message")
        };
        assert_eq!(status.status_type, StatusType::Success, "{feed}");
    }
    for dialect in DIALECTS {
        let reply = post(
            address,
            "/feeds/pay",
            dialect,
            Some(&demo),
            &poll(dialect, "Gold"),
        )
        .await;
        assert_eq!(reply.blocks(dialect), 1, "{dialect}");
        let reply = post(
            address,
            "/feeds/public",
            dialect,
            None,
            &poll(dialect, "Public"),
        )
        .await;
        assert_eq!(reply.blocks(dialect), 1, "{dialect}");
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn discovery_shows_the_for_pay_services_to_accounts_only() {
    let gateway = common::start_default("auth-discovery").await;
    let address = gateway.local_addr;
    let paths = |reply: Reply| -> Vec<String> {
        let Body::DiscoveryResponse(discovery) = reply.message(Dialect::V11).body else {
            panic!("a discovery response")
        };
        discovery
            .services
            .iter()
            .map(|s| {
                s.address
                    .trim_start_matches(&format!("http://{address}"))
                    .to_owned()
            })
            .collect()
    };
    let anonymous = paths(post(address, "/", Dialect::V11, None, &discovery_11()).await);
    assert!(
        !anonymous.iter().any(|p| p == "/feeds/pay"),
        "{anonymous:?}"
    );
    assert!(
        anonymous.iter().any(|p| p == "/feeds/public"),
        "{anonymous:?}"
    );
    let demo = common::demo_auth();
    let known = paths(post(address, "/", Dialect::V11, Some(&demo), &discovery_11()).await);
    assert_eq!(
        known.iter().filter(|p| *p == "/feeds/pay").count(),
        2,
        "{known:?}"
    );
    assert_eq!(known.len(), anonymous.len() + 2);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn verified_credentials_are_cached_and_wrong_ones_still_refused() {
    let gateway = common::start_default("auth-cache").await;
    let address = gateway.local_addr;
    let demo = common::demo_auth();
    for _ in 0..10 {
        let reply = poll_gold(address, &demo).await;
        assert_eq!(reply.blocks(Dialect::V11), 0);
    }
    assert_eq!(gateway.authenticator.full_verifications(), 1);
    // A cached success spares nothing to a wrong password.
    let wrong = common::basic("demo", "taxiway-demo-not");
    let reply = poll_gold(address, &wrong).await;
    assert_eq!(reply.refused(Dialect::V11), StatusType::Unauthorized);
    assert_eq!(gateway.authenticator.full_verifications(), 2);
    let reply = poll_gold(address, &demo).await;
    assert_eq!(reply.blocks(Dialect::V11), 0);
    assert_eq!(gateway.authenticator.full_verifications(), 2);
    gateway.stop().await.unwrap();
}

/// The resident set size of a process now, in bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    let kilobytes: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a VmRSS line in kB");
    kilobytes * 1024
}

/// Each argon2 verification takes 19 MiB. The binary hands that memory
/// back once a verification ends: wrong passwords, each verified in full,
/// cannot pile it up in the allocator (they did, 19 MiB a verification on a
/// thread of its own, until the allocator's thresholds were fixed).
#[tokio::test]
async fn wrong_passwords_leave_no_memory_behind() {
    const ARGON2_MEMORY: u64 = 19 * 1024 * 1024;
    let dir = common::temp_dir("auth-memory");
    let address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let server = common::spawn_binary(address, &dir, "memory.log").await;
    let pid = server.0.id();
    let demo = common::demo_auth();
    let reply = poll_gold(address, &demo).await;
    assert_eq!(reply.blocks(Dialect::V11), 0);
    let before = resident(pid);
    for attempt in 0..4 {
        let wrong = common::basic("demo", &format!("not-the-password-{attempt}"));
        let reply = poll_gold(address, &wrong).await;
        assert_eq!(reply.refused(Dialect::V11), StatusType::Unauthorized);
    }
    let after = resident(pid);
    eprintln!(
        "resident {} MB before four wrong passwords, {} MB after",
        before >> 20,
        after >> 20
    );
    assert!(
        after.saturating_sub(before) < ARGON2_MEMORY,
        "four wrong passwords left {} MB more resident",
        after.saturating_sub(before) >> 20
    );
}

#[test]
fn hash_password_prints_an_argon2id_phc_string_that_verifies() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_taxiway"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret words\nignored\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let hash = String::from_utf8(output.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    use argon2::PasswordVerifier;
    let argon = argon2::Argon2::default();
    assert!(argon.verify_password(b"s3cret words", hash).is_ok());
    assert!(argon.verify_password(b"s3cret words\n", hash).is_err());
    let config = format!("[[identities]]\nname = \"x\"\npassword_hash = \"{hash}\"\n");
    assert!(Config::from_toml(&config).is_ok());
}

#[test]
fn serve_prints_the_demo_account_of_the_default_scenario() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = common::temp_dir("auth-serve-banner");
    let mut child = Command::new(env!("CARGO_BIN_EXE_taxiway"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    for line in lines {
        let line = line.unwrap();
        let serving = line.starts_with("taxiway is serving");
        banner.push(line);
        if serving {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let expected = format!("demo account: demo / {}", common::DEMO_PASSWORD);
    assert!(banner.contains(&expected), "{banner:?}");
}

/// What the binary's log holds once `wanted` appears in it, or the log
/// after `within`.
async fn log_once_it_holds(log: &std::path::Path, wanted: &str, within: Duration) -> String {
    let deadline = std::time::Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(wanted) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The binary's log events reach its standard output while it serves (a
/// refusal is logged within the writer's interval, not at exit), and those
/// of its shutdown are written before it exits.
#[tokio::test]
async fn the_binary_logs_while_serving_and_up_to_its_exit() {
    let dir = common::temp_dir("auth-log");
    let address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let mut server = common::spawn_binary(address, &dir, "events.log").await;
    let log = dir.join("events.log");
    let wrong = common::basic("demo", "not-the-password");
    let reply = poll_gold(address, &wrong).await;
    assert_eq!(reply.refused(Dialect::V11), StatusType::Unauthorized);
    let text = log_once_it_holds(
        &log,
        "HTTP Basic credentials refused",
        Duration::from_secs(5),
    )
    .await;
    assert!(text.contains("HTTP Basic credentials refused"), "{text}");

    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("stopping: finishing requests in flight"),
        "{text}"
    );
}
