//! Ingress from an AMQP queue: each delivery decoded into an inbox message
//! and taken in by the services (routed, stored, forwarded) before it is
//! acknowledged. What cannot be taken in goes to the dead-letter exchange
//! with the reason in an `x-taxiway-reason` header, and is then acked, so
//! that no bad message comes back for ever. A store that fails is not the
//! message's fault: the delivery goes back to the queue.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Confirmation, Connection, ExchangeKind};
use tokio::sync::{Mutex, watch};

use super::{LinkError, Reconnect, connect, neutral_message, redacted, step};
use crate::bindings::amqp::{AmqpMappings, HeaderValue, decode};
use crate::bindings::taxii_xml::Limits;
use crate::config::{AmqpIngressConfig, Right};
use crate::core::*;
use crate::services::{Accepted, Intake, Services};
use crate::store::Store;

/// The header that says why a delivery was dead-lettered.
pub const REASON_HEADER: &str = "x-taxiway-reason";
/// The header that names the queue a dead-lettered delivery came from.
pub const QUEUE_HEADER: &str = "x-taxiway-queue";

/// The wait before a delivery goes back to the queue because the store
/// failed, so that a store that is down is not hammered.
const STORE_PAUSE: Duration = Duration::from_secs(1);
/// How long deliveries being taken in may finish once the gateway stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `stop` turns true; never gives up on the broker.
pub async fn run<S: Store + Clone>(
    ingress: AmqpIngressConfig,
    mappings: Arc<AmqpMappings>,
    services: Arc<Services<S>>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = Limits {
        max_body_bytes: services.config().server.max_body_bytes,
        ..Limits::default()
    };
    let consumer = Consumer {
        identity: Identity::Named(ingress.identity.clone()),
        ingress,
        services,
        mappings,
        limits,
    };
    let mut reconnect = Reconnect::new();
    loop {
        if super::stopping(&stop) {
            return;
        }
        let opened = tokio::select! {
            opened = consumer.open() => opened,
            _ = stop.changed() => return,
        };
        match opened {
            Ok((connection, deliveries)) => {
                reconnect.reset();
                tracing::info!(ingress = %consumer.ingress.name, queue = %consumer.ingress.queue,
                    broker = %redacted(&consumer.ingress.uri), "AMQP ingress consuming");
                let dead_letters = DeadLetters {
                    connection: &connection,
                    channel: Mutex::new(None),
                };
                let ended = consumer.consume(deliveries, &dead_letters, &mut stop).await;
                super::close(&connection).await;
                match ended {
                    Ok(()) => return,
                    Err(error) => tracing::warn!(ingress = %consumer.ingress.name, %error,
                        "AMQP ingress lost its consumer; connecting again"),
                }
            }
            Err(error) => tracing::warn!(ingress = %consumer.ingress.name,
                broker = %redacted(&consumer.ingress.uri), %error, "AMQP ingress cannot connect"),
        }
        if reconnect.pause(&mut stop).await {
            return;
        }
    }
}

struct Consumer<S> {
    ingress: AmqpIngressConfig,
    identity: Identity,
    services: Arc<Services<S>>,
    mappings: Arc<AmqpMappings>,
    limits: Limits,
}

/// What becomes of one delivery.
enum Outcome {
    /// Taken in (or known already): acknowledged.
    Ack,
    /// Refused for good, with the reason: dead-lettered, then acknowledged.
    DeadLetter(String),
    /// Not committed through no fault of its own: back to the queue.
    Requeue,
}

