//! Reading a TAXII XML message of any dialect into a core [`Message`].
//!
//! The draft dialect has its own element names and shapes; TAXII 1.0 and 1.1
//! share most of theirs, so they are read by one set of functions that ask
//! `self.v11` where the two differ.

use super::error::ParseError;
use super::ids::{Ids, ids};
use super::limits::Limits;
use super::reader::{Element, XmlCursor};
use crate::core::*;

const DSIG_NAMESPACE: &str = "http://www.w3.org/2000/09/xmldsig#";

/// A message read from the wire and the dialect it was written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub dialect: Dialect,
    pub message: Message,
}

/// Reads a TAXII message of any dialect with the default [`Limits`].
pub fn parse(input: &[u8]) -> Result<Parsed, ParseError> {
    parse_with(input, &Limits::default())
}

/// Reads a TAXII message of any dialect; the root element's namespace says which.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<Parsed, ParseError> {
    if input.len() > limits.max_body_bytes {
        return Err(ParseError::bad_message(format!(
            "the message is {} bytes, more than the {} accepted",
            input.len(),
            limits.max_body_bytes
        )));
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let text = std::str::from_utf8(input).map_err(|e| {
        ParseError::bad_message(format!(
            "the message is not UTF-8 (byte {})",
            e.valid_up_to()
        ))
    })?;
    let mut cursor = XmlCursor::new(text, limits);
    let root = cursor.root()?;
    let ids = ids();
    let Some(dialect) = ids.dialect_of_namespace(&root.namespace) else {
        return Err(ParseError::new(
            StatusType::UnsupportedMessage,
            format!(
                "<{}> in namespace {:?} is not a message of any TAXII XML binding understood here",
                root.local, root.namespace
            ),
        ));
    };
    let id_attribute = if dialect == Dialect::Draft {
        "message-id"
    } else {
        "message_id"
    };
    let message_id = root.attribute(id_attribute).map(str::to_owned);
    let mut decoder = Decoder {
        cursor,
        ids,
        dialect,
        v11: dialect == Dialect::V11,
    };
    let message = decoder
        .message(&root)
        .and_then(|message| decoder.cursor.finish().map(|()| message))
        .map_err(|e| e.in_message(dialect, message_id.as_deref()))?;
    Ok(Parsed { dialect, message })
}

struct Decoder<'a> {
    cursor: XmlCursor<'a>,
    ids: &'static Ids,
    dialect: Dialect,
    v11: bool,
}

/// The children of one element, read in the order its schema lists them.
struct Children<'a> {
    order: &'static [&'static str],
    last: usize,
    /// Elements outside the TAXII namespace (the draft's STIX payloads) are
    /// returned with index `order.len()`.
    foreign_allowed: bool,
    tolerate_text: bool,
    /// The schemas allow an XML signature at the end of a message and of a
    /// content block only.
    signature_allowed: bool,
    /// Set once the parent's end tag is read (or it had none).
    done: bool,
    parent: &'a str,
    signature: Option<XmlContent>,
}

