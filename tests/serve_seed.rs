//! The seed's exchanges (shared/spec/examples/seed) replayed as raw HTTP
//! against `taxiway serve`'s default scenario, the seed's Source.

mod common;

use std::net::SocketAddr;

use taxiway::bindings::taxii_xml::parse;
use taxiway::core::*;

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn message(&self) -> Message {
        let parsed = parse(&self.body).unwrap_or_else(|e| {
            panic!(
                "not a TAXII message ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        });
        assert_eq!(parsed.dialect, Dialect::Draft);
        parsed.message
    }
}

/// A seed figure's request head, mended where the seed is not valid HTTP
/// (a missing space before the version, a target without its slash), sent
/// with `body` to the gateway.
async fn replay(
    address: SocketAddr,
    figure: &str,
    edit: impl Fn(String) -> String,
    body: &[u8],
) -> HttpReply {
    let head =
        std::fs::read_to_string(common::shared().join("spec/examples/seed").join(figure)).unwrap();
    let mut lines: Vec<String> = head.lines().map(str::to_owned).collect();
    lines[0] = lines[0]
        .replace("d376HTTP/1.1", "d376 HTTP/1.1")
        .replace("POST taxii/inbox", "POST /inbox");
    let mut request = String::new();
    for line in &lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("host:") || lower.starts_with("content-length:") {
            continue;
        }
        request.push_str(&edit(line.clone()));
        request.push_str("\r\n");
    }
    // The seed's requests carry no credentials (its for-pay services are
    // HTTPS-protected); here the for-pay feeds and services need the demo account.
    request.push_str(&format!(
        "Authorization: {}\r\n",
        common::DEMO_AUTHORIZATION
    ));
    request.push_str(&format!(
        "Host: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    let (status, headers, body) = common::exchange(address, request).await;
    HttpReply {
        status,
        headers,
        body,
    }
}

fn seed_message(figure: &str) -> Message {
    let bytes = std::fs::read(common::shared().join("spec/examples/seed").join(figure)).unwrap();
    parse(&bytes).unwrap().message
}

/// Text compared as words: the seed wraps its lines, once inside "up-to-the-minute".
fn words(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("- ", "-")
}

fn path_of(address: &str) -> &str {
    let after_scheme = address.split_once("://").map_or(address, |(_, rest)| rest);
    after_scheme.find('/').map_or("/", |at| &after_scheme[at..])
}

#[tokio::test]
async fn figure_4_discovery_gets_figure_5() {
    let gateway = common::start_default("seed-discovery").await;
    let reply = replay(
        gateway.local_addr,
        "fig04-discovery-request.http",
        |l| l,
        b"",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("X-TAXII-Content-Type"),
        Some("TAXII_1.0/TAXII_XML_BINDING_1.0")
    );
    assert_eq!(
        reply.header("X-TAXII-Protocol"),
        Some("TAXII_HTTP_BINDING_1.0")
    );
    let answer = reply.message();
    assert_eq!(
        answer.in_response_to.as_deref(),
        Some("a847 98be ffe8 40ee 3722 c893 288b d375")
    );
    let Body::DiscoveryResponse(ours) = answer.body else {
        panic!("a discovery response")
    };
    let Body::DiscoveryResponse(seed) = seed_message("fig05-discovery-response.xml").body else {
        panic!("figure 5 is a discovery response")
    };
    assert_eq!(ours.services.len(), seed.services.len());
    for (ours, seed) in ours.services.iter().zip(&seed.services) {
        assert_eq!(ours.service_type, seed.service_type);
        assert_eq!(ours.version, seed.version);
        assert_eq!(ours.message_bindings, seed.message_bindings);
        assert_eq!(path_of(&ours.address), path_of(&seed.address));
        assert_eq!(
            ours.message.as_deref().map(words),
            seed.message.as_deref().map(words)
        );
        // The seed's for-pay services are HTTPS; this listener is plain HTTP
        // and says so rather than advertise a protection it lacks.
        assert_eq!(ours.protocol, ProtocolBinding::Http);
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn figure_6_feed_information_gets_figure_7() {
    let gateway = common::start_default("seed-feeds").await;
    // As printed, figure 6 names the HTTPS binding: over plain HTTP that
    // protection is missing, and the request is refused.
    let refused = replay(
        gateway.local_addr,
        "fig06-feed-information-request.http",
        |l| l,
        b"",
    )
    .await;
    assert_eq!(refused.status, 400);
    let Body::Status(status) = refused.message().body else {
        panic!("an error message")
    };
    assert_eq!(status.status_type, StatusType::UnsupportedProtocol);

    let plain = |line: String| line.replace("TAXI_HTTPS_BINDING_1.0", "TAXII_HTTP_BINDING_1.0");
    let reply = replay(
        gateway.local_addr,
        "fig06-feed-information-request.http",
        plain,
        b"",
    )
    .await;
    assert_eq!(reply.status, 200);
    let answer = reply.message();
    assert_eq!(
        answer.in_response_to.as_deref(),
        Some("a847 98be ffe8 40ee 3722 c893 288b d376")
    );
    let Body::FeedInformationResponse(ours) = answer.body else {
        panic!("feed information")
    };
    let Body::FeedInformationResponse(seed) =
        seed_message("fig07-feed-information-response.xml").body
    else {
        panic!("figure 7 is feed information")
    };
    assert_eq!(ours.feeds.len(), 3);
    for (ours, seed) in ours.feeds.iter().zip(&seed.feeds) {
        assert_eq!(ours.name, seed.name);
        assert_eq!(words(&ours.description), words(&seed.description));
        let push: Vec<_> = ours.push_methods.iter().map(|m| &m.protocol).collect();
        let seed_push: Vec<_> = seed.push_methods.iter().map(|m| &m.protocol).collect();
        assert_eq!(push, seed_push, "{}", ours.name);
        assert_eq!(
            ours.polling_services.is_empty(),
            seed.polling_services.is_empty(),
            "{}",
            ours.name
        );
        assert!(ours.content_bindings.contains(&seed.content_bindings[0]));
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn figure_10_push_is_stored_and_polled_back() {
    let gateway = common::start_default("seed-push").await;
    let body =
        std::fs::read(common::shared().join("spec/examples/seed/fig10-stix-message.xml")).unwrap();
    let pushed = replay(
        gateway.local_addr,
        "fig10-stix-message.http",
        https_to_http,
        &body,
    )
    .await;
    assert_eq!(pushed.status, 200);
    assert!(pushed.body.is_empty(), "the draft's push is one-way");

    // Figure 11 polls by subscription; this gateway has granted none.
    let poll =
        std::fs::read(common::shared().join("spec/examples/seed/fig11-poll-request.xml")).unwrap();
    let reply = replay(
        gateway.local_addr,
        "fig11-poll-request.http",
        https_to_http,
        &poll,
    )
    .await;
    let Body::Status(status) = reply.message().body else {
        panic!("an error message")
    };
    assert_eq!(status.status_type, StatusType::NotFound);

    // The same poll by content binding returns what was pushed, as figure 12.
    let by_binding = String::from_utf8(poll).unwrap().replace(
        "<subscription-id>customer.com-JGK8H84BF</subscription-id>",
        "<content-binding>STIX_XML_1.0</content-binding>",
    );
    let reply = replay(
        gateway.local_addr,
        "fig11-poll-request.http",
        https_to_http,
        by_binding.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200);
    let answer = reply.message();
    assert_eq!(
        answer.in_response_to.as_deref(),
        Some("a847 98be ffe8 40ee 3722 c893 288b d377")
    );
    let Body::PollResponse(ours) = answer.body else {
        panic!("a poll response")
    };
    let Body::PollResponse(seed) = seed_message("fig12-poll-response.xml").body else {
        panic!("figure 12 is a poll response")
    };
    assert_eq!(ours.exclusive_begin, seed.exclusive_begin);
    assert_eq!(ours.content_blocks.len(), 1);
    assert_eq!(
        ours.content_blocks[0].content,
        seed.content_blocks[0].content
    );
    assert_eq!(
        ours.content_blocks[0].binding,
        seed.content_blocks[0].binding
    );
    // The draft carries no block labels: the end label is the stored block's.
    assert!(ours.inclusive_end > ours.exclusive_begin);
    gateway.stop().await.unwrap();
}

fn https_to_http(line: String) -> String {
    line.replace("TAXII_HTTPS_BINDING_1.0", "TAXII_HTTP_BINDING_1.0")
}
