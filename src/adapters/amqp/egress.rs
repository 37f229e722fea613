//! Egress to an AMQP exchange: drains one destination's rows of the egress
//! outbox, publishing each as a persistent, mandatory message on a channel
//! in confirm mode, many at once. A row is delivered once the broker
//! confirms it; a refusal, a return (no queue took it), a timeout or a lost
//! channel schedules a retry with backoff, and too many failures make it
//! dead. While the broker is away the rows wait in the outbox.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ExchangeKind};
use tokio::sync::watch;

use super::{LinkError, Reconnect, connect, lapin_properties, redacted, short, step};
use crate::bindings::amqp::{AmqpMappings, EncodeMeta, encode};
use crate::config::{AmqpEgressConfig, EgressConfig};
use crate::core::*;
use crate::router::Outgoing;
use crate::store::{EgressRow, OutboxWake, Retry, Store};

/// How often an idle destination looks for rows falling due (new ones wake
/// it at once).
const IDLE: Duration = Duration::from_millis(100);
/// How long a batch's confirms may take, all together. A persistent
/// message is confirmed once on disk, within a few hundred ms normally.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until `stop` turns true; never gives up on the broker.
pub async fn run<S: Store>(
    egress: EgressConfig,
    amqp: AmqpEgressConfig,
    mappings: Arc<AmqpMappings>,
    gateway_id: String,
    store: S,
    mut stop: watch::Receiver<bool>,
) {
    let mut mappings = AmqpMappings::clone(&mappings);
    mappings.body.dialect = amqp.dialect;
    let publisher = Publisher {
        batch: amqp.in_flight.max(1),
        egress,
        amqp,
        gateway_id,
        mappings,
        store,
    };
    let mut reconnect = Reconnect::new();
    loop {
        if super::stopping(&stop) {
            return;
        }
        let opened = tokio::select! {
            opened = publisher.open() => opened,
            _ = stop.changed() => return,
        };
        match opened {
            Ok((connection, channel)) => {
                reconnect.reset();
                tracing::info!(egress = %publisher.egress.name,
                    broker = %redacted(&publisher.amqp.uri), "AMQP egress connected");
                let ended = publisher.drain(&channel, &mut stop).await;
                super::close(&connection).await;
                match ended {
                    Ok(()) => return,
                    Err(error) => tracing::warn!(egress = %publisher.egress.name, %error,
                        "AMQP egress lost its channel; connecting again"),
                }
            }
            Err(error) => tracing::warn!(egress = %publisher.egress.name,
                broker = %redacted(&publisher.amqp.uri), %error, "AMQP egress cannot connect"),
        }
        if reconnect.pause(&mut stop).await {
            return;
        }
    }
}

struct Publisher<S> {
    egress: EgressConfig,
    amqp: AmqpEgressConfig,
    gateway_id: String,
    mappings: AmqpMappings,
    store: S,
    /// Rows claimed, and publishes in flight, at once.
    batch: usize,
}

/// A row ready to publish.
struct Prepared {
    routing_key: ShortString,
    properties: BasicProperties,
    body: Vec<u8>,
}

impl<S: Store> Publisher<S> {
    /// A connection and a confirm-mode channel, the exchange declared.
    async fn open(&self) -> Result<(Connection, Channel), LinkError> {
        let connection = connect(&self.amqp.uri, &self.egress.name).await?;
        let opened = async {
            let channel = step("opening a channel", connection.create_channel()).await?;
            step(
                "entering confirm mode",
                channel.confirm_select(ConfirmSelectOptions::default()),
            )
            .await?;
            if let Some(kind) = &self.amqp.declare {
                step(
                    "declaring the exchange",
                    channel.exchange_declare(
                        ShortString::from(self.amqp.exchange.as_str()),
                        exchange_kind(kind),
                        ExchangeDeclareOptions {
                            durable: true,
                            ..ExchangeDeclareOptions::default()
                        },
                        FieldTable::default(),
                    ),
                )
                .await?;
            }
            Ok(channel)
        }
        .await;
        match opened {
            Ok(channel) => Ok((connection, channel)),
            Err(error) => {
                super::close(&connection).await;
                Err(error)
            }
        }
    }

