//! Egress to a remote TAXII inbox service: drains one destination's rows of
//! the egress outbox, in order, as inbox messages in the destination's
//! dialect, carrying the relay record so that no gateway stores it twice.

use std::time::Duration;

use tokio::sync::watch;

use super::{TaxiiClient, after, backoff};
use crate::bindings::taxii_xml;
use crate::config::{EgressConfig, TaxiiEgressConfig};
use crate::core::*;
use crate::router::Outgoing;
use crate::store::{EgressRow, Retry, Store};

/// Rows claimed at once.
const BATCH: usize = 32;
/// How often an idle destination looks for new rows.
const IDLE: Duration = Duration::from_millis(100);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until `stop` turns true.
pub async fn run<S: Store>(
    egress: EgressConfig,
    taxii: TaxiiEgressConfig,
    store: S,
    mut stop: watch::Receiver<bool>,
) {
    let timeout = taxii
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let client = match TaxiiClient::new(timeout) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(egress = %egress.name, %error, "cannot start a TAXII egress");
            return;
        }
    };
    let password = match (&taxii.password_env, &taxii.password) {
        (Some(variable), _) => std::env::var(variable).ok(),
        (None, password) => password.clone(),
    };
    if taxii.username.is_some() && password.is_none() {
        tracing::error!(egress = %egress.name, "a username without a password: not sending");
        return;
    }
    let credentials = taxii.username.as_deref().zip(password.as_deref());
    loop {
        if *stop.borrow() {
            return;
        }
        let rows = match store
            .claim_egress(&egress.name, Timestamp::now(), BATCH)
            .await
        {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(egress = %egress.name, %error, "cannot read the egress outbox");
                Vec::new()
            }
        };
        let full = rows.len() == BATCH;
        for row in rows {
            let sent = tokio::select! {
                sent = deliver(&client, &taxii, &row, credentials) => sent,
                _ = stop.changed() => return,
            };
            metrics::counter!("taxiway_egress_attempts_total", "egress" => egress.name.clone())
                .increment(1);
            let recorded = match sent {
                Ok(()) => store.egress_delivered(&[row.id]).await,
                Err(reason) => {
                    metrics::counter!("taxiway_egress_failures_total", "egress" => egress.name.clone())
                        .increment(1);
                    let attempts = row.attempts.saturating_add(1);
                    let retry = if attempts >= egress.max_attempts {
                        Retry::Dead
                    } else {
                        Retry::At(after(backoff(egress.initial_backoff_ms, attempts)))
                    };
                    tracing::warn!(egress = %egress.name, row = row.id, attempts, ?retry,
                        %reason, "forward failed");
                    let failed = store.egress_failed(row.id, &reason, retry).await;
                    // Later rows wait for this one: the destination gets them in order.
                    if failed.is_ok() {
                        break;
                    }
                    failed
                }
            };
            if let Err(error) = recorded {
                tracing::error!(egress = %egress.name, row = row.id, %error,
                    "cannot record a forward's outcome");
            }
        }
        if !full {
            tokio::select! {
                _ = tokio::time::sleep(IDLE) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

async fn deliver(
    client: &TaxiiClient,
    taxii: &TaxiiEgressConfig,
    row: &EgressRow,
    credentials: Option<(&str, &str)>,
) -> Result<(), String> {
    let outgoing: Outgoing = serde_json::from_str(&row.payload)
        .map_err(|e| format!("the outbox row cannot be read: {e}"))?;
    let source = match outgoing.source {
        WireBinding::TaxiiXml(dialect) => dialect,
        WireBinding::Amqp | WireBinding::Rolie => Dialect::V11,
    };
    let message = inbox_for(outgoing, taxii);
    let converted =
        taxii_xml::convert(message, source, taxii.dialect).map_err(|e| e.to_string())?;
    client
        .send(&taxii.url, taxii.dialect, &converted.message, credentials)
        .await
}

/// The message as the destination takes it: its relay record on, and in
/// 1.1 the destination collection named.
fn inbox_for(outgoing: Outgoing, taxii: &TaxiiEgressConfig) -> Message {
    let Outgoing {
        mut message,
        feeds,
        relay,
        ..
    } = outgoing;
    relay.put_on(&mut message);
    if let Body::Inbox(inbox) = &mut message.body {
        inbox.destination_feeds = match &taxii.collection {
            Some(collection) => vec![collection.clone()],
            None => feeds,
        };
    }
    message
}
