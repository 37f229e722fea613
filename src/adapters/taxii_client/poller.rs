//! Ingress that pulls: polls a remote TAXII poll service on a schedule and
//! takes in what it returns, continuing from the last end label as the seed
//! advises. The cursor advances in the same transaction as the content it
//! covers, so that a crash or a restart neither misses nor repeats any.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::TaxiiClient;
use crate::bindings::taxii_xml;
use crate::config::{PollerConfig, resolve_password};
use crate::core::*;
use crate::services::{Accepted, Intake, Services, new_message_id};
use crate::store::{PollCursor, Store};

/// The largest poll response read.
const MAX_ANSWER: usize = 256 * 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs until `stop` turns true.
pub async fn run<S: Store + Clone>(
    poller: PollerConfig,
    services: Arc<Services<S>>,
    store: S,
    mut stop: watch::Receiver<bool>,
) {
    let timeout = poller
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let client = match TaxiiClient::new(timeout, poller.tls.as_ref()) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(poller = %poller.name, %error, "cannot start a poller");
            return;
        }
    };
    let password = resolve_password(poller.password.as_ref(), poller.password_env.as_ref());
    let credentials = poller.username.as_deref().zip(password.as_deref());
    let interval = Duration::from_secs(poller.interval_seconds);
    loop {
        if *stop.borrow() {
            return;
        }
        let again_at_once = match round(&poller, &client, credentials, &services, &store).await {
            Ok(more) => more,
            Err(reason) => {
                metrics::counter!("taxiway_poll_failures_total", "poller" => poller.name.clone())
                    .increment(1);
                tracing::warn!(poller = %poller.name, %reason, "poll failed");
                false
            }
        };
        if !again_at_once {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// One request and what it brought, committed with the advanced cursor.
/// `Ok(true)`: a 1.1 result has more parts, to fetch at once.
async fn round<S: Store + Clone>(
    poller: &PollerConfig,
    client: &TaxiiClient,
    credentials: Option<(&str, &str)>,
    services: &Services<S>,
    store: &S,
) -> Result<bool, String> {
    let cursor = store
        .poll_cursor(&poller.name, &poller.feed)
        .await
        .map_err(|e| e.to_string())?;
    let prior = match &cursor {
        Some(cursor) if cursor.end_label.is_empty() => None,
        Some(cursor) => Some(parse_label(&cursor.end_label)?),
        None => poller.begin.as_deref().map(parse_label).transpose()?,
    };
    let result = cursor.as_ref().and_then(|c| c.result.clone());
    let request = match &result {
        Some((result_id, part)) => Message::new(
            new_message_id(Dialect::V11),
            Body::PollFulfillment(PollFulfillment {
                feed_name: poller.feed.clone(),
                result_id: result_id.clone(),
                result_part_number: Some(*part),
            }),
        ),
        None => Message::new(
            new_message_id(Dialect::V11),
            Body::PollRequest(poll_request(poller, prior)),
        ),
    };
    let request = taxii_xml::convert(request, Dialect::V11, poller.dialect)
        .map_err(|e| e.to_string())?
        .message;
    let reply = client
        .exchange(
            &poller.url,
            poller.dialect,
            &request,
            credentials,
            MAX_ANSWER,
        )
        .await?;
    let response = match reply.body {
        Body::PollResponse(response) => response,
        Body::Status(status) if result.is_some() && status.status_type == StatusType::NotFound => {
            // The remote forgot the result: poll again from the last end label.
            tracing::warn!(poller = %poller.name, "the remote result expired; polling afresh");
            let restart = PollCursor {
                poller: poller.name.clone(),
                feed: poller.feed.clone(),
                end_label: label_text(prior),
                result: None,
            };
            commit(poller, services, Vec::new(), restart).await?;
            return Ok(true);
        }
        Body::Status(status) => {
            return Err(format!(
                "answered {}{}",
                status.status_type.name(),
                status.message.map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
        other => return Err(format!("answered a {}", other.kind())),
    };
    let latest = response
        .content_blocks
        .iter()
        .filter_map(|block| block.timestamp_label)
        .max();
    let reached = [prior, latest].into_iter().flatten().max();
    let more_parts = response.more == Some(true) && response.result_id.is_some();
    let next = if more_parts {
        let part = response.result_part_number.unwrap_or(1);
        PollCursor {
            poller: poller.name.clone(),
            feed: poller.feed.clone(),
            end_label: label_text(reached),
            result: response.result_id.clone().map(|id| (id, part + 1)),
        }
    } else {
        // Some servers echo the request's (absent) end rather than the
        // bound of what they returned: the latest label then stands for it.
        let end = [response.inclusive_end, reached]
            .into_iter()
            .flatten()
            .max();
        PollCursor {
            poller: poller.name.clone(),
            feed: poller.feed.clone(),
            end_label: label_text(end),
            result: None,
        }
    };
    let blocks = response.content_blocks;
    let count = blocks.len();
    commit(poller, services, blocks, next).await?;
    metrics::counter!("taxiway_polled_blocks_total", "poller" => poller.name.clone())
        .increment(count as u64);
    Ok(more_parts)
}

async fn commit<S: Store + Clone>(
    poller: &PollerConfig,
    services: &Services<S>,
    blocks: Vec<ContentBlock>,
    cursor: PollCursor,
) -> Result<(), String> {
    let feeds = if poller.into.is_empty() {
        vec![poller.feed.clone()]
    } else {
        poller.into.clone()
    };
    let message = Message::new(
        new_message_id(Dialect::V11),
        Body::Inbox(InboxMessage {
            content_blocks: blocks,
            ..InboxMessage::default()
        }),
    );
    let intake = Intake {
        envelope: Envelope {
            message,
            origin: Origin {
                adapter: poller.name.clone(),
                identity: Identity::Anonymous,
                binding: WireBinding::TaxiiXml(poller.dialect),
            },
            received: Timestamp::now(),
            relay: Relay::default(),
        },
        feeds,
        dedup_key: None,
        replacing: None,
    };
    match services
        .accept_with(intake, Some(cursor))
        .await
        .map_err(|e| e.to_string())?
    {
        Accepted::Stored { .. } | Accepted::Dropped | Accepted::Duplicate => Ok(()),
        // Not advanced: what it brought waits until the configuration takes it.
        Accepted::Refused(reason) => Err(format!("the routes refuse what it brought: {reason}")),
        Accepted::Conflict(conflict) => Err(conflict.to_string()),
        Accepted::Unsupported(binding) => Err(format!(
            "no feed it fills accepts the content binding {binding}"
        )),
    }
}

fn poll_request(poller: &PollerConfig, begin: Option<Timestamp>) -> PollRequest {
    let mut selection = SubscriptionParameters {
        response_type: Some(ResponseType::Full),
        ..SubscriptionParameters::default()
    };
    if let Some(binding) = &poller.content_binding {
        selection.content_bindings = vec![ContentBinding::new(binding.clone())];
    }
    PollRequest {
        feed_name: poller.feed.clone(),
        exclusive_begin: begin,
        inclusive_end: None,
        subscription_id: None,
        parameters: Some(PollParameters {
            allow_asynch: Some(false),
            selection,
            delivery: None,
        }),
    }
}

fn parse_label(text: &str) -> Result<Timestamp, String> {
    text.parse()
        .map_err(|e| format!("the cursor's label {text:?} is not a timestamp: {e}"))
}

/// The cursor keeps an empty label for "from the beginning".
fn label_text(label: Option<Timestamp>) -> String {
    label.map(|l| l.to_string()).unwrap_or_default()
}
