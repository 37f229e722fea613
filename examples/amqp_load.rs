//! The load generator of bench/amqp: drives a running taxiway through its
//! AMQP bridge, counted in messages and bounded in time, and prints one line
//! of JSON per run.
//!
//! - `setup`: declares the topology the bench's configuration names (so
//!   that nothing is published before a queue can take it).
//! - `inbox-to-exchange`: POSTs N TAXII 1.1 inbox messages (~2 KB STIX each,
//!   unique ids) and times them until all sit in the queue bound to the
//!   egress exchange, i.e. were confirmed there by the broker. That queue
//!   is emptied first, so that every run meets the broker as the bare
//!   lapin publisher's does (which publishes to a queue of its own, purged).
//! - `queue-to-feed`: publishes N messages to the ingress queue with
//!   pipelined confirms and times them until taxiway counts them stored.
//! - `teardown`: deletes what `setup` declared.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    /// Seconds a run may take before it is reported as failed.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Setup {
        #[command(flatten)]
        names: Names,
    },
    InboxToExchange {
        #[command(flatten)]
        names: Names,
        /// taxiway's inbox service, e.g. http://127.0.0.1:9000/inbox.
        #[arg(long)]
        inbox: String,
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    QueueToFeed {
        #[command(flatten)]
        names: Names,
        /// taxiway's /metrics, where stored blocks are counted.
        #[arg(long)]
        metrics: String,
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
        /// Unconfirmed publishes allowed at once.
        #[arg(long, default_value_t = 1000)]
        in_flight: usize,
    },
    Teardown {
        #[command(flatten)]
        names: Names,
    },
}

#[derive(clap::Args)]
struct Names {
    /// The egress exchange (fanout) and the queue reading it.
    #[arg(long)]
    exchange: String,
    #[arg(long)]
    exchange_queue: String,
    /// The ingress queue and its dead-letter exchange.
    #[arg(long)]
    ingress_queue: String,
    #[arg(long)]
    dead_letters: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let limit = Duration::from_secs(args.timeout);
    let connection = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&args.uri, ConnectionProperties::default()),
    )
    .await
    .context("connecting timed out")??;
    let channel = connection.create_channel().await?;
    let report = match args.command {
        Command::Setup { names } => {
            setup(&channel, &names).await?;
            None
        }
        Command::Teardown { names } => {
            teardown(&channel, &names).await?;
            None
        }
        Command::InboxToExchange {
            names,
            inbox,
            messages,
            concurrency,
        } => Some(
            tokio::time::timeout(
                limit,
                inbox_to_exchange(&channel, &names, &inbox, messages, concurrency),
            )
            .await
            .context("the run timed out")??,
        ),
        Command::QueueToFeed {
            names,
            metrics,
            messages,
            in_flight,
        } => Some(
            tokio::time::timeout(
                limit,
                queue_to_feed(&connection, &names, &metrics, messages, in_flight),
            )
            .await
            .context("the run timed out")??,
        ),
    };
    let _ = connection.close(200, "done".into()).await;
    if let Some(report) = report {
        println!("{report}");
    }
    Ok(())
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The ingress queue's arguments, as taxiway declares it (`declare = true`);
/// a declaration that differed would be refused.
fn ingress_arguments(names: &Names) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(names.dead_letters.as_str().into()),
    );
    arguments
}

async fn setup(channel: &Channel, names: &Names) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for exchange in [&names.exchange, &names.dead_letters] {
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .queue_declare(
            names.exchange_queue.as_str().into(),
            durable_queue(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            names.exchange_queue.as_str().into(),
            names.exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            names.ingress_queue.as_str().into(),
            durable_queue(),
            ingress_arguments(names),
        )
        .await?;
    Ok(())
}

async fn teardown(channel: &Channel, names: &Names) -> anyhow::Result<()> {
    for queue in [&names.exchange_queue, &names.ingress_queue] {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    for exchange in [&names.exchange, &names.dead_letters] {
        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await?;
    }
    Ok(())
}

/// A STIX package of about 2 KB (as bench/inbox.lua sends), numbered.
fn package(n: usize) -> String {
    let indicators: String = (1..=6)
        .map(|i| {
            format!(
                "<stix:Indicator id=\"example:Indicator-{n}-{i}\" timestamp=\"2014-05-08T09:00:00Z\">\
                 <indicator:Title xmlns:indicator=\"http://stix.mitre.org/Indicator-2\">Malicious \
                 address {i}</indicator:Title><indicator:Description \
                 xmlns:indicator=\"http://stix.mitre.org/Indicator-2\">Seen scanning and \
                 brute-forcing SSH on many hosts of the sharing community during the last day; \
                 block at the perimeter.</indicator:Description></stix:Indicator>"
            )
        })
        .collect();
    format!(
        "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-{n}\" \
         version=\"1.1.1\"><stix:STIX_Header><stix:Title>Load test package</stix:Title>\
         </stix:STIX_Header><stix:Indicators>{indicators}</stix:Indicators></stix:STIX_Package>"
    )
}

/// Messages ready in a queue, by a passive declare.
async fn ready(channel: &Channel, queue: &str) -> anyhow::Result<usize> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?;
    Ok(queue.message_count() as usize)
}

async fn inbox_to_exchange(
    channel: &Channel,
    names: &Names,
    inbox: &str,
    messages: usize,
    concurrency: usize,
) -> anyhow::Result<serde_json::Value> {
    ensure!(concurrency > 0, "--concurrency must be at least 1");
    channel
        .queue_purge(
            names.exchange_queue.as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await
        .context("emptying the egress exchange's queue")?;
    let before = ready(channel, &names.exchange_queue).await?;
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, inbox) = (client.clone(), next.clone(), inbox.to_owned());
            tokio::spawn(async move { push(&client, &inbox, &next, messages).await })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let pushed = started.elapsed().as_secs_f64();
    while ready(channel, &names.exchange_queue).await? < before + messages {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "path": "inbox_to_exchange",
        "messages": messages,
        "concurrency": concurrency,
        "inbox_seconds": pushed,
        "seconds": seconds,
        "rate": messages as f64 / seconds,
    }))
}