impl<S: Store + Clone> Consumer<S> {
    /// A connection consuming the queue, with the topology declared when
    /// the configuration asks for it.
    async fn open(&self) -> Result<(Connection, lapin::Consumer), LinkError> {
        let connection = connect(&self.ingress.uri, &self.ingress.name).await?;
        let opened = async {
            let channel = step("opening a channel", connection.create_channel()).await?;
            if self.ingress.declare {
                self.declare(&channel).await?;
            }
            step(
                "setting the prefetch",
                channel.basic_qos(self.ingress.prefetch, BasicQosOptions::default()),
            )
            .await?;
            step(
                "starting the consumer",
                channel.basic_consume(
                    ShortString::from(self.ingress.queue.as_str()),
                    ShortString::from(format!("taxiway-{}", self.ingress.name)),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
        }
        .await;
        match opened {
            Ok(deliveries) => Ok((connection, deliveries)),
            Err(error) => {
                super::close(&connection).await;
                Err(error)
            }
        }
    }

    /// The dead-letter exchange (fanout: whoever reads dead letters gets
    /// them all) and the queue, durable, dead-lettering to it.
    async fn declare(&self, channel: &Channel) -> Result<(), LinkError> {
        step(
            "declaring the dead-letter exchange",
            channel.exchange_declare(
                ShortString::from(self.ingress.dead_letter_exchange.as_str()),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from(self.ingress.dead_letter_exchange.as_str())),
        );
        step(
            "declaring the queue",
            channel.queue_declare(
                ShortString::from(self.ingress.queue.as_str()),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                arguments,
            ),
        )
        .await?;
        Ok(())
    }

    /// Takes in deliveries, up to the prefetch of them at once, until the
    /// gateway stops (`Ok`) or the consumer ends (`Err`).
    async fn consume(
        &self,
        mut deliveries: lapin::Consumer,
        dead_letters: &DeadLetters<'_>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), LinkError> {
        let mut working = FuturesUnordered::new();
        let most = usize::from(self.ingress.prefetch);
        let ended = loop {
            tokio::select! {
                _ = stop.changed() => break Ok(()),
                Some(()) = working.next(), if !working.is_empty() => {}
                next = deliveries.next(), if working.len() < most => match next {
                    Some(Ok(delivery)) => working.push(self.take(delivery, dead_letters)),
                    Some(Err(source)) => break Err(LinkError::Amqp {
                        what: "consuming",
                        source,
                    }),
                    None => break Err(LinkError::Closed),
                },
            }
        };
        // What was committed gets acked if the channel still can; the rest
        // is redelivered, and the dedup key keeps it from being stored twice.
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while working.next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(ingress = %self.ingress.name, left = working.len(),
                "deliveries left to be redelivered");
        }
        ended
    }

    /// One delivery, from decoding to its acknowledgement.
    async fn take(&self, delivery: Delivery, dead_letters: &DeadLetters<'_>) {
        metrics::counter!("taxiway_amqp_consumed_total", "ingress" => self.ingress.name.clone())
            .increment(1);
        let outcome = match self.intake(&delivery) {
            Err(reason) => Outcome::DeadLetter(reason),
            Ok(intake) => {
                let message_id = intake.envelope.message.id.clone();
                match self.services.accept(intake).await {
                    Ok(Accepted::Stored { .. } | Accepted::Duplicate | Accepted::Dropped) => {
                        Outcome::Ack
                    }
                    Ok(Accepted::Refused(reason)) => Outcome::DeadLetter(reason),
                    Ok(Accepted::Conflict(conflict)) => Outcome::DeadLetter(conflict.to_string()),
                    Ok(Accepted::Unsupported(binding)) => {
                        Outcome::DeadLetter(format!("no feed it is for accepts {binding}"))
                    }
                    Err(error) => {
                        tracing::error!(ingress = %self.ingress.name, %message_id, %error,
                            "cannot take in a delivery; it goes back to the queue");
                        Outcome::Requeue
                    }
                }
            }
        };
        let done = match outcome {
            Outcome::Ack => settle("acknowledging", delivery.ack(BasicAckOptions::default())).await,
            Outcome::Requeue => {
                tokio::time::sleep(STORE_PAUSE).await;
                let requeue = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                settle("requeueing", delivery.nack(requeue)).await
            }
            Outcome::DeadLetter(reason) => self.dead_letter(&delivery, &reason, dead_letters).await,
        };
        if let Err(error) = done {
            // The broker redelivers it: deduplicated if it was taken in.
            tracing::warn!(ingress = %self.ingress.name, %error, "cannot settle a delivery");
        }
    }

    /// The delivery as an intake, or why it cannot be one.
    fn intake(&self, delivery: &Delivery) -> Result<Intake, String> {
        let amqp = neutral_message(&delivery.properties, &delivery.data);
        let decoded =
            decode(&amqp, &self.mappings, &self.limits).map_err(|error| error.to_string())?;
        let config = self.services.config();
        // Feeds not hosted here are the routes' business (forwarded, or refused).
        if let Some(closed) = decoded
            .feeds
            .iter()
            .filter_map(|name| config.feed(name))
            .find(|feed| !feed.allows(Right::Write, &self.identity))
        {
            return Err(format!(
                "{} may not write to {}",
                self.ingress.identity, closed.name
            ));
        }
        let mut message = decoded.message;
        // A TAXII body relayed by another gateway may carry its relay record
        // as extended headers; the AMQP headers carry it otherwise.
        let carried = Relay::take_from(&mut message);
        let hops = if decoded.hops.is_empty() {
            carried.hops
        } else {
            decoded.hops
        };
        let header_id = match amqp.headers.get(&self.mappings.headers.message_id) {
            Some(HeaderValue::Text(id)) if !id.trim().is_empty() => Some(id.clone()),
            _ => None,
        };
        let origin_id = carried
            .origin_id
            .or(header_id)
            .unwrap_or_else(|| message.id.clone());
        Ok(Intake {
            // Redelivered or relayed again, it is taken in once.
            dedup_key: Some(origin_id.clone()),
            replacing: None,
            envelope: Envelope {
                message,
                origin: Origin {
                    adapter: self.ingress.name.clone(),
                    identity: self.identity.clone(),
                    binding: WireBinding::Amqp,
                },
                received: Timestamp::now(),
                relay: Relay {
                    hops,
                    origin_id: Some(origin_id),
                },
            },
            feeds: decoded.feeds,
        })
    }

    /// Republishes the delivery as it came, with the reason, to the
    /// dead-letter exchange, and acks it once the broker confirmed that. If
    /// that fails the delivery is rejected without requeue: the queue's
    /// own dead-lettering (declared with it) still keeps it, reason aside.
    async fn dead_letter(
        &self,
        delivery: &Delivery,
        reason: &str,
        dead_letters: &DeadLetters<'_>,
    ) -> Result<(), LinkError> {
        tracing::warn!(ingress = %self.ingress.name, %reason,
            message_id = ?delivery.properties.message_id(), "dead-lettering a delivery");
        metrics::counter!("taxiway_amqp_dead_lettered_total", "ingress" => self.ingress.name.clone())
            .increment(1);
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ShortString::from(REASON_HEADER),
            AMQPValue::LongString(LongString::from(reason)),
        );
        headers.insert(
            ShortString::from(QUEUE_HEADER),
            AMQPValue::LongString(LongString::from(self.ingress.queue.as_str())),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        let published = dead_letters
            .publish(
                &self.ingress.dead_letter_exchange,
                delivery.routing_key.clone(),
                &delivery.data,
                properties,
            )
            .await;
        match published {
            Ok(()) => settle("acknowledging", delivery.ack(BasicAckOptions::default())).await,
            Err(error) => {
                tracing::warn!(ingress = %self.ingress.name, %error,
                    "cannot publish a dead letter; rejecting the delivery instead");
                settle(
                    "rejecting",
                    delivery.reject(BasicRejectOptions { requeue: false }),
                )
                .await
            }
        }
    }
}

/// An ack, nack or reject sent; lapin answers `false` when the channel it
/// came on is gone, and the broker then redelivers the message.
async fn settle(
    what: &'static str,
    request: impl std::future::Future<Output = lapin::Result<bool>>,
) -> Result<(), LinkError> {
    match step(what, request).await? {
        true => Ok(()),
        false => Err(LinkError::Closed),
    }
}

/// A confirm-mode channel for dead letters, apart from the consuming one so
/// that a failed publish (a missing exchange closes the channel) does not
/// end the consumer. Opened on first use and again after it closed.
struct DeadLetters<'c> {
    connection: &'c Connection,
    channel: Mutex<Option<Channel>>,
}

