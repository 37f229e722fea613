//! Forwards survive faults: a remote inbox that fails for a while, and a
//! gateway killed with SIGKILL mid-stream and restarted. Counted at the
//! destination: every acknowledged message arrives, in order, and a repeat
//! carries the id of the message it repeats.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::receiver::{Received, Receiver};
use taxiway::bindings::taxii_xml;
use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";

fn routes(receiver: &Receiver) -> String {
    format!(
        r#"
[[egress]]
name = "partner"
initial_backoff_ms = 50
max_attempts = 1000
[egress.taxii]
url = "{}"
dialect = "1.1"
timeout_ms = 2000

[[routes]]
name = "share"
actions = ["store", {{ forward = "partner" }}]
"#,
        receiver.url()
    )
}

fn inbox(n: usize) -> String {
    format!(
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:00000000-0000-4000-8000-{n:012}\">\
         <t:Destination_Collection_Name>Gold</t:Destination_Collection_Name>\
         <t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>\
         <stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-{n}\" \
         version=\"1.1.1\"/></t:Content></t:Content_Block></t:Inbox_Message>"
    )
}

/// The package numbers received, in arrival order, each checked to come
/// with the message id it was sent with.
fn arrivals(received: &[Received]) -> Vec<usize> {
    received
        .iter()
        .map(|post| {
            let message = taxii_xml::parse(&post.body).expect("TAXII").message;
            let Body::Inbox(inbox) = &message.body else {
                panic!("an inbox message, not {message:?}");
            };
            let n = common::package_number(&inbox.content_blocks[0]);
            assert_eq!(
                message.id,
                format!("urn:uuid:00000000-0000-4000-8000-{n:012}")
            );
            n
        })
        .collect()
}

/// Arrival order without repeats: a repeat comes right where a retry sent it.
fn first_arrivals(arrived: &[usize]) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    arrived
        .iter()
        .copied()
        .filter(|n| seen.insert(*n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_inbox_failing_for_a_while_gets_everything_after() {
    let receiver = Receiver::start(Duration::ZERO).await;
    receiver.fail(true);
    let text = format!("{}\n{}", taxiway::config::DEFAULT_CONFIG, routes(&receiver));
    let mut config = Config::from_toml(&text).unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir("egress-failing");
    let gateway = Gateway::start(config).await.unwrap();
    for n in 0..100 {
        let (_, reply) =
            common::post_taxii(gateway.local_addr, "/inbox", Dialect::V11, &inbox(n), None).await;
        assert!(matches!(reply.body, Body::Status(ref s) if s.status_type == StatusType::Success));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.count(), 0, "nothing is recorded while it fails");
    receiver.fail(false);
    let arrived = arrivals(&receiver.wait_for(100).await);
    assert_eq!(
        first_arrivals(&arrived),
        (0..100).collect::<Vec<_>>(),
        "all, in order"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateway_forwards_everything_it_acknowledged() {
    let receiver = Receiver::start(Duration::from_millis(5)).await;
    let dir = common::temp_dir("egress-sigkill");
    let config = dir.join("taxiway.toml");
    std::fs::write(
        &config,
        format!("{}\n{}", taxiway::config::DEFAULT_CONFIG, routes(&receiver)),
    )
    .unwrap();
    let address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let arguments = [std::ffi::OsStr::new("--config"), config.as_os_str()];
    let mut child = common::spawn_binary_with(address, &dir, "first.log", &arguments).await;

    const SENT: usize = 300;
    let acknowledged: Arc<Mutex<Vec<usize>>> = Arc::default();
    let pusher = {
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            for n in 0..SENT {
                let headers = [
                    ("Content-Type", "application/xml"),
                    (
                        "X-TAXII-Content-Type",
                        "urn:taxii.mitre.org:message:xml:1.1",
                    ),
                    ("X-TAXII-Protocol", "urn:taxii.mitre.org:protocol:http:1.0"),
                    ("X-TAXII-Services", "urn:taxii.mitre.org:services:1.1"),
                ];
                let Ok(Ok((200, _, body))) = tokio::time::timeout(
                    Duration::from_secs(5),
                    try_http(address, &headers, inbox(n).into_bytes()),
                )
                .await
                else {
                    return;
                };
                if String::from_utf8_lossy(&body).contains("SUCCESS") {
                    acknowledged.lock().unwrap().push(n);
                }
            }
        })
    };
    while acknowledged.lock().unwrap().len() < SENT / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.sigkill();
    let _ = pusher.await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() < SENT, "the kill came mid-stream");

    let _restarted = common::spawn_binary_with(address, &dir, "second.log", &arguments).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let firsts = loop {
        let firsts = first_arrivals(&arrivals(&receiver.all()));
        if acknowledged.iter().all(|n| firsts.contains(n)) || std::time::Instant::now() > deadline {
            break firsts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Everything acknowledged arrived, in the order it was sent; a message
    // committed but not acknowledged before the kill may arrive too.
    assert!(
        acknowledged.iter().all(|n| firsts.contains(n)),
        "lost: {:?}",
        acknowledged
            .iter()
            .filter(|n| !firsts.contains(n))
            .collect::<Vec<_>>()
    );
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "in order: {firsts:?}"
    );
    assert!(firsts.iter().all(|n| *n < SENT));
}

/// One POST that reports a refused or cut connection instead of panicking.
async fn try_http(
    address: SocketAddr,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), std::io::Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let mut request = format!(
        "POST /inbox HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no complete response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, Vec::new(), raw[split + 4..].to_vec()))
}
