//! The AMQP ceiling that the gateway's egress is measured against: bare lapin
//! publishing persistent messages to a durable queue, with publisher confirms
//! pipelined in a bounded window.
//!
//! `cargo run --release --example lapin_ceiling -- --uri amqp://... \
//!  --messages 20000 --size 2048 --in-flight 1000` prints one line of JSON.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};

const QUEUE: &str = "taxiway.lapin-ceiling";
const PERSISTENT: u8 = 2;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Unconfirmed messages allowed at once.
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    /// Seconds allowed for each publish and each confirm: a publish to a
    /// broker that went away can otherwise block forever.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.in_flight > 0, "--in-flight must be at least 1");
    let limit = Duration::from_secs(args.timeout);
    let connection = tokio::time::timeout(
        limit,
        Connection::connect(&args.uri, ConnectionProperties::default()),
    )
    .await
    .context("connecting timed out")??;
    let channel = connection.create_channel().await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(QUEUE.into(), durable, FieldTable::default())
        .await?;
    // A run that died midway leaves its messages behind.
    channel
        .queue_purge(QUEUE.into(), QueuePurgeOptions::default())
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let outcome = publish_all(&channel, &args, limit).await;
    let deleted = tokio::time::timeout(
        limit,
        channel.queue_delete(QUEUE.into(), QueueDeleteOptions::default()),
    )
    .await;
    let seconds = outcome?;
    deleted.context("deleting the queue timed out")??;
    let _ = connection.close(200, "done".into()).await;

    let report = serde_json::json!({
        "messages": args.messages,
        "size": args.size,
        "in_flight": args.in_flight,
        "seconds": seconds,
        "rate": args.messages as f64 / seconds,
    });
    println!("{report}");
    Ok(())
}

/// Seconds from the first publish to the last confirm.
async fn publish_all(channel: &Channel, args: &Args, limit: Duration) -> anyhow::Result<f64> {
    let payload = vec![b'x'; args.size];
    let mut window: VecDeque<PublisherConfirm> = VecDeque::with_capacity(args.in_flight);
    let started = Instant::now();
    for n in 0..args.messages {
        if window.len() == args.in_flight {
            // RabbitMQ confirms a channel's messages in order, so the oldest
            // is the first to wait for.
            confirmed(window.pop_front().unwrap(), limit).await?;
        }
        let properties = BasicProperties::default().with_delivery_mode(PERSISTENT);
        let confirm = tokio::time::timeout(
            limit,
            channel.basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &payload,
                properties,
            ),
        )
        .await
        .with_context(|| format!("publish {n} timed out"))??;
        window.push_back(confirm);
    }
    for confirm in window {
        confirmed(confirm, limit).await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn confirmed(confirm: PublisherConfirm, limit: Duration) -> anyhow::Result<()> {
    let confirmation = tokio::time::timeout(limit, confirm)
        .await
        .context("a publisher confirm timed out")??;
    if !confirmation.is_ack() {
        bail!("the broker did not confirm a message: {confirmation:?}");
    }
    Ok(())
}