impl<'a> Children<'a> {
    fn new(parent: &Element<'a>, order: &'static [&'static str]) -> Self {
        Children {
            order,
            last: 0,
            foreign_allowed: false,
            tolerate_text: false,
            signature_allowed: false,
            done: parent.empty,
            parent: parent.qname,
            signature: None,
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), ParseError> {
    if slot.replace(value).is_some() {
        return Err(ParseError::bad_message(format!(
            "<{name}> appears more than once"
        )));
    }
    Ok(())
}

fn required<T>(slot: Option<T>, name: &str, parent: &str) -> Result<T, ParseError> {
    slot.ok_or_else(|| ParseError::bad_message(format!("<{parent}> lacks its <{name}>")))
}

fn parse_bool(text: &str, name: &str) -> Result<bool, ParseError> {
    match text.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(ParseError::bad_message(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

fn parse_number(text: &str, name: &str, minimum: u64) -> Result<u64, ParseError> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n >= minimum)
        .ok_or_else(|| {
            ParseError::bad_message(format!(
                "{name} must be an integer of at least {minimum}, not {text:?}"
            ))
        })
}

impl<'a> Decoder<'a> {
    fn ns(&self) -> &'static str {
        &self.ids.dialect(self.dialect).namespace
    }

    /// The next child in schema order, or `None` at the parent's end.
    fn next(
        &mut self,
        children: &mut Children<'a>,
    ) -> Result<Option<(usize, Element<'a>)>, ParseError> {
        if children.done {
            return Ok(None);
        }
        while let Some(element) = self.cursor.next_child(children.tolerate_text)? {
            if children.signature_allowed
                && &*element.namespace == DSIG_NAMESPACE
                && element.local == "Signature"
            {
                let signature = self.cursor.element(&element)?;
                set_once(
                    &mut children.signature,
                    XmlContent::Xml(signature),
                    "Signature",
                )?;
                continue;
            }
            if children.signature.is_some() {
                return Err(ParseError::bad_message(format!(
                    "<{}> follows the signature of <{}>",
                    element.qname, children.parent
                )));
            }
            let index = if *element.namespace == *self.ns() {
                children
                    .order
                    .iter()
                    .position(|name| *name == element.local)
            } else if children.foreign_allowed {
                Some(children.order.len())
            } else {
                None
            };
            let Some(index) = index else {
                return Err(ParseError::bad_message(format!(
                    "<{}> (namespace {:?}) is not expected in <{}>",
                    element.qname, element.namespace, children.parent
                )));
            };
            if index < children.last {
                return Err(ParseError::bad_message(format!(
                    "<{}> is out of order in <{}>",
                    element.qname, children.parent
                )));
            }
            children.last = index;
            return Ok(Some((index, element)));
        }
        children.done = true;
        Ok(None)
    }

    fn text(&mut self, element: &Element<'a>) -> Result<String, ParseError> {
        self.cursor.text(element)
    }

    /// Text whose surrounding whitespace is layout, not data (ids, addresses, bindings).
    fn token(&mut self, element: &Element<'a>) -> Result<String, ParseError> {
        let text = self.cursor.text(element)?;
        let trimmed = text.trim();
        Ok(if trimmed.len() == text.len() {
            text
        } else {
            trimmed.to_owned()
        })
    }

    fn timestamp(&mut self, element: &Element<'a>) -> Result<Timestamp, ParseError> {
        let text = self.token(element)?;
        self.timestamp_value(&text, element.qname)
    }

    fn timestamp_value(&self, text: &str, name: &str) -> Result<Timestamp, ParseError> {
        let timestamp: Timestamp = text
            .parse()
            .map_err(|e| ParseError::bad_message(format!("<{name}>: {e}")))?;
        if self.dialect != Dialect::Draft {
            // The 1.x schemas narrow xs:dateTime: four-digit years, at most
            // six fractional digits (even trailing zeros), a zone.
            let year_digits = text
                .trim_start_matches('-')
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            let fraction_digits = text.split_once('.').map_or(0, |(_, rest)| {
                rest.bytes().take_while(u8::is_ascii_digit).count()
            });
            if year_digits != 4 || fraction_digits > 6 {
                return Err(ParseError::bad_message(format!(
                    "<{name}> {text:?} is not a TAXII {} timestamp label (four-digit year, at most six fractional digits)",
                    self.dialect
                )));
            }
            if timestamp.offset_minutes().is_none() {
                return Err(ParseError::bad_message(format!(
                    "<{name}> {text:?} has no time zone, which TAXII {} requires",
                    self.dialect
                )));
            }
            if !timestamp.nanosecond().is_multiple_of(1000) {
                return Err(ParseError::bad_message(format!(
                    "<{name}> {text:?} has more than the 6 fractional digits TAXII {} allows",
                    self.dialect
                )));
            }
        }
        Ok(timestamp)
    }

    fn check_id(&self, id: &str, name: &str) -> Result<(), ParseError> {
        if id.is_empty() {
            return Err(ParseError::bad_message(format!("{name} is empty")));
        }
        if self.dialect == Dialect::V10 && !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::bad_message(format!(
                "{name} {id:?} is not digits only, as TAXII 1.0 requires"
            )));
        }
        Ok(())
    }

    fn message(&mut self, root: &Element<'a>) -> Result<Message, ParseError> {
        let draft = self.dialect == Dialect::Draft;
        let (id_name, reply_name) = if draft {
            ("message-id", "in-response-to")
        } else {
            ("message_id", "in_response_to")
        };
        let id = root.required_attribute(id_name)?.trim().to_owned();
        self.check_id(&id, id_name)?;
        let in_response_to = root.attribute(reply_name).map(|s| s.trim().to_owned());
        if let Some(reply) = &in_response_to {
            self.check_id(reply, reply_name)?;
        }
        let kind = if draft {
            draft_kind(root.local)
        } else {
            final_kind(root.local, self.v11)
        };
        let Some(kind) = kind else {
            return Err(ParseError::bad_message(format!(
                "<{}> is not a TAXII {} message",
                root.local, self.dialect
            )));
        };
        if !draft && kind.is_response() != in_response_to.is_some() {
            let needs = if kind.is_response() {
                "needs"
            } else {
                "must not carry"
            };
            return Err(ParseError::bad_message(format!(
                "a TAXII {} {kind} {needs} {reply_name}",
                self.dialect
            )));
        }
        let mut message = Message::new(id, Body::DiscoveryRequest);
        message.in_response_to = in_response_to;
        let order = if draft {
            draft_order(kind)
        } else {
            final_order(kind, self.v11)
        };
        let mut children = Children::new(root, order);
        children.foreign_allowed =
            draft && matches!(kind, MessageKind::PollResponse | MessageKind::Inbox);
        // The seed's figure 16 elides service instances with a literal "...".
        children.tolerate_text = draft;
        children.signature_allowed = !draft;
        let mut headers = Vec::new();
        message.body = self.body(kind, root, &mut children, &mut headers)?;
        message.extended_headers = headers;
        message.signature = children.signature;
        Ok(message)
    }

    fn body(
        &mut self,
        kind: MessageKind,
        root: &Element<'a>,
        children: &mut Children<'a>,
        headers: &mut Vec<ExtendedHeader>,
    ) -> Result<Body, ParseError> {
        let mut fields = Fields::default();
        while let Some((index, element)) = self.next(children)? {
            if index == 0 && is_header_list(element.local) {
                if fields.headers_seen {
                    return Err(ParseError::bad_message(
                        "extended headers appear more than once",
                    ));
                }
                fields.headers_seen = true;
                *headers = self.extended_headers(&element)?;
                continue;
            }
            self.field(kind, index, element, &mut fields)?;
        }
        if self.dialect == Dialect::Draft {
            self.draft_body(kind, root, fields)
        } else {
            self.final_body(kind, root, fields)
        }
    }

    fn extended_headers(&mut self, list: &Element<'a>) -> Result<Vec<ExtendedHeader>, ParseError> {
        let mut headers = Vec::new();
        if list.empty {
            return self.at_least_one_header(headers);
        }
        while let Some(element) = self.cursor.next_child(false)? {
            if self.dialect == Dialect::Draft {
                let name = format!("{}#{}", element.namespace, element.local);
                let value = self.cursor.content(&element)?;
                headers.push(ExtendedHeader { name, value });
            } else {
                if *element.namespace != *self.ns() || element.local != "Extended_Header" {
                    return Err(ParseError::bad_message(format!(
                        "<{}> is not expected in <{}>",
                        element.qname, list.qname
                    )));
                }
                let name = element.required_attribute("name")?.trim().to_owned();
                let value = self.cursor.content(&element)?;
                headers.push(ExtendedHeader { name, value });
            }
        }
        self.at_least_one_header(headers)
    }

    /// The draft allows an empty header list; the 1.x schemas do not.
    fn at_least_one_header(
        &self,
        headers: Vec<ExtendedHeader>,
    ) -> Result<Vec<ExtendedHeader>, ParseError> {
        if headers.is_empty() && self.dialect != Dialect::Draft {
            return Err(ParseError::bad_message(
                "<Extended_Headers> needs at least one <Extended_Header>",
            ));
        }
        Ok(headers)
    }

    /// Reads one child of a message root into the field it fills.
    fn field(
        &mut self,
        kind: MessageKind,
        index: usize,
        element: Element<'a>,
        fields: &mut Fields,
    ) -> Result<(), ParseError> {
        let name = element.local;
        if self.dialect == Dialect::Draft {
            return self.draft_field(kind, element, fields);
        }
        match name {
            "Service_Instance" => fields.services.push(self.service_instance(&element)?),
            "Feed" | "Collection" => fields.feeds.push(self.feed(&element)?),
            "Message" => set_once(&mut fields.message, self.text(&element)?, name)?,
            "Status_Detail" => {
                if self.v11 {
                    let details = self.status_details(&element)?;
                    set_once(&mut fields.details, details, name)?;
                } else {
                    set_once(&mut fields.detail_text, self.text(&element)?, name)?;
                }
            }
            "Subscription_ID" => {
                set_once(&mut fields.subscription_id, self.token(&element)?, name)?
            }
            "Subscription_Parameters" => set_once(
                &mut fields.parameters,
                self.subscription_parameters(&element)?,
                name,
            )?,
            "Push_Parameters" => {
                let (push, bindings) = self.push_parameters(&element)?;
                set_once(&mut fields.push, push, name)?;
                fields.content_bindings.extend(bindings);
            }
            "Subscription" => fields
                .subscriptions
                .push(self.subscription_record(&element)?),
            "Exclusive_Begin_Timestamp" => {
                set_once(&mut fields.begin, self.timestamp(&element)?, name)?
            }
            "Inclusive_Begin_Timestamp" => {
                // 1.0 labels its poll response's lower bound inclusively.
                let begin = self.timestamp(&element)?.shifted_nanos(-1_000);
                set_once(&mut fields.begin, begin, name)?
            }
            "Inclusive_End_Timestamp" => {
                set_once(&mut fields.end, self.timestamp(&element)?, name)?
            }
            "Content_Binding" => fields
                .content_bindings
                .push(self.content_binding(&element)?),
            "Poll_Parameters" => set_once(
                &mut fields.poll_parameters,
                self.poll_parameters(&element)?,
                name,
            )?,
            "Record_Count" => {
                set_once(&mut fields.record_count, self.record_count(&element)?, name)?
            }
            "Content_Block" => fields.blocks.push(self.content_block(&element)?),
            "Destination_Collection_Name" => fields.destinations.push(self.token(&element)?),
            "Source_Subscription" => set_once(
                &mut fields.source,
                self.source_subscription(&element)?,
                name,
            )?,
            _ => {
                return Err(ParseError::bad_message(format!(
                    "<{name}> (position {index}) is not handled in a {kind}"
                )));
            }
        }
        Ok(())
    }

    fn final_body(
        &mut self,
        kind: MessageKind,
        root: &Element<'a>,
        f: Fields,
    ) -> Result<Body, ParseError> {
        let feed_attribute = if self.v11 {
            "collection_name"
        } else {
            "feed_name"
        };
        let feed_name = || -> Result<String, ParseError> {
            Ok(root.required_attribute(feed_attribute)?.trim().to_owned())
        };
        let parent = root.qname;
        Ok(match kind {
            MessageKind::DiscoveryRequest => Body::DiscoveryRequest,
            MessageKind::FeedInformationRequest => Body::FeedInformationRequest,
            MessageKind::DiscoveryResponse => Body::DiscoveryResponse(DiscoveryResponse {
                services: f.services,
            }),
            MessageKind::FeedInformationResponse => {
                Body::FeedInformationResponse(FeedInformationResponse { feeds: f.feeds })
            }
            MessageKind::Status => {
                let status_type = self
                    .ids
                    .status_type(self.dialect, root.required_attribute("status_type")?);
                if f.details.as_ref().is_some_and(Vec::is_empty) {
                    return Err(ParseError::bad_message(
                        "<Status_Detail> needs at least one <Detail>",
                    ));
                }
                Body::Status(StatusMessage {
                    status_type,
                    details: f.details.unwrap_or_default(),
                    detail_text: f.detail_text,
                    message: f.message,
                })
            }
            MessageKind::SubscriptionManagementRequest => {
                let action_text = root.required_attribute("action")?;
                let action = self.action(action_text)?;
                let subscription_id = if self.v11 {
                    f.subscription_id
                } else {
                    root.attribute("subscription_id")
                        .map(|s| s.trim().to_owned())
                };
                let needs_id = matches!(
                    action,
                    SubscriptionAction::Unsubscribe
                        | SubscriptionAction::Pause
                        | SubscriptionAction::Resume
                );
                if needs_id && subscription_id.is_none() {
                    return Err(ParseError::bad_message(format!(
                        "a {action_text} request must name the subscription"
                    )));
                }
                let mut parameters = f.parameters;
                if !self.v11 && !f.content_bindings.is_empty() {
                    parameters = Some(SubscriptionParameters {
                        content_bindings: f.content_bindings,
                        ..SubscriptionParameters::default()
                    });
                }
                Body::SubscriptionManagementRequest(SubscriptionRequest {
                    feed_name: feed_name()?,
                    action,
                    subscription_id,
                    parameters,
                    delivery: f.push.map(Delivery::Push),
                })
            }
            MessageKind::SubscriptionManagementResponse => {
                Body::SubscriptionManagementResponse(SubscriptionResponse {
                    feed_name: feed_name()?,
                    message: f.message,
                    subscriptions: f.subscriptions,
                })
            }
            MessageKind::PollRequest => {
                let (subscription_id, parameters) = if self.v11 {
                    if f.subscription_id.is_some() == f.poll_parameters.is_some() {
                        return Err(ParseError::bad_message(
                            "a TAXII 1.1 poll request needs exactly one of <Subscription_ID> and <Poll_Parameters>",
                        ));
                    }
                    (f.subscription_id, f.poll_parameters)
                } else {
                    let parameters = (!f.content_bindings.is_empty()).then(|| PollParameters {
                        selection: SubscriptionParameters {
                            content_bindings: f.content_bindings,
                            ..SubscriptionParameters::default()
                        },
                        ..PollParameters::default()
                    });
                    (
                        root.attribute("subscription_id")
                            .map(|s| s.trim().to_owned()),
                        parameters,
                    )
                };
                Body::PollRequest(PollRequest {
                    feed_name: feed_name()?,
                    exclusive_begin: f.begin,
                    inclusive_end: f.end,
                    subscription_id,
                    parameters,
                })
            }
            MessageKind::PollResponse => {
                let v11_attribute = |name| root.attribute(name).filter(|_| self.v11);
                let more = v11_attribute("more")
                    .map(|v| parse_bool(v, "more"))
                    .transpose()?;
                let result_id = v11_attribute("result_id").map(|s| s.trim().to_owned());
                if more == Some(true) && result_id.is_none() {
                    return Err(ParseError::bad_message(
                        "a poll response with more=\"true\" needs a result_id",
                    ));
                }
                let subscription_id = if self.v11 {
                    f.subscription_id
                } else {
                    root.attribute("subscription_id")
                        .map(|s| s.trim().to_owned())
                };
                if !self.v11 && f.end.is_none() {
                    return Err(ParseError::bad_message(format!(
                        "<{parent}> lacks its <Inclusive_End_Timestamp>"
                    )));
                }
                Body::PollResponse(PollResponse {
                    feed_name: Some(feed_name()?),
                    more,
                    result_id,
                    result_part_number: v11_attribute("result_part_number")
                        .map(|v| parse_number(v, "result_part_number", 1))
                        .transpose()?,
                    subscription_id,
                    exclusive_begin: f.begin,
                    inclusive_end: f.end,
                    record_count: f.record_count,
                    message: f.message,
                    content_blocks: f.blocks,
                })
            }
            MessageKind::PollFulfillment => Body::PollFulfillment(PollFulfillment {
                feed_name: feed_name()?,
                result_id: root.required_attribute("result_id")?.trim().to_owned(),
                result_part_number: root
                    .attribute("result_part_number")
                    .map(|v| parse_number(v, "result_part_number", 1))
                    .transpose()?,
            }),
            MessageKind::Inbox => Body::Inbox(InboxMessage {
                result_id: root
                    .attribute("result_id")
                    .filter(|_| self.v11)
                    .map(|s| s.trim().to_owned()),
                destination_feeds: f.destinations,
                message: f.message,
                source_subscription: f.source,
                record_count: f.record_count,
                content_blocks: f.blocks,
            }),
            MessageKind::SubscriptionAlert => {
                unreachable!("only the draft has subscription alerts")
            }
        })
    }

    fn action(&self, wire: &str) -> Result<SubscriptionAction, ParseError> {
        self.ids
            .subscription_action(self.dialect, wire)
            .ok_or_else(|| {
                ParseError::bad_message(format!(
                    "{wire:?} is not a subscription action of TAXII {}",
                    self.dialect
                ))
            })
    }

    fn status_details(&mut self, list: &Element<'a>) -> Result<Vec<StatusDetail>, ParseError> {
        let mut details = Vec::new();
        let mut children = Children::new(list, &["Detail"]);
        while let Some((_, element)) = self.next(&mut children)? {
            let name = element.required_attribute("name")?.trim().to_owned();
            let value = self.cursor.content(&element)?;
            details.push(StatusDetail { name, value });
        }
        Ok(details)
    }

    fn available(&self, element: &Element<'a>, name: &str) -> Result<Option<bool>, ParseError> {
        element
            .attribute(name)
            .map(|v| parse_bool(v, name))
            .transpose()
    }

    fn service_instance(&mut self, element: &Element<'a>) -> Result<ServiceInstance, ParseError> {
        let service_type_text = element.required_attribute("service_type")?;
        let service_type = self
            .ids
            .service_type(self.dialect, service_type_text)
            .ok_or_else(|| {
                ParseError::bad_message(format!(
                    "{service_type_text:?} is not a TAXII {} service type",
                    self.dialect
                ))
            })?;
        let version = self
            .ids
            .services_version(element.required_attribute("service_version")?);
        let available = self.available(element, "available")?;
        let order: &'static [&'static str] = if self.v11 {
            &[
                "Protocol_Binding",
                "Address",
                "Message_Binding",
                "Supported_Query",
                "Content_Binding",
                "Message",
            ]
        } else {
            &[
                "Protocol_Binding",
                "Address",
                "Message_Binding",
                "Content_Binding",
                "Message",
            ]
        };
        let mut children = Children::new(element, order);
        let (mut protocol, mut address, mut message) = (None, None, None);
        let (mut message_bindings, mut content_bindings, mut supported_queries) =
            (vec![], vec![], vec![]);
        while let Some((_, child)) = self.next(&mut children)? {
            match child.local {
                "Protocol_Binding" => set_once(&mut protocol, self.protocol(&child)?, child.local)?,
                "Address" => set_once(&mut address, self.token(&child)?, child.local)?,
                "Message_Binding" => message_bindings.push(self.message_binding(&child)?),
                "Supported_Query" => supported_queries.push(self.query(&child)?),
                "Content_Binding" => content_bindings.push(self.content_binding(&child)?),
                _ => set_once(&mut message, self.text(&child)?, child.local)?,
            }
        }
        let parent = element.qname;
        if message_bindings.is_empty() {
            return Err(ParseError::bad_message(format!(
                "<{parent}> lacks its <Message_Binding>"
            )));
        }
        Ok(ServiceInstance {
            service_type,
            version,
            available,
            protocol: required(protocol, "Protocol_Binding", parent)?,
            address: required(address, "Address", parent)?,
            message_bindings,
            content_bindings,
            supported_queries,
            message,
        })
    }

