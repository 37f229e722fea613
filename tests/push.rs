//! Subscriptions and push delivery over real HTTP: the default scenario's
//! gateway pushes Gold's new content to a bare HTTP receiver written here.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use taxiway::bindings::taxii_xml::parse;
use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;
use taxiway::store::{NewBlock, OutboxDepth, Retry, SqliteStore, Store, Subscription};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const NS11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
/// Gold is for-pay: the demo account reads and subscribes.
const DEMO: &str = "Basic ZGVtbzp0YXhpd2F5LWRlbW8=";

/// The default scenario with a short backoff, so retries come quickly.
async fn start(data_dir: &Path) -> Gateway {
    let mut config = Config::default_scenario();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = data_dir.to_owned();
    config.delivery.initial_backoff_ms = 50;
    config.delivery.max_attempts = 1000;
    Gateway::start(config).await.expect("the gateway starts")
}

/// A subscriber's inbox: records each POST body, answers 1.1 SUCCESS.
struct Receiver {
    address: SocketAddr,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        Self::on("127.0.0.1:0".parse().unwrap(), Arc::default()).await
    }

    async fn on(address: SocketAddr, bodies: Arc<Mutex<Vec<Vec<u8>>>>) -> Receiver {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let recorded = bodies.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 8192];
                    let body = loop {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        raw.extend_from_slice(&buf[..n]);
                        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if raw.len() >= split + 4 + length {
                            break raw[split + 4..split + 4 + length].to_vec();
                        }
                    };
                    recorded.lock().unwrap().push(body);
                    let reply = format!(
                        "<taxii_11:Status_Message xmlns:taxii_11=\"{NS11}\" message_id=\"r{}\" \
                         in_response_to=\"x\" status_type=\"SUCCESS\"/>",
                        uuid::Uuid::new_v4()
                    );
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n\
                         X-TAXII-Content-Type: urn:taxii.mitre.org:message:xml:1.1\r\n\
                         X-TAXII-Services: urn:taxii.mitre.org:services:1.1\r\n\
                         X-TAXII-Protocol: urn:taxii.mitre.org:protocol:http:1.0\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n",
                        reply.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Receiver {
            address,
            bodies,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/inbox", self.address)
    }

    /// The inbox messages received so far, parsed.
    fn messages(&self) -> Vec<Message> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|body| {
                let parsed = parse(body).unwrap_or_else(|e| {
                    panic!("not TAXII ({e}): {}", String::from_utf8_lossy(body))
                });
                assert_eq!(parsed.dialect, Dialect::V11);
                parsed.message
            })
            .collect()
    }

    /// Waits (bounded) until `count` messages have arrived.
    async fn wait_for(&self, count: usize) -> Vec<Message> {
        for _ in 0..600 {
            if self.bodies.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let messages = self.messages();
        assert!(
            messages.len() >= count,
            "{} of {count} pushes arrived",
            messages.len()
        );
        messages
    }

    /// Closes the port; returns what it recorded, to reopen on the same port.
    fn stop(self) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
        self.task.abort();
        (self.address, self.bodies)
    }
}

async fn taxii11(gateway: SocketAddr, path: &str, body: &str) -> Message {
    let (code, _, reply) = common::http(
        gateway,
        "POST",
        path,
        &[
            ("Content-Type", "application/xml"),
            (
                "X-TAXII-Content-Type",
                "urn:taxii.mitre.org:message:xml:1.1",
            ),
            ("X-TAXII-Services", "urn:taxii.mitre.org:services:1.1"),
            ("X-TAXII-Protocol", "urn:taxii.mitre.org:protocol:http:1.0"),
            ("Authorization", DEMO),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&reply));
    parse(&reply).expect("a TAXII 1.1 answer").message
}

fn status_of(message: &Message) -> StatusType {
    match &message.body {
        Body::Status(status) => status.status_type.clone(),
        other => panic!("expected a status message, got {other:?}"),
    }
}

async fn subscription_request(
    gateway: SocketAddr,
    action: &str,
    id: Option<&str>,
    push_to: Option<&str>,
) -> Message {
    let id = id
        .map(|id| format!("<taxii_11:Subscription_ID>{id}</taxii_11:Subscription_ID>"))
        .unwrap_or_default();
    let push = push_to
        .map(|address| {
            format!(
                "<taxii_11:Push_Parameters>\
                 <taxii_11:Protocol_Binding>urn:taxii.mitre.org:protocol:http:1.0</taxii_11:Protocol_Binding>\
                 <taxii_11:Address>{address}</taxii_11:Address>\
                 <taxii_11:Message_Binding>urn:taxii.mitre.org:message:xml:1.1</taxii_11:Message_Binding>\
                 </taxii_11:Push_Parameters>"
            )
        })
        .unwrap_or_default();
    let parameters = if action == "SUBSCRIBE" {
        format!(
            "<taxii_11:Subscription_Parameters><taxii_11:Content_Binding binding_id=\"{STIX}\"/>\
             </taxii_11:Subscription_Parameters>"
        )
    } else {
        String::new()
    };
    let body = format!(
        "<taxii_11:Subscription_Management_Request xmlns:taxii_11=\"{NS11}\" message_id=\"{}\" \
         action=\"{action}\" collection_name=\"Gold\">{id}{parameters}{push}\
         </taxii_11:Subscription_Management_Request>",
        uuid::Uuid::new_v4()
    );
    taxii11(gateway, "/feeds/pay", &body).await
}

