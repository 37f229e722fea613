//! The AMQP bridge against a real RabbitMQ (127.0.0.1:5672, guest/guest)
//! and a third-party peer written with pika (tests/peers/amqp/peer.py):
//! TAXII inbox content (from cabby too) published to an exchange, content
//! published to a queue taken into a TAXII feed (polled by cabby, pushed to
//! a subscriber), bad deliveries dead-lettered with their reason, and
//! nothing lost while a (private) broker is down.
//!
//! Every test names its exchanges and queues after the process id and
//! itself, so that runs and tests do not collide, and deletes them.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::pika::{bind, body_of, delete, get, publish, strings};
use common::rabbit::PrivateBroker;
use serde_json::Value;
use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
const GATEWAY_ID: &str = "gw-amqp-test";

fn package(marker: &str) -> String {
    format!(
        "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" id=\"example:p-{marker}\" \
         version=\"1.1.1\"><stix:STIX_Header><stix:Title>{marker} &amp; more</stix:Title>\
         </stix:STIX_Header></stix:STIX_Package>"
    )
}

fn inbox(id: &str, marker: &str) -> String {
    format!(
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"{id}\">\
         <t:Destination_Collection_Name>Gold</t:Destination_Collection_Name>\
         <t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>{}</t:Content>\
         </t:Content_Block></t:Inbox_Message>",
        package(marker)
    )
}

/// A name unique to this run and test.
fn unique(what: &str) -> String {
    format!("taxiway-test-{what}-{}", std::process::id())
}

async fn gateway(name: &str, extra: &str) -> Gateway {
    let text = format!(
        "{}\n[gateway]\nid = \"{GATEWAY_ID}\"\n{extra}",
        taxiway::config::DEFAULT_CONFIG
    );
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir(name);
    Gateway::start(config).await.expect("the gateway starts")
}

fn egress_config(uri: &str, exchange: &str) -> String {
    format!(
        r#"
[[egress]]
name = "queue-out"
initial_backoff_ms = 200
[egress.amqp]
uri = "{uri}"
exchange = "{exchange}"
declare = "topic"
routing_key = "taxii.{{feed}}.{{message_type}}"

[[routes]]
name = "gold-out"
actions = ["store", {{ forward = "queue-out" }}]
[routes.match]
feed = ["Gold"]
"#
    )
}

async fn push(address: SocketAddr, id: &str, marker: &str) {
    let (_, reply) =
        common::post_taxii(address, "/inbox", Dialect::V11, &inbox(id, marker), None).await;
    match reply.body {
        Body::Status(status) => assert_eq!(status.status_type, StatusType::Success, "{status:?}"),
        other => panic!("a status message, not {other:?}"),
    }
}

/// Everything in Gold, as a TAXII 1.1 poll with the demo account reads it.
async fn gold(address: SocketAddr) -> Vec<ContentBlock> {
    common::poll_blocks(address, "/feeds/pay", "Gold").await
}

