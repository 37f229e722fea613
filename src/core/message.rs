//! The TAXII core messages, dialect-neutral.
//!
//! A 1.0 feed, a 1.1 collection and a draft feed are one [`FeedInfo`]; a draft
//! STIX message and a 1.x inbox message are one [`InboxMessage`]; a draft error
//! message and a 1.x status message are one [`StatusMessage`]. Poll bounds are
//! kept with one meaning whatever the dialect: the begin bound is exclusive and
//! the end bound inclusive; codecs translate the draft's and 1.0's inclusive
//! begin bounds at label resolution.

use serde::{Deserialize, Serialize};

use super::{Dialect, StatusType, Timestamp};

/// One TAXII message: the common header and the body of its type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub in_response_to: Option<String>,
    pub extended_headers: Vec<ExtendedHeader>,
    pub body: Body,
    /// An enveloped XML signature over the whole message, kept verbatim.
    pub signature: Option<XmlContent>,
}

impl Message {
    pub fn new(id: impl Into<String>, body: Body) -> Self {
        Message {
            id: id.into(),
            in_response_to: None,
            extended_headers: Vec::new(),
            body,
            signature: None,
        }
    }

    pub fn in_response_to(mut self, request_id: impl Into<String>) -> Self {
        self.in_response_to = Some(request_id.into());
        self
    }

    pub fn kind(&self) -> MessageKind {
        self.body.kind()
    }
}

/// What a message is, without its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    DiscoveryRequest,
    DiscoveryResponse,
    FeedInformationRequest,
    FeedInformationResponse,
    SubscriptionManagementRequest,
    SubscriptionManagementResponse,
    PollRequest,
    PollResponse,
    PollFulfillment,
    Inbox,
    Status,
    SubscriptionAlert,
}

impl MessageKind {
    pub const ALL: [MessageKind; 12] = [
        MessageKind::DiscoveryRequest,
        MessageKind::DiscoveryResponse,
        MessageKind::FeedInformationRequest,
        MessageKind::FeedInformationResponse,
        MessageKind::SubscriptionManagementRequest,
        MessageKind::SubscriptionManagementResponse,
        MessageKind::PollRequest,
        MessageKind::PollResponse,
        MessageKind::PollFulfillment,
        MessageKind::Inbox,
        MessageKind::Status,
        MessageKind::SubscriptionAlert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MessageKind::DiscoveryRequest => "discovery_request",
            MessageKind::DiscoveryResponse => "discovery_response",
            MessageKind::FeedInformationRequest => "feed_information_request",
            MessageKind::FeedInformationResponse => "feed_information_response",
            MessageKind::SubscriptionManagementRequest => "subscription_management_request",
            MessageKind::SubscriptionManagementResponse => "subscription_management_response",
            MessageKind::PollRequest => "poll_request",
            MessageKind::PollResponse => "poll_response",
            MessageKind::PollFulfillment => "poll_fulfillment",
            MessageKind::Inbox => "inbox_message",
            MessageKind::Status => "status_message",
            MessageKind::SubscriptionAlert => "subscription_alert",
        }
    }

    /// Whether this message answers a request (and so names it in `in_response_to`).
    pub fn is_response(self) -> bool {
        matches!(
            self,
            MessageKind::DiscoveryResponse
                | MessageKind::FeedInformationResponse
                | MessageKind::SubscriptionManagementResponse
                | MessageKind::PollResponse
                | MessageKind::Status
        )
    }

    /// Whether a dialect has this message type at all.
    pub fn exists_in(self, dialect: Dialect) -> bool {
        match self {
            MessageKind::PollFulfillment => dialect == Dialect::V11,
            MessageKind::SubscriptionAlert => dialect == Dialect::Draft,
            _ => true,
        }
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    DiscoveryRequest,
    DiscoveryResponse(DiscoveryResponse),
    FeedInformationRequest,
    FeedInformationResponse(FeedInformationResponse),
    SubscriptionManagementRequest(SubscriptionRequest),
    SubscriptionManagementResponse(SubscriptionResponse),
    PollRequest(PollRequest),
    PollResponse(PollResponse),
    PollFulfillment(PollFulfillment),
    Inbox(InboxMessage),
    Status(StatusMessage),
    SubscriptionAlert(SubscriptionAlert),
}

