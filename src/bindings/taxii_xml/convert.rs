//! Turning a message read in one dialect into one that another dialect can
//! carry, saying what had to change and what could not be kept.

use std::fmt;

use super::encode::{is_ncname, split_header_name};
use super::error::SerializeError;
use crate::core::*;

/// A message made fit for a dialect, and what that took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    pub message: Message,
    pub notes: Vec<ConversionNote>,
}

/// One thing a conversion changed or dropped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConversionNote {
    pub effect: Effect,
    /// The field, in the core model's terms (`message_id`, `content_blocks[2].message`).
    pub field: String,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The value was rewritten into a form the dialect accepts.
    Remapped,
    /// The dialect has no place for it: it is not in the output.
    Lost,
    /// The dialect requires a value the input did not have: one was supplied.
    Assumed,
}

impl fmt::Display for ConversionNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let effect = match self.effect {
            Effect::Remapped => "remapped",
            Effect::Lost => "lost",
            Effect::Assumed => "assumed",
        };
        write!(f, "{effect} {}: {}", self.field, self.detail)
    }
}

/// Converts a message read in `from` into one `to` can carry.
///
/// Fails only when `to` has no such message at all (a poll fulfillment before
/// 1.1) or cannot express the request's intent (a PAUSE in 1.0): there is
/// nothing useful to send then.
pub fn convert(message: Message, from: Dialect, to: Dialect) -> Result<Conversion, SerializeError> {
    let kind = message.kind();
    if !kind.exists_in(to) {
        return Err(SerializeError::NoSuchMessage { dialect: to, kind });
    }
    let mut converter = Converter::new(from, to, None);
    let message = converter.message(message)?;
    Ok(Conversion {
        message,
        notes: converter.notes,
    })
}

/// Converts content blocks that follow, in the same message, blocks already
/// converted (a poll response written in chunks). `draft_binding`: the
/// binding the message's first block set, which the draft keeps for all.
pub(crate) fn convert_more_blocks(
    blocks: Vec<ContentBlock>,
    from: Dialect,
    to: Dialect,
    draft_binding: Option<String>,
) -> Vec<ContentBlock> {
    Converter::new(from, to, draft_binding).blocks(blocks)
}

struct Converter {
    from: Dialect,
    to: Dialect,
    notes: Vec<ConversionNote>,
    /// In the draft, the one content binding of the message's blocks.
    draft_binding: Option<String>,
}

impl Converter {
    fn new(from: Dialect, to: Dialect, draft_binding: Option<String>) -> Self {
        Converter {
            from,
            to,
            notes: Vec::new(),
            draft_binding,
        }
    }

    fn note(&mut self, effect: Effect, field: impl Into<String>, detail: impl Into<String>) {
        self.notes.push(ConversionNote {
            effect,
            field: field.into(),
            detail: detail.into(),
        });
    }

    fn lost_if<T>(&mut self, value: &Option<T>, field: &str) {
        if value.is_some() {
            self.note(
                Effect::Lost,
                field,
                format!("TAXII {} has no place for it", self.to),
            );
        }
    }

    fn lost_if_signature(&mut self, signature: &Option<XmlContent>, field: &str) {
        if signature.is_some() {
            let detail = if self.to == Dialect::Draft {
                "the draft has no place for an XML signature".to_owned()
            } else {
                format!(
                    "it signs the TAXII {} form; the TAXII {} form would break it",
                    self.from, self.to
                )
            };
            self.note(Effect::Lost, field, detail);
        }
    }

    fn lost_if_any<T>(&mut self, values: &[T], field: &str) {
        if !values.is_empty() {
            self.note(
                Effect::Lost,
                field,
                format!(
                    "{} value(s): TAXII {} has no place for them",
                    values.len(),
                    self.to
                ),
            );
        }
    }

