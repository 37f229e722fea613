//! The private RabbitMQ node that fault tests kill: persistent messages
//! survive a SIGKILL and a restart, and the shared broker is untouched.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::rabbit::PrivateBroker;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

const QUEUE: &str = "crash-survivors";
const MESSAGES: usize = 1_000;
/// Generous: a publish or confirm that hangs is what these tests look for.
const STEP: Duration = Duration::from_secs(30);
const PERSISTENT: u8 = 2;

async fn channel(uri: &str) -> (Connection, Channel) {
    let connection = tokio::time::timeout(
        STEP,
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .expect("connecting in time")
    .expect("a connection");
    let channel = connection.create_channel().await.expect("a channel");
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(QUEUE.into(), durable, FieldTable::default())
        .await
        .expect("the queue");
    (connection, channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_survive_a_killed_private_node() {
    let started = Instant::now();
    let mut broker = PrivateBroker::start("rabbit-node").await;
    eprintln!("private node started in {:?}", started.elapsed());

    let (connection, publisher) = channel(&broker.amqp_uri()).await;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut confirms = Vec::with_capacity(MESSAGES);
    for n in 0..MESSAGES {
        let properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_message_id(n.to_string().into());
        let confirm = tokio::time::timeout(
            STEP,
            publisher.basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                properties,
            ),
        )
        .await
        .expect("publishing in time")
        .expect("a publish");
        confirms.push(confirm);
    }
    for confirm in confirms {
        let confirmation = tokio::time::timeout(STEP, confirm)
            .await
            .expect("a confirm in time")
            .expect("a confirm");
        assert!(confirmation.is_ack(), "{confirmation:?}");
    }

    broker.kill();
    // The client learns of the crash on its own; it only has to be gone.
    drop(connection);
    let restarted = Instant::now();
    broker.restart().await;
    eprintln!("private node restarted in {:?}", restarted.elapsed());

    let (_connection, consumer_channel) = channel(&broker.amqp_uri()).await;
    consumer_channel
        .basic_qos(200, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consumer_channel
        .basic_consume(
            QUEUE.into(),
            "survivors".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < MESSAGES {
        let delivery = tokio::time::timeout(STEP, consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} messages came back", seen.len()))
            .expect("the consumer is open")
            .expect("a delivery");
        let n: usize = std::str::from_utf8(&delivery.data)
            .unwrap()
            .parse()
            .unwrap();
        seen.insert(n);
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(seen, (0..MESSAGES).collect());

    broker.stop();
    drop(broker);
    let shared = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let connection = tokio::time::timeout(
        STEP,
        Connection::connect(shared, ConnectionProperties::default()),
    )
    .await
    .expect("the shared broker answers in time")
    .expect("the shared broker is still up");
    connection.close(200, "bye".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_test_leaves_no_node_behind() {
    let failing = tokio::spawn(async {
        let broker = PrivateBroker::start("rabbit-panic").await;
        panic!("{}", broker.amqp_uri());
    });
    let panic = failing.await.expect_err("the task panicked").into_panic();
    let uri = panic.downcast_ref::<String>().expect("the node's URI");
    // AMQP rather than a bare TCP connect: a concurrent test's free_port()
    // may be listening on the freed port for a moment.
    let attempt = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "the node still answers on {uri}"
    );
}