    fn protocol(&mut self, element: &Element<'a>) -> Result<ProtocolBinding, ParseError> {
        let text = self.token(element)?;
        Ok(self.ids.protocol(&text))
    }

    fn message_binding(&mut self, element: &Element<'a>) -> Result<MessageBinding, ParseError> {
        let text = self.token(element)?;
        Ok(self.ids.message_binding(&text))
    }

    fn query(&mut self, element: &Element<'a>) -> Result<Query, ParseError> {
        let format_id = element.required_attribute("format_id")?.trim().to_owned();
        let content = self.cursor.content(element)?;
        Ok(Query { format_id, content })
    }

    /// 1.0 writes a content binding as text; 1.1 as `binding_id` with subtypes.
    fn content_binding(&mut self, element: &Element<'a>) -> Result<ContentBinding, ParseError> {
        if !self.v11 {
            let text = self.token(element)?;
            return Ok(self.ids.content_binding(self.dialect, &text));
        }
        let mut binding = ContentBinding::new(element.required_attribute("binding_id")?.trim());
        if !element.empty {
            let mut children = Children::new(element, &["Subtype"]);
            while let Some((_, child)) = self.next(&mut children)? {
                binding
                    .subtypes
                    .push(child.required_attribute("subtype_id")?.trim().to_owned());
                // A subtype is named by its attribute and holds nothing.
                if !self.text(&child)?.trim().is_empty() {
                    return Err(ParseError::bad_message("<Subtype> holds text"));
                }
            }
        }
        Ok(binding)
    }