    fn message(&mut self, mut message: Message) -> Result<Message, SerializeError> {
        message.id = self.message_id(&message.id, "message_id");
        let response = message.kind().is_response();
        if self.to != Dialect::Draft && !response {
            // 1.x requests have no in_response_to attribute (RequestMessageType).
            if message.in_response_to.take().is_some() {
                self.note(
                    Effect::Lost,
                    "in_response_to",
                    format!("a TAXII {} request names no message it answers", self.to),
                );
            }
        }
        if let Some(reply) = message.in_response_to.take() {
            message.in_response_to = Some(self.message_id(&reply, "in_response_to"));
        } else if self.to != Dialect::Draft && response {
            // 1.x responses require it; "0" stands for an unknown request (FAQ T-Q1).
            message.in_response_to = Some("0".to_owned());
            self.note(
                Effect::Assumed,
                "in_response_to",
                format!(
                    "required in TAXII {}; \"0\" names an unknown request",
                    self.to
                ),
            );
        }
        // A signature covers the exact message it signs: any other dialect's
        // form of it breaks the signature (and the draft has no place for one).
        if self.from != self.to || self.to == Dialect::Draft {
            self.lost_if_signature(&message.signature.take(), "signature");
        }
        if self.to == Dialect::Draft {
            let headers = std::mem::take(&mut message.extended_headers);
            for header in headers {
                let (namespace, local) = split_header_name(&header.name);
                if namespace.is_empty() || !is_ncname(local) {
                    self.note(
                        Effect::Lost,
                        format!("extended_headers[{}]", header.name),
                        "the draft names a header by an element; this name cannot be one",
                    );
                } else {
                    // A draft header reads back named `namespace#local`,
                    // whichever separator the name had.
                    let name = format!("{namespace}#{local}");
                    if name != header.name {
                        self.note(
                            Effect::Remapped,
                            format!("extended_headers[{}]", header.name),
                            format!("the draft names this header {name:?}"),
                        );
                    }
                    message.extended_headers.push(ExtendedHeader {
                        name,
                        value: header.value,
                    });
                }
            }
        }
        message.body = self.body(message.body)?;
        Ok(message)
    }

    /// A message id in the form the target dialect requires.
    fn message_id(&mut self, id: &str, field: &str) -> String {
        // A draft GUID may be all decimal digits, and a 1.0 id 32 of them:
        // each is read as its own dialect's number, never as the other's.
        let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        let converted = match self.to {
            Dialect::V10 if digits && self.from != Dialect::Draft => return id.to_owned(),
            Dialect::V10 => id_number(id, self.from).to_string(),
            Dialect::Draft if id == "0" || (self.from != Dialect::V10 && is_draft_guid(id)) => {
                return id.to_owned();
            }
            Dialect::Draft => format!("{:032x}", id_number(id, self.from)),
            Dialect::V11 if !id.contains(char::is_whitespace) && !id.is_empty() => {
                return id.to_owned();
            }
            Dialect::V11 => uuid_urn(id_number(id, self.from)),
        };
        if converted == id {
            return converted;
        }
        self.note(
            Effect::Remapped,
            field,
            format!(
                "{id:?} is not a TAXII {} message id; sent as {converted:?}",
                self.to
            ),
        );
        converted
    }

    fn timestamp(&mut self, timestamp: Option<Timestamp>, field: &str) -> Option<Timestamp> {
        let mut timestamp = timestamp?;
        if self.to == Dialect::Draft {
            return Some(timestamp);
        }
        if timestamp.offset_minutes().is_none() {
            timestamp = format!("{timestamp}Z").parse().unwrap_or(timestamp);
            self.note(
                Effect::Assumed,
                field,
                "no time zone was given; UTC assumed",
            );
        }
        let excess = timestamp.nanosecond() % 1000;
        if excess != 0 {
            timestamp = timestamp.shifted_nanos(-i64::from(excess));
            self.note(
                Effect::Remapped,
                field,
                format!(
                    "TAXII {} keeps microseconds; the nanoseconds were cut",
                    self.to
                ),
            );
        }
        Some(timestamp)
    }