    /// Publishes due rows until the gateway stops (`Ok`) or the channel
    /// breaks (`Err`).
    async fn drain(
        &self,
        channel: &Channel,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), LinkError> {
        let mut wake = OutboxWake::new(&self.store);
        loop {
            if super::stopping(stop) {
                return Ok(());
            }
            // Known dead before anything is sent: no row pays an attempt.
            if !channel.status().connected() {
                return Err(LinkError::Closed);
            }
            wake.looking();
            let rows = match self
                .store
                .claim_egress(&self.egress.name, Timestamp::now(), self.batch)
                .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    tracing::error!(egress = %self.egress.name, %error,
                        "cannot read the egress outbox");
                    Vec::new()
                }
            };
            if rows.is_empty() {
                tokio::select! {
                    _ = wake.wait(IDLE) => {}
                    _ = stop.changed() => return Ok(()),
                }
                continue;
            }
            // A stop while confirms are awaited leaves the rows pending:
            // they are published again at the next start (at least once).
            tokio::select! {
                sent = self.send(channel, rows) => sent?,
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// Publishes a batch, then awaits its confirms and records each outcome.
    async fn send(&self, channel: &Channel, rows: Vec<EgressRow>) -> Result<(), LinkError> {
        let mut in_flight = Vec::with_capacity(rows.len());
        let mut broken = None;
        for row in rows {
            let prepared = match self.prepare(&row) {
                Ok(prepared) => prepared,
                // The same row would fail the same way every time.
                Err(reason) => {
                    self.failed(&row, &reason, Retry::Dead).await;
                    continue;
                }
            };
            let publishing = channel.basic_publish(
                ShortString::from(self.amqp.exchange.as_str()),
                prepared.routing_key,
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &prepared.body,
                prepared.properties,
            );
            match step("publishing", publishing).await {
                Ok(confirm) => {
                    metrics::counter!("taxiway_amqp_published_total", "egress" => self.egress.name.clone())
                        .increment(1);
                    in_flight.push((row, confirm));
                }
                Err(error) => {
                    // It may have been the message that broke the channel:
                    // it pays an attempt, so that it cannot block the
                    // destination for ever. The rows after it stay due.
                    self.failed(&row, &error.to_string(), self.retry(&row))
                        .await;
                    broken = Some(error);
                    break;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        let outcomes = join_all(in_flight.into_iter().map(|(row, confirm)| async move {
            (row, tokio::time::timeout_at(deadline, confirm).await)
        }))
        .await;
        let mut delivered = Vec::with_capacity(outcomes.len());
        for (row, outcome) in outcomes {
            let reason = match outcome {
                Ok(Ok(Confirmation::Ack(None))) => {
                    delivered.push(row.id);
                    continue;
                }
                Ok(Ok(Confirmation::Ack(Some(returned)))) => format!(
                    "unroutable: the broker returned it ({} {})",
                    returned.reply_code, returned.reply_text
                ),
                Ok(Ok(Confirmation::Nack(_))) => "the broker refused it (nack)".to_owned(),
                Ok(Ok(Confirmation::NotRequested)) => {
                    "the channel is not in confirm mode".to_owned()
                }
                Ok(Err(source)) => {
                    let error = LinkError::Amqp {
                        what: "awaiting a confirm",
                        source,
                    };
                    let reason = error.to_string();
                    broken.get_or_insert(error);
                    reason
                }
                Err(_) => {
                    let error = LinkError::Timeout {
                        what: "awaiting a confirm",
                        after: CONFIRM_TIMEOUT,
                    };
                    let reason = error.to_string();
                    broken.get_or_insert(error);
                    reason
                }
            };
            self.failed(&row, &reason, self.retry(&row)).await;
        }
        if !delivered.is_empty() {
            metrics::counter!("taxiway_amqp_confirmed_total", "egress" => self.egress.name.clone())
                .increment(delivered.len() as u64);
            if let Err(error) = self.store.egress_delivered(&delivered).await {
                // They stay pending and go out again: at least once.
                tracing::error!(egress = %self.egress.name, %error, rows = delivered.len(),
                    "cannot record confirmed publishes");
            }
        }
        match broken {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// The row as an AMQP message: its relay record in the hops header
    /// rather than as TAXII extended headers, and its routing key.
    fn prepare(&self, row: &EgressRow) -> Result<Prepared, String> {
        let Outgoing {
            mut message,
            feeds,
            source,
            relay,
        } = serde_json::from_str(&row.payload)
            .map_err(|e| format!("the outbox row cannot be read: {e}"))?;
        Relay::take_from(&mut message);
        let routing_key = self.routing_key(&message, &feeds, source);
        let routing_key = short("the routing key", &routing_key).map_err(|e| e.to_string())?;
        let meta = EncodeMeta {
            feeds,
            source,
            hops: relay.hops,
            app_id: Some(self.gateway_id.clone()),
            published: Timestamp::now(),
        };
        let encoded = encode(&message, &meta, &self.mappings).map_err(|e| e.to_string())?;
        for note in &encoded.notes {
            tracing::debug!(egress = %self.egress.name, message_id = %message.id, ?note,
                "converted for the exchange's dialect");
        }
        let properties = lapin_properties(&encoded.message).map_err(|e| e.to_string())?;
        Ok(Prepared {
            routing_key,
            properties,
            body: encoded.message.body,
        })
    }

    /// The configured template filled in. A message for several feeds is
    /// routed by the first; the collection header names them all.
    fn routing_key(&self, message: &Message, feeds: &[String], source: WireBinding) -> String {
        let binding = match &message.body {
            Body::Inbox(inbox) => inbox.content_blocks.first(),
            Body::PollResponse(response) => response.content_blocks.first(),
            _ => None,
        }
        .map_or("none", |block| block.binding.id.as_str());
        self.amqp
            .routing_key
            .replace("{feed}", feeds.first().map_or("none", String::as_str))
            .replace("{message_type}", self.mappings.message_type(message.kind()))
            .replace("{content_binding}", binding)
            .replace("{source}", source.name())
    }

    fn retry(&self, row: &EgressRow) -> Retry {
        Retry::after_failure(
            row.attempts.saturating_add(1),
            self.egress.max_attempts,
            self.egress.initial_backoff_ms,
        )
    }

    async fn failed(&self, row: &EgressRow, reason: &str, retry: Retry) {
        metrics::counter!("taxiway_amqp_failed_total", "egress" => self.egress.name.clone())
            .increment(1);
        tracing::warn!(egress = %self.egress.name, row = row.id, message_id = %row.message_id,
            attempts = row.attempts.saturating_add(1), ?retry, %reason, "AMQP publish failed");
        if let Err(error) = self.store.egress_failed(row.id, reason, retry).await {
            tracing::error!(egress = %self.egress.name, row = row.id, %error,
                "cannot record a failed publish");
        }
    }
}

/// The configured exchange type; a name RabbitMQ knows besides the four
/// standard ones (a plugin's) is passed on as it is.
fn exchange_kind(kind: &str) -> ExchangeKind {
    match kind {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "headers" => ExchangeKind::Headers,
        "topic" => ExchangeKind::Topic,
        other => ExchangeKind::Custom(other.to_owned()),
    }
}
