//! The AMQP binding: TAXII core messages to and from a neutral AMQP 0-9-1
//! message (properties, header table, body), after the convention of
//! `shared/spec/amqp.md` §1 as `mappings/amqp.toml` spells it.
//!
//! The AMQP adapter turns [`AmqpMessage`] into its client's types and back;
//! nothing here does I/O. A TAXII message travels as its TAXII XML form, so
//! the body alone carries it whole; properties and headers repeat what
//! brokers route and filter on. A body that is not TAXII XML is a raw
//! payload (a STIX document a producer published as it is): it becomes an
//! inbox message of one content block, described by the headers.

mod codec;
mod mappings;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::bindings::taxii_xml::{ConversionNote, ParseError, SerializeError};
use crate::core::{Dialect, Message, MessageKind, Timestamp, WireBinding};

pub use codec::{decode, encode};
pub use mappings::{
    AmqpMappings, BodyMapping, HeaderMapping, PropertyMapping, SHORTSTR_MAX, ShortProperty,
    amqp_mappings,
};

/// An AMQP message as the codec sees it, free of any client's types.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AmqpMessage {
    pub properties: AmqpProperties,
    pub headers: BTreeMap<String, HeaderValue>,
    pub body: Vec<u8>,
}

/// The basic properties the codec reads or writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AmqpProperties {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub delivery_mode: Option<u8>,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    /// POSIX seconds.
    pub timestamp: Option<u64>,
    /// AMQP `type`.
    pub kind: Option<String>,
    pub app_id: Option<String>,
}

/// A header value. The adapter maps `LongString`/`ShortString` to `Text`, a
/// `FieldArray` of strings to `List`, and anything else to `Other` rendered
/// as text, so that a peer's odd header is reported rather than dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    Text(String),
    List(Vec<String>),
    Other(String),
}

/// What the AMQP message does not say by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeMeta {
    /// The feeds (collections) the content belongs to.
    pub feeds: Vec<String>,
    /// The binding the message first came in on.
    pub source: WireBinding,
    /// The gateways already traversed, oldest first, this one included if it
    /// is to be remembered downstream.
    pub hops: Vec<String>,
    /// This gateway instance's name.
    pub app_id: Option<String>,
    pub published: Timestamp,
}

/// An encoded message, and what converting it to the body's dialect changed
/// (nothing when a 1.x message goes out in 1.1, the default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub message: AmqpMessage,
    pub notes: Vec<ConversionNote>,
}

/// A decoded delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Always an inbox message.
    pub message: Message,
    /// The TAXII dialect of the body; `None` for a raw payload.
    pub dialect: Option<Dialect>,
    pub hops: Vec<String>,
    /// From the collection header; failing that, the inbox message's
    /// destinations. Empty only for a TAXII body that names none.
    pub feeds: Vec<String>,
}

/// Why a message could not be encoded or decoded. The text is short and
/// plain, meant for the `x-taxiway-reason` header of a dead-lettered message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmqpError {
    #[error("the body is {size} bytes, more than the {limit} accepted")]
    TooLarge { size: usize, limit: usize },
    #[error("the body is empty")]
    EmptyBody,
    #[error("the body is not UTF-8 (byte {at})")]
    NotUtf8 { at: usize },
    #[error("content encoding {0:?} is not supported")]
    UnsupportedEncoding(String),
    #[error("{header} names {value:?}, not a TAXII message binding understood here")]
    UnknownMessageBinding { header: String, value: String },
    #[error("malformed TAXII message: {}", .0.reason)]
    MalformedTaxii(ParseError),
    #[error("a TAXII {0} where an inbox message is expected")]
    NotInbox(MessageKind),
    #[error("no content binding: no {header} header and no known content type")]
    NoBinding { header: String },
    #[error("{header} names several content bindings for one raw payload")]
    SeveralBindings { header: String },
    #[error("no feed named: no {header} header")]
    NoFeed { header: String },
    #[error("header {header}: {reason}")]
    BadHeader { header: String, reason: String },
    #[error("cannot write the message as TAXII XML: {0}")]
    Serialize(#[from] SerializeError),
    #[error("{property} would be {len} bytes; AMQP allows {SHORTSTR_MAX}")]
    PropertyTooLong { property: &'static str, len: usize },
}