    fn feed(&mut self, element: &Element<'a>) -> Result<FeedInfo, ParseError> {
        let name_attribute = if self.v11 {
            "collection_name"
        } else {
            "feed_name"
        };
        let collection_type = match element.attribute("collection_type").map(str::trim) {
            None => None,
            Some("DATA_FEED") => Some(CollectionType::DataFeed),
            Some("DATA_SET") => Some(CollectionType::DataSet),
            Some(other) => {
                return Err(ParseError::bad_message(format!(
                    "{other:?} is not a collection type"
                )));
            }
        };
        let mut feed = FeedInfo {
            name: element
                .required_attribute(name_attribute)?
                .trim()
                .to_owned(),
            collection_type,
            available: self.available(element, "available")?,
            description: String::new(),
            volume: None,
            content_bindings: vec![],
            push_methods: vec![],
            polling_services: vec![],
            subscription_services: vec![],
            receiving_inboxes: vec![],
        };
        let order: &'static [&'static str] = if self.v11 {
            &[
                "Description",
                "Collection_Volume",
                "Content_Binding",
                "Push_Method",
                "Polling_Service",
                "Subscription_Service",
                "Receiving_Inbox_Service",
            ]
        } else {
            &[
                "Description",
                "Content_Binding",
                "Push_Method",
                "Polling_Service",
                "Subscription_Service",
            ]
        };
        let mut children = Children::new(element, order);
        let mut description = None;
        while let Some((_, child)) = self.next(&mut children)? {
            match child.local {
                "Description" => set_once(&mut description, self.text(&child)?, child.local)?,
                "Collection_Volume" => {
                    let text = self.text(&child)?;
                    set_once(
                        &mut feed.volume,
                        parse_number(&text, child.local, 0)?,
                        child.local,
                    )?
                }
                "Content_Binding" => feed.content_bindings.push(self.content_binding(&child)?),
                "Push_Method" => {
                    let endpoint = self.endpoint(&child, false)?;
                    feed.push_methods.push(PushMethod {
                        protocol: endpoint.protocol.expect("endpoint() requires a protocol"),
                        message_bindings: endpoint.message_bindings,
                    });
                }
                "Polling_Service" => feed.polling_services.push(self.endpoint(&child, true)?),
                "Subscription_Service" => feed
                    .subscription_services
                    .push(self.endpoint(&child, true)?),
                _ => feed.receiving_inboxes.push(self.inbox_endpoint(&child)?),
            }
        }
        feed.description = required(description, "Description", element.qname)?;
        let reachable = !feed.push_methods.is_empty() || !feed.polling_services.is_empty();
        if !self.v11 && (feed.content_bindings.is_empty() || !reachable) {
            return Err(ParseError::bad_message(format!(
                "a TAXII 1.0 <{}> needs a Content_Binding and a Push_Method or Polling_Service",
                element.qname
            )));
        }
        Ok(feed)
    }

    /// `Protocol_Binding`, `Address` (when `with_address`), `Message_Binding`+.
    fn endpoint(
        &mut self,
        element: &Element<'a>,
        with_address: bool,
    ) -> Result<Endpoint, ParseError> {
        let order: &'static [&'static str] = if with_address {
            &["Protocol_Binding", "Address", "Message_Binding"]
        } else {
            &["Protocol_Binding", "Message_Binding"]
        };
        let mut children = Children::new(element, order);
        let (mut protocol, mut address, mut message_bindings) = (None, None, vec![]);
        while let Some((_, child)) = self.next(&mut children)? {
            match child.local {
                "Protocol_Binding" => set_once(&mut protocol, self.protocol(&child)?, child.local)?,
                "Address" => set_once(&mut address, self.token(&child)?, child.local)?,
                _ => message_bindings.push(self.message_binding(&child)?),
            }
        }
        self.complete_endpoint(element, protocol, address, message_bindings, with_address)
    }

    fn complete_endpoint(
        &self,
        element: &Element<'a>,
        protocol: Option<ProtocolBinding>,
        address: Option<String>,
        message_bindings: Vec<MessageBinding>,
        with_address: bool,
    ) -> Result<Endpoint, ParseError> {
        let parent = element.qname;
        if message_bindings.is_empty() {
            return Err(ParseError::bad_message(format!(
                "<{parent}> lacks its <Message_Binding>"
            )));
        }
        Ok(Endpoint {
            protocol: Some(required(protocol, "Protocol_Binding", parent)?),
            address: if with_address {
                Some(required(address, "Address", parent)?)
            } else {
                None
            },
            message_bindings,
        })
    }

    fn inbox_endpoint(&mut self, element: &Element<'a>) -> Result<InboxEndpoint, ParseError> {
        let mut children = Children::new(
            element,
            &[
                "Protocol_Binding",
                "Address",
                "Message_Binding",
                "Content_Binding",
            ],
        );
        let (mut protocol, mut address, mut message_bindings, mut content_bindings) =
            (None, None, vec![], vec![]);
        while let Some((_, child)) = self.next(&mut children)? {
            match child.local {
                "Protocol_Binding" => set_once(&mut protocol, self.protocol(&child)?, child.local)?,
                "Address" => set_once(&mut address, self.token(&child)?, child.local)?,
                "Message_Binding" => message_bindings.push(self.message_binding(&child)?),
                _ => content_bindings.push(self.content_binding(&child)?),
            }
        }
        Ok(InboxEndpoint {
            endpoint: self.complete_endpoint(element, protocol, address, message_bindings, true)?,
            content_bindings,
        })
    }

    fn subscription_parameters(
        &mut self,
        element: &Element<'a>,
    ) -> Result<SubscriptionParameters, ParseError> {
        let mut parameters = SubscriptionParameters::default();
        if element.empty {
            return Ok(parameters);
        }
        let mut children = Children::new(element, &["Response_Type", "Content_Binding", "Query"]);
        while let Some((_, child)) = self.next(&mut children)? {
            self.selection_field(child, &mut parameters)?;
        }
        Ok(parameters)
    }

    fn selection_field(
        &mut self,
        child: Element<'a>,
        parameters: &mut SubscriptionParameters,
    ) -> Result<(), ParseError> {
        match child.local {
            "Response_Type" => {
                let response_type = match self.token(&child)?.as_str() {
                    "FULL" => ResponseType::Full,
                    "COUNT_ONLY" => ResponseType::CountOnly,
                    other => {
                        return Err(ParseError::bad_message(format!(
                            "{other:?} is not a response type"
                        )));
                    }
                };
                set_once(&mut parameters.response_type, response_type, child.local)
            }
            "Content_Binding" => {
                parameters
                    .content_bindings
                    .push(self.content_binding(&child)?);
                Ok(())
            }
            _ => {
                let query = self.query(&child)?;
                set_once(&mut parameters.query, query, child.local)
            }
        }
    }

    /// Push parameters; 1.0 lists content bindings inside them.
    fn push_parameters(
        &mut self,
        element: &Element<'a>,
    ) -> Result<(PushParameters, Vec<ContentBinding>), ParseError> {
        let mut children = Children::new(
            element,
            &[
                "Protocol_Binding",
                "Address",
                "Message_Binding",
                "Content_Binding",
            ],
        );
        let (mut protocol, mut address, mut message_binding, mut bindings) =
            (None, None, None, vec![]);
        while let Some((_, child)) = self.next(&mut children)? {
            match child.local {
                "Protocol_Binding" => set_once(&mut protocol, self.protocol(&child)?, child.local)?,
                "Address" => set_once(&mut address, self.token(&child)?, child.local)?,
                "Message_Binding" => set_once(
                    &mut message_binding,
                    self.message_binding(&child)?,
                    child.local,
                )?,
                _ if !self.v11 => bindings.push(self.content_binding(&child)?),
                _ => {
                    return Err(ParseError::bad_message(format!(
                        "<{}> is not expected in <{}>",
                        child.qname, element.qname
                    )));
                }
            }
        }
        let parent = element.qname;
        Ok((
            PushParameters {
                protocol: required(protocol, "Protocol_Binding", parent)?,
                address: required(address, "Address", parent)?,
                message_binding: required(message_binding, "Message_Binding", parent)?,
            },
            bindings,
        ))
    }

    fn subscription_record(
        &mut self,
        element: &Element<'a>,
    ) -> Result<SubscriptionRecord, ParseError> {
        let status = match element.attribute("status").map(str::trim) {
            None => None,
            Some("ACTIVE") => Some(SubscriptionStatus::Active),
            Some("PAUSED") => Some(SubscriptionStatus::Paused),
            Some("UNSUBSCRIBED") => Some(SubscriptionStatus::Unsubscribed),
            Some(other) => {
                return Err(ParseError::bad_message(format!(
                    "{other:?} is not a subscription status"
                )));
            }
        };
        let mut id = if self.v11 {
            None
        } else {
            Some(
                element
                    .required_attribute("subscription_id")?
                    .trim()
                    .to_owned(),
            )
        };
        let mut record = SubscriptionRecord {
            id: String::new(),
            status,
            parameters: None,
            delivery: None,
            poll_instances: vec![],
        };
        if !element.empty {
            let mut children = Children::new(
                element,
                &[
                    "Subscription_ID",
                    "Subscription_Parameters",
                    "Push_Parameters",
                    "Poll_Instance",
                ],
            );
            while let Some((_, child)) = self.next(&mut children)? {
                match child.local {
                    "Subscription_ID" if self.v11 => {
                        set_once(&mut id, self.token(&child)?, child.local)?
                    }
                    "Subscription_Parameters" if self.v11 => set_once(
                        &mut record.parameters,
                        self.subscription_parameters(&child)?,
                        child.local,
                    )?,
                    "Push_Parameters" => {
                        let (push, bindings) = self.push_parameters(&child)?;
                        set_once(&mut record.delivery, Delivery::Push(push), child.local)?;
                        if !bindings.is_empty() {
                            record.parameters = Some(SubscriptionParameters {
                                content_bindings: bindings,
                                ..SubscriptionParameters::default()
                            });
                        }
                    }
                    "Poll_Instance" => record.poll_instances.push(self.endpoint(&child, true)?),
                    _ => {
                        return Err(ParseError::bad_message(format!(
                            "<{}> is not expected in <{}>",
                            child.qname, element.qname
                        )));
                    }
                }
            }
        }
        record.id = required(id, "Subscription_ID", element.qname)?;
        Ok(record)
    }

    fn poll_parameters(&mut self, element: &Element<'a>) -> Result<PollParameters, ParseError> {
        let mut parameters = PollParameters {
            allow_asynch: self.available(element, "allow_asynch")?,
            ..PollParameters::default()
        };
        if element.empty {
            return Ok(parameters);
        }
        let mut children = Children::new(
            element,
            &[
                "Response_Type",
                "Content_Binding",
                "Query",
                "Delivery_Parameters",
            ],
        );
        while let Some((_, child)) = self.next(&mut children)? {
            if child.local == "Delivery_Parameters" {
                if parameters.allow_asynch != Some(true) {
                    return Err(ParseError::bad_message(
                        "<Delivery_Parameters> needs allow_asynch=\"true\"",
                    ));
                }
                let (push, _) = self.push_parameters(&child)?;
                set_once(&mut parameters.delivery, push, child.local)?;
            } else {
                self.selection_field(child, &mut parameters.selection)?;
            }
        }
        Ok(parameters)
    }

    fn record_count(&mut self, element: &Element<'a>) -> Result<RecordCount, ParseError> {
        let partial = self.available(element, "partial_count")?;
        let text = self.text(element)?;
        Ok(RecordCount {
            count: parse_number(&text, element.local, 0)?,
            partial,
        })
    }

    fn source_subscription(
        &mut self,
        element: &Element<'a>,
    ) -> Result<SourceSubscription, ParseError> {
        let name_attribute = if self.v11 {
            "collection_name"
        } else {
            "feed_name"
        };
        let mut source = SourceSubscription {
            feed_name: Some(
                element
                    .required_attribute(name_attribute)?
                    .trim()
                    .to_owned(),
            ),
            subscription_id: element
                .attribute("subscription_id")
                .map(|s| s.trim().to_owned()),
            exclusive_begin: None,
            inclusive_end: None,
        };
        let mut children = Children::new(
            element,
            &[
                "Subscription_ID",
                "Exclusive_Begin_Timestamp",
                "Inclusive_Begin_Timestamp",
                "Inclusive_End_Timestamp",
            ],
        );
        if !element.empty {
            while let Some((_, child)) = self.next(&mut children)? {
                match child.local {
                    "Subscription_ID" if self.v11 => set_once(
                        &mut source.subscription_id,
                        self.token(&child)?,
                        child.local,
                    )?,
                    "Exclusive_Begin_Timestamp" if self.v11 => set_once(
                        &mut source.exclusive_begin,
                        self.timestamp(&child)?,
                        child.local,
                    )?,
                    "Inclusive_Begin_Timestamp" if !self.v11 => {
                        let begin = self.timestamp(&child)?.shifted_nanos(-1_000);
                        set_once(&mut source.exclusive_begin, begin, child.local)?
                    }
                    "Inclusive_End_Timestamp" => set_once(
                        &mut source.inclusive_end,
                        self.timestamp(&child)?,
                        child.local,
                    )?,
                    _ => {
                        return Err(ParseError::bad_message(format!(
                            "<{}> is not expected in <{}>",
                            child.qname, element.qname
                        )));
                    }
                }
            }
        }
        if self.v11 && source.subscription_id.is_none() {
            return Err(ParseError::bad_message(format!(
                "<{}> lacks its <Subscription_ID>",
                element.qname
            )));
        }
        if !self.v11 && source.inclusive_end.is_none() {
            return Err(ParseError::bad_message(format!(
                "<{}> lacks its <Inclusive_End_Timestamp>",
                element.qname
            )));
        }
        Ok(source)
    }

    fn content_block(&mut self, element: &Element<'a>) -> Result<ContentBlock, ParseError> {
        let mut children = Children::new(
            element,
            &[
                "Content_Binding",
                "Content",
                "Timestamp_Label",
                "Message",
                "Padding",
            ],
        );
        children.signature_allowed = true;
        let (mut binding, mut content, mut label, mut message, mut padding) =
            (None, None, None, None, None);
        if !element.empty {
            while let Some((_, child)) = self.next(&mut children)? {
                match child.local {
                    "Content_Binding" => {
                        set_once(&mut binding, self.content_binding(&child)?, child.local)?
                    }
                    "Content" => set_once(&mut content, self.cursor.content(&child)?, child.local)?,
                    "Timestamp_Label" => {
                        set_once(&mut label, self.timestamp(&child)?, child.local)?
                    }
                    "Message" if self.v11 => {
                        set_once(&mut message, self.text(&child)?, child.local)?
                    }
                    "Padding" => set_once(&mut padding, self.text(&child)?, child.local)?,
                    _ => {
                        return Err(ParseError::bad_message(format!(
                            "<{}> is not expected in <{}>",
                            child.qname, element.qname
                        )));
                    }
                }
            }
        }
        let parent = element.qname;
        let binding = required(binding, "Content_Binding", parent)?;
        if binding.subtypes.len() > 1 {
            return Err(ParseError::bad_message(
                "the Content_Binding of a content block names one subtype at most",
            ));
        }
        Ok(ContentBlock {
            binding,
            content: required(content, "Content", parent)?,
            timestamp_label: label,
            message,
            padding,
            signature: children.signature,
        })
    }

    // ---- the seed's draft dialect ----

    fn draft_field(
        &mut self,
        kind: MessageKind,
        element: Element<'a>,
        f: &mut Fields,
    ) -> Result<(), ParseError> {
        let name = element.local;
        if *element.namespace != *self.ns() {
            // A payload: the draft carries STIX documents inline.
            f.blocks_raw.push(self.cursor.element(&element)?);
            return Ok(());
        }
        match name {
            "service-instance" => f.services.push(self.draft_service(&element)?),
            "feed" => f.feeds.push(self.draft_feed(&element)?),
            "message" => set_once(&mut f.message, self.text(&element)?, name)?,
            "error-detail" => set_once(&mut f.detail_text, self.text(&element)?, name)?,
            "feed-name" => set_once(&mut f.feed_name, self.token(&element)?, name)?,
            "action" => {
                if kind == MessageKind::SubscriptionAlert {
                    let effective = element
                        .required_attribute("effective-time")?
                        .trim()
                        .to_owned();
                    f.effective_time = Some(self.timestamp_value(&effective, "effective-time")?);
                    f.alert_status = element
                        .attribute("error-type")
                        .map(|s| self.ids.status_type(self.dialect, s));
                }
                let text = self.token(&element)?;
                set_once(&mut f.action, self.action(&text)?, name)?
            }
            "subscription-id" => set_once(&mut f.subscription_id, self.token(&element)?, name)?,
            "subscription" => {
                let record = self.draft_subscription(&element)?;
                if kind == MessageKind::SubscriptionManagementResponse {
                    f.subscriptions.push(record);
                } else {
                    set_once(&mut f.draft_subscription, record, name)?;
                }
            }
            "begin-timestamp" => {
                // The draft's lower bound is inclusive: the seed continues a poll
                // from the last end timestamp plus the smallest step.
                let begin = self.timestamp(&element)?.shifted_nanos(-1_000);
                set_once(&mut f.begin, begin, name)?
            }
            "end-timestamp" => set_once(&mut f.end, self.timestamp(&element)?, name)?,
            "content-binding" => {
                let text = self.token(&element)?;
                set_once(
                    &mut f.draft_binding,
                    self.ids.content_binding(self.dialect, &text),
                    name,
                )?
            }
            _ => {
                return Err(ParseError::bad_message(format!(
                    "<{name}> is not handled in a {kind}"
                )));
            }
        }
        Ok(())
    }

    fn draft_body(
        &mut self,
        kind: MessageKind,
        root: &Element<'a>,
        f: Fields,
    ) -> Result<Body, ParseError> {
        let parent = root.qname;
        let blocks = |binding: &Option<ContentBinding>, raw: Vec<String>| -> Vec<ContentBlock> {
            raw.into_iter()
                .map(|xml| {
                    ContentBlock::new(
                        binding.clone().expect("checked before"),
                        XmlContent::Xml(xml),
                    )
                })
                .collect()
        };
        Ok(match kind {
            MessageKind::DiscoveryRequest => Body::DiscoveryRequest,
            MessageKind::FeedInformationRequest => Body::FeedInformationRequest,
            MessageKind::DiscoveryResponse => Body::DiscoveryResponse(DiscoveryResponse {
                services: f.services,
            }),
            MessageKind::FeedInformationResponse => {
                Body::FeedInformationResponse(FeedInformationResponse { feeds: f.feeds })
            }
            MessageKind::Status => Body::Status(StatusMessage {
                status_type: self
                    .ids
                    .status_type(self.dialect, root.required_attribute("error-type")?),
                details: vec![],
                detail_text: f.detail_text,
                message: f.message,
            }),
            MessageKind::SubscriptionManagementRequest => {
                let action = required(f.action, "action", parent)?;
                let needs_id = !matches!(
                    action,
                    SubscriptionAction::Subscribe | SubscriptionAction::Status
                );
                if needs_id && f.subscription_id.is_none() {
                    return Err(ParseError::bad_message(format!(
                        "a {action:?} request must name the subscription"
                    )));
                }
                let record = f.draft_subscription;
                if matches!(
                    action,
                    SubscriptionAction::Subscribe | SubscriptionAction::Modify
                ) && record.is_none()
                {
                    return Err(ParseError::bad_message(format!(
                        "a {action:?} request needs its <subscription>"
                    )));
                }
                let (parameters, delivery) = record
                    .map(|r| (r.parameters, r.delivery))
                    .unwrap_or((None, None));
                Body::SubscriptionManagementRequest(SubscriptionRequest {
                    feed_name: required(f.feed_name, "feed-name", parent)?,
                    action,
                    subscription_id: f.subscription_id,
                    parameters,
                    delivery,
                })
            }
            MessageKind::SubscriptionManagementResponse => {
                Body::SubscriptionManagementResponse(SubscriptionResponse {
                    feed_name: required(f.feed_name, "feed-name", parent)?,
                    message: f.message,
                    subscriptions: f.subscriptions,
                })
            }
            MessageKind::SubscriptionAlert => {
                let record = f.draft_subscription;
                Body::SubscriptionAlert(SubscriptionAlert {
                    feed_name: required(f.feed_name, "feed-name", parent)?,
                    action: required(f.action, "action", parent)?,
                    effective_time: required(f.effective_time, "action effective-time", parent)?,
                    status_type: f.alert_status,
                    subscription_id: required(f.subscription_id, "subscription-id", parent)?,
                    content_binding: record
                        .as_ref()
                        .and_then(|r| r.parameters.as_ref())
                        .and_then(|p| p.content_bindings.first().cloned()),
                    subscription: record.and_then(|r| r.delivery),
                    message: f.message,
                })
            }
            MessageKind::PollRequest => {
                if f.subscription_id.is_some() == f.draft_binding.is_some() {
                    return Err(ParseError::bad_message(
                        "a draft poll request needs exactly one of <subscription-id> and <content-binding>",
                    ));
                }
                Body::PollRequest(PollRequest {
                    feed_name: required(f.feed_name, "feed-name", parent)?,
                    exclusive_begin: f.begin,
                    inclusive_end: f.end,
                    subscription_id: f.subscription_id,
                    parameters: f.draft_binding.map(|binding| PollParameters {
                        selection: SubscriptionParameters {
                            content_bindings: vec![binding],
                            ..SubscriptionParameters::default()
                        },
                        ..PollParameters::default()
                    }),
                })
            }
            MessageKind::PollResponse => {
                required(f.draft_binding.as_ref(), "content-binding", parent)?;
                Body::PollResponse(PollResponse {
                    feed_name: None,
                    more: None,
                    result_id: None,
                    result_part_number: None,
                    subscription_id: f.subscription_id,
                    exclusive_begin: f.begin,
                    inclusive_end: Some(required(f.end, "end-timestamp", parent)?),
                    record_count: None,
                    message: f.message,
                    content_blocks: blocks(&f.draft_binding, f.blocks_raw),
                })
            }
            MessageKind::Inbox => {
                required(f.draft_binding.as_ref(), "content-binding", parent)?;
                if f.blocks_raw.is_empty() {
                    return Err(ParseError::bad_message(format!(
                        "<{parent}> carries no STIX document"
                    )));
                }
                Body::Inbox(InboxMessage {
                    message: f.message,
                    source_subscription: f.subscription_id.map(|id| SourceSubscription {
                        feed_name: None,
                        subscription_id: Some(id),
                        exclusive_begin: None,
                        inclusive_end: None,
                    }),
                    content_blocks: blocks(&f.draft_binding, f.blocks_raw),
                    ..InboxMessage::default()
                })
            }
            MessageKind::PollFulfillment => unreachable!("the draft has no poll fulfillment"),
        })
    }

    fn draft_service(&mut self, element: &Element<'a>) -> Result<ServiceInstance, ParseError> {
        let service_type_text = element.required_attribute("service-type")?;
        let service_type = self
            .ids
            .service_type(self.dialect, service_type_text)
            .ok_or_else(|| {
                ParseError::bad_message(format!(
                    "{service_type_text:?} is not a TAXII {} service type",
                    self.dialect
                ))
            })?;
        let version = self
            .ids
            .services_version(element.required_attribute("service-version")?);
        let available = self.available(element, "available")?;
        let mut children = Children::new(
            element,
            &[
                "protocol-binding",
                "message-binding",
                "content-binding",
                "service-address",
                "message",
            ],
        );
        let (mut protocol, mut address, mut message) = (None, None, None);
        let (mut message_bindings, mut content_bindings) = (vec![], vec![]);
        while let Some((_, child)) = self.next(&mut children)? {
            match child.local {
                "protocol-binding" => set_once(&mut protocol, self.protocol(&child)?, child.local)?,
                "service-address" => set_once(&mut address, self.token(&child)?, child.local)?,
                "message-binding" => message_bindings.push(self.message_binding(&child)?),
                "content-binding" => {
                    let text = self.token(&child)?;
                    content_bindings.push(self.ids.content_binding(self.dialect, &text));
                }
                _ => set_once(&mut message, self.text(&child)?, child.local)?,
            }
        }
        let parent = element.qname;
        if message_bindings.is_empty() {
            return Err(ParseError::bad_message(format!(
                "<{parent}> lacks its <message-binding>"
            )));
        }
        Ok(ServiceInstance {
            service_type,
            version,
            available,
            protocol: required(protocol, "protocol-binding", parent)?,
            address: required(address, "service-address", parent)?,
            message_bindings,
            content_bindings,
            supported_queries: vec![],
            message,
        })
    }

    fn draft_feed(&mut self, element: &Element<'a>) -> Result<FeedInfo, ParseError> {
        let poll_method = self.ids.poll_delivery_method();
        let mut children = Children::new(
            element,
            &[
                "description",
                "delivery-method",
                "message-binding",
                "content-binding",
            ],
        );
        let (mut description, mut methods, mut message_bindings, mut content_bindings) =
            (None, vec![], vec![], vec![]);
        while let Some((_, child)) = self.next(&mut children)? {
            match child.local {
                "description" => set_once(&mut description, self.text(&child)?, child.local)?,
                "delivery-method" => methods.push(self.token(&child)?),
                "message-binding" => message_bindings.push(self.message_binding(&child)?),
                _ => {
                    let text = self.token(&child)?;
                    content_bindings.push(self.ids.content_binding(self.dialect, &text));
                }
            }
        }
        let parent = element.qname;
        if methods.is_empty() || message_bindings.is_empty() || content_bindings.is_empty() {
            return Err(ParseError::bad_message(format!(
                "<{parent}> needs a delivery-method, a message-binding and a content-binding"
            )));
        }
        let mut push_methods = Vec::new();
        let mut polling_services = Vec::new();
        for method in methods {
            if method == poll_method {
                polling_services.push(Endpoint {
                    protocol: None,
                    address: None,
                    message_bindings: message_bindings.clone(),
                });
            } else {
                push_methods.push(PushMethod {
                    protocol: self.ids.protocol(&method),
                    message_bindings: message_bindings.clone(),
                });
            }
        }
        Ok(FeedInfo {
            name: element.required_attribute("feed-name")?.trim().to_owned(),
            collection_type: None,
            available: self.available(element, "available")?,
            description: required(description, "description", parent)?,
            volume: None,
            content_bindings,
            push_methods,
            polling_services,
            subscription_services: vec![],
            receiving_inboxes: vec![],
        })
    }

    /// A draft subscription record, as a core record (its id empty in requests).
    fn draft_subscription(
        &mut self,
        element: &Element<'a>,
    ) -> Result<SubscriptionRecord, ParseError> {
        let poll_method = self.ids.poll_delivery_method();
        let mut children = Children::new(
            element,
            &[
                "protect",
                "delivery-method",
                "message-binding",
                "content-binding",
                "send-to",
            ],
        );
        let (mut method, mut message_binding, mut binding, mut send_to) = (None, None, None, None);
        while let Some((_, child)) = self.next(&mut children)? {
            match child.local {
                // The draft schema's <protect> is defined nowhere in the draft
                // specification and never used by the seed: accepted, not kept.
                "protect" => {
                    let text = self.text(&child)?;
                    parse_bool(&text, "protect")?;
                }
                "delivery-method" => set_once(&mut method, self.token(&child)?, child.local)?,
                "message-binding" => set_once(
                    &mut message_binding,
                    self.message_binding(&child)?,
                    child.local,
                )?,
                "content-binding" => {
                    let text = self.token(&child)?;
                    set_once(
                        &mut binding,
                        self.ids.content_binding(self.dialect, &text),
                        child.local,
                    )?
                }
                _ => set_once(&mut send_to, self.token(&child)?, child.local)?,
            }
        }
        let parent = element.qname;
        let method = required(method, "delivery-method", parent)?;
        let message_binding = required(message_binding, "message-binding", parent)?;
        let binding = required(binding, "content-binding", parent)?;
        let send_to = required(send_to, "send-to", parent)?;
        let delivery = if method == poll_method {
            Delivery::Poll {
                message_binding: Some(message_binding),
            }
        } else {
            Delivery::Push(PushParameters {
                protocol: self.ids.protocol(&method),
                address: send_to,
                message_binding,
            })
        };
        Ok(SubscriptionRecord {
            id: element
                .attribute("subscription-id")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            status: None,
            parameters: Some(SubscriptionParameters {
                content_bindings: vec![binding],
                ..SubscriptionParameters::default()
            }),
            delivery: Some(delivery),
            poll_instances: vec![],
        })
    }
}