impl Body {
    pub fn kind(&self) -> MessageKind {
        match self {
            Body::DiscoveryRequest => MessageKind::DiscoveryRequest,
            Body::DiscoveryResponse(_) => MessageKind::DiscoveryResponse,
            Body::FeedInformationRequest => MessageKind::FeedInformationRequest,
            Body::FeedInformationResponse(_) => MessageKind::FeedInformationResponse,
            Body::SubscriptionManagementRequest(_) => MessageKind::SubscriptionManagementRequest,
            Body::SubscriptionManagementResponse(_) => MessageKind::SubscriptionManagementResponse,
            Body::PollRequest(_) => MessageKind::PollRequest,
            Body::PollResponse(_) => MessageKind::PollResponse,
            Body::PollFulfillment(_) => MessageKind::PollFulfillment,
            Body::Inbox(_) => MessageKind::Inbox,
            Body::Status(_) => MessageKind::Status,
            Body::SubscriptionAlert(_) => MessageKind::SubscriptionAlert,
        }
    }
}

/// A header a sender added. `name` is a URI; the draft dialect's element
/// headers are named `namespace#local-name`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedHeader {
    pub name: String,
    pub value: XmlContent,
}

/// Mixed XML content kept as received.
///
/// `Text` holds character data only, unescaped. `Xml` holds markup exactly as
/// received, except that every top-level element re-declares the namespace
/// bindings it inherited, so that it stands alone as a well-formed document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum XmlContent {
    Text(String),
    Xml(String),
}

impl XmlContent {
    pub fn as_str(&self) -> &str {
        match self {
            XmlContent::Text(text) | XmlContent::Xml(text) => text,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }
}

impl Default for XmlContent {
    fn default() -> Self {
        XmlContent::Text(String::new())
    }
}

/// The protocol a service or push speaks.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolBinding {
    Http,
    Https,
    Other(String),
}

/// A message binding: one of the three TAXII XML dialects, or a third party's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageBinding {
    Xml(Dialect),
    Other(String),
}

/// The version of the TAXII services a service instance offers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServicesVersion {
    Taxii(Dialect),
    Other(String),
}

/// A content binding id in its 1.x form (`urn:stix.mitre.org:xml:1.1.1`) and
/// its subtypes (1.1).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContentBinding {
    pub id: String,
    pub subtypes: Vec<String>,
}