fn subscriptions(message: &Message) -> &[SubscriptionRecord] {
    match &message.body {
        Body::SubscriptionManagementResponse(response) => &response.subscriptions,
        other => panic!("expected a subscription management response, got {other:?}"),
    }
}

async fn subscribe(gateway: SocketAddr, push_to: &str) -> String {
    let reply = subscription_request(gateway, "SUBSCRIBE", None, Some(push_to)).await;
    let records = subscriptions(&reply);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, Some(SubscriptionStatus::Active));
    records[0].id.clone()
}

/// Pushes one block, marked `n`, into Gold through the inbox.
async fn push_block(gateway: SocketAddr, n: usize) {
    let body = format!(
        "<taxii_11:Inbox_Message xmlns:taxii_11=\"{NS11}\" message_id=\"{}\">\
         <taxii_11:Destination_Collection_Name>Gold</taxii_11:Destination_Collection_Name>\
         <taxii_11:Content_Block><taxii_11:Content_Binding binding_id=\"{STIX}\"/>\
         <taxii_11:Content><stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
         id=\"block-{n}\"/></taxii_11:Content></taxii_11:Content_Block></taxii_11:Inbox_Message>",
        uuid::Uuid::new_v4()
    );
    let reply = taxii11(gateway, "/inbox", &body).await;
    assert_eq!(status_of(&reply), StatusType::Success, "{reply:?}");
}