/// Everything any message body can hold, filled while its children are read.
#[derive(Default)]
struct Fields {
    headers_seen: bool,
    services: Vec<ServiceInstance>,
    feeds: Vec<FeedInfo>,
    message: Option<String>,
    details: Option<Vec<StatusDetail>>,
    detail_text: Option<String>,
    subscription_id: Option<String>,
    parameters: Option<SubscriptionParameters>,
    push: Option<PushParameters>,
    subscriptions: Vec<SubscriptionRecord>,
    begin: Option<Timestamp>,
    end: Option<Timestamp>,
    content_bindings: Vec<ContentBinding>,
    poll_parameters: Option<PollParameters>,
    record_count: Option<RecordCount>,
    blocks: Vec<ContentBlock>,
    destinations: Vec<String>,
    source: Option<SourceSubscription>,
    // draft only
    feed_name: Option<String>,
    action: Option<SubscriptionAction>,
    effective_time: Option<Timestamp>,
    alert_status: Option<StatusType>,
    draft_subscription: Option<SubscriptionRecord>,
    draft_binding: Option<ContentBinding>,
    blocks_raw: Vec<String>,
}

fn is_header_list(local: &str) -> bool {
    local == "Extended_Headers" || local == "extended-headers"
}

fn draft_kind(local: &str) -> Option<MessageKind> {
    Some(match local {
        "TAXII_DiscoveryRequest" => MessageKind::DiscoveryRequest,
        "TAXII_DiscoveryResponse" => MessageKind::DiscoveryResponse,
        "TAXII_FeedInformationRequest" => MessageKind::FeedInformationRequest,
        "TAXII_FeedInformationResponse" => MessageKind::FeedInformationResponse,
        "TAXII_SubscriptionManagementRequest" => MessageKind::SubscriptionManagementRequest,
        "TAXII_SubscriptionManagementResponse" => MessageKind::SubscriptionManagementResponse,
        "TAXII_SubscriptionAlert" => MessageKind::SubscriptionAlert,
        "TAXII_PollRequest" => MessageKind::PollRequest,
        "TAXII_PollResponse" => MessageKind::PollResponse,
        "TAXII_STIXMessage" => MessageKind::Inbox,
        "TAXII_ErrorMessage" => MessageKind::Status,
        _ => return None,
    })
}

