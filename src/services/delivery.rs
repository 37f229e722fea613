//! Delivery from the egress outbox, for every egress that sends one
//! message at a time: a destination's rows in order, each marked delivered
//! once its receiver has it, backing off (then dead) when it fails, the
//! rows after a failed one held back.

use std::time::Duration;

use tokio::sync::watch;

use crate::config::EgressConfig;
use crate::core::Timestamp;
use crate::store::{EgressRow, OutboxWake, Retry, Store};

/// Rows claimed at once.
const BATCH: usize = 32;
/// How often an idle destination looks for rows falling due (new ones wake
/// it at once).
const IDLE: Duration = Duration::from_millis(100);

/// What delivers one egress row.
pub trait Deliver {
    fn deliver(&mut self, row: &EgressRow) -> impl Future<Output = Result<(), String>> + Send;
}

/// Delivers a destination's rows in order until `stop` turns true: each
/// row is marked delivered once `deliver` succeeds, or backs off (dead after
/// `max_attempts`), holding back the rows after it.
pub async fn drain<S: Store>(
    egress: &EgressConfig,
    store: &S,
    mut stop: watch::Receiver<bool>,
    deliver: &mut impl Deliver,
) {
    let mut wake = OutboxWake::new(store);
    loop {
        if *stop.borrow() {
            return;
        }
        wake.looking();
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
                sent = deliver.deliver(&row) => sent,
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
                    let retry = Retry::after_failure(
                        attempts,
                        egress.max_attempts,
                        egress.initial_backoff_ms,
                    );
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
                _ = wake.wait(IDLE) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