/// The block marks of pushed messages, checking each names `subscription`.
fn marks(messages: &[Message], subscription: &str) -> Vec<usize> {
    messages
        .iter()
        .map(|message| {
            let Body::Inbox(inbox) = &message.body else {
                panic!("expected an inbox message, got {message:?}");
            };
            let source = inbox
                .source_subscription
                .as_ref()
                .expect("Source_Subscription");
            assert_eq!(source.subscription_id.as_deref(), Some(subscription));
            assert_eq!(source.feed_name.as_deref(), Some("Gold"));
            assert!(source.inclusive_end.is_some());
            assert_eq!(inbox.content_blocks.len(), 1);
            let content = inbox.content_blocks[0].content.as_str();
            let at = content.find("block-").expect("a marked block") + "block-".len();
            let digits: String = content[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn push_pause_resume_unsubscribe_and_poll_by_subscription() {
    let dir = common::temp_dir("push-main");
    let gateway = start(&dir).await;
    let address = gateway.local_addr;
    let receiver = Receiver::start().await;
    let id = subscribe(address, &receiver.url()).await;
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);

    for n in 1..=5 {
        push_block(address, n).await;
    }
    let messages = receiver.wait_for(5).await;
    assert_eq!(marks(&messages, &id), vec![1, 2, 3, 4, 5]);
    let ids: std::collections::HashSet<_> = messages.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids.len(), 5, "each push has its own message id");

    // PAUSE: new content is kept, not delivered.
    let paused = subscription_request(address, "PAUSE", Some(&id), None).await;
    assert_eq!(
        subscriptions(&paused)[0].status,
        Some(SubscriptionStatus::Paused)
    );
    for n in 6..=7 {
        push_block(address, n).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.messages().len(),
        5,
        "nothing is pushed while paused"
    );

    // RESUME: what accumulated arrives, in order, no gap.
    let resumed = subscription_request(address, "RESUME", Some(&id), None).await;
    assert_eq!(
        subscriptions(&resumed)[0].status,
        Some(SubscriptionStatus::Active)
    );
    push_block(address, 8).await;
    let messages = receiver.wait_for(8).await;
    assert_eq!(marks(&messages, &id), (1..=8).collect::<Vec<_>>());

    // STATUS names the subscription with its parameters.
    let listed = subscription_request(address, "STATUS", Some(&id), None).await;
    let records = subscriptions(&listed);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, id);
    assert!(
        matches!(records[0].delivery, Some(Delivery::Push(ref p)) if p.address == receiver.url())
    );
    assert_eq!(
        records[0].parameters.as_ref().unwrap().content_bindings[0].id,
        STIX
    );

    // Poll by subscription id: its feed, its bindings.
    let poll = format!(
        "<taxii_11:Poll_Request xmlns:taxii_11=\"{NS11}\" message_id=\"{}\" collection_name=\"Gold\">\
         <taxii_11:Subscription_ID>{id}</taxii_11:Subscription_ID></taxii_11:Poll_Request>",
        uuid::Uuid::new_v4()
    );
    let polled = taxii11(address, "/feeds/pay", &poll).await;
    let Body::PollResponse(polled) = &polled.body else {
        panic!("expected a poll response, got {polled:?}");
    };
    assert_eq!(polled.content_blocks.len(), 8);
    assert_eq!(polled.subscription_id.as_deref(), Some(id.as_str()));

    // UNSUBSCRIBE stops delivery.
    let gone = subscription_request(address, "UNSUBSCRIBE", Some(&id), None).await;
    assert_eq!(
        subscriptions(&gone)[0].status,
        Some(SubscriptionStatus::Unsubscribed)
    );
    push_block(address, 9).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        receiver.messages().len(),
        8,
        "nothing is pushed after UNSUBSCRIBE"
    );
    let polled = taxii11(
        address,
        "/feeds/pay",
        &poll.replace("message_id=\"", "message_id=\"p"),
    )
    .await;
    assert_eq!(status_of(&polled), StatusType::NotFound);

    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_subscriptions_and_disallowed_destinations_are_refused() {
    let dir = common::temp_dir("push-refused");
    let gateway = start(&dir).await;
    let address = gateway.local_addr;
    let unknown = uuid::Uuid::new_v4().to_string();
    for action in ["STATUS", "PAUSE", "RESUME", "UNSUBSCRIBE"] {
        let reply = subscription_request(address, action, Some(&unknown), None).await;
        assert_eq!(status_of(&reply), StatusType::NotFound, "{action}");
    }
    let poll = format!(
        "<taxii_11:Poll_Request xmlns:taxii_11=\"{NS11}\" message_id=\"1\" collection_name=\"Gold\">\
         <taxii_11:Subscription_ID>{unknown}</taxii_11:Subscription_ID></taxii_11:Poll_Request>"
    );
    assert_eq!(
        status_of(&taxii11(address, "/feeds/pay", &poll).await),
        StatusType::NotFound
    );

    for outside in [
        "http://10.0.0.1/inbox",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost.example.net/inbox",
        "http://127.0.0.1@example.net/inbox",
        "file:///etc/passwd",
    ] {
        let reply = subscription_request(address, "SUBSCRIBE", None, Some(outside)).await;
        assert_eq!(status_of(&reply), StatusType::Denied, "{outside}");
    }
    gateway.stop().await.unwrap();
    // Nothing was stored by the refused subscriptions.
    let store = SqliteStore::open(&dir).await.unwrap();
    assert!(store.subscriptions_of("Gold").await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_subscriber_that_is_down_gets_everything_when_it_comes_back() {
    let dir = common::temp_dir("push-down");
    let gateway = start(&dir).await;
    let address = gateway.local_addr;
    let receiver = Receiver::start().await;
    let id = subscribe(address, &receiver.url()).await;
    let (port, bodies) = receiver.stop();
    for n in 1..=3 {
        push_block(address, n).await;
    }
    // A few attempts fail against the closed port.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(bodies.lock().unwrap().is_empty());
    let receiver = Receiver::on(port, bodies).await;
    let messages = receiver.wait_for(3).await;
    assert_eq!(marks(&messages, &id), vec![1, 2, 3]);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_restarted_gateway_resumes_pending_pushes() {
    let dir = common::temp_dir("push-restart");
    let gateway = start(&dir).await;
    let address = gateway.local_addr;
    let receiver = Receiver::start().await;
    let id = subscribe(address, &receiver.url()).await;
    let (port, bodies) = receiver.stop();
    for n in 1..=4 {
        push_block(address, n).await;
    }
    gateway.stop().await.unwrap();

    let receiver = Receiver::on(port, bodies).await;
    let gateway = start(&dir).await;
    let messages = receiver.wait_for(4).await;
    assert_eq!(marks(&messages, &id), vec![1, 2, 3, 4]);
    push_block(gateway.local_addr, 5).await;
    let messages = receiver.wait_for(5).await;
    assert_eq!(marks(&messages, &id), vec![1, 2, 3, 4, 5]);
    gateway.stop().await.unwrap();
}

fn block(feed: &str, binding: &str, n: usize) -> NewBlock {
    NewBlock {
        feed: feed.to_owned(),
        binding: ContentBinding::new(binding),
        content: XmlContent::Xml(format!("<x n=\"{n}\"/>")),
        source_message_id: n.to_string(),
    }
}

fn subscription(feed: &str, bindings: &[&str], push: bool) -> Subscription {
    Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        feed: feed.to_owned(),
        status: SubscriptionStatus::Active,
        delivery: if push {
            Delivery::Push(PushParameters {
                protocol: ProtocolBinding::Http,
                address: "http://127.0.0.1:1/inbox".to_owned(),
                message_binding: MessageBinding::Xml(Dialect::V11),
            })
        } else {
            Delivery::Poll {
                message_binding: None,
            }
        },
        content_bindings: bindings.iter().map(|b| (*b).to_owned()).collect(),
        created: Timestamp::from_unix(1_700_000_000, 0),
        created_by: Some("demo".to_owned()),
    }
}

#[tokio::test]
async fn the_outbox_fills_with_content_and_dead_rows_replay() {
    let dir = common::temp_dir("push-store");
    let store = SqliteStore::open(&dir).await.unwrap();
    let push = subscription("Gold", &[STIX], true);
    let any = subscription("Gold", &[], true);
    let poll = subscription("Gold", &[], false);
    for s in [&push, &any, &poll] {
        store.create_subscription(s.clone()).await.unwrap();
    }
    assert_eq!(
        store.subscription(&push.id).await.unwrap().as_ref(),
        Some(&push)
    );
    assert_eq!(store.subscriptions_of("Gold").await.unwrap().len(), 3);

    // One row per matching push subscription, in the append's transaction.
    store
        .append(vec![
            block("Gold", STIX, 1),
            block("Gold", "urn:other", 2),
            block("Silver", STIX, 3),
        ])
        .await
        .unwrap();
    let far = Timestamp::from_unix(4_000_000_000, 0);
    let due = store.claim_due(far, 100).await.unwrap();
    let pairs: Vec<(String, usize)> = due
        .iter()
        .map(|d| {
            (
                d.subscription.id.clone(),
                d.block.block.content.as_str().len(),
            )
        })
        .collect();
    assert_eq!(pairs.len(), 3, "{pairs:?}");
    let depth = |pending, dead| OutboxDepth { pending, dead };
    assert_eq!(store.outbox_depth().await.unwrap(), depth(3, 0));
    assert_eq!(
        due.iter().filter(|d| d.subscription.id == push.id).count(),
        1
    );

    // Paused subscriptions keep their rows but are not claimed.
    store
        .set_subscription_status(&any.id, SubscriptionStatus::Paused)
        .await
        .unwrap();
    assert_eq!(store.claim_due(far, 100).await.unwrap().len(), 1);

    let row = due
        .iter()
        .find(|d| d.subscription.id == push.id)
        .unwrap()
        .row
        .id;
    store
        .record_failure(row, "refused", Retry::Dead)
        .await
        .unwrap();
    assert!(store.claim_due(far, 100).await.unwrap().is_empty());
    let dead = store.outbox(true, 100).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("refused"));
    assert_eq!(store.outbox(false, 100).await.unwrap().len(), 3);
    assert_eq!(store.outbox_depth().await.unwrap(), depth(2, 1));

    assert_eq!(store.replay(&[]).await.unwrap(), 1);
    let again = store.claim_due(far, 100).await.unwrap();
    assert_eq!(again.len(), 1);
    store.mark_delivered(again[0].row.id).await.unwrap();
    assert!(store.outbox(true, 100).await.unwrap().is_empty());
    assert_eq!(store.outbox(false, 100).await.unwrap().len(), 2);
    assert_eq!(store.outbox_depth().await.unwrap(), depth(2, 0));
    store.close().await;
}

/// The value of one sample of a Prometheus text exposition.
fn sample(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with(name) && line.contains(label))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} {label} in:\n{metrics}"))
}

/// Only this test of its binary reads /metrics: the gauge is process-wide.
#[tokio::test]
async fn metrics_export_the_outbox_depth() {
    let dir = common::temp_dir("push-depth");
    let store = SqliteStore::open(&dir).await.unwrap();
    // Pushes to a closed port: they stay pending, retried with backoff.
    let push = subscription("Gold", &[], true);
    store.create_subscription(push.clone()).await.unwrap();
    store
        .append((1..=3).map(|n| block("Gold", STIX, n)).collect())
        .await
        .unwrap();
    let far = Timestamp::from_unix(4_000_000_000, 0);
    let first = store.claim_due(far, 1).await.unwrap()[0].row.id;
    store
        .record_failure(first, "refused", Retry::Dead)
        .await
        .unwrap();
    store.close().await;

    let gateway = start(&dir).await;
    let (status, _, body) = common::http(gateway.local_addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(body).unwrap();
    let pending = sample(&metrics, "taxiway_outbox_depth", r#"state="pending""#);
    let dead = sample(&metrics, "taxiway_outbox_depth", r#"state="dead""#);
    assert_eq!((pending, dead), (2.0, 1.0), "{metrics}");
    gateway.stop().await.unwrap();
}
