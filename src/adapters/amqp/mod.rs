//! AMQP 0-9-1 (RabbitMQ): an egress that publishes the outbox rows of one
//! destination to an exchange ([`egress`]), and an ingress that consumes a
//! queue into the hosted feeds and routes ([`ingress`]).
//!
//! Each task owns its connection and opens it again, with capped backoff,
//! whenever the broker goes away; lapin's own recovery is not used, since a
//! publish made while it gives up can hang forever (shared/CRATES.md). Every
//! broker operation runs under a timeout for the same reason. Conversions
//! between lapin's types and the codec's neutral [`AmqpMessage`] live here.

pub mod egress;
pub mod ingress;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::watch;

use crate::bindings::amqp::{AmqpMessage, AmqpProperties, HeaderValue};

/// The longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one request to the broker may take (declare, qos, publish,
/// ack): past it the connection is taken for dead.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);
/// The first wait before connecting again; it doubles up to the cap.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Why the link to the broker cannot be used (any more).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{what} failed: {source}")]
    Amqp {
        what: &'static str,
        source: lapin::Error,
    },
    #[error("{what}: no answer within {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("the channel is closed")]
    Closed,
}

/// One broker request, bounded by [`OPERATION_TIMEOUT`].
async fn step<T>(
    what: &'static str,
    request: impl Future<Output = lapin::Result<T>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(OPERATION_TIMEOUT, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(LinkError::Amqp { what, source }),
        Err(_) => Err(LinkError::Timeout {
            what,
            after: OPERATION_TIMEOUT,
        }),
    }
}

/// A fresh connection, named after the adapter so that an operator can tell
/// it apart in the broker's management view.
async fn connect(uri: &str, adapter: &str) -> Result<Connection, LinkError> {
    let properties = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("taxiway {adapter}")));
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(uri, properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(LinkError::Amqp {
            what: "connecting",
            source,
        }),
        Err(_) => Err(LinkError::Timeout {
            what: "connecting",
            after: CONNECT_TIMEOUT,
        }),
    }
}

/// Closes a connection politely, without waiting long for a broker that
/// may be gone already.
async fn close(connection: &Connection) {
    let closing = connection.close(200, ShortString::from("taxiway closes the link"));
    let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
}

/// The wait between connection attempts: doubles after each failure, up to
/// a cap, and starts over once a connection worked.
struct Reconnect {
    next: Duration,
}

impl Reconnect {
    fn new() -> Reconnect {
        Reconnect {
            next: RECONNECT_FIRST,
        }
    }

    fn reset(&mut self) {
        self.next = RECONNECT_FIRST;
    }

    /// Waits; true when the gateway stops meanwhile.
    async fn pause(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        let wait = self.next;
        self.next = (self.next * 2).min(RECONNECT_MAX);
        tokio::select! {
            _ = tokio::time::sleep(wait) => stopping(stop),
            _ = stop.changed() => true,
        }
    }
}

/// Whether the gateway is stopping.
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// A broker address fit for logs: without the password.
fn redacted(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => uri.to_owned(),
    }
}

/// A delivery as the codec reads it.
fn neutral_message(properties: &BasicProperties, body: &[u8]) -> AmqpMessage {
    let text = |value: &Option<ShortString>| value.as_ref().map(|v| v.as_str().to_owned());
    let headers = properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), header_value(value)))
                .collect()
        })
        .unwrap_or_default();
    AmqpMessage {
        properties: AmqpProperties {
            content_type: text(properties.content_type()),
            content_encoding: text(properties.content_encoding()),
            delivery_mode: *properties.delivery_mode(),
            message_id: text(properties.message_id()),
            correlation_id: text(properties.correlation_id()),
            timestamp: *properties.timestamp(),
            kind: text(properties.kind()),
            app_id: text(properties.app_id()),
        },
        headers,
        body: body.to_vec(),
    }
}

/// Strings as text, arrays of strings as lists; anything else rendered as
/// text, so that the codec can name an odd header rather than miss it.
fn header_value(value: &AMQPValue) -> HeaderValue {
    match value {
        AMQPValue::LongString(text) => match std::str::from_utf8(text.as_bytes()) {
            Ok(text) => HeaderValue::Text(text.to_owned()),
            Err(_) => HeaderValue::Other(text.to_string()),
        },
        AMQPValue::ShortString(text) => HeaderValue::Text(text.as_str().to_owned()),
        AMQPValue::FieldArray(values) => {
            let strings: Option<Vec<String>> = values
                .as_slice()
                .iter()
                .map(|value| match header_value(value) {
                    HeaderValue::Text(text) => Some(text),
                    HeaderValue::List(_) | HeaderValue::Other(_) => None,
                })
                .collect();
            match strings {
                Some(strings) => HeaderValue::List(strings),
                None => HeaderValue::Other(format!("{values:?}")),
            }
        }
        AMQPValue::Boolean(b) => HeaderValue::Other(b.to_string()),
        AMQPValue::ShortShortInt(n) => HeaderValue::Other(n.to_string()),
        AMQPValue::ShortShortUInt(n) => HeaderValue::Other(n.to_string()),
        AMQPValue::ShortInt(n) => HeaderValue::Other(n.to_string()),
        AMQPValue::ShortUInt(n) => HeaderValue::Other(n.to_string()),
        AMQPValue::LongInt(n) => HeaderValue::Other(n.to_string()),
        AMQPValue::LongUInt(n) => HeaderValue::Other(n.to_string()),
        AMQPValue::LongLongInt(n) => HeaderValue::Other(n.to_string()),
        AMQPValue::Timestamp(n) => HeaderValue::Other(n.to_string()),
        other => HeaderValue::Other(format!("{other:?}")),
    }
}

