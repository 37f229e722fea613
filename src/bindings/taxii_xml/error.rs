//! What can go wrong reading or writing a TAXII XML message, each failure with
//! the status type a TAXII service answers it with.

use crate::core::{Dialect, MessageKind, StatusType};

/// A message that could not be read. `dialect` and `message_id` are filled in
/// as far as they were read, so that the answer can be given in the
/// requester's dialect and refer to its message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct ParseError {
    pub status: StatusType,
    pub reason: String,
    pub dialect: Option<Dialect>,
    pub message_id: Option<String>,
}

impl ParseError {
    pub fn bad_message(reason: impl Into<String>) -> Self {
        Self::new(StatusType::BadMessage, reason)
    }

    pub fn new(status: StatusType, reason: impl Into<String>) -> Self {
        ParseError {
            status,
            reason: reason.into(),
            dialect: None,
            message_id: None,
        }
    }

    pub(crate) fn in_message(mut self, dialect: Dialect, message_id: Option<&str>) -> Self {
        self.dialect.get_or_insert(dialect);
        if self.message_id.is_none() {
            self.message_id = message_id.map(str::to_owned);
        }
        self
    }
}

/// A message that a dialect cannot express as it stands; [`super::convert`]
/// first turns a message into one that it can.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SerializeError {
    #[error("the {dialect} dialect has no {kind}")]
    NoSuchMessage { dialect: Dialect, kind: MessageKind },
    #[error("the {dialect} dialect cannot express {what}")]
    Inexpressible { dialect: Dialect, what: String },
}