fn final_kind(local: &str, v11: bool) -> Option<MessageKind> {
    Some(match local {
        "Discovery_Request" => MessageKind::DiscoveryRequest,
        "Discovery_Response" => MessageKind::DiscoveryResponse,
        "Feed_Information_Request" if !v11 => MessageKind::FeedInformationRequest,
        "Feed_Information_Response" if !v11 => MessageKind::FeedInformationResponse,
        "Collection_Information_Request" if v11 => MessageKind::FeedInformationRequest,
        "Collection_Information_Response" if v11 => MessageKind::FeedInformationResponse,
        "Subscription_Management_Request" => MessageKind::SubscriptionManagementRequest,
        "Subscription_Management_Response" => MessageKind::SubscriptionManagementResponse,
        "Poll_Request" => MessageKind::PollRequest,
        "Poll_Response" => MessageKind::PollResponse,
        "Poll_Fulfillment" if v11 => MessageKind::PollFulfillment,
        "Inbox_Message" => MessageKind::Inbox,
        "Status_Message" => MessageKind::Status,
        _ => return None,
    })
}

/// Root children in schema order; index 0 is always the extended headers.
fn final_order(kind: MessageKind, v11: bool) -> &'static [&'static str] {
    match (kind, v11) {
        (
            MessageKind::DiscoveryRequest
            | MessageKind::FeedInformationRequest
            | MessageKind::PollFulfillment,
            _,
        ) => &["Extended_Headers"],
        (MessageKind::DiscoveryResponse, _) => &["Extended_Headers", "Service_Instance"],
        (MessageKind::FeedInformationResponse, false) => &["Extended_Headers", "Feed"],
        (MessageKind::FeedInformationResponse, true) => &["Extended_Headers", "Collection"],
        (MessageKind::Status, _) => &["Extended_Headers", "Status_Detail", "Message"],
        (MessageKind::SubscriptionManagementRequest, false) => {
            &["Extended_Headers", "Push_Parameters"]
        }
        (MessageKind::SubscriptionManagementRequest, true) => &[
            "Extended_Headers",
            "Subscription_ID",
            "Subscription_Parameters",
            "Push_Parameters",
        ],
        (MessageKind::SubscriptionManagementResponse, _) => {
            &["Extended_Headers", "Message", "Subscription"]
        }
        (MessageKind::PollRequest, false) => &[
            "Extended_Headers",
            "Exclusive_Begin_Timestamp",
            "Inclusive_End_Timestamp",
            "Content_Binding",
        ],
        (MessageKind::PollRequest, true) => &[
            "Extended_Headers",
            "Exclusive_Begin_Timestamp",
            "Inclusive_End_Timestamp",
            "Subscription_ID",
            "Poll_Parameters",
        ],
        (MessageKind::PollResponse, false) => &[
            "Extended_Headers",
            "Message",
            "Inclusive_Begin_Timestamp",
            "Inclusive_End_Timestamp",
            "Content_Block",
        ],
        (MessageKind::PollResponse, true) => &[
            "Extended_Headers",
            "Subscription_ID",
            "Exclusive_Begin_Timestamp",
            "Inclusive_End_Timestamp",
            "Record_Count",
            "Message",
            "Content_Block",
        ],
        (MessageKind::Inbox, false) => &[
            "Extended_Headers",
            "Message",
            "Source_Subscription",
            "Content_Block",
        ],
        (MessageKind::Inbox, true) => &[
            "Extended_Headers",
            "Destination_Collection_Name",
            "Message",
            "Source_Subscription",
            "Record_Count",
            "Content_Block",
        ],
        (MessageKind::SubscriptionAlert, _) => &["Extended_Headers"],
    }
}