    fn body(&mut self, body: Body) -> Result<Body, SerializeError> {
        Ok(match body {
            Body::DiscoveryRequest | Body::FeedInformationRequest | Body::PollFulfillment(_) => {
                body
            }
            Body::DiscoveryResponse(mut response) => {
                if self.to != Dialect::V11 {
                    for (index, service) in response.services.iter_mut().enumerate() {
                        let queries = std::mem::take(&mut service.supported_queries);
                        self.lost_if_any(&queries, &format!("services[{index}].supported_queries"));
                        // Draft and 1.0 content bindings are bare ids, without subtypes.
                        for binding in &mut service.content_bindings {
                            let subtypes = std::mem::take(&mut binding.subtypes);
                            self.lost_if_any(
                                &subtypes,
                                &format!("services[{index}].content_bindings.subtypes"),
                            );
                        }
                    }
                }
                Body::DiscoveryResponse(response)
            }
            Body::FeedInformationResponse(mut response) => {
                let feeds = std::mem::take(&mut response.feeds);
                for (index, mut feed) in feeds.into_iter().enumerate() {
                    if self.feed(&mut feed, index) {
                        response.feeds.push(feed);
                    }
                }
                Body::FeedInformationResponse(response)
            }
            Body::Status(status) => Body::Status(self.status(status)),
            Body::SubscriptionManagementRequest(request) => {
                Body::SubscriptionManagementRequest(self.subscription_request(request)?)
            }
            Body::SubscriptionManagementResponse(mut response) => {
                let records = std::mem::take(&mut response.subscriptions);
                for (index, record) in records.into_iter().enumerate() {
                    let record = self.subscription_record(record, index);
                    response.subscriptions.push(record);
                }
                Body::SubscriptionManagementResponse(response)
            }
            Body::PollRequest(request) => Body::PollRequest(self.poll_request(request)),
            Body::PollResponse(response) => Body::PollResponse(self.poll_response(response)),
            Body::Inbox(inbox) => {
                let inbox = self.inbox(inbox);
                // A draft STIX message carries one or more STIX documents: with
                // none left there is nothing to send, as with a PAUSE in 1.0.
                if self.to == Dialect::Draft && inbox.content_blocks.is_empty() {
                    return Err(SerializeError::Inexpressible {
                        dialect: self.to,
                        what: "an inbox message without XML content".to_owned(),
                    });
                }
                Body::Inbox(inbox)
            }
            Body::SubscriptionAlert(alert) => Body::SubscriptionAlert(self.alert(alert)),
        })
    }

    /// Shapes a feed for the target dialect; false when it has no form there.
    fn feed(&mut self, feed: &mut FeedInfo, index: usize) -> bool {
        let field = |name: &str| format!("feeds[{index}].{name}");
        // A 1.0 feed needs a push method or a polling service (with an
        // address): a 1.1 collection offering neither (only receiving
        // inboxes, say) has no 1.0 form.
        if self.to == Dialect::V10
            && feed.push_methods.is_empty()
            && !feed
                .polling_services
                .iter()
                .any(|e| e.address.is_some() && e.protocol.is_some())
        {
            self.note(
                Effect::Lost,
                format!("feeds[{index}]"),
                format!(
                    "{:?} has neither a push method nor a polling service with an address, \
                     one of which a TAXII 1.0 feed needs",
                    feed.name
                ),
            );
            return false;
        }
        if self.to != Dialect::V11 {
            if feed.collection_type == Some(CollectionType::DataSet) {
                self.note(
                    Effect::Lost,
                    field("collection_type"),
                    "a data set is sent as a feed",
                );
            }
            feed.collection_type = None;
            self.lost_if(&feed.volume.take(), &field("volume"));
            let inboxes = std::mem::take(&mut feed.receiving_inboxes);
            self.lost_if_any(&inboxes, &field("receiving_inboxes"));
            for binding in &mut feed.content_bindings {
                let subtypes = std::mem::take(&mut binding.subtypes);
                self.lost_if_any(&subtypes, &field("content_bindings.subtypes"));
            }
            // 1.1 lists none for "any content"; the 1.0 and draft schemas require one.
            if feed.content_bindings.is_empty() {
                feed.content_bindings
                    .push(ContentBinding::new("urn:stix.mitre.org:xml:1.1.1"));
                self.note(
                    Effect::Assumed,
                    field("content_bindings"),
                    "none listed (any content); STIX 1.1.1 is named, as one is required",
                );
            }
        }
        if self.to == Dialect::Draft {
            let services = std::mem::take(&mut feed.subscription_services);
            self.lost_if_any(&services, &field("subscription_services"));
            for endpoint in &mut feed.polling_services {
                if endpoint.address.take().is_some() {
                    self.note(
                        Effect::Lost,
                        field("polling_services.address"),
                        "the draft lists polling without an address",
                    );
                }
                endpoint.protocol = None;
            }
            self.draft_delivery_methods(feed, &field);
        } else {
            let before = feed.polling_services.len();
            feed.polling_services
                .retain(|e| e.address.is_some() && e.protocol.is_some());
            if feed.polling_services.len() != before {
                self.note(
                    Effect::Lost,
                    field("polling_services"),
                    "the draft named polling without an address, which TAXII 1.x requires",
                );
            }
        }
        true
    }

