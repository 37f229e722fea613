//! What an ingress hands the router: a decoded message and where it came from.

use serde::{Deserialize, Serialize};

use super::{Dialect, ExtendedHeader, Identity, Message, Timestamp, XmlContent};

/// The extended header that carries a relayed message's hop record: the ids
/// of the gateways it went through, space-separated, oldest first.
pub const HOPS_HEADER: &str = "urn:taxiway:relay#hops";
/// The extended header that carries the id a relayed message had at the
/// first gateway, whatever ids later dialects gave it: the key that stops a
/// message reaching a gateway twice through a mesh.
pub const ORIGIN_HEADER: &str = "urn:taxiway:relay#origin";

/// The relay record of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relay {
    pub hops: Vec<String>,
    pub origin_id: Option<String>,
}

impl Relay {
    /// Takes the relay headers off a message.
    pub fn take_from(message: &mut Message) -> Relay {
        let mut relay = Relay::default();
        message.extended_headers.retain(|header| {
            let value = || header.value.as_str().trim().to_owned();
            if header.name == HOPS_HEADER {
                relay.hops = value().split_whitespace().map(str::to_owned).collect();
                false
            } else if header.name == ORIGIN_HEADER {
                relay.origin_id = Some(value()).filter(|id| !id.is_empty());
                false
            } else {
                true
            }
        });
        relay
    }

    /// Puts the relay headers on a message that leaves the gateway.
    pub fn put_on(&self, message: &mut Message) {
        message
            .extended_headers
            .retain(|h| h.name != HOPS_HEADER && h.name != ORIGIN_HEADER);
        if !self.hops.is_empty() {
            message.extended_headers.push(ExtendedHeader {
                name: HOPS_HEADER.to_owned(),
                value: XmlContent::Text(self.hops.join(" ")),
            });
        }
        if let Some(origin) = &self.origin_id {
            message.extended_headers.push(ExtendedHeader {
                name: ORIGIN_HEADER.to_owned(),
                value: XmlContent::Text(origin.clone()),
            });
        }
    }
}

/// A message on its way through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub message: Message,
    pub origin: Origin,
    pub received: Timestamp,
    /// The gateways this message went through before this one, and its id
    /// at the first: what prevents loops, echoes and double storing.
    pub relay: Relay,
}

/// Where a message came in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The ingress that decoded it: `taxii_http`, or the configured name of
    /// an AMQP consumer or a poller.
    pub adapter: String,
    /// Who sent it, as the ingress authenticated it.
    pub identity: Identity,
    pub binding: WireBinding,
}

/// The wire form a message arrived in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireBinding {
    TaxiiXml(Dialect),
    Amqp,
    Rolie,
}

impl WireBinding {
    /// The name routes and AMQP headers use: `draft`, `1.0`, `1.1`, `amqp`, `rolie`.
    pub fn name(self) -> &'static str {
        match self {
            WireBinding::TaxiiXml(dialect) => dialect.name(),
            WireBinding::Amqp => "amqp",
            WireBinding::Rolie => "rolie",
        }
    }
}