impl ContentBinding {
    pub fn new(id: impl Into<String>) -> Self {
        ContentBinding {
            id: id.into(),
            subtypes: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    Discovery,
    FeedManagement,
    Inbox,
    Poll,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryResponse {
    pub services: Vec<ServiceInstance>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    pub service_type: ServiceType,
    pub version: ServicesVersion,
    pub available: Option<bool>,
    pub protocol: ProtocolBinding,
    pub address: String,
    pub message_bindings: Vec<MessageBinding>,
    pub content_bindings: Vec<ContentBinding>,
    pub supported_queries: Vec<Query>,
    pub message: Option<String>,
}

/// A query format and its expression or description (1.1), kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    pub format_id: String,
    pub content: XmlContent,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedInformationResponse {
    pub feeds: Vec<FeedInfo>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectionType {
    DataFeed,
    DataSet,
}

/// A hosted feed (1.0 Data Feed, 1.1 Data Collection, draft feed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedInfo {
    pub name: String,
    pub collection_type: Option<CollectionType>,
    pub available: Option<bool>,
    pub description: String,
    pub volume: Option<u64>,
    pub content_bindings: Vec<ContentBinding>,
    pub push_methods: Vec<PushMethod>,
    pub polling_services: Vec<Endpoint>,
    pub subscription_services: Vec<Endpoint>,
    pub receiving_inboxes: Vec<InboxEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushMethod {
    pub protocol: ProtocolBinding,
    pub message_bindings: Vec<MessageBinding>,
}

/// A service address. The draft names polling as a delivery method without an
/// address or protocol, hence the options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub protocol: Option<ProtocolBinding>,
    pub address: Option<String>,
    pub message_bindings: Vec<MessageBinding>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEndpoint {
    pub endpoint: Endpoint,
    pub content_bindings: Vec<ContentBinding>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionAction {
    Subscribe,
    Unsubscribe,
    Pause,
    Resume,
    Modify,
    Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    Full,
    CountOnly,
}

/// What a subscription or a poll selects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionParameters {
    pub response_type: Option<ResponseType>,
    pub content_bindings: Vec<ContentBinding>,
    pub query: Option<Query>,
}

/// Where pushed content goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushParameters {
    pub protocol: ProtocolBinding,
    pub address: String,
    pub message_binding: MessageBinding,
}

/// How a subscriber receives content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Push(PushParameters),
    /// The subscriber polls; the draft names the message binding it will poll with.
    Poll {
        message_binding: Option<MessageBinding>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRequest {
    pub feed_name: String,
    pub action: SubscriptionAction,
    pub subscription_id: Option<String>,
    pub parameters: Option<SubscriptionParameters>,
    pub delivery: Option<Delivery>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Paused,
    Unsubscribed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionResponse {
    pub feed_name: String,
    pub message: Option<String>,
    pub subscriptions: Vec<SubscriptionRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub id: String,
    pub status: Option<SubscriptionStatus>,
    pub parameters: Option<SubscriptionParameters>,
    pub delivery: Option<Delivery>,
    pub poll_instances: Vec<Endpoint>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollParameters {
    pub allow_asynch: Option<bool>,
    pub selection: SubscriptionParameters,
    pub delivery: Option<PushParameters>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    pub feed_name: String,
    /// Content labelled strictly after this instant.
    pub exclusive_begin: Option<Timestamp>,
    /// Content labelled at or before this instant.
    pub inclusive_end: Option<Timestamp>,
    pub subscription_id: Option<String>,
    pub parameters: Option<PollParameters>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCount {
    pub count: u64,
    pub partial: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResponse {
    /// Absent in the draft dialect, which names no feed in a poll response.
    pub feed_name: Option<String>,
    pub more: Option<bool>,
    pub result_id: Option<String>,
    pub result_part_number: Option<u64>,
    pub subscription_id: Option<String>,
    pub exclusive_begin: Option<Timestamp>,
    pub inclusive_end: Option<Timestamp>,
    pub record_count: Option<RecordCount>,
    pub message: Option<String>,
    pub content_blocks: Vec<ContentBlock>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollFulfillment {
    pub feed_name: String,
    pub result_id: String,
    pub result_part_number: Option<u64>,
}

/// Where pushed content came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSubscription {
    /// Absent in the draft dialect, which names only the subscription.
    pub feed_name: Option<String>,
    pub subscription_id: Option<String>,
    pub exclusive_begin: Option<Timestamp>,
    pub inclusive_end: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxMessage {
    pub result_id: Option<String>,
    pub destination_feeds: Vec<String>,
    pub message: Option<String>,
    pub source_subscription: Option<SourceSubscription>,
    pub record_count: Option<RecordCount>,
    pub content_blocks: Vec<ContentBlock>,
}

/// One piece of threat data and its label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentBlock {
    pub binding: ContentBinding,
    pub content: XmlContent,
    pub timestamp_label: Option<Timestamp>,
    pub message: Option<String>,
    pub padding: Option<String>,
    pub signature: Option<XmlContent>,
}

impl ContentBlock {
    pub fn new(binding: ContentBinding, content: XmlContent) -> Self {
        ContentBlock {
            binding,
            content,
            timestamp_label: None,
            message: None,
            padding: None,
            signature: None,
        }
    }
}

/// A named status detail (1.1); its value is mixed content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetail {
    pub name: String,
    pub value: XmlContent,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessage {
    pub status_type: StatusType,
    /// 1.1 named details.
    pub details: Vec<StatusDetail>,
    /// Draft and 1.0 detail text.
    pub detail_text: Option<String>,
    pub message: Option<String>,
}

impl StatusMessage {
    pub fn new(status_type: StatusType, message: impl Into<String>) -> Self {
        StatusMessage {
            status_type,
            details: Vec::new(),
            detail_text: None,
            message: Some(message.into()),
        }
    }
}

/// The draft's notice that a subscription changes (draft schema only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionAlert {
    pub feed_name: String,
    pub action: SubscriptionAction,
    pub effective_time: Timestamp,
    pub status_type: Option<StatusType>,
    pub subscription_id: String,
    pub subscription: Option<Delivery>,
    pub content_binding: Option<ContentBinding>,
    pub message: Option<String>,
}