    /// A draft feed lists its delivery methods (`POLL` at most once) and one
    /// set of message bindings shared by all of them, and needs one of each:
    /// shape the feed so that it reads back as converted.
    fn draft_delivery_methods(&mut self, feed: &mut FeedInfo, field: &dyn Fn(&str) -> String) {
        let mut shared: Vec<MessageBinding> = Vec::new();
        let listed = feed
            .push_methods
            .iter()
            .flat_map(|m| &m.message_bindings)
            .chain(
                feed.polling_services
                    .iter()
                    .flat_map(|e| &e.message_bindings),
            );
        for binding in listed {
            if !shared.contains(binding) {
                shared.push(binding.clone());
            }
        }
        if shared.is_empty() {
            shared.push(MessageBinding::Xml(Dialect::Draft));
        }
        if feed.polling_services.len() > 1 {
            feed.polling_services.truncate(1);
            self.note(
                Effect::Remapped,
                field("polling_services"),
                "the draft names polling once; the services are merged",
            );
        }
        if feed.push_methods.is_empty() && feed.polling_services.is_empty() {
            feed.polling_services.push(Endpoint {
                protocol: None,
                address: None,
                message_bindings: Vec::new(),
            });
            self.note(
                Effect::Assumed,
                field("polling_services"),
                "the draft needs a delivery method; POLL is named",
            );
        }
        let methods = feed
            .push_methods
            .iter_mut()
            .map(|m| &mut m.message_bindings)
            .chain(
                feed.polling_services
                    .iter_mut()
                    .map(|e| &mut e.message_bindings),
            );
        let mut changed = false;
        for bindings in methods {
            if *bindings != shared {
                *bindings = shared.clone();
                changed = true;
            }
        }
        if changed {
            self.note(
                Effect::Remapped,
                field("message_bindings"),
                "the draft lists one set of message bindings for all delivery methods",
            );
        }
    }

    /// A draft alert (the only dialect that has one) writes its content
    /// binding inside its subscription, and only the draft's status types.
    fn alert(&mut self, mut alert: SubscriptionAlert) -> SubscriptionAlert {
        self.delivery(&mut alert.subscription, false, "subscription");
        if alert.subscription.is_none() {
            self.lost_if(&alert.content_binding.take(), "content_binding");
        } else if let Some(binding) = &mut alert.content_binding {
            let subtypes = std::mem::take(&mut binding.subtypes);
            self.lost_if_any(&subtypes, "content_binding.subtypes");
        } else {
            let mut bindings = Vec::new();
            self.one_binding(&mut bindings, "content_binding");
            alert.content_binding = bindings.pop();
        }
        if let Some(status_type) = alert.status_type.take() {
            let status = self.status(StatusMessage {
                status_type,
                details: Vec::new(),
                detail_text: None,
                message: None,
            });
            alert.status_type = Some(status.status_type);
        }
        alert
    }

    fn status(&mut self, mut status: StatusMessage) -> StatusMessage {
        use StatusType as S;
        let original = status.status_type.clone();
        let mapped = match (&original, self.to) {
            (S::Other(_), _) => original.clone(),
            // The draft's PENDING asks to repeat the request later, as 1.x RETRY does.
            (S::Pending, Dialect::V10 | Dialect::V11) if self.from == Dialect::Draft => S::Retry,
            (S::Retry, Dialect::Draft) => S::Pending,
            // 1.1's PENDING (an asynchronous poll's result comes later) is not
            // the draft's PENDING (repeat the request at a given time).
            (S::Pending, Dialect::Draft) if self.from != Dialect::Draft => S::Failure,
            (known, to) if super::ids::ids().status_type_wire(to, known).is_some() => known.clone(),
            _ => S::Failure,
        };
        if mapped != original {
            self.note(
                Effect::Remapped,
                "status_type",
                format!("TAXII {} has no {original}; sent as {mapped}", self.to),
            );
            if mapped == S::Failure {
                if status.message.is_none() {
                    status.message = Some(format!("{original}"));
                }
                // The detail was the original type's; a FAILURE has none.
                if let Some(text) = status.detail_text.take() {
                    self.note(
                        Effect::Lost,
                        "status_detail",
                        format!("{text:?} was a detail of {original}"),
                    );
                }
            }
        }
        status.status_type = mapped;
        let list_name = list_detail_name(&status.status_type);
        match self.to {
            Dialect::V11 => {
                if let Some(text) = status.detail_text.take() {
                    match list_name {
                        Some(name) => {
                            status.details = text
                                .split_whitespace()
                                .map(|value| StatusDetail {
                                    name: name.to_owned(),
                                    value: XmlContent::Text(value.to_owned()),
                                })
                                .collect();
                            self.note(
                                Effect::Remapped,
                                "status_detail",
                                format!("split into {name} details"),
                            );
                        }
                        None => {
                            self.note(
                                Effect::Lost,
                                "status_detail",
                                format!("{text:?} has no named 1.1 form"),
                            );
                        }
                    }
                }
            }
            Dialect::V10 | Dialect::Draft => {
                // Only the list-valued details (supported bindings) have a
                // text form here: their values, separated by spaces. Others
                // (1.1 RETRY's ESTIMATED_WAIT seconds, say, where 1.0 wants a
                // date-time) have none.
                let had_text = status.detail_text.is_some();
                let mut values: Vec<String> = Vec::new();
                for detail in std::mem::take(&mut status.details) {
                    match (&detail.value, list_name) {
                        (XmlContent::Text(value), Some(name))
                            if detail.name == name && !had_text =>
                        {
                            values.extend(value.split_whitespace().map(str::to_owned));
                        }
                        _ => self.note(
                            Effect::Lost,
                            format!("status_detail[{}]", detail.name),
                            format!(
                                "TAXII {} has no form for this detail of {}",
                                self.to, status.status_type
                            ),
                        ),
                    }
                }
                if !values.is_empty() {
                    status.detail_text = Some(values.join(" "));
                    self.note(
                        Effect::Remapped,
                        "status_detail",
                        format!(
                            "named details sent as their values separated by spaces in TAXII {}",
                            self.to
                        ),
                    );
                }
            }
        }
        status
    }

