//! The AMQP bridge through faults, with 10,000 messages flowing queue →
//! taxiway (stored in Gold and forwarded) → exchange: a private broker
//! stopped and restarted mid-stream, and the gateway killed with SIGKILL and
//! restarted mid-stream. Counted at the destination: every message the
//! producer got confirmed arrives, a repeat carries the id of the message it
//! repeats, nothing unknown arrives, and the feed holds each message once.
//!
//! The producer and the consumer are bare lapin, reconnecting on their own:
//! the pika peer is too slow for 10,000 messages within the time allowed.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::rabbit::PrivateBroker;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use taxiway::config::Config;
use taxiway::gateway::Gateway;
use taxiway::store::{PollQuery, SqliteStore, Store};

const MESSAGES: usize = 10_000;
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
const INGRESS: &str = "faults-in";
const QUEUE_IN: &str = "faults.in";
const DEAD_LETTERS: &str = "faults.dead";
const EXCHANGE_OUT: &str = "faults.out";
const QUEUE_OUT: &str = "faults.out.reader";
/// Unconfirmed publishes the producer allows at once.
const WINDOW: usize = 500;
/// Every broker operation of the producer and the consumer is bounded: a
/// publish to a broker that went away can otherwise hang (shared/CRATES.md).
const OPERATION: Duration = Duration::from_secs(5);
/// The producer's pace, near what a debug build of the gateway takes in, so
/// that a fault lands while both the ingress queue and the exchange's queue
/// are busy, and republishing what was unconfirmed is exercised.
const PACE_PER_SECOND: u32 = 1_000;
/// How long everything confirmed may take to reach the destination once the
/// producer is done.
const ARRIVAL_DEADLINE: Duration = Duration::from_secs(90);

fn message_id(n: usize) -> String {
    format!("fault-{n}")
}

fn package(n: usize) -> String {
    format!(
        "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-{n}\" \
         version=\"1.1.1\"><stix:STIX_Header><stix:Title>fault {n}</stix:Title>\
         </stix:STIX_Header></stix:STIX_Package>"
    )
}

/// Content from the ingress queue is stored in Gold and forwarded to the
/// exchange; the egress never gives a row up during the outage.
fn bridge_config(uri: &str) -> String {
    format!(
        r#"{}
[[amqp_ingress]]
name = "{INGRESS}"
uri = "{uri}"
queue = "{QUEUE_IN}"
declare = true
dead_letter_exchange = "{DEAD_LETTERS}"
identity = "demo"

[[egress]]
name = "out"
initial_backoff_ms = 100
max_attempts = 10000
[egress.amqp]
uri = "{uri}"
exchange = "{EXCHANGE_OUT}"
declare = "fanout"

[[routes]]
name = "queue-to-exchange"
actions = ["store", {{ forward = "out" }}]
[routes.match]
adapter = ["{INGRESS}"]
"#,
        taxiway::config::DEFAULT_CONFIG
    )
}