/// One worker's share of the inbox messages, taken by number from `next`.
async fn push(
    client: &reqwest::Client,
    inbox: &str,
    next: &AtomicUsize,
    messages: usize,
) -> anyhow::Result<()> {
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= messages {
            return Ok(());
        }
        let body = format!(
            "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"bench-{n}\">\
             <t:Destination_Collection_Name>Gold</t:Destination_Collection_Name>\
             <t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>{}</t:Content>\
             </t:Content_Block></t:Inbox_Message>",
            package(n)
        );
        let reply = client
            .post(inbox)
            .header("Content-Type", "application/xml")
            .header(
                "X-TAXII-Content-Type",
                "urn:taxii.mitre.org:message:xml:1.1",
            )
            .header("X-TAXII-Services", "urn:taxii.mitre.org:services:1.1")
            .header("X-TAXII-Protocol", "urn:taxii.mitre.org:protocol:http:1.0")
            .body(body)
            .send()
            .await?;
        let status = reply.status();
        let text = reply.text().await?;
        if !status.is_success() || !text.contains("SUCCESS") {
            bail!("inbox message {n} was not taken: {status} {text}");
        }
    }
}

/// Blocks taxiway counts stored, all feeds together.
async fn stored(client: &reqwest::Client, metrics: &str) -> anyhow::Result<u64> {
    let text = client.get(metrics).send().await?.text().await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("taxiway_content_blocks_stored_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

async fn queue_to_feed(
    connection: &Connection,
    names: &Names,
    metrics: &str,
    messages: usize,
    in_flight: usize,
) -> anyhow::Result<serde_json::Value> {
    ensure!(in_flight > 0, "--in-flight must be at least 1");
    let client = reqwest::Client::new();
    let before = stored(&client, metrics).await?;
    // A channel of its own: the publisher runs while this task watches.
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = names.ingress_queue.clone();
    let started = Instant::now();
    let mut publisher = Some(tokio::spawn(async move {
        publish(&channel, &queue, messages, in_flight).await
    }));
    let mut published = None;
    while stored(&client, metrics).await? < before + messages as u64 {
        // A publisher that failed ends the run now, not at the timeout.
        if publisher.as_ref().is_some_and(|task| task.is_finished()) {
            published = Some(publisher.take().unwrap().await??);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(task) = publisher {
        published = Some(task.await??);
    }
    Ok(serde_json::json!({
        "path": "queue_to_feed",
        "messages": messages,
        "in_flight": in_flight,
        "publish_seconds": published,
        "seconds": seconds,
        "rate": messages as f64 / seconds,
    }))
}

/// Publishes the bodies to `queue`, persistent, with the headers taxiway's
/// ingress reads; seconds until the last confirm.
async fn publish(
    channel: &Channel,
    queue: &str,
    messages: usize,
    in_flight: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut headers = FieldTable::default();
    headers.insert(
        "x-taxii-collection".into(),
        AMQPValue::LongString("Gold".into()),
    );
    headers.insert(
        "x-taxii-content-binding".into(),
        AMQPValue::LongString(STIX.into()),
    );
    let mut window = VecDeque::with_capacity(in_flight);
    for n in 0..messages {
        if window.len() == in_flight {
            confirmed(window.pop_front().unwrap()).await?;
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(format!("bench-amqp-{n}").into())
            .with_headers(headers.clone());
        let body = package(n);
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                properties,
            )
            .await?;
        window.push_back(confirm);
    }
    for confirm in window {
        confirmed(confirm).await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn confirmed(confirm: lapin::PublisherConfirm) -> anyhow::Result<()> {
    let confirmation = confirm.await?;
    if !confirmation.is_ack() {
        bail!("the broker did not confirm a message: {confirmation:?}");
    }
    Ok(())
}