    fn selection(&mut self, parameters: &mut SubscriptionParameters, field: &str) {
        if self.to == Dialect::V11 {
            return;
        }
        // FULL is the default: leaving it out loses nothing.
        self.lost_if(
            &parameters
                .response_type
                .take()
                .filter(|t| *t == ResponseType::CountOnly),
            &format!("{field}.response_type"),
        );
        self.lost_if(&parameters.query.take(), &format!("{field}.query"));
        for binding in &mut parameters.content_bindings {
            let subtypes = std::mem::take(&mut binding.subtypes);
            self.lost_if_any(&subtypes, &format!("{field}.content_bindings.subtypes"));
        }
        if self.to == Dialect::Draft {
            self.one_binding(
                &mut parameters.content_bindings,
                &format!("{field}.content_bindings"),
            );
        }
    }

    /// The draft names exactly one content binding where 1.x lists several or none.
    fn one_binding(&mut self, bindings: &mut Vec<ContentBinding>, field: &str) {
        if bindings.len() > 1 {
            let dropped = bindings.split_off(1);
            self.lost_if_any(&dropped, field);
        }
        if bindings.is_empty() {
            bindings.push(ContentBinding::new("urn:stix.mitre.org:xml:1.0"));
            self.note(
                Effect::Assumed,
                field,
                "the draft needs one content binding; STIX_XML_1.0 stands for \"any\"",
            );
        }
    }

    fn subscription_request(
        &mut self,
        mut request: SubscriptionRequest,
    ) -> Result<SubscriptionRequest, SerializeError> {
        if super::ids::ids()
            .subscription_action_wire(self.to, request.action)
            .is_none()
        {
            return Err(SerializeError::Inexpressible {
                dialect: self.to,
                what: format!("the subscription action {:?}", request.action),
            });
        }
        self.delivery(
            &mut request.delivery,
            request.action == SubscriptionAction::Subscribe,
            "delivery",
        );
        if let Some(parameters) = &mut request.parameters {
            self.selection(parameters, "parameters");
            if self.to == Dialect::V10 && !matches!(request.delivery, Some(Delivery::Push(_))) {
                let bindings = std::mem::take(&mut parameters.content_bindings);
                self.lost_if_any(&bindings, "parameters.content_bindings");
            }
        } else if self.to == Dialect::Draft && request.delivery.is_some() {
            let mut parameters = SubscriptionParameters::default();
            self.one_binding(
                &mut parameters.content_bindings,
                "parameters.content_bindings",
            );
            request.parameters = Some(parameters);
        }
        if self.to == Dialect::V10
            && request
                .parameters
                .as_ref()
                .is_some_and(|p| p.content_bindings.is_empty())
        {
            request.parameters = None;
        }
        // The draft writes the content binding inside <subscription>, which
        // only a request that says how to deliver has.
        if self.to == Dialect::Draft && request.delivery.is_none() {
            let dropped = request.parameters.take();
            self.lost_if(&dropped, "parameters");
        }
        Ok(request)
    }

