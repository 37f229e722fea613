//! The gateway's own vocabulary: TAXII core messages, the envelope they
//! travel in, timestamps and status types. Everything behind the adapters
//! works on these types only, so this module depends on nothing of ours and
//! on no I/O.

mod envelope;
mod message;
mod status;
mod timestamp;

pub use envelope::{Envelope, HOPS_HEADER, ORIGIN_HEADER, Origin, Relay, WireBinding};
pub use message::*;
pub use status::StatusType;
pub use timestamp::{Timestamp, TimestampError};

use serde::{Deserialize, Serialize};

/// The three XML dialects of TAXII 1.x that peers send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Dialect {
    /// The MITRE draft of 2012 used by the seed ("Sample Usage of TAXII").
    #[serde(rename = "draft")]
    Draft,
    #[serde(rename = "1.0")]
    V10,
    #[serde(rename = "1.1")]
    V11,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::Draft, Dialect::V10, Dialect::V11];

    /// The short name used on the command line and in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Draft => "draft",
            Dialect::V10 => "1.0",
            Dialect::V11 => "1.1",
        }
    }
}

impl std::fmt::Display for Dialect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who sent a request, as its ingress adapter authenticated it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Anonymous,
    Named(String),
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown TAXII dialect {s:?}: expected draft, 1.0 or 1.1"))
    }
}