fn draft_order(kind: MessageKind) -> &'static [&'static str] {
    match kind {
        MessageKind::DiscoveryRequest
        | MessageKind::FeedInformationRequest
        | MessageKind::PollFulfillment => &["extended-headers"],
        MessageKind::DiscoveryResponse => &["extended-headers", "service-instance"],
        MessageKind::FeedInformationResponse => &["extended-headers", "feed"],
        MessageKind::Status => &["extended-headers", "error-detail", "message"],
        MessageKind::SubscriptionManagementRequest => &[
            "extended-headers",
            "feed-name",
            "action",
            "subscription-id",
            "subscription",
        ],
        MessageKind::SubscriptionManagementResponse => {
            &["extended-headers", "feed-name", "message", "subscription"]
        }
        MessageKind::SubscriptionAlert => &[
            "extended-headers",
            "feed-name",
            "action",
            "subscription-id",
            "subscription",
            "message",
        ],
        MessageKind::PollRequest => &[
            "extended-headers",
            "feed-name",
            "begin-timestamp",
            "end-timestamp",
            "subscription-id",
            "content-binding",
        ],
        MessageKind::PollResponse => &[
            "extended-headers",
            "begin-timestamp",
            "end-timestamp",
            "subscription-id",
            "message",
            "content-binding",
        ],
        MessageKind::Inbox => &[
            "extended-headers",
            "subscription-id",
            "message",
            "content-binding",
        ],
    }
}