    /// 1.x says "poll" by leaving push parameters out; the draft says it outright.
    fn delivery(&mut self, delivery: &mut Option<Delivery>, subscribing: bool, field: &str) {
        match self.to {
            Dialect::Draft => {
                if delivery.is_none() && subscribing {
                    *delivery = Some(Delivery::Poll {
                        message_binding: None,
                    });
                }
                // The draft always names the binding a poller uses; the writer
                // puts down the draft's own when none is given, so say so here
                // and the message reads back as it was converted.
                if let Some(Delivery::Poll { message_binding }) = delivery {
                    message_binding.get_or_insert(MessageBinding::Xml(Dialect::Draft));
                }
            }
            Dialect::V10 | Dialect::V11 => {
                if let Some(Delivery::Poll { message_binding }) = delivery {
                    if message_binding.is_some() {
                        self.note(
                            Effect::Lost,
                            format!("{field}.message_binding"),
                            "TAXII 1.x names no binding for polling subscribers",
                        );
                    }
                    *delivery = None;
                }
            }
        }
    }

    fn subscription_record(
        &mut self,
        mut record: SubscriptionRecord,
        index: usize,
    ) -> SubscriptionRecord {
        let field = format!("subscriptions[{index}]");
        if self.to != Dialect::V11 {
            if record
                .status
                .is_some_and(|s| s != SubscriptionStatus::Active)
            {
                self.note(
                    Effect::Lost,
                    format!("{field}.status"),
                    format!("TAXII {} has no subscription status", self.to),
                );
            }
            record.status = None;
        }
        self.delivery(&mut record.delivery, true, &format!("{field}.delivery"));
        if let Some(parameters) = &mut record.parameters {
            self.selection(parameters, &format!("{field}.parameters"));
        }
        if self.to == Dialect::Draft {
            let instances = std::mem::take(&mut record.poll_instances);
            self.lost_if_any(&instances, &format!("{field}.poll_instances"));
            if record.parameters.is_none() {
                let mut parameters = SubscriptionParameters::default();
                self.one_binding(
                    &mut parameters.content_bindings,
                    &format!("{field}.parameters.content_bindings"),
                );
                record.parameters = Some(parameters);
            }
        }
        if self.to == Dialect::V10 {
            let push = matches!(record.delivery, Some(Delivery::Push(_)));
            if let Some(parameters) = record.parameters.take()
                && push
                && !parameters.content_bindings.is_empty()
            {
                record.parameters = Some(parameters);
            }
        }
        record
    }

    fn poll_request(&mut self, mut request: PollRequest) -> PollRequest {
        request.exclusive_begin = self.timestamp(request.exclusive_begin, "exclusive_begin");
        request.inclusive_end = self.timestamp(request.inclusive_end, "inclusive_end");
        if request.subscription_id.is_some()
            && request.parameters.is_some()
            && self.to != Dialect::V10
        {
            let dropped = request.parameters.take();
            self.lost_if(&dropped, "parameters");
        }
        match self.to {
            Dialect::V11 => {
                // Delivery parameters only say where an asynchronous result goes.
                if let Some(parameters) = &mut request.parameters
                    && parameters.allow_asynch != Some(true)
                {
                    self.lost_if(&parameters.delivery.take(), "parameters.delivery");
                }
                if request.subscription_id.is_none() && request.parameters.is_none() {
                    request.parameters = Some(PollParameters::default());
                }
            }
            Dialect::V10 | Dialect::Draft => {
                if let Some(parameters) = &mut request.parameters {
                    // false is the default: leaving it out loses nothing.
                    self.lost_if(
                        &parameters.allow_asynch.take().filter(|asynch| *asynch),
                        "parameters.allow_asynch",
                    );
                    self.lost_if(&parameters.delivery.take(), "parameters.delivery");
                    self.selection(&mut parameters.selection, "parameters");
                    if self.to == Dialect::V10 && parameters.selection.content_bindings.is_empty() {
                        request.parameters = None;
                    }
                } else if self.to == Dialect::Draft && request.subscription_id.is_none() {
                    let mut parameters = PollParameters::default();
                    self.one_binding(
                        &mut parameters.selection.content_bindings,
                        "parameters.content_bindings",
                    );
                    request.parameters = Some(parameters);
                }
            }
        }
        request
    }

