//! What an ingress hands the router: a decoded message and where it came from.

use serde::{Deserialize, Serialize};

use super::{Dialect, Identity, Message, Timestamp};

/// A message on its way through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub message: Message,
    pub origin: Origin,
    pub received: Timestamp,
    /// The gateways this message went through before this one, oldest first
    /// (the relay hop record that prevents loops and echoes).
    pub hops: Vec<String>,
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
