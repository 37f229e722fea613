//! Egress: pushes hosted content to push subscriptions' inboxes, draining the
//! store's durable outbox.
//!
//! Each outbox row (one content block for one subscription) becomes one
//! Inbox_Message (a draft STIX message) in the subscriber's dialect. A row is
//! marked delivered only once the subscriber acknowledged it, so delivery is
//! at-least-once; the message id is derived from the subscription and the row,
//! so a retry carries the same id and a receiver can drop the duplicate.
//! Failures back off exponentially; after `max_attempts` a row is dead until an
//! operator replays it. A failed row holds back the later rows of its
//! subscription, so that each subscriber receives its feed in order. A block
//! the subscriber's identity may not read (an IODEF restriction of its feed)
//! is withheld: its row is settled without a push.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::TaxiiClient;
use crate::bindings::taxii_xml;
use crate::config::{Config, DeliveryConfig};
use crate::core::*;
use crate::store::{DueDelivery, OutboxWake, Retry, Store};

/// Rows claimed at once.
const BATCH: usize = 64;
/// How often an idle worker looks for rows falling due (new ones wake it
/// at once).
const IDLE: Duration = Duration::from_millis(100);
/// How long one POST may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The running delivery loop.
pub struct PushWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PushWorker {
    pub fn start<S: Store>(store: S, config: Arc<Config>) -> Result<PushWorker, String> {
        let client = TaxiiClient::new(TIMEOUT, None)?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(store, config, client, stopped));
        Ok(PushWorker { stop, task })
    }

    /// Stops the loop, abandoning a POST in flight: its row stays pending
    /// and is pushed again after the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!("the push worker failed: {e}");
        }
    }
}

async fn run<S: Store>(
    store: S,
    gateway: Arc<Config>,
    client: TaxiiClient,
    mut stop: watch::Receiver<bool>,
) {
    let config = &gateway.delivery;
    let mut wake = OutboxWake::new(&store);
    loop {
        if *stop.borrow() {
            return;
        }
        wake.looking();
        let claimed = match store.claim_due(Timestamp::now(), BATCH).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::error!(%error, "cannot read the outbox");
                Vec::new()
            }
        };
        let full = claimed.len() == BATCH;
        // Subscriptions whose earlier row just failed: their later rows wait.
        let mut held: HashSet<String> = HashSet::new();
        for due in claimed {
            if held.contains(&due.subscription.id) {
                continue;
            }
            if withheld(&gateway, &due) {
                tracing::info!(row = due.row.id, subscription = %due.subscription.id,
                    "a restricted block is not pushed to this subscriber");
                if let Err(error) = store.mark_delivered(due.row.id).await {
                    tracing::error!(%error, row = due.row.id, "cannot record a push outcome");
                }
                continue;
            }
            let outcome = tokio::select! {
                outcome = deliver(&client, config, &due) => outcome,
                _ = stop.changed() => return,
            };
            metrics::counter!("taxiway_push_attempts_total").increment(1);
            let recorded = match outcome {
                Ok(()) => {
                    tracing::debug!(row = due.row.id, subscription = %due.subscription.id, "pushed");
                    store.mark_delivered(due.row.id).await
                }
                Err(reason) => {
                    metrics::counter!("taxiway_push_failures_total").increment(1);
                    held.insert(due.subscription.id.clone());
                    let attempts = due.row.attempts.saturating_add(1);
                    let retry = Retry::after_failure(
                        attempts,
                        config.max_attempts,
                        config.initial_backoff_ms,
                    );
                    tracing::warn!(row = due.row.id, subscription = %due.subscription.id,
                        attempts, ?retry, %reason, "push failed");
                    store.record_failure(due.row.id, &reason, retry).await
                }
            };
            if let Err(error) = recorded {
                tracing::error!(%error, row = due.row.id, "cannot record a push outcome");
            }
        }
        if !full {
            tokio::select! {
                _ = wake.wait(IDLE) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// Whether the subscriber's identity may not read the block.
fn withheld(gateway: &Config, due: &DueDelivery) -> bool {
    let Some(feed) = gateway.feed(&due.block.feed) else {
        return false;
    };
    let identity = match &due.subscription.created_by {
        Some(name) => Identity::Named(name.clone()),
        None => Identity::Anonymous,
    };
    !crate::services::may_read_block(feed, &identity, &due.block.block)
}

/// One row to its subscriber; `Err` says why it was not acknowledged.
async fn deliver(
    client: &TaxiiClient,
    config: &DeliveryConfig,
    due: &DueDelivery,
) -> Result<(), String> {
    let Delivery::Push(push) = &due.subscription.delivery else {
        return Err("not a push subscription".to_owned());
    };
    // Checked again: the allow-list may have shrunk since it subscribed.
    if !config.allows(&push.address) {
        return Err(format!(
            "{} is no longer an allowed destination",
            push.address
        ));
    }
    let MessageBinding::Xml(dialect) = push.message_binding else {
        return Err("the subscriber's message binding is not TAXII XML".to_owned());
    };
    let message = inbox_message(due, dialect);
    let message = taxii_xml::convert(message, dialect, dialect)
        .map_err(|e| e.to_string())?
        .message;
    client.send(&push.address, dialect, &message, None).await
}

/// The Inbox_Message (draft: STIX message) carrying one row's block.
fn inbox_message(due: &DueDelivery, dialect: Dialect) -> Message {
    let mut block = due.block.block.clone();
    block.timestamp_label = Some(due.block.label);
    let inbox = InboxMessage {
        result_id: None,
        destination_feeds: Vec::new(),
        message: None,
        source_subscription: Some(SourceSubscription {
            feed_name: Some(due.subscription.feed.clone()),
            subscription_id: Some(due.subscription.id.clone()),
            exclusive_begin: None,
            inclusive_end: Some(due.block.label),
        }),
        record_count: None,
        content_blocks: vec![block],
    };
    Message::new(message_id(due, dialect), Body::Inbox(inbox))
}

/// The same id on every attempt of a row, in the dialect's form.
fn message_id(due: &DueDelivery, dialect: Dialect) -> String {
    let base = uuid::Uuid::parse_str(&due.subscription.id)
        .map(|u| u.as_u128())
        .unwrap_or_default();
    let id = base ^ u128::from(due.row.id.unsigned_abs());
    let uuid = uuid::Uuid::from_u128(id);
    match dialect {
        Dialect::Draft => uuid.simple().to_string(),
        Dialect::V10 => id.to_string(),
        Dialect::V11 => uuid.to_string(),
    }
}
