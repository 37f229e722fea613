//! Writing a core [`Message`] in one of the three dialects.
//!
//! The writer puts down what the dialect can hold and nothing else; a field
//! the dialect has no place for is left out. [`super::convert`] says what that
//! is before anything is written, and fixes what can be fixed (ids, bounds).

use super::error::SerializeError;
use super::ids::{Ids, ids};
use super::reader::{escape_attribute_into, escape_into, mentions_prefix};
use crate::core::*;

/// The binding a draft message without content blocks names.
pub(crate) const DRAFT_DEFAULT_BINDING: &str = "urn:stix.mitre.org:xml:1.0";

/// Writes a message in a dialect.
pub fn serialize(message: &Message, dialect: Dialect) -> Result<String, SerializeError> {
    let mut writer = Writer::new(dialect, estimate(message));
    if !message.kind().exists_in(dialect) {
        return Err(SerializeError::NoSuchMessage {
            dialect,
            kind: message.kind(),
        });
    }
    writer.message(message)?;
    Ok(writer.out)
}

/// Writes a message with content blocks in two parts: up to and including
/// its blocks, and after them, so that more blocks can be written between.
pub(crate) fn serialize_split(
    message: &Message,
    dialect: Dialect,
) -> Result<(String, String), SerializeError> {
    if !message.kind().exists_in(dialect) {
        return Err(SerializeError::NoSuchMessage {
            dialect,
            kind: message.kind(),
        });
    }
    let mut writer = Writer::new(dialect, estimate(message));
    writer.split = Some(0);
    writer.message(message)?;
    let at = writer
        .split
        .filter(|at| *at > 0)
        .ok_or_else(|| SerializeError::Inexpressible {
            dialect,
            what: format!("a {} with content blocks to follow", message.kind()),
        })?;
    let tail = writer.out.split_off(at);
    Ok((writer.out, tail))
}

/// Writes content blocks the way a message of `dialect` carries them, for
/// the gap [`serialize_split`] leaves.
pub(crate) fn serialize_blocks(blocks: &[ContentBlock], dialect: Dialect) -> String {
    let mut writer = Writer::new(
        dialect,
        blocks.iter().map(|b| b.content.as_str().len() + 256).sum(),
    );
    if writer.draft() {
        writer.draft_documents(blocks);
    } else {
        for block in blocks {
            writer.content_block(block);
        }
    }
    writer.out
}

fn estimate(message: &Message) -> usize {
    let blocks = match &message.body {
        Body::PollResponse(response) => &response.content_blocks,
        Body::Inbox(inbox) => &inbox.content_blocks,
        _ => return 1024,
    };
    1024 + blocks
        .iter()
        .map(|b| b.content.as_str().len() + 256)
        .sum::<usize>()
}

struct Writer {
    out: String,
    dialect: Dialect,
    ids: &'static Ids,
    prefix: &'static str,
    v11: bool,
    /// Where the content blocks of the message end, once written.
    split: Option<usize>,
}

/// Names of one dialect, for the few places both shapes are written by one function.
struct Names {
    message_id: &'static str,
    in_response_to: &'static str,
}

impl Writer {
    fn new(dialect: Dialect, capacity: usize) -> Self {
        Writer {
            out: String::with_capacity(capacity),
            dialect,
            ids: ids(),
            prefix: if dialect == Dialect::V11 {
                "taxii_11"
            } else {
                "taxii"
            },
            v11: dialect == Dialect::V11,
            split: None,
        }
    }

    fn blocks_end_here(&mut self) {
        if self.split.is_some() {
            self.split = Some(self.out.len());
        }
    }

    fn draft(&self) -> bool {
        self.dialect == Dialect::Draft
    }

    fn names(&self) -> Names {
        if self.draft() {
            Names {
                message_id: "message-id",
                in_response_to: "in-response-to",
            }
        } else {
            Names {
                message_id: "message_id",
                in_response_to: "in_response_to",
            }
        }
    }

    fn open_tag(&mut self, name: &str, attributes: &[(&str, Option<&str>)]) {
        self.out.push('<');
        self.out.push_str(self.prefix);
        self.out.push(':');
        self.out.push_str(name);
        for (key, value) in attributes {
            if let Some(value) = value {
                self.out.push(' ');
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_attribute_into(&mut self.out, value);
                self.out.push('"');
            }
        }
    }

    fn start(&mut self, name: &str, attributes: &[(&str, Option<&str>)]) {
        self.open_tag(name, attributes);
        self.out.push('>');
    }