async fn eventually<F, Fut>(what: &str, seconds: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taxii_inbox_message_is_published_with_its_properties_and_headers() {
    let (exchange, queue) = (unique("out"), unique("out-reader"));
    bind(BROKER, &exchange, "topic", &queue, "taxii.Gold.#").await;
    let gateway = gateway("amqp-out", &egress_config(BROKER, &exchange)).await;
    let id = format!("amqp-out-{}", std::process::id());
    push(gateway.local_addr, &id, "out-1").await;

    let messages = get(BROKER, &queue, 1, 30).await;
    gateway.stop().await.unwrap();
    delete(BROKER, &[&queue], &[&exchange]).await;

    let [message] = messages.as_slice() else {
        panic!("one message, not {messages:?}");
    };
    assert_eq!(message["routing_key"], "taxii.Gold.Inbox_Message");
    let properties = &message["properties"];
    assert_eq!(properties["message_id"], id.as_str());
    assert_eq!(properties["type"], "Inbox_Message");
    assert_eq!(properties["delivery_mode"], 2);
    assert_eq!(properties["content_type"], "application/xml");
    assert_eq!(properties["app_id"], GATEWAY_ID);
    let headers = &message["headers"];
    assert_eq!(headers["x-taxii-message-id"], id.as_str());
    assert_eq!(headers["x-taxii-collection"], "Gold");
    assert_eq!(headers["x-taxii-content-binding"], STIX);
    assert_eq!(
        headers["x-taxii-content-type"],
        "urn:taxii.mitre.org:message:xml:1.1"
    );
    assert_eq!(headers["x-taxii-source-dialect"], "1.1");
    assert_eq!(headers["x-taxii-hops"], serde_json::json!([GATEWAY_ID]));
    let body = String::from_utf8(body_of(message)).expect("a UTF-8 body");
    assert!(
        body.contains(&package("out-1")),
        "the STIX package is not byte-identical in the body:\n{body}"
    );
    // The body is the TAXII message itself, readable as such.
    let parsed = taxiway::bindings::taxii_xml::parse(body.as_bytes()).expect("TAXII 1.1");
    assert_eq!(parsed.message.id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_published_to_the_queue_is_polled_from_the_feed_once() {
    let (queue, dlx, dead) = (unique("in"), unique("in-dlx"), unique("in-dead"));
    let gateway = gateway(
        "amqp-in",
        &format!(
            r#"
[[amqp_ingress]]
name = "amqp-in"
uri = "{BROKER}"
queue = "{queue}"
declare = true
dead_letter_exchange = "{dlx}"
identity = "demo"
# One at a time: a later message shows that an earlier one was handled.
prefetch = 1
"#
        ),
    )
    .await;
    let dir = common::temp_dir("amqp-in-bodies");
    let headers = [
        "x-taxii-collection=Gold",
        &format!("x-taxii-content-binding={STIX}"),
    ];
    let first = format!("amqp-in-1-{}", std::process::id());
    publish(
        BROKER,
        &queue,
        &dir,
        &first,
        package("in-1").as_bytes(),
        &headers,
    )
    .await;
    let address = gateway.local_addr;
    eventually("the package in Gold", 30, || async {
        !gold(address).await.is_empty()
    })
    .await;
    let blocks = gold(address).await;
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0].binding.id, STIX);
    assert_eq!(
        blocks[0].content.as_str(),
        package("in-1"),
        "not byte-identical"
    );

    // The same message again (a redelivery, a producer's retry), then
    // another: once the other is in, the repeat was handled before it.
    publish(
        BROKER,
        &queue,
        &dir,
        &first,
        package("in-1").as_bytes(),
        &headers,
    )
    .await;
    let second = format!("amqp-in-2-{}", std::process::id());
    publish(
        BROKER,
        &queue,
        &dir,
        &second,
        package("in-2").as_bytes(),
        &headers,
    )
    .await;
    eventually("the second package in Gold", 30, || async {
        gold(address).await.len() >= 2
    })
    .await;
    let contents: Vec<String> = gold(address)
        .await
        .iter()
        .map(|block| block.content.as_str().to_owned())
        .collect();
    assert_eq!(contents, [package("in-1"), package("in-2")]);

    gateway.stop().await.unwrap();
    delete(BROKER, &[&queue, &dead], &[&dlx]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_are_dead_lettered_with_a_reason_and_nothing_is_stored() {
    let (queue, dlx, dead) = (unique("bad"), unique("bad-dlx"), unique("bad-dead"));
    // Read dead letters from the start; the gateway declares the same exchange.
    bind(BROKER, &dlx, "fanout", &dead, "").await;
    let gateway = gateway(
        "amqp-bad",
        &format!(
            r#"
[[amqp_ingress]]
name = "amqp-bad"
uri = "{BROKER}"
queue = "{queue}"
declare = true
dead_letter_exchange = "{dlx}"
identity = "demo"
"#
        ),
    )
    .await;
    let dir = common::temp_dir("amqp-bad-bodies");
    let binding = format!("x-taxii-content-binding={STIX}");
    let garbage: &[u8] = b"\xff\xfe\x00<not xml";
    let unknown_feed = package("bad-2");
    let cases: [(&str, &[u8], Vec<&str>, &str); 3] = [
        (
            "garbage",
            garbage,
            vec!["x-taxii-collection=Gold", &binding],
            "not UTF-8",
        ),
        (
            "unknown-feed",
            unknown_feed.as_bytes(),
            vec!["x-taxii-collection=Nowhere", &binding],
            "Nowhere is not a feed hosted here",
        ),
        (
            "broken-taxii",
            b"<t:Inbox_Message xmlns:t=\"http://taxii.mitre.org/messages/taxii_xml_binding-1.1\" message_id=\"1\"><t:Content_Block>",
            vec![],
            "malformed TAXII message",
        ),
    ];
    let mut sent = Vec::new();
    for (name, body, headers, _) in &cases {
        let id = format!("amqp-{name}-{}", std::process::id());
        publish(BROKER, &queue, &dir, &id, body, headers).await;
        sent.push(id);
    }

    let letters = get(BROKER, &dead, cases.len(), 30).await;
    let stored = gold(gateway.local_addr).await;
    gateway.stop().await.unwrap();
    delete(BROKER, &[&queue, &dead], &[&dlx]).await;

    assert_eq!(letters.len(), cases.len(), "{letters:#?}");
    for ((_, body, _, reason), id) in cases.iter().zip(&sent) {
        let letter = letters
            .iter()
            .find(|letter| letter["properties"]["message_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no dead letter for {id}: {letters:#?}"));
        let given = letter["headers"]["x-taxiway-reason"]
            .as_str()
            .expect("an x-taxiway-reason header");
        assert!(given.contains(reason), "{id}: reason {given:?}");
        assert_eq!(letter["headers"]["x-taxiway-queue"], queue.as_str());
        assert_eq!(body_of(letter), *body, "{id}: the body changed");
    }
    assert!(stored.is_empty(), "stored: {stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_sent_while_the_broker_is_down_is_lost() {
    let mut broker = PrivateBroker::start("amqp-egress-outage").await;
    let uri = broker.amqp_uri();
    let (exchange, queue) = (unique("outage"), unique("outage-reader"));
    bind(&uri, &exchange, "topic", &queue, "#").await;
    let gateway = gateway("amqp-outage", &egress_config(&uri, &exchange)).await;
    let address = gateway.local_addr;
    let id = |n: usize| format!("outage-{n}");

    let started = Instant::now();
    for n in 0..20 {
        push(address, &id(n), &format!("o-{n}")).await;
    }
    let before = get(&uri, &queue, 20, 60).await;
    assert_eq!(
        distinct(&before).len(),
        20,
        "before the outage: {before:#?}"
    );
    let before_took = started.elapsed();

    tokio::task::block_in_place(|| broker.stop());
    // Taken in and kept while the broker is away.
    for n in 20..40 {
        push(address, &id(n), &format!("o-{n}")).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.restart().await;
    let after = get(&uri, &queue, 20, 90).await;
    gateway.stop().await.unwrap();

    let mut all = distinct(&before);
    all.extend(distinct(&after));
    let expected: std::collections::BTreeSet<String> = (0..40).map(id).collect();
    assert_eq!(all, expected, "after the outage: {after:#?}");
    eprintln!("20 messages from inbox to queue in {before_took:?}");
}

fn distinct(messages: &[Value]) -> std::collections::BTreeSet<String> {
    messages
        .iter()
        .filter_map(|message| message["headers"]["x-taxii-message-id"].as_str())
        .map(str::to_owned)
        .collect()
}

/// cabby pushes into taxiway and pika reads it from the exchange; pika
/// publishes to taxiway's queue and cabby polls it from the feed, while a
/// subscriber gets it pushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cabby_and_pika_meet_through_taxiway() {
    let (exchange, reader) = (unique("cabby-out"), unique("cabby-out-reader"));
    let (queue, dlx, dead) = (
        unique("pika-in"),
        unique("pika-in-dlx"),
        unique("pika-in-dead"),
    );
    bind(BROKER, &exchange, "topic", &reader, "taxii.Gold.#").await;
    let gateway = gateway(
        "amqp-cabby",
        &format!(
            r#"{}
[[amqp_ingress]]
name = "pika-in"
uri = "{BROKER}"
queue = "{queue}"
declare = true
dead_letter_exchange = "{dlx}"
identity = "demo"
"#,
            egress_config(BROKER, &exchange)
        ),
    )
    .await;
    let address = gateway.local_addr;
    let subscriber = common::receiver::Receiver::start(Duration::ZERO).await;
    common::subscribe_push(address, "Gold", &subscriber.url()).await;

    // cabby → taxiway → exchange → pika.
    let dir = common::temp_dir("amqp-cabby-files");
    let file = dir.join("from-cabby.xml");
    std::fs::write(&file, package("from-cabby")).unwrap();
    let pushed = common::cabby(
        address,
        "taxii-push",
        strings(&[
            "--path",
            "/inbox",
            "--taxii-version",
            "1.1",
            "--content-file",
            file.to_str().unwrap(),
            "--binding",
            STIX,
            "--dest",
            "Gold",
        ]),
    )
    .await;
    assert!(
        pushed.contains("Content block successfully pushed"),
        "{pushed}"
    );
    let messages = get(BROKER, &reader, 1, 30).await;
    let [message] = messages.as_slice() else {
        panic!("one message, not {messages:?}");
    };
    // cabby (lxml) re-indents what it sends: the payload published is
    // byte for byte the one taxiway received and stored.
    let published = taxiway::bindings::taxii_xml::parse(&body_of(message))
        .expect("a TAXII body")
        .message;
    let Body::Inbox(published) = published.body else {
        panic!("an inbox message, not {published:?}");
    };
    let stored = gold(address).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        published.content_blocks[0].content.as_str(),
        stored[0].content.as_str()
    );
    let squeezed = |xml: &str| xml.split_whitespace().collect::<String>();
    assert_eq!(
        squeezed(stored[0].content.as_str()),
        squeezed(&package("from-cabby"))
    );
    assert_eq!(message["headers"]["x-taxii-collection"], "Gold");

    // pika → queue → taxiway → cabby's poll and the subscriber's inbox.
    let id = format!("from-pika-{}", std::process::id());
    publish(
        BROKER,
        &queue,
        &dir,
        &id,
        package("from-pika").as_bytes(),
        &[
            "x-taxii-collection=Gold",
            &format!("x-taxii-content-binding={STIX}"),
        ],
    )
    .await;
    eventually("the package from pika in Gold", 30, || async {
        gold(address).await.len() >= 2
    })
    .await;
    let polled = common::cabby(
        address,
        "taxii-poll",
        strings(&[
            "--path",
            "/feeds/pay",
            "--taxii-version",
            "1.1",
            "--collection",
            "Gold",
        ]),
    )
    .await;
    assert!(polled.contains("from-pika &amp; more"), "{polled}");
    assert!(polled.contains("2 blocks polled"), "{polled}");
    let pushed_to_subscriber = subscriber.wait_for(2).await;
    let contents: Vec<String> = pushed_to_subscriber
        .iter()
        .map(|post| String::from_utf8_lossy(&post.body).into_owned())
        .collect();
    assert!(
        contents.iter().any(|c| c.contains("example:p-from-cabby")),
        "{contents:?}"
    );
    assert!(
        contents.iter().any(|c| c.contains(&package("from-pika"))),
        "{contents:?}"
    );

    gateway.stop().await.unwrap();
    delete(BROKER, &[&reader, &queue, &dead], &[&exchange, &dlx]).await;
}

/// An operator's mappings file replaces the shipped table without a
/// rebuild: here the feed travels in a header of its own name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_mappings_file_renames_the_headers() {
    let (exchange, reader) = (unique("mapped-out"), unique("mapped-out-reader"));
    bind(BROKER, &exchange, "topic", &reader, "taxii.Gold.#").await;
    let dir = common::temp_dir("amqp-mappings");
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/amqp.toml"))
            .unwrap();
    let ours = shipped.replace(
        "collection = \"x-taxii-collection\"",
        "collection = \"x-soc-feed\"",
    );
    assert_ne!(
        ours, shipped,
        "the shipped table names the collection header"
    );
    let file = dir.join("amqp.toml");
    std::fs::write(&file, ours).unwrap();
    let gateway = gateway(
        "amqp-mapped",
        &format!(
            "{}\n[mappings]\namqp = \"{}\"\n",
            egress_config(BROKER, &exchange),
            file.display()
        ),
    )
    .await;
    push(gateway.local_addr, "urn:uuid:mapped-1", "mapped").await;
    let messages = get(BROKER, &reader, 1, 30).await;
    gateway.stop().await.unwrap();
    delete(BROKER, &[&reader], &[&exchange]).await;
    let [message] = messages.as_slice() else {
        panic!("one message, not {messages:?}");
    };
    assert_eq!(message["headers"]["x-soc-feed"], "Gold");
    assert!(
        message["headers"].get("x-taxii-collection").is_none(),
        "{message}"
    );

    // A broken table stops the gateway at start, saying why.
    std::fs::write(&file, "[headers]\ncollection = 7\n").unwrap();
    let text = format!(
        "{}\n[mappings]\namqp = \"{}\"\n",
        taxiway::config::DEFAULT_CONFIG,
        file.display()
    );
    let mut config = Config::from_toml(&text).unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir("amqp-mappings-broken");
    let Err(error) = Gateway::start(config).await else {
        panic!("a broken mappings file is refused");
    };
    assert!(error.to_string().contains("amqp.toml"), "{error}");
}