    fn poll_response(&mut self, mut response: PollResponse) -> PollResponse {
        response.exclusive_begin = self.timestamp(response.exclusive_begin, "exclusive_begin");
        response.inclusive_end = self.timestamp(response.inclusive_end, "inclusive_end");
        if self.to != Dialect::V11 {
            self.lost_if(&response.more.take().filter(|more| *more), "more");
            self.lost_if(&response.result_id.take(), "result_id");
            self.lost_if(
                &response.result_part_number.take().filter(|n| *n != 1),
                "result_part_number",
            );
            self.lost_if(&response.record_count.take(), "record_count");
        }
        if self.to == Dialect::Draft {
            self.lost_if(&response.feed_name.take(), "feed_name");
        } else if response.feed_name.is_none() {
            response.feed_name = Some(String::new());
            self.note(
                Effect::Assumed,
                "feed_name",
                "the draft names no feed in a poll response; sent empty",
            );
        }
        // Blocks first: the labels stand for a missing end bound below, and
        // must already be in the form the dialect takes.
        response.content_blocks = self.blocks(std::mem::take(&mut response.content_blocks));
        if response.inclusive_end.is_none() && self.to != Dialect::V11 {
            let latest = response
                .content_blocks
                .iter()
                .filter_map(|b| b.timestamp_label)
                .max();
            response.inclusive_end = latest.or_else(|| Some(Timestamp::from_unix(0, 0)));
            self.note(
                Effect::Assumed,
                "inclusive_end",
                "required here; the latest label returned stands for it",
            );
        }
        response
    }

    fn inbox(&mut self, mut inbox: InboxMessage) -> InboxMessage {
        if self.to != Dialect::V11 {
            let destinations = std::mem::take(&mut inbox.destination_feeds);
            self.lost_if_any(&destinations, "destination_feeds");
            self.lost_if(&inbox.result_id.take(), "result_id");
            self.lost_if(&inbox.record_count.take(), "record_count");
        }
        if let Some(mut source) = inbox.source_subscription.take() {
            source.exclusive_begin = self.timestamp(
                source.exclusive_begin,
                "source_subscription.exclusive_begin",
            );
            source.inclusive_end =
                self.timestamp(source.inclusive_end, "source_subscription.inclusive_end");
            let keep = match self.to {
                Dialect::Draft => {
                    self.lost_if(&source.feed_name.take(), "source_subscription.feed_name");
                    self.lost_if(
                        &source.exclusive_begin.take(),
                        "source_subscription.exclusive_begin",
                    );
                    self.lost_if(
                        &source.inclusive_end.take(),
                        "source_subscription.inclusive_end",
                    );
                    source.subscription_id.is_some()
                }
                Dialect::V10 => source.feed_name.is_some() && source.inclusive_end.is_some(),
                Dialect::V11 => source.feed_name.is_some() && source.subscription_id.is_some(),
            };
            if keep {
                inbox.source_subscription = Some(source);
            } else {
                self.note(
                    Effect::Lost,
                    "source_subscription",
                    format!("TAXII {} requires fields the input did not have", self.to),
                );
            }
        }
        inbox.content_blocks = self.blocks(std::mem::take(&mut inbox.content_blocks));
        inbox
    }

    fn blocks(&mut self, blocks: Vec<ContentBlock>) -> Vec<ContentBlock> {
        let mut kept: Vec<ContentBlock> = Vec::with_capacity(blocks.len());
        for (index, mut block) in blocks.into_iter().enumerate() {
            let field = |name: &str| format!("content_blocks[{index}].{name}");
            block.timestamp_label =
                self.timestamp(block.timestamp_label, &field("timestamp_label"));
            if self.to != Dialect::V11 {
                self.lost_if(&block.message.take(), &field("message"));
                let subtypes = std::mem::take(&mut block.binding.subtypes);
                self.lost_if_any(&subtypes, &field("binding.subtypes"));
            } else if block.binding.subtypes.len() > 1 {
                // A block's content is of one subtype at most.
                let extra = block.binding.subtypes.split_off(1);
                self.lost_if_any(&extra, &field("binding.subtypes"));
            }
            if self.from != self.to || self.to == Dialect::Draft {
                self.lost_if_signature(&block.signature.take(), &field("signature"));
            }
            if self.to == Dialect::Draft {
                self.lost_if(&block.timestamp_label.take(), &field("timestamp_label"));
                self.lost_if(&block.padding.take(), &field("padding"));
                if matches!(block.content, XmlContent::Text(_)) {
                    self.note(
                        Effect::Lost,
                        field("content"),
                        "the draft carries XML documents only, not text",
                    );
                    continue;
                }
                let binding = self
                    .draft_binding
                    .get_or_insert_with(|| block.binding.id.clone());
                if *binding != block.binding.id {
                    self.note(
                        Effect::Lost,
                        field("content"),
                        "the draft carries one content binding per message",
                    );
                    continue;
                }
                // The draft lists documents, not blocks: content with several
                // top-level elements reads back as one block per element.
                let xml = block.content.as_str();
                let (parts, text) = top_level_elements(xml);
                if text || parts.is_empty() {
                    self.note(
                        Effect::Lost,
                        field("content"),
                        "the draft carries XML documents only, not text",
                    );
                }
                if parts.len() != 1 || parts[0] != xml {
                    if parts.len() > 1 {
                        self.note(
                            Effect::Remapped,
                            field("content"),
                            format!("sent as {} documents, one per element", parts.len()),
                        );
                    }
                    let parts: Vec<String> = parts.into_iter().map(str::to_owned).collect();
                    for part in parts {
                        let mut copy = block.clone();
                        copy.content = XmlContent::Xml(part);
                        kept.push(copy);
                    }
                    continue;
                }
            }
            kept.push(block);
        }
        kept
    }
}

