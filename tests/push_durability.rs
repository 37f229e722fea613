//! Push durability: a gateway killed mid-stream loses nothing it
//! acknowledged; push in every dialect end to end; a second taxiway as the
//! subscriber.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taxiway::bindings::taxii_xml::{self, parse};
use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
/// The draft knows one STIX binding, STIX_XML_1.0, which a draft
/// subscription asks for (the draft needs exactly one): the gateway reads it
/// as this id and pushes that binding's content only.
const STIX10: &str = "urn:stix.mitre.org:xml:1.0";

/// The default scenario in-process with a short backoff.
async fn start(data_dir: &Path) -> Gateway {
    let mut config = Config::default_scenario();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = data_dir.to_owned();
    config.delivery.initial_backoff_ms = 50;
    config.delivery.max_attempts = 1000;
    Gateway::start(config).await.expect("the gateway starts")
}

/// Posts `message` in `dialect` to the gateway; `None` if the gateway is
/// unreachable or the exchange broke (it was killed), else the answer.
async fn try_taxii(
    gateway: SocketAddr,
    path: &str,
    dialect: Dialect,
    message: &Message,
    authorization: Option<&str>,
) -> Option<Message> {
    let ids = taxii_xml::ids().dialect(dialect);
    let body = taxii_xml::serialize(message, dialect).expect("a serializable request");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {gateway}\r\nConnection: close\r\n\
         Content-Type: application/xml\r\nAccept: application/xml\r\n\
         X-TAXII-Content-Type: {ct}\r\nX-TAXII-Accept: {ct}\r\nX-TAXII-Protocol: {}\r\n",
        ids.protocol_http,
        ct = ids.content_type
    );
    if dialect != Dialect::Draft {
        request.push_str(&format!("X-TAXII-Services: {}\r\n", ids.services_version));
    }
    if let Some(authorization) = authorization {
        request.push_str(&format!("Authorization: {authorization}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut stream = tokio::net::TcpStream::connect(gateway).await.ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    stream.write_all(body.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status_line = String::from_utf8_lossy(&raw[..split]).into_owned();
    assert!(
        status_line.starts_with("HTTP/1.1 200"),
        "{status_line}\n{}",
        String::from_utf8_lossy(&raw[split + 4..])
    );
    Some(parse(&raw[split + 4..]).expect("a TAXII answer").message)
}

async fn taxii(
    gateway: SocketAddr,
    path: &str,
    dialect: Dialect,
    message: &Message,
    authorization: Option<&str>,
) -> Message {
    try_taxii(gateway, path, dialect, message, authorization)
        .await
        .expect("the gateway answers")
}

fn status_of(message: &Message) -> StatusType {
    match &message.body {
        Body::Status(status) => status.status_type.clone(),
        other => panic!("expected a status message, got {other:?}"),
    }
}

fn message_id(dialect: Dialect) -> String {
    match dialect {
        // 1.0 and the draft want plain tokens; a number is both.
        Dialect::V10 | Dialect::Draft => (uuid::Uuid::new_v4().as_u128() >> 64).to_string(),
        Dialect::V11 => uuid::Uuid::new_v4().to_string(),
    }
}

/// Subscribes `address` to `feed` by push in `dialect`; the subscription id.
async fn subscribe(
    gateway: SocketAddr,
    path: &str,
    feed: &str,
    dialect: Dialect,
    address: &str,
    authorization: Option<&str>,
) -> String {
    let request = Message::new(
        message_id(dialect),
        Body::SubscriptionManagementRequest(SubscriptionRequest {
            feed_name: feed.to_owned(),
            action: SubscriptionAction::Subscribe,
            subscription_id: None,
            parameters: None,
            delivery: Some(Delivery::Push(PushParameters {
                protocol: ProtocolBinding::Http,
                address: address.to_owned(),
                message_binding: MessageBinding::Xml(dialect),
            })),
        }),
    );
    let reply = taxii(gateway, path, dialect, &request, authorization).await;
    let Body::SubscriptionManagementResponse(response) = &reply.body else {
        panic!("expected a subscription management response, got {reply:?}");
    };
    assert_eq!(response.subscriptions.len(), 1, "{reply:?}");
    let record = &response.subscriptions[0];
    // Only 1.1 reports a subscription's status.
    if dialect == Dialect::V11 {
        assert_eq!(record.status, Some(SubscriptionStatus::Active));
    }
    assert!(!record.id.is_empty());
    record.id.clone()
}

/// A 1.1 Inbox_Message carrying one STIX 1.1.1 block marked `mark` for `feed`.
fn inbox(feed: &str, mark: &str) -> Message {
    inbox_with(feed, mark, STIX)
}

fn inbox_with(feed: &str, mark: &str, binding: &str) -> Message {
    let block = ContentBlock::new(
        ContentBinding::new(binding),
        XmlContent::Xml(format!(
            "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"{mark}\"/>"
        )),
    );
    Message::new(
        message_id(Dialect::V11),
        Body::Inbox(InboxMessage {
            result_id: None,
            destination_feeds: vec![feed.to_owned()],
            message: None,
            source_subscription: None,
            record_count: None,
            content_blocks: vec![block],
        }),
    )
}

/// The mark of the one block a pushed message carries.
fn mark_of(message: &Message, prefix: &str) -> String {
    let Body::Inbox(inbox) = &message.body else {
        panic!("expected an inbox message, got {message:?}");
    };
    assert_eq!(inbox.content_blocks.len(), 1, "{message:?}");
    let content = inbox.content_blocks[0].content.as_str();
    let at = content.find(prefix).expect("a marked block");
    content[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

// ---------------------------------------------------------------------------
// 1. SIGKILL mid-stream.

const PUSHES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_gateway_loses_nothing_it_acknowledged() {
    let dir = common::temp_dir("push-sigkill");
    let address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let mut child = common::spawn_binary(address, &dir, "first.log").await;
    let receiver = common::receiver::Receiver::start(Duration::from_millis(20)).await;
    let auth = Some(common::DEMO_AUTHORIZATION);
    let subscription = subscribe(
        address,
        "/feeds/pay",
        "Gold",
        Dialect::V11,
        &receiver.url(),
        auth,
    )
    .await;

    // Pushes in order until all are acknowledged or the gateway dies.
    let acknowledged: Arc<Mutex<Vec<usize>>> = Arc::default();
    let pusher = {
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            for n in 0..PUSHES {
                let message = inbox("Gold", &format!("payload-{n}"));
                match try_taxii(address, "/inbox", Dialect::V11, &message, auth).await {
                    Some(reply) => {
                        assert_eq!(status_of(&reply), StatusType::Success, "{reply:?}");
                        acknowledged.lock().unwrap().push(n);
                    }
                    None => return,
                }
            }
        })
    };

    // Kill once deliveries are under way, but far from done, and (if the
    // pusher is still going) with an inbox request likely in flight.
    let deadline = Instant::now() + Duration::from_secs(40);
    while receiver.count() < 10 || acknowledged.lock().unwrap().len() < PUSHES / 2 {
        assert!(Instant::now() < deadline, "no pushes arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.sigkill();
    let seen_at_kill = receiver.count();
    pusher.await.unwrap();
    let acknowledged_before_kill: Vec<usize> = acknowledged.lock().unwrap().clone();
    assert!(
        seen_at_kill < PUSHES,
        "all {PUSHES} were delivered before the kill: make the receiver slower"
    );
    assert_eq!(
        acknowledged_before_kill,
        (0..acknowledged_before_kill.len()).collect::<Vec<_>>()
    );

    // Same data dir, same port; whatever was not acknowledged is pushed again
    // (the one in flight at the kill may have been stored too).
    let mut child = common::spawn_binary(address, &dir, "second.log").await;
    let in_flight: HashSet<usize> = [acknowledged_before_kill.len()]
        .into_iter()
        .filter(|&n| n < PUSHES)
        .collect();
    for n in acknowledged_before_kill.len()..PUSHES {
        let message = inbox("Gold", &format!("payload-{n}"));
        let reply = taxii(address, "/inbox", Dialect::V11, &message, auth).await;
        assert_eq!(status_of(&reply), StatusType::Success, "{reply:?}");
    }

    // Every payload arrives at least once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let marks_and_ids = loop {
        let pairs: Vec<(usize, String)> = receiver
            .all()
            .iter()
            .map(|received| {
                let parsed = parse(&received.body).expect("a TAXII push");
                assert_eq!(parsed.dialect, Dialect::V11);
                let Body::Inbox(inbox) = &parsed.message.body else {
                    panic!("expected an inbox message");
                };
                let source = inbox.source_subscription.as_ref().unwrap();
                assert_eq!(
                    source.subscription_id.as_deref(),
                    Some(subscription.as_str())
                );
                let mark = mark_of(&parsed.message, "payload-");
                let n: usize = mark["payload-".len()..].parse().unwrap();
                (n, parsed.message.id)
            })
            .collect();
        let distinct: HashSet<usize> = pairs.iter().map(|(n, _)| *n).collect();
        if distinct.len() == PUSHES {
            break pairs;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {PUSHES} payloads arrived; missing {:?}",
            distinct.len(),
            (0..PUSHES)
                .filter(|n| !distinct.contains(n))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.sigkill();

    // Duplicates carry the message id of their first delivery, except for a
    // payload whose inbox request was cut by the kill and so was sent twice.
    let mut first_id: HashMap<usize, String> = HashMap::new();
    let mut first_order = Vec::new();
    let mut duplicates = 0;
    // Duplicates under a new id: a payload the test itself sent twice.
    let mut resent = 0;
    for (n, id) in &marks_and_ids {
        match first_id.get(n) {
            None => {
                first_id.insert(*n, id.clone());
                first_order.push(*n);
            }
            Some(first) => {
                duplicates += 1;
                if first != id {
                    resent += 1;
                }
                if !in_flight.contains(n) {
                    assert_eq!(first, id, "payload-{n} came again under another id");
                }
            }
        }
    }
    let all_ids: HashSet<&String> = marks_and_ids.iter().map(|(_, id)| id).collect();
    assert!(all_ids.len() >= PUSHES);
    // First deliveries follow the push order.
    assert_eq!(first_order, (0..PUSHES).collect::<Vec<_>>());
    // Acknowledged ⇒ durable (implied by the above; stated for the record).
    for n in &acknowledged_before_kill {
        assert!(
            first_id.contains_key(n),
            "acknowledged payload-{n} was lost"
        );
    }
    eprintln!(
        "seen at kill: {seen_at_kill}, acknowledged before kill: {}, \
         duplicates: {duplicates} ({resent} of a resent inbox request)",
        acknowledged_before_kill.len()
    );
}

// ---------------------------------------------------------------------------
// 2. Push in TAXII 1.0 and in the draft.

#[tokio::test]
async fn push_in_taxii_10_and_in_the_draft() {
    let dir = common::temp_dir("push-dialects");
    let gateway = start(&dir).await;
    let address = gateway.local_addr;
    let receiver10 = common::receiver::Receiver::start(Duration::ZERO).await;
    let receiver_draft = common::receiver::Receiver::start(Duration::ZERO).await;
    let auth = Some(common::DEMO_AUTHORIZATION);
    let id10 = subscribe(
        address,
        "/feeds/pay",
        "Gold",
        Dialect::V10,
        &receiver10.url(),
        auth,
    )
    .await;
    let id_draft = subscribe(
        address,
        "/feeds/pay",
        "Gold",
        Dialect::Draft,
        &receiver_draft.url(),
        auth,
    )
    .await;

    for n in 1..=2 {
        let reply = taxii(
            address,
            "/inbox",
            Dialect::V11,
            &inbox_with("Gold", &format!("dialect-{n}"), STIX10),
            None,
        )
        .await;
        assert_eq!(status_of(&reply), StatusType::Success, "{reply:?}");
    }

    let got = receiver10.wait_for(2).await;
    for (n, received) in got.iter().enumerate() {
        assert_eq!(
            received.header("x-taxii-content-type"),
            Some("urn:taxii.mitre.org:message:xml:1.0")
        );
        let parsed = parse(&received.body)
            .unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(&received.body)));
        assert_eq!(parsed.dialect, Dialect::V10);
        let Body::Inbox(inbox) = &parsed.message.body else {
            panic!("expected an Inbox_Message, got {:?}", parsed.message);
        };
        let source = inbox
            .source_subscription
            .as_ref()
            .expect("Source_Subscription");
        assert_eq!(source.subscription_id.as_deref(), Some(id10.as_str()));
        assert_eq!(source.feed_name.as_deref(), Some("Gold"));
        assert_eq!(
            mark_of(&parsed.message, "dialect-"),
            format!("dialect-{}", n + 1)
        );
    }

    let got = receiver_draft.wait_for(2).await;
    for (n, received) in got.iter().enumerate() {
        assert_eq!(
            received.header("x-taxii-content-type"),
            Some("TAXII_1.0/TAXII_XML_BINDING_1.0")
        );
        let text = String::from_utf8_lossy(&received.body).into_owned();
        assert!(text.contains("TAXII_STIXMessage"), "{text}");
        let parsed = parse(&received.body).unwrap_or_else(|e| panic!("{e:?}: {text}"));
        assert_eq!(parsed.dialect, Dialect::Draft);
        let Body::Inbox(inbox) = &parsed.message.body else {
            panic!("expected a TAXII_STIXMessage, got {:?}", parsed.message);
        };
        let source = inbox.source_subscription.as_ref().expect("subscription-id");
        assert_eq!(source.subscription_id.as_deref(), Some(id_draft.as_str()));
        assert_eq!(
            mark_of(&parsed.message, "dialect-"),
            format!("dialect-{}", n + 1)
        );
    }

    // Both were acknowledged: nothing is pushed again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver10.count(), 2);
    assert_eq!(receiver_draft.count(), 2);
    gateway.stop().await.unwrap();
}

// ---------------------------------------------------------------------------
// 3. A second taxiway as the subscriber.

#[tokio::test]
async fn a_second_taxiway_subscribes_by_push() {
    let source = start(&common::temp_dir("push-chain-source")).await;
    let subscriber = common::start_default("push-chain-subscriber").await;
    let inbox_url = format!("http://{}/inbox", subscriber.local_addr);
    let id = subscribe(
        source.local_addr,
        "/feeds/public",
        "Public",
        Dialect::V11,
        &inbox_url,
        None,
    )
    .await;
    assert!(!id.is_empty());

    let mark = format!("chained-{}", uuid::Uuid::new_v4().simple());
    let reply = taxii(
        source.local_addr,
        "/inbox",
        Dialect::V11,
        &inbox("Public", &mark),
        None,
    )
    .await;
    assert_eq!(status_of(&reply), StatusType::Success, "{reply:?}");

    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let poll = format!(
            "<taxii_11:Poll_Request xmlns:taxii_11=\"{NS11}\" message_id=\"{}\" \
             collection_name=\"Public\"><taxii_11:Poll_Parameters allow_asynch=\"false\">\
             <taxii_11:Response_Type>FULL</taxii_11:Response_Type></taxii_11:Poll_Parameters>\
             </taxii_11:Poll_Request>",
            uuid::Uuid::new_v4()
        );
        let (code, _, body) = common::http(
            subscriber.local_addr,
            "POST",
            "/feeds/public",
            &[
                ("Content-Type", "application/xml"),
                (
                    "X-TAXII-Content-Type",
                    "urn:taxii.mitre.org:message:xml:1.1",
                ),
                ("X-TAXII-Services", "urn:taxii.mitre.org:services:1.1"),
                ("X-TAXII-Protocol", "urn:taxii.mitre.org:protocol:http:1.0"),
            ],
            poll.as_bytes(),
        )
        .await;
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let polled = parse(&body).expect("a poll answer").message;
        let Body::PollResponse(response) = &polled.body else {
            panic!("expected a poll response, got {polled:?}");
        };
        if response
            .content_blocks
            .iter()
            .any(|b| b.content.as_str().contains(&mark))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pushed content never reached the second gateway: {response:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    source.stop().await.unwrap();
    subscriber.stop().await.unwrap();
}