async fn connect(uri: &str) -> Option<(Connection, Channel)> {
    let connecting = async {
        let connection = Connection::connect(uri, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        lapin::Result::Ok((connection, channel))
    };
    tokio::time::timeout(OPERATION, connecting).await.ok()?.ok()
}

/// The topology both ends need before the first message: the ingress queue
/// declared exactly as the gateway declares it (the producer may be first),
/// and a durable queue reading the exchange.
async fn declare_topology(uri: &str) {
    let (connection, channel) = connect(uri).await.expect("the broker answers");
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for (exchange, kind) in [
        (DEAD_LETTERS, ExchangeKind::Fanout),
        (EXCHANGE_OUT, ExchangeKind::Fanout),
    ] {
        channel
            .exchange_declare(
                exchange.into(),
                kind,
                durable_exchange,
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(DEAD_LETTERS)),
    );
    channel
        .queue_declare(QUEUE_IN.into(), durable_queue, arguments)
        .await
        .unwrap();
    channel
        .queue_declare(QUEUE_OUT.into(), durable_queue, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(
            QUEUE_OUT.into(),
            EXCHANGE_OUT.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "declared".into()).await;
}

/// Publishes messages 0..MESSAGES to the ingress queue, persistent, with
/// pipelined confirms, into `confirmed`; whatever was not confirmed when the
/// link broke is published again (with its id) on a new connection, until
/// all are confirmed. Returns how many publishes it took.
async fn produce(uri: String, confirmed: Arc<Mutex<BTreeSet<usize>>>) -> u32 {
    let mut todo: VecDeque<usize> = (0..MESSAGES).collect();
    let mut pace = Pace {
        started: tokio::time::Instant::now(),
        sent: 0,
    };
    while !todo.is_empty() {
        let Some((connection, channel)) = connect(&uri).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let ready = tokio::time::timeout(
            OPERATION,
            channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await;
        if matches!(ready, Ok(Ok(()))) {
            let unconfirmed =
                publish_until_broken(&channel, &mut todo, &confirmed, &mut pace).await;
            // Sent but not confirmed: perhaps queued, perhaps not. Again,
            // in their order, ahead of the rest.
            for n in unconfirmed.into_iter().rev() {
                todo.push_front(n);
            }
        }
        let _ = tokio::time::timeout(OPERATION, connection.close(200, "done".into())).await;
    }
    pace.sent
}

/// Publishes from `todo` until it is empty and all is confirmed (returns
/// nothing) or the link breaks (returns what is left unconfirmed).
async fn publish_until_broken(
    channel: &Channel,
    todo: &mut VecDeque<usize>,
    confirmed: &Mutex<BTreeSet<usize>>,
    pace: &mut Pace,
) -> Vec<usize> {
    let mut window: VecDeque<(usize, lapin::PublisherConfirm)> = VecDeque::with_capacity(WINDOW);
    loop {
        let full = window.len() == WINDOW;
        if full || (todo.is_empty() && !window.is_empty()) {
            let (n, confirm) = window.pop_front().unwrap();
            match tokio::time::timeout(OPERATION, confirm).await {
                Ok(Ok(confirmation)) if confirmation.is_ack() => {
                    confirmed.lock().unwrap().insert(n);
                    continue;
                }
                _ => {
                    let mut left = vec![n];
                    left.extend(window.into_iter().map(|(n, _)| n));
                    return left;
                }
            }
        }
        let Some(n) = todo.pop_front() else {
            return Vec::new();
        };
        pace.next().await;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(message_id(n).into())
            .with_headers(ingress_headers());
        let body = package(n);
        let publishing = channel.basic_publish(
            "".into(),
            QUEUE_IN.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        );
        match tokio::time::timeout(OPERATION, publishing).await {
            Ok(Ok(confirm)) => window.push_back((n, confirm)),
            _ => {
                let mut left: Vec<usize> = window.into_iter().map(|(n, _)| n).collect();
                left.push(n);
                return left;
            }
        }
    }
}

/// Publishes spread evenly over time, counted across connections.
struct Pace {
    started: tokio::time::Instant,
    sent: u32,
}

impl Pace {
    async fn next(&mut self) {
        self.sent += 1;
        // Every 50 only: a sleep per message would cost more than it paces.
        if self.sent.is_multiple_of(50) {
            let due = self.started + Duration::from_secs(1) * self.sent / PACE_PER_SECOND;
            tokio::time::sleep_until(due).await;
        }
    }
}

fn ingress_headers() -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-taxii-collection".into(),
        AMQPValue::LongString("Gold".into()),
    );
    headers.insert(
        "x-taxii-content-binding".into(),
        AMQPValue::LongString(STIX.into()),
    );
    headers
}

/// One message read from the exchange: its id, and the package number in
/// its body.
#[derive(Debug)]
struct Arrival {
    id: String,
    package: Option<usize>,
}

/// Reads the exchange's queue into `arrived`, acking each message once
/// recorded, reconnecting whenever the link breaks; runs until aborted.
async fn consume(uri: String, arrived: Arc<Mutex<Vec<Arrival>>>) {
    loop {
        if let Some((connection, channel)) = connect(&uri).await {
            let started = async {
                channel.basic_qos(1000, BasicQosOptions::default()).await?;
                channel
                    .basic_consume(
                        QUEUE_OUT.into(),
                        "faults-reader".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
            };
            if let Ok(Ok(mut deliveries)) = tokio::time::timeout(OPERATION, started).await {
                while let Some(Ok(delivery)) = deliveries.next().await {
                    let id = delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map_or_else(String::new, |id| id.as_str().to_owned());
                    let body = String::from_utf8_lossy(&delivery.data);
                    arrived.lock().unwrap().push(Arrival {
                        id,
                        package: package_in(&body),
                    });
                    // Unacked, it comes again: a repeat the checks allow.
                    let _ =
                        tokio::time::timeout(OPERATION, delivery.ack(BasicAckOptions::default()))
                            .await;
                }
            }
            let _ = tokio::time::timeout(OPERATION, connection.close(200, "done".into())).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The N of the `example:p-N` package a body (a TAXII message) carries.
fn package_in(body: &str) -> Option<usize> {
    let at = body.find("example:p-")? + "example:p-".len();
    let digits: String = body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The producer and the consumer, running.
struct Stream {
    confirmed: Arc<Mutex<BTreeSet<usize>>>,
    arrived: Arc<Mutex<Vec<Arrival>>>,
    producer: tokio::task::JoinHandle<u32>,
    consumer: tokio::task::JoinHandle<()>,
    started: Instant,
}

impl Stream {
    fn start(uri: &str) -> Stream {
        let confirmed: Arc<Mutex<BTreeSet<usize>>> = Arc::default();
        let arrived: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        Stream {
            producer: tokio::spawn(produce(uri.to_owned(), confirmed.clone())),
            consumer: tokio::spawn(consume(uri.to_owned(), arrived.clone())),
            confirmed,
            arrived,
            started: Instant::now(),
        }
    }

    fn arrived(&self) -> usize {
        self.arrived.lock().unwrap().len()
    }

    /// Waits until a third of the messages is confirmed and a twentieth
    /// arrived: a fault then finds messages on their way in both queues and
    /// in the gateway.
    async fn mid_stream(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.confirmed.lock().unwrap().len() < MESSAGES / 3 || self.arrived() < MESSAGES / 20
        {
            assert!(Instant::now() < deadline, "the stream never got going");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Where the stream is when a fault is made, for whoever reads the log.
    fn report(&self, fault: &str) {
        eprintln!(
            "{fault} after {:?}: {} confirmed, {} arrived",
            self.started.elapsed(),
            self.confirmed.lock().unwrap().len(),
            self.arrived()
        );
    }

    /// Once the producer is done and everything it got confirmed arrived (or
    /// the deadline passed): the confirmed messages and the arrivals.
    async fn finish(self) -> (BTreeSet<usize>, Vec<Arrival>) {
        let publishes = tokio::time::timeout(ARRIVAL_DEADLINE, self.producer)
            .await
            .expect("the producer gets everything confirmed")
            .unwrap();
        let confirmed = self.confirmed.lock().unwrap().clone();
        let deadline = Instant::now() + ARRIVAL_DEADLINE;
        while Instant::now() < deadline {
            let ids: BTreeSet<String> = self
                .arrived
                .lock()
                .unwrap()
                .iter()
                .map(|arrival| arrival.id.clone())
                .collect();
            if confirmed.iter().all(|n| ids.contains(&message_id(*n))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Repeats still on their way would show up here: a moment for them.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.consumer.abort();
        let arrived = std::mem::take(&mut *self.arrived.lock().unwrap());
        eprintln!(
            "{} confirmed after {publishes} publishes, {} arrivals in {:?}",
            confirmed.len(),
            arrived.len(),
            self.started.elapsed()
        );
        (confirmed, arrived)
    }
}

/// Nothing confirmed is lost, every arrival is a message that was sent with
/// its own id, and the feed holds each message exactly once.
async fn check(confirmed: &BTreeSet<usize>, arrived: &[Arrival], data_dir: &Path) {
    assert_eq!(confirmed.len(), MESSAGES, "the producer got all confirmed");
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for arrival in arrived {
        let n = arrival
            .package
            .unwrap_or_else(|| panic!("an arrival without a package: {arrival:?}"));
        assert!(n < MESSAGES, "unknown message arrived: {arrival:?}");
        assert_eq!(arrival.id, message_id(n), "a repeat under another id");
        *counts.entry(n).or_default() += 1;
    }
    let lost: Vec<&usize> = confirmed
        .iter()
        .filter(|n| !counts.contains_key(n))
        .collect();
    assert!(
        lost.is_empty(),
        "lost at the destination: {} ({lost:?})",
        lost.len()
    );
    let repeats: usize = counts.values().map(|count| count - 1).sum();
    eprintln!("{repeats} repeats at the destination");

    let store = SqliteStore::open(data_dir).await.expect("the store opens");
    let page = store
        .poll(PollQuery {
            feed: "Gold".to_owned(),
            exclusive_begin: None,
            inclusive_end: None,
            bindings: Vec::new(),
            limit: 2 * MESSAGES,
        })
        .await
        .expect("Gold can be read");
    assert!(!page.more);
    let mut stored: BTreeMap<usize, usize> = BTreeMap::new();
    for block in &page.blocks {
        *stored
            .entry(common::package_number(&block.block))
            .or_default() += 1;
    }
    let twice: Vec<(&usize, &usize)> = stored.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let missing: Vec<&usize> = confirmed
        .iter()
        .filter(|n| !stored.contains_key(n))
        .collect();
    assert!(missing.is_empty(), "not stored: {missing:?}");
    assert_eq!(stored.len(), MESSAGES, "nothing unknown is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_mid_stream_loses_nothing_either_way() {
    let mut broker = PrivateBroker::start("amqp-faults-broker").await;
    let uri = broker.amqp_uri();
    declare_topology(&uri).await;
    let data_dir = common::temp_dir("amqp-faults-broker-data");
    let mut config = Config::from_toml(&bridge_config(&uri)).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = data_dir.clone();
    let gateway = Gateway::start(config).await.expect("the gateway starts");
    let stream = Stream::start(&uri);

    // Mid-stream on both sides: the ingress queue still filling, the
    // exchange's queue receiving.
    stream.mid_stream().await;
    stream.report("stopping the broker");
    tokio::task::block_in_place(|| broker.stop());
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart().await;

    let (confirmed, arrived) = stream.finish().await;
    gateway.stop().await.unwrap();
    check(&confirmed, &arrived, &data_dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_stream_loses_nothing_and_stores_each_once() {
    let broker = PrivateBroker::start("amqp-faults-kill").await;
    let uri = broker.amqp_uri();
    declare_topology(&uri).await;
    let dir = common::temp_dir("amqp-faults-kill-data");
    let config = dir.join("taxiway.toml");
    std::fs::write(&config, bridge_config(&uri)).unwrap();
    let address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let arguments = [std::ffi::OsStr::new("--config"), config.as_os_str()];
    let mut first = common::spawn_binary_with(address, &dir, "first.log", &arguments).await;
    let stream = Stream::start(&uri);

    stream.mid_stream().await;
    stream.report("killing the gateway");
    first.sigkill();
    let mut second = common::spawn_binary_with(address, &dir, "second.log", &arguments).await;

    let (confirmed, arrived) = stream.finish().await;
    // The store is read after the gateway is gone; a kill is as good as a
    // stop for that, everything it acknowledged being durable.
    second.sigkill();
    check(&confirmed, &arrived, &dir).await;
}