    fn empty(&mut self, name: &str, attributes: &[(&str, Option<&str>)]) {
        self.open_tag(name, attributes);
        self.out.push_str("/>");
    }

    fn end(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(self.prefix);
        self.out.push(':');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn text_element(&mut self, name: &str, text: &str) {
        self.start(name, &[]);
        escape_text_into(&mut self.out, text);
        self.end(name);
    }

    fn optional_text(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.text_element(name, text);
        }
    }

    fn content(&mut self, content: &XmlContent) {
        match content {
            XmlContent::Text(text) => escape_text_into(&mut self.out, text),
            XmlContent::Xml(xml) => self.out.push_str(xml),
        }
    }

    fn content_element(
        &mut self,
        name: &str,
        attributes: &[(&str, Option<&str>)],
        content: &XmlContent,
    ) {
        if content.is_empty() {
            self.empty(name, attributes);
        } else {
            self.start(name, attributes);
            self.content(content);
            self.end(name);
        }
    }

    fn root_name(&self, kind: MessageKind) -> &'static str {
        match (self.dialect, kind) {
            (Dialect::Draft, MessageKind::DiscoveryRequest) => "TAXII_DiscoveryRequest",
            (Dialect::Draft, MessageKind::DiscoveryResponse) => "TAXII_DiscoveryResponse",
            (Dialect::Draft, MessageKind::FeedInformationRequest) => "TAXII_FeedInformationRequest",
            (Dialect::Draft, MessageKind::FeedInformationResponse) => {
                "TAXII_FeedInformationResponse"
            }
            (Dialect::Draft, MessageKind::SubscriptionManagementRequest) => {
                "TAXII_SubscriptionManagementRequest"
            }
            (Dialect::Draft, MessageKind::SubscriptionManagementResponse) => {
                "TAXII_SubscriptionManagementResponse"
            }
            // Only the draft has alerts; `serialize` refuses them elsewhere.
            (_, MessageKind::SubscriptionAlert) => "TAXII_SubscriptionAlert",
            (Dialect::Draft, MessageKind::PollRequest) => "TAXII_PollRequest",
            (Dialect::Draft, MessageKind::PollResponse) => "TAXII_PollResponse",
            (Dialect::Draft, MessageKind::Inbox) => "TAXII_STIXMessage",
            (Dialect::Draft, MessageKind::Status) => "TAXII_ErrorMessage",
            (Dialect::V10, MessageKind::FeedInformationRequest) => "Feed_Information_Request",
            (Dialect::V10, MessageKind::FeedInformationResponse) => "Feed_Information_Response",
            (Dialect::V11, MessageKind::FeedInformationRequest) => "Collection_Information_Request",
            (Dialect::V11, MessageKind::FeedInformationResponse) => {
                "Collection_Information_Response"
            }
            (_, MessageKind::DiscoveryRequest) => "Discovery_Request",
            (_, MessageKind::DiscoveryResponse) => "Discovery_Response",
            (_, MessageKind::SubscriptionManagementRequest) => "Subscription_Management_Request",
            (_, MessageKind::SubscriptionManagementResponse) => "Subscription_Management_Response",
            (_, MessageKind::PollRequest) => "Poll_Request",
            (_, MessageKind::PollResponse) => "Poll_Response",
            (_, MessageKind::PollFulfillment) => "Poll_Fulfillment",
            (_, MessageKind::Inbox) => "Inbox_Message",
            (_, MessageKind::Status) => "Status_Message",
        }
    }

    fn feed_attribute(&self) -> &'static str {
        if self.v11 {
            "collection_name"
        } else {
            "feed_name"
        }
    }

    fn message(&mut self, message: &Message) -> Result<(), SerializeError> {
        let root = self.root_name(message.kind());
        let names = self.names();
        let namespace = &self.ids.dialect(self.dialect).namespace;
        self.out
            .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let mut attributes: Vec<(&str, Option<&str>)> = vec![
            (names.message_id, Some(&message.id)),
            (names.in_response_to, message.in_response_to.as_deref()),
        ];
        let text_values;
        match &message.body {
            Body::Status(status) if !self.draft() => {
                let status_type = self.status_wire(&status.status_type)?;
                attributes.push(("status_type", Some(status_type)));
            }
            Body::Status(status) => {
                let status_type = self.status_wire(&status.status_type)?;
                attributes.push(("error-type", Some(status_type)));
            }
            Body::SubscriptionManagementRequest(request) if !self.draft() => {
                let action = self.action_wire(request.action)?;
                attributes.push(("action", Some(action)));
                attributes.push((self.feed_attribute(), Some(&request.feed_name)));
                if !self.v11 {
                    attributes.push(("subscription_id", request.subscription_id.as_deref()));
                }
            }
            Body::SubscriptionManagementResponse(response) if !self.draft() => {
                attributes.push((self.feed_attribute(), Some(&response.feed_name)));
            }
            Body::PollRequest(request) if !self.draft() => {
                attributes.push((self.feed_attribute(), Some(&request.feed_name)));
                if !self.v11 {
                    attributes.push(("subscription_id", request.subscription_id.as_deref()));
                }
            }
            Body::PollResponse(response) if !self.draft() => {
                attributes.push((
                    self.feed_attribute(),
                    Some(response.feed_name.as_deref().unwrap_or("")),
                ));
                if self.v11 {
                    text_values = [
                        response.more.map(bool_text),
                        response.result_part_number.map(|n| n.to_string()),
                    ];
                    attributes.push(("more", text_values[0].as_deref()));
                    attributes.push(("result_id", response.result_id.as_deref()));
                    attributes.push(("result_part_number", text_values[1].as_deref()));
                } else {
                    attributes.push(("subscription_id", response.subscription_id.as_deref()));
                }
            }
            Body::PollFulfillment(fulfillment) => {
                text_values = [fulfillment.result_part_number.map(|n| n.to_string()), None];
                attributes.push(("collection_name", Some(&fulfillment.feed_name)));
                attributes.push(("result_id", Some(&fulfillment.result_id)));
                attributes.push(("result_part_number", text_values[0].as_deref()));
            }
            Body::Inbox(inbox) if self.v11 => {
                attributes.push(("result_id", inbox.result_id.as_deref()))
            }
            _ => {}
        }
        self.out.push('<');
        self.out.push_str(self.prefix);
        self.out.push(':');
        self.out.push_str(root);
        self.out.push_str(" xmlns:");
        self.out.push_str(self.prefix);
        self.out.push_str("=\"");
        self.out.push_str(namespace);
        self.out.push('"');
        for (key, value) in &attributes {
            if let Some(value) = value {
                self.out.push(' ');
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_attribute_into(&mut self.out, value);
                self.out.push('"');
            }
        }
        let mark = self.out.len();
        self.out.push('>');
        self.extended_headers(&message.extended_headers);
        self.body(&message.body)?;
        if let Some(signature) = &message.signature
            && !self.draft()
        {
            self.content(signature);
        }
        if self.out.len() == mark + 1 {
            self.out.truncate(mark);
            self.out.push_str("/>");
        } else {
            self.end(root);
        }
        self.out.push('\n');
        Ok(())
    }

    fn status_wire<'s>(&self, status: &'s StatusType) -> Result<&'s str, SerializeError> {
        let ids: &'static Ids = self.ids;
        ids.status_type_wire(self.dialect, status)
            .ok_or_else(|| SerializeError::Inexpressible {
                dialect: self.dialect,
                what: format!("the status type {status}"),
            })
    }

    fn action_wire(&self, action: SubscriptionAction) -> Result<&'static str, SerializeError> {
        self.ids
            .subscription_action_wire(self.dialect, action)
            .ok_or_else(|| SerializeError::Inexpressible {
                dialect: self.dialect,
                what: format!("the subscription action {action:?}"),
            })
    }

    fn extended_headers(&mut self, headers: &[ExtendedHeader]) {
        if headers.is_empty() {
            return;
        }
        if self.draft() {
            self.start("extended-headers", &[]);
            for header in headers {
                let (namespace, local) = split_header_name(&header.name);
                // The reader gives a header's markup every declaration in scope
                // that its text mentions: a prefix the value never mentions
                // keeps the value as it was.
                let prefix = if namespace.is_empty() {
                    String::new()
                } else {
                    let value = header.value.as_str();
                    let free = (0..)
                        .map(|n| {
                            if n == 0 {
                                "h".to_owned()
                            } else {
                                format!("h{n}")
                            }
                        })
                        .find(|p| !mentions_prefix(value, p))
                        .unwrap_or_default();
                    format!("{free}:")
                };
                self.out.push('<');
                self.out.push_str(&prefix);
                self.out.push_str(local);
                if let Some(declared) = prefix.strip_suffix(':') {
                    self.out.push_str(" xmlns:");
                    self.out.push_str(declared);
                    self.out.push_str("=\"");
                    escape_attribute_into(&mut self.out, namespace);
                    self.out.push('"');
                }
                self.out.push('>');
                self.content(&header.value);
                self.out.push_str("</");
                self.out.push_str(&prefix);
                self.out.push_str(local);
                self.out.push('>');
            }
            self.end("extended-headers");
        } else {
            self.start("Extended_Headers", &[]);
            for header in headers {
                self.content_element(
                    "Extended_Header",
                    &[("name", Some(&header.name))],
                    &header.value,
                );
            }
            self.end("Extended_Headers");
        }
    }

    fn body(&mut self, body: &Body) -> Result<(), SerializeError> {
        if self.draft() {
            return self.draft_body(body);
        }
        match body {
            Body::DiscoveryRequest | Body::FeedInformationRequest | Body::PollFulfillment(_) => {}
            Body::DiscoveryResponse(response) => {
                for service in &response.services {
                    self.service_instance(service);
                }
            }
            Body::FeedInformationResponse(response) => {
                for feed in &response.feeds {
                    self.feed(feed);
                }
            }
            Body::Status(status) => {
                if self.v11 {
                    if !status.details.is_empty() {
                        self.start("Status_Detail", &[]);
                        for detail in &status.details {
                            self.content_element(
                                "Detail",
                                &[("name", Some(&detail.name))],
                                &detail.value,
                            );
                        }
                        self.end("Status_Detail");
                    }
                } else {
                    self.optional_text("Status_Detail", status.detail_text.as_deref());
                }
                self.optional_text("Message", status.message.as_deref());
            }
            Body::SubscriptionManagementRequest(request) => {
                if self.v11 {
                    self.optional_text("Subscription_ID", request.subscription_id.as_deref());
                    if let Some(parameters) = &request.parameters {
                        self.subscription_parameters("Subscription_Parameters", parameters);
                    }
                }
                if let Some(Delivery::Push(push)) = &request.delivery {
                    let bindings = request
                        .parameters
                        .as_ref()
                        .map(|p| p.content_bindings.as_slice());
                    self.push_parameters("Push_Parameters", push, bindings.unwrap_or_default());
                }
            }
            Body::SubscriptionManagementResponse(response) => {
                self.optional_text("Message", response.message.as_deref());
                for record in &response.subscriptions {
                    self.subscription_record(record);
                }
            }
            Body::PollRequest(request) => {
                self.optional_timestamp(
                    "Exclusive_Begin_Timestamp",
                    request.exclusive_begin.as_ref(),
                );
                self.optional_timestamp("Inclusive_End_Timestamp", request.inclusive_end.as_ref());
                if self.v11 {
                    self.optional_text("Subscription_ID", request.subscription_id.as_deref());
                    if let Some(parameters) = &request.parameters {
                        self.poll_parameters(parameters);
                    }
                } else if let Some(parameters) = &request.parameters {
                    for binding in &parameters.selection.content_bindings {
                        self.content_binding("Content_Binding", binding);
                    }
                }
            }
            Body::PollResponse(response) => {
                if self.v11 {
                    self.optional_text("Subscription_ID", response.subscription_id.as_deref());
                    self.optional_timestamp(
                        "Exclusive_Begin_Timestamp",
                        response.exclusive_begin.as_ref(),
                    );
                    self.optional_timestamp(
                        "Inclusive_End_Timestamp",
                        response.inclusive_end.as_ref(),
                    );
                    self.record_count(response.record_count.as_ref());
                    self.optional_text("Message", response.message.as_deref());
                } else {
                    self.optional_text("Message", response.message.as_deref());
                    let begin = response.exclusive_begin.map(|b| b.shifted_nanos(1_000));
                    self.optional_timestamp("Inclusive_Begin_Timestamp", begin.as_ref());
                    self.optional_timestamp(
                        "Inclusive_End_Timestamp",
                        response.inclusive_end.as_ref(),
                    );
                }
                for block in &response.content_blocks {
                    self.content_block(block);
                }
                self.blocks_end_here();
            }
            Body::Inbox(inbox) => {
                if self.v11 {
                    for name in &inbox.destination_feeds {
                        self.text_element("Destination_Collection_Name", name);
                    }
                }
                self.optional_text("Message", inbox.message.as_deref());
                if let Some(source) = &inbox.source_subscription {
                    self.source_subscription(source);
                }
                if self.v11 {
                    self.record_count(inbox.record_count.as_ref());
                }
                for block in &inbox.content_blocks {
                    self.content_block(block);
                }
                self.blocks_end_here();
            }
            Body::SubscriptionAlert(_) => {}
        }
        Ok(())
    }

    fn optional_timestamp(&mut self, name: &str, timestamp: Option<&Timestamp>) {
        if let Some(timestamp) = timestamp {
            self.text_element(name, &timestamp.to_string());
        }
    }

    fn record_count(&mut self, count: Option<&RecordCount>) {
        if let Some(count) = count {
            let partial = count.partial.map(bool_text);
            self.start("Record_Count", &[("partial_count", partial.as_deref())]);
            self.out.push_str(&count.count.to_string());
            self.end("Record_Count");
        }
    }

    fn protocol(&mut self, name: &str, protocol: &ProtocolBinding) {
        let wire = self.ids.protocol_wire(self.dialect, protocol);
        self.text_element(name, wire);
    }

    fn message_bindings(&mut self, name: &str, bindings: &[MessageBinding]) {
        for binding in bindings {
            let wire = self.ids.message_binding_wire(binding);
            self.text_element(name, wire);
        }
    }

    fn content_binding(&mut self, name: &str, binding: &ContentBinding) {
        if self.v11 {
            if binding.subtypes.is_empty() {
                self.empty(name, &[("binding_id", Some(&binding.id))]);
            } else {
                self.start(name, &[("binding_id", Some(&binding.id))]);
                for subtype in &binding.subtypes {
                    self.empty("Subtype", &[("subtype_id", Some(subtype))]);
                }
                self.end(name);
            }
        } else {
            let wire = self.ids.content_binding_wire(self.dialect, binding);
            self.text_element(name, &wire);
        }
    }

    fn service_instance(&mut self, service: &ServiceInstance) {
        let service_type = self
            .ids
            .service_type_wire(self.dialect, &service.service_type);
        let version = self.ids.services_version_wire(&service.version);
        let available = service.available.map(bool_text);
        self.start(
            "Service_Instance",
            &[
                ("service_type", Some(service_type)),
                ("service_version", Some(version)),
                ("available", available.as_deref()),
            ],
        );
        self.protocol("Protocol_Binding", &service.protocol);
        self.text_element("Address", &service.address);
        self.message_bindings("Message_Binding", &service.message_bindings);
        if self.v11 {
            for query in &service.supported_queries {
                self.content_element(
                    "Supported_Query",
                    &[("format_id", Some(&query.format_id))],
                    &query.content,
                );
            }
        }
        for binding in &service.content_bindings {
            self.content_binding("Content_Binding", binding);
        }
        self.optional_text("Message", service.message.as_deref());
        self.end("Service_Instance");
    }

    fn endpoint(&mut self, name: &str, endpoint: &Endpoint) {
        self.start(name, &[]);
        if let Some(protocol) = &endpoint.protocol {
            self.protocol("Protocol_Binding", protocol);
        }
        if let Some(address) = &endpoint.address {
            self.text_element("Address", address);
        }
        self.message_bindings("Message_Binding", &endpoint.message_bindings);
        self.end(name);
    }

    fn feed(&mut self, feed: &FeedInfo) {
        let available = feed.available.map(bool_text);
        let collection_type = match (self.v11, feed.collection_type) {
            (true, Some(CollectionType::DataFeed)) => Some("DATA_FEED"),
            (true, Some(CollectionType::DataSet)) => Some("DATA_SET"),
            _ => None,
        };
        let name = if self.v11 { "Collection" } else { "Feed" };
        self.start(
            name,
            &[
                (self.feed_attribute(), Some(&feed.name)),
                ("collection_type", collection_type),
                ("available", available.as_deref()),
            ],
        );
        self.text_element("Description", &feed.description);
        if self.v11
            && let Some(volume) = feed.volume
        {
            self.text_element("Collection_Volume", &volume.to_string());
        }
        for binding in &feed.content_bindings {
            self.content_binding("Content_Binding", binding);
        }
        for method in &feed.push_methods {
            self.start("Push_Method", &[]);
            self.protocol("Protocol_Binding", &method.protocol);
            self.message_bindings("Message_Binding", &method.message_bindings);
            self.end("Push_Method");
        }
        for endpoint in &feed.polling_services {
            self.endpoint("Polling_Service", endpoint);
        }
        for endpoint in &feed.subscription_services {
            self.endpoint("Subscription_Service", endpoint);
        }
        if self.v11 {
            for inbox in &feed.receiving_inboxes {
                self.start("Receiving_Inbox_Service", &[]);
                if let Some(protocol) = &inbox.endpoint.protocol {
                    self.protocol("Protocol_Binding", protocol);
                }
                if let Some(address) = &inbox.endpoint.address {
                    self.text_element("Address", address);
                }
                self.message_bindings("Message_Binding", &inbox.endpoint.message_bindings);
                for binding in &inbox.content_bindings {
                    self.content_binding("Content_Binding", binding);
                }
                self.end("Receiving_Inbox_Service");
            }
        }
        self.end(name);
    }

    fn selection(&mut self, parameters: &SubscriptionParameters) {
        if let Some(response_type) = parameters.response_type {
            let text = match response_type {
                ResponseType::Full => "FULL",
                ResponseType::CountOnly => "COUNT_ONLY",
            };
            self.text_element("Response_Type", text);
        }
        for binding in &parameters.content_bindings {
            self.content_binding("Content_Binding", binding);
        }
        if let Some(query) = &parameters.query {
            self.content_element(
                "Query",
                &[("format_id", Some(&query.format_id))],
                &query.content,
            );
        }
    }

    fn subscription_parameters(&mut self, name: &str, parameters: &SubscriptionParameters) {
        self.start(name, &[]);
        self.selection(parameters);
        self.end(name);
    }

    fn push_parameters(&mut self, name: &str, push: &PushParameters, bindings: &[ContentBinding]) {
        self.start(name, &[]);
        self.protocol("Protocol_Binding", &push.protocol);
        self.text_element("Address", &push.address);
        let wire = self.ids.message_binding_wire(&push.message_binding);
        self.text_element("Message_Binding", wire);
        if !self.v11 {
            for binding in bindings {
                self.content_binding("Content_Binding", binding);
            }
        }
        self.end(name);
    }

    fn subscription_record(&mut self, record: &SubscriptionRecord) {
        if self.v11 {
            let status = record.status.map(|status| match status {
                SubscriptionStatus::Active => "ACTIVE",
                SubscriptionStatus::Paused => "PAUSED",
                SubscriptionStatus::Unsubscribed => "UNSUBSCRIBED",
            });
            self.start("Subscription", &[("status", status)]);
            self.text_element("Subscription_ID", &record.id);
            if let Some(parameters) = &record.parameters {
                self.subscription_parameters("Subscription_Parameters", parameters);
            }
        } else {
            self.start("Subscription", &[("subscription_id", Some(&record.id))]);
        }
        if let Some(Delivery::Push(push)) = &record.delivery {
            let bindings = record
                .parameters
                .as_ref()
                .map(|p| p.content_bindings.as_slice());
            self.push_parameters("Push_Parameters", push, bindings.unwrap_or_default());
        }
        for endpoint in &record.poll_instances {
            self.endpoint("Poll_Instance", endpoint);
        }
        self.end("Subscription");
    }

    fn poll_parameters(&mut self, parameters: &PollParameters) {
        let allow = parameters.allow_asynch.map(bool_text);
        self.start("Poll_Parameters", &[("allow_asynch", allow.as_deref())]);
        self.selection(&parameters.selection);
        if let Some(delivery) = &parameters.delivery {
            self.push_parameters("Delivery_Parameters", delivery, &[]);
        }
        self.end("Poll_Parameters");
    }

    fn source_subscription(&mut self, source: &SourceSubscription) {
        let feed_name = source.feed_name.as_deref().unwrap_or("");
        if self.v11 {
            self.start(
                "Source_Subscription",
                &[("collection_name", Some(feed_name))],
            );
            self.optional_text("Subscription_ID", source.subscription_id.as_deref());
            self.optional_timestamp("Exclusive_Begin_Timestamp", source.exclusive_begin.as_ref());
        } else {
            self.start(
                "Source_Subscription",
                &[
                    ("feed_name", Some(feed_name)),
                    ("subscription_id", source.subscription_id.as_deref()),
                ],
            );
            let begin = source.exclusive_begin.map(|b| b.shifted_nanos(1_000));
            self.optional_timestamp("Inclusive_Begin_Timestamp", begin.as_ref());
        }
        self.optional_timestamp("Inclusive_End_Timestamp", source.inclusive_end.as_ref());
        self.end("Source_Subscription");
    }

    fn content_block(&mut self, block: &ContentBlock) {
        self.start("Content_Block", &[]);
        self.content_binding("Content_Binding", &block.binding);
        self.start("Content", &[]);
        self.content(&block.content);
        self.end("Content");
        self.optional_timestamp("Timestamp_Label", block.timestamp_label.as_ref());
        if self.v11 {
            self.optional_text("Message", block.message.as_deref());
        }
        self.optional_text("Padding", block.padding.as_deref());
        if let Some(signature) = &block.signature {
            self.content(signature);
        }
        self.end("Content_Block");
    }

    // ---- the seed's draft dialect ----

    fn draft_binding(&self, binding: &ContentBinding) -> String {
        self.ids.content_binding_wire(Dialect::Draft, binding)
    }

    fn draft_body(&mut self, body: &Body) -> Result<(), SerializeError> {
        match body {
            Body::DiscoveryRequest | Body::FeedInformationRequest | Body::PollFulfillment(_) => {}
            Body::DiscoveryResponse(response) => {
                for service in &response.services {
                    let service_type = self
                        .ids
                        .service_type_wire(Dialect::Draft, &service.service_type);
                    let version = self.ids.services_version_wire(&service.version);
                    let available = service.available.map(bool_text);
                    self.start(
                        "service-instance",
                        &[
                            ("service-type", Some(service_type)),
                            ("service-version", Some(version)),
                            ("available", available.as_deref()),
                        ],
                    );
                    self.protocol("protocol-binding", &service.protocol);
                    self.message_bindings("message-binding", &service.message_bindings);
                    for binding in &service.content_bindings {
                        let wire = self.draft_binding(binding);
                        self.text_element("content-binding", &wire);
                    }
                    self.text_element("service-address", &service.address);
                    self.optional_text("message", service.message.as_deref());
                    self.end("service-instance");
                }
            }
            Body::FeedInformationResponse(response) => {
                for feed in &response.feeds {
                    self.draft_feed(feed);
                }
            }
            Body::Status(status) => {
                self.optional_text("error-detail", status.detail_text.as_deref());
                self.optional_text("message", status.message.as_deref());
            }
            Body::SubscriptionManagementRequest(request) => {
                self.text_element("feed-name", &request.feed_name);
                let action = self.action_wire(request.action)?;
                self.text_element("action", action);
                self.optional_text("subscription-id", request.subscription_id.as_deref());
                if let Some(delivery) = &request.delivery {
                    self.draft_subscription(None, delivery, request.parameters.as_ref());
                }
            }
            Body::SubscriptionManagementResponse(response) => {
                self.text_element("feed-name", &response.feed_name);
                self.optional_text("message", response.message.as_deref());
                for record in &response.subscriptions {
                    if let Some(delivery) = &record.delivery {
                        self.draft_subscription(
                            Some(&record.id),
                            delivery,
                            record.parameters.as_ref(),
                        );
                    }
                }
            }
            Body::SubscriptionAlert(alert) => {
                self.text_element("feed-name", &alert.feed_name);
                let action = self.action_wire(alert.action)?;
                let effective = alert.effective_time.to_string();
                let status = match &alert.status_type {
                    Some(status) => Some(self.status_wire(status)?),
                    None => None,
                };
                self.start(
                    "action",
                    &[("effective-time", Some(&effective)), ("error-type", status)],
                );
                self.out.push_str(action);
                self.end("action");
                self.text_element("subscription-id", &alert.subscription_id);
                if let Some(delivery) = &alert.subscription {
                    let parameters =
                        alert
                            .content_binding
                            .as_ref()
                            .map(|binding| SubscriptionParameters {
                                content_bindings: vec![binding.clone()],
                                ..SubscriptionParameters::default()
                            });
                    self.draft_subscription(None, delivery, parameters.as_ref());
                }
                self.optional_text("message", alert.message.as_deref());
            }
            Body::PollRequest(request) => {
                self.text_element("feed-name", &request.feed_name);
                let begin = request.exclusive_begin.map(|b| b.shifted_nanos(1_000));
                self.optional_timestamp("begin-timestamp", begin.as_ref());
                self.optional_timestamp("end-timestamp", request.inclusive_end.as_ref());
                if let Some(id) = &request.subscription_id {
                    self.text_element("subscription-id", id);
                } else {
                    let binding = request
                        .parameters
                        .as_ref()
                        .and_then(|p| p.selection.content_bindings.first())
                        .map(|b| self.draft_binding(b))
                        .unwrap_or_else(|| self.default_draft_binding());
                    self.text_element("content-binding", &binding);
                }
            }
            Body::PollResponse(response) => {
                let begin = response.exclusive_begin.map(|b| b.shifted_nanos(1_000));
                self.optional_timestamp("begin-timestamp", begin.as_ref());
                if let Some(end) = &response.inclusive_end {
                    self.text_element("end-timestamp", &end.to_string());
                }
                self.optional_text("subscription-id", response.subscription_id.as_deref());
                self.optional_text("message", response.message.as_deref());
                self.draft_blocks(&response.content_blocks);
                self.blocks_end_here();
            }
            Body::Inbox(inbox) => {
                let subscription = inbox
                    .source_subscription
                    .as_ref()
                    .and_then(|s| s.subscription_id.as_deref());
                self.optional_text("subscription-id", subscription);
                self.optional_text("message", inbox.message.as_deref());
                self.draft_blocks(&inbox.content_blocks);
                self.blocks_end_here();
            }
        }
        Ok(())
    }

    fn default_draft_binding(&self) -> String {
        self.draft_binding(&ContentBinding::new(DRAFT_DEFAULT_BINDING))
    }

    /// The draft carries one content binding per message and the payloads inline.
    fn draft_blocks(&mut self, blocks: &[ContentBlock]) {
        let binding = blocks
            .first()
            .map(|b| self.draft_binding(&b.binding))
            .unwrap_or_else(|| self.default_draft_binding());
        self.text_element("content-binding", &binding);
        self.draft_documents(blocks);
    }

    fn draft_documents(&mut self, blocks: &[ContentBlock]) {
        for block in blocks {
            if let XmlContent::Xml(xml) = &block.content {
                self.out.push_str(xml);
            }
        }
    }

    fn draft_feed(&mut self, feed: &FeedInfo) {
        let available = feed.available.map(bool_text);
        self.start(
            "feed",
            &[
                ("feed-name", Some(&feed.name)),
                ("available", available.as_deref()),
            ],
        );
        self.text_element("description", &feed.description);
        let mut message_bindings: Vec<&MessageBinding> = Vec::new();
        for method in &feed.push_methods {
            self.protocol("delivery-method", &method.protocol);
            message_bindings.extend(&method.message_bindings);
        }
        if !feed.polling_services.is_empty() {
            let poll = self.ids.poll_delivery_method();
            self.text_element("delivery-method", poll);
        }
        for endpoint in &feed.polling_services {
            message_bindings.extend(&endpoint.message_bindings);
        }
        let mut seen = Vec::new();
        for binding in message_bindings {
            if !seen.contains(&binding) {
                seen.push(binding);
                let wire = self.ids.message_binding_wire(binding);
                self.text_element("message-binding", wire);
            }
        }
        for binding in &feed.content_bindings {
            let wire = self.draft_binding(binding);
            self.text_element("content-binding", &wire);
        }
        self.end("feed");
    }

    fn draft_subscription(
        &mut self,
        id: Option<&str>,
        delivery: &Delivery,
        parameters: Option<&SubscriptionParameters>,
    ) {
        self.start("subscription", &[("subscription-id", id)]);
        let xml_draft = MessageBinding::Xml(Dialect::Draft);
        let (method, message_binding, send_to) = match delivery {
            Delivery::Push(push) => (
                self.ids
                    .protocol_wire(Dialect::Draft, &push.protocol)
                    .to_owned(),
                &push.message_binding,
                push.address.as_str(),
            ),
            Delivery::Poll { message_binding } => (
                self.ids.poll_delivery_method().to_owned(),
                message_binding.as_ref().unwrap_or(&xml_draft),
                "",
            ),
        };
        self.text_element("delivery-method", &method);
        let wire = self.ids.message_binding_wire(message_binding);
        self.text_element("message-binding", wire);
        let binding = parameters
            .and_then(|p| p.content_bindings.first())
            .map(|b| self.draft_binding(b))
            .unwrap_or_else(|| self.default_draft_binding());
        self.text_element("content-binding", &binding);
        self.text_element("send-to", send_to);
        self.end("subscription");
    }
}

/// Splits a draft extended header name `namespace#local` (or `namespace/local`).
pub(crate) fn split_header_name(name: &str) -> (&str, &str) {
    let split = name.rfind('#').or_else(|| name.rfind('/'));
    match split {
        Some(at) if is_ncname(&name[at + 1..]) => (&name[..at], &name[at + 1..]),
        _ => ("", "header"),
    }
}

pub(crate) fn is_ncname(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn bool_text(value: bool) -> String {
    if value { "true" } else { "false" }.to_owned()
}

fn escape_text_into(out: &mut String, text: &str) {
    escape_into(out, text, |byte| match byte {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'>' => Some("&gt;"),
        b'\r' => Some("&#13;"),
        _ => None,
    });
}