/// Why a neutral message cannot be written with lapin's types.
#[derive(Debug, thiserror::Error)]
#[error("{field} is {len} bytes; AMQP allows 255")]
pub struct TooLong {
    field: String,
    len: usize,
}

fn short(field: &str, value: &str) -> Result<ShortString, TooLong> {
    ShortString::try_new(value).map_err(|_| TooLong {
        field: field.to_owned(),
        len: value.len(),
    })
}

/// The properties (headers included) of a message the codec wrote.
fn lapin_properties(message: &AmqpMessage) -> Result<BasicProperties, TooLong> {
    let p = &message.properties;
    let mut properties = BasicProperties::default();
    if let Some(value) = &p.content_type {
        properties = properties.with_content_type(short("content_type", value)?);
    }
    if let Some(value) = &p.content_encoding {
        properties = properties.with_content_encoding(short("content_encoding", value)?);
    }
    if let Some(mode) = p.delivery_mode {
        properties = properties.with_delivery_mode(mode);
    }
    if let Some(value) = &p.message_id {
        properties = properties.with_message_id(short("message_id", value)?);
    }
    if let Some(value) = &p.correlation_id {
        properties = properties.with_correlation_id(short("correlation_id", value)?);
    }
    if let Some(seconds) = p.timestamp {
        properties = properties.with_timestamp(seconds);
    }
    if let Some(value) = &p.kind {
        properties = properties.with_type(short("type", value)?);
    }
    if let Some(value) = &p.app_id {
        properties = properties.with_app_id(short("app_id", value)?);
    }
    Ok(properties.with_headers(field_table(&message.headers)?))
}

fn field_table(headers: &BTreeMap<String, HeaderValue>) -> Result<FieldTable, TooLong> {
    let mut table = FieldTable::default();
    for (name, value) in headers {
        let value = match value {
            HeaderValue::Text(text) | HeaderValue::Other(text) => {
                AMQPValue::LongString(LongString::from(text.as_str()))
            }
            HeaderValue::List(values) => AMQPValue::FieldArray(FieldArray::from(
                values
                    .iter()
                    .map(|value| AMQPValue::LongString(LongString::from(value.as_str())))
                    .collect::<Vec<_>>(),
            )),
        };
        table.insert(short("a header name", name)?, value);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_lapin_types() {
        let mut message = AmqpMessage::default();
        message.properties.message_id = Some("m-1".to_owned());
        message.properties.delivery_mode = Some(2);
        message.properties.timestamp = Some(1_700_000_000);
        message.headers.insert(
            "x-taxii-collection".to_owned(),
            HeaderValue::Text("Gold".to_owned()),
        );
        message.headers.insert(
            "x-taxii-hops".to_owned(),
            HeaderValue::List(vec!["a".to_owned(), "b".to_owned()]),
        );
        message.body = b"<x/>".to_vec();
        let properties = lapin_properties(&message).unwrap();
        assert_eq!(neutral_message(&properties, b"<x/>"), message);
    }

    #[test]
    fn odd_header_values_are_reported_not_dropped() {
        assert_eq!(
            header_value(&AMQPValue::LongInt(7)),
            HeaderValue::Other("7".to_owned())
        );
        let mixed = FieldArray::from(vec![
            AMQPValue::LongString("a".into()),
            AMQPValue::Boolean(true),
        ]);
        assert!(matches!(
            header_value(&AMQPValue::FieldArray(mixed)),
            HeaderValue::Other(_)
        ));
        assert_eq!(
            header_value(&AMQPValue::LongString(LongString::from(vec![0xff, 0x41]))),
            HeaderValue::Other("\u{fffd}A".to_owned())
        );
    }

    #[test]
    fn a_name_longer_than_a_shortstr_is_an_error_not_a_panic() {
        let mut message = AmqpMessage::default();
        message
            .headers
            .insert("x".repeat(300), HeaderValue::Text(String::new()));
        assert!(lapin_properties(&message).is_err());
        message.headers.clear();
        message.properties.kind = Some("t".repeat(256));
        assert!(lapin_properties(&message).is_err());
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redacted("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redacted("amqp://localhost"), "amqp://localhost");
    }
}
