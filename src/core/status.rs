//! Status types of all three dialects under one name each. Their spellings on
//! the wire (`BAD-MESSAGE`, `BAD_MESSAGE`) live in `mappings/taxii.toml`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusType {
    AsynchronousPollError,
    BadMessage,
    Denied,
    DestinationCollectionError,
    Failure,
    InvalidResponsePart,
    NetworkError,
    NotFound,
    Pending,
    PollingUnsupported,
    /// Draft only: the server cannot honour the requested encryption.
    ProtectionUnsupported,
    Retry,
    Success,
    Unauthorized,
    UnrecognizedValue,
    UnsupportedContent,
    UnsupportedMessage,
    UnsupportedProtocol,
    UnsupportedQuery,
    UnsupportedService,
    /// A third party's status type, spelled as received.
    Other(String),
}

impl StatusType {
    /// The name used in this crate's own output (`bad_message`, ...).
    pub fn name(&self) -> &str {
        match self {
            StatusType::AsynchronousPollError => "asynchronous_poll_error",
            StatusType::BadMessage => "bad_message",
            StatusType::Denied => "denied",
            StatusType::DestinationCollectionError => "destination_collection_error",
            StatusType::Failure => "failure",
            StatusType::InvalidResponsePart => "invalid_response_part",
            StatusType::NetworkError => "network_error",
            StatusType::NotFound => "not_found",
            StatusType::Pending => "pending",
            StatusType::PollingUnsupported => "polling_unsupported",
            StatusType::ProtectionUnsupported => "protection_unsupported",
            StatusType::Retry => "retry",
            StatusType::Success => "success",
            StatusType::Unauthorized => "unauthorized",
            StatusType::UnrecognizedValue => "unrecognized_value",
            StatusType::UnsupportedContent => "unsupported_content",
            StatusType::UnsupportedMessage => "unsupported_message",
            StatusType::UnsupportedProtocol => "unsupported_protocol",
            StatusType::UnsupportedQuery => "unsupported_query",
            StatusType::UnsupportedService => "unsupported_service",
            StatusType::Other(name) => name,
        }
    }
}

impl std::fmt::Display for StatusType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