/// The top-level elements of an XML payload, each a document by itself (the
/// reader re-declares inherited namespaces on each), and whether there was
/// text between them. Comments and processing instructions between them go.
fn top_level_elements(xml: &str) -> (Vec<&str>, bool) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut depth, mut start, mut parts, mut text) = (0usize, 0, Vec::new(), false);
    loop {
        let at = reader.buffer_position() as usize;
        let Ok(event) = reader.read_event() else {
            // Not well-formed: kept as it is, for the writer to put down verbatim.
            return (vec![xml], false);
        };
        let end = reader.buffer_position() as usize;
        match event {
            Event::Start(_) => {
                if depth == 0 {
                    start = at;
                }
                depth += 1;
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    parts.push(&xml[start..end]);
                }
            }
            Event::Empty(_) if depth == 0 => parts.push(&xml[at..end]),
            Event::Text(chunk) if depth == 0 => {
                text |= !chunk.as_bytes().iter().all(u8::is_ascii_whitespace);
            }
            Event::CData(_) | Event::GeneralRef(_) if depth == 0 => text = true,
            Event::Eof => return (parts, text),
            _ => {}
        }
    }
}

/// The 1.1 detail name of a status type whose 1.0 and draft detail is a
/// space-separated list of supported ids.
fn list_detail_name(status_type: &StatusType) -> Option<&'static str> {
    match status_type {
        StatusType::UnsupportedContent => Some("SUPPORTED_CONTENT"),
        StatusType::UnsupportedMessage => Some("SUPPORTED_BINDING"),
        StatusType::UnsupportedProtocol => Some("SUPPORTED_PROTOCOL"),
        _ => None,
    }
}

/// Whether an id is the draft's GUID: 32 hex digits, spaces and dashes aside.
fn is_draft_guid(id: &str) -> bool {
    let digits = id.chars().filter(|c| !matches!(c, ' ' | '-')).count();
    digits == 32
        && id
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ' ' | '-'))
}

/// A number standing for an id read in `from`: a 1.0 id's decimal digits, a
/// draft GUID's hex digits, a 1.1 id's hex digits (inside `urn:uuid:` or not)
/// when it has no more than fit, otherwise a stable hash of the id. The same
/// id always maps to the same number, so a reply can be matched to its request.
fn id_number(id: &str, from: Dialect) -> u128 {
    let bare = match from {
        Dialect::Draft => id,
        Dialect::V10 | Dialect::V11 => id.strip_prefix("urn:uuid:").unwrap_or(id),
    };
    let hex: String = bare.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if from == Dialect::V10
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && let Ok(number) = id.parse::<u128>()
    {
        return number;
    }
    if !hex.is_empty() && hex.len() <= 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return u128::from_str_radix(&hex, 16).unwrap_or_default();
    }
    fnv1a_128(id.as_bytes())
}

fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u128::from(*byte)).wrapping_mul(PRIME)
    })
}

fn uuid_urn(number: u128) -> String {
    let hex = format!("{number:032x}");
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remapped_stably_and_reversibly_where_they_fit() {
        let draft = "a847 98be ffe8 40ee 3722 c893 288b d375";
        let number = id_number(draft, Dialect::Draft);
        assert_eq!(format!("{number:032x}"), "a84798beffe840ee3722c893288bd375");
        assert_eq!(id_number(&number.to_string(), Dialect::V10), number);
        assert_eq!(id_number(&uuid_urn(number), Dialect::V11), number);
        let digits = "12345678901234567890123456789012";
        assert_eq!(
            format!("{:032x}", id_number(digits, Dialect::Draft)),
            digits
        );
        assert_eq!(
            id_number(digits, Dialect::V10),
            digits.parse::<u128>().unwrap()
        );
        let one = id_number("urn:example:one", Dialect::V11);
        assert_eq!(one, id_number("urn:example:one", Dialect::V11));
        assert_ne!(one, id_number("urn:example:two", Dialect::V11));
        assert!(is_draft_guid(draft));
        assert!(!is_draft_guid("984987DE-FEAA-95FF-894C-CBCC432988839023"));
    }
}