impl DeadLetters<'_> {
    async fn publish(
        &self,
        exchange: &str,
        routing_key: ShortString,
        body: &[u8],
        properties: lapin::BasicProperties,
    ) -> Result<(), String> {
        let confirm = {
            let mut slot = self.channel.lock().await;
            let channel = match slot.take() {
                Some(channel) if channel.status().connected() => channel,
                _ => {
                    let channel = step("opening a channel", self.connection.create_channel())
                        .await
                        .map_err(|e| e.to_string())?;
                    step(
                        "entering confirm mode",
                        channel.confirm_select(ConfirmSelectOptions::default()),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    channel
                }
            };
            let publishing = channel.basic_publish(
                ShortString::from(exchange),
                routing_key,
                BasicPublishOptions::default(),
                body,
                properties,
            );
            let confirm = step("publishing a dead letter", publishing).await;
            *slot = Some(channel);
            confirm.map_err(|e| e.to_string())?
        };
        match step("awaiting a dead letter's confirm", confirm).await {
            Ok(Confirmation::Ack(_)) => Ok(()),
            Ok(Confirmation::Nack(_)) => Err("the broker refused the dead letter".to_owned()),
            Ok(Confirmation::NotRequested) => Err("the channel is not in confirm mode".to_owned()),
            Err(error) => Err(error.to_string()),
        }
    }
}
