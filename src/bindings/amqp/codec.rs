//! [`encode`] and [`decode`]: the AMQP convention applied to one message.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use sha2::{Digest, Sha256};

use super::HeaderValue;
use super::mappings::{SHORTSTR_MAX, ShortProperty, is_xml_media_type};
use super::{AmqpError, AmqpMappings, AmqpMessage, AmqpProperties, Decoded, EncodeMeta, Encoded};
use crate::bindings::taxii_xml::{Limits, convert, ids, parse_with, serialize};
use crate::core::*;

/// Writes a message as an AMQP message: the body is its TAXII XML form in
/// the mappings' dialect, converted from the dialect it came in.
pub fn encode(
    message: &Message,
    meta: &EncodeMeta,
    mappings: &AmqpMappings,
) -> Result<Encoded, AmqpError> {
    let dialect = mappings.body.dialect;
    // The core model is the 1.1 one; what came in over another binding
    // holds nothing 1.1 lacks.
    let from = match meta.source {
        WireBinding::TaxiiXml(from) => from,
        WireBinding::Amqp | WireBinding::Rolie => Dialect::V11,
    };
    let conversion = convert(message.clone(), from, dialect)?;
    let message = conversion.message;
    let body = serialize(&message, dialect)?;

    let mut properties = AmqpProperties {
        content_type: Some(mappings.body.content_type.clone()),
        delivery_mode: Some(mappings.body.delivery_mode),
        // A publish time before 1970 is a broken clock, not a date to send.
        timestamp: Some(u64::try_from(meta.published.unix_nanos() / 1_000_000_000).unwrap_or(0)),
        ..AmqpProperties::default()
    };
    let p = &mappings.properties;
    let message_id = if message.id.is_empty() || message.id.len() > SHORTSTR_MAX {
        format!("sha256:{:x}", Sha256::digest(message.id.as_bytes()))
    } else {
        message.id.clone()
    };
    set(&mut properties, p.message_id, Some(message_id));
    // Too long for a property, it still travels in the body.
    let in_response_to = message
        .in_response_to
        .clone()
        .filter(|id| id.len() <= SHORTSTR_MAX);
    set(&mut properties, p.in_response_to, in_response_to);
    set(
        &mut properties,
        p.message_type,
        Some(mappings.message_type(message.kind()).to_owned()),
    );
    if let Some(app_id) = &meta.app_id
        && app_id.len() > SHORTSTR_MAX
    {
        return Err(AmqpError::PropertyTooLong {
            property: "app_id",
            len: app_id.len(),
        });
    }
    set(&mut properties, p.gateway, meta.app_id.clone());

    let h = &mappings.headers;
    let taxii = ids().dialect(dialect);
    let mut headers = BTreeMap::new();
    let mut put = |name: &str, value: HeaderValue| {
        headers.insert(name.to_owned(), value);
    };
    put(&h.content_type, text(&taxii.content_type));
    put(&h.services, text(&taxii.services_version));
    put(&h.source_dialect, text(meta.source.name()));
    put(&h.message_id, text(&message.id));
    put(&h.hops, HeaderValue::List(meta.hops.clone()));
    if let Some(feeds) = one_or_many(meta.feeds.clone()) {
        put(&h.collection, feeds);
    }
    let blocks = match &message.body {
        Body::Inbox(inbox) => inbox.content_blocks.as_slice(),
        Body::PollResponse(response) => response.content_blocks.as_slice(),
        _ => &[],
    };
    let mut bindings: Vec<String> = Vec::new();
    for block in blocks {
        if !bindings.contains(&block.binding.id) {
            bindings.push(block.binding.id.clone());
        }
    }
    if let Some(bindings) = one_or_many(bindings) {
        put(&h.content_binding, bindings);
    }
    if let Some(latest) = blocks.iter().filter_map(|b| b.timestamp_label).max() {
        put(&h.timestamp_label, text(&latest.to_string()));
    }
    for header in &message.extended_headers {
        let name = format!("{}{}", h.extended_header_prefix, header.name);
        // A field name is a shortstr; a longer one still travels in the body.
        if name.len() <= SHORTSTR_MAX {
            put(&name, text(header.value.as_str()));
        }
    }

    Ok(Encoded {
        message: AmqpMessage {
            properties,
            headers,
            body: body.into_bytes(),
        },
        notes: conversion.notes,
    })
}

/// Reads a delivery as an inbox message: a TAXII XML body when the headers
/// say so or its root element is a TAXII message, else a raw payload.
pub fn decode(
    amqp: &AmqpMessage,
    mappings: &AmqpMappings,
    limits: &Limits,
) -> Result<Decoded, AmqpError> {
    let body = amqp.body.as_slice();
    if body.len() > limits.max_body_bytes {
        return Err(AmqpError::TooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    if body.is_empty() {
        return Err(AmqpError::EmptyBody);
    }
    if let Some(encoding) = &amqp.properties.content_encoding
        && !matches!(encoding.trim(), "" | "identity")
    {
        return Err(AmqpError::UnsupportedEncoding(encoding.clone()));
    }
    let headers = Headers {
        map: &amqp.headers,
        mappings,
    };
    let h = &mappings.headers;
    let hops = headers.strings(&h.hops)?;
    let feeds = headers.strings(&h.collection)?;

    let parsed = match headers.text(&h.content_type)? {
        Some(value) => {
            if ids().dialect_of_content_type(value).is_none() {
                return Err(AmqpError::UnknownMessageBinding {
                    header: h.content_type.clone(),
                    value: value.to_owned(),
                });
            }
            Some(parse_with(body, limits).map_err(AmqpError::MalformedTaxii)?)
        }
        None => match parse_with(body, limits) {
            Ok(parsed) => Some(parsed),
            // The root was a TAXII message: it is one, and broken.
            Err(e) if e.dialect.is_some() => return Err(AmqpError::MalformedTaxii(e)),
            Err(_) => None,
        },
    };
    if let Some(parsed) = parsed {
        let Body::Inbox(inbox) = &parsed.message.body else {
            return Err(AmqpError::NotInbox(parsed.message.kind()));
        };
        let feeds = if feeds.is_empty() {
            inbox.destination_feeds.clone()
        } else {
            feeds
        };
        return Ok(Decoded {
            message: parsed.message,
            dialect: Some(parsed.dialect),
            hops,
            feeds,
        });
    }
    let message = raw_message(amqp, &headers, feeds.clone(), limits)?;
    Ok(Decoded {
        message,
        dialect: None,
        hops,
        feeds,
    })
}

/// A raw payload as an inbox message of one block.
fn raw_message(
    amqp: &AmqpMessage,
    headers: &Headers<'_>,
    feeds: Vec<String>,
    limits: &Limits,
) -> Result<Message, AmqpError> {
    let mappings = headers.mappings;
    let h = &mappings.headers;
    let body = amqp.body.as_slice();
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.is_empty() {
        return Err(AmqpError::EmptyBody);
    }
    let payload = std::str::from_utf8(body).map_err(|e| AmqpError::NotUtf8 {
        at: e.valid_up_to(),
    })?;

    let named = headers.strings(&h.content_binding)?;
    let binding = match named.as_slice() {
        [] => amqp
            .properties
            .content_type
            .as_deref()
            .and_then(|media_type| mappings.binding_of_media_type(media_type))
            .map(str::to_owned)
            .ok_or_else(|| AmqpError::NoBinding {
                header: h.content_binding.clone(),
            })?,
        [first, rest @ ..] if rest.iter().all(|other| other == first) => first.clone(),
        _ => {
            return Err(AmqpError::SeveralBindings {
                header: h.content_binding.clone(),
            });
        }
    };
    if feeds.is_empty() {
        return Err(AmqpError::NoFeed {
            header: h.collection.clone(),
        });
    }

    let xml_binding = mappings.is_xml_binding(&binding)
        || amqp
            .properties
            .content_type
            .as_deref()
            .is_some_and(is_xml_media_type);
    let content = xml_binding
        .then(|| xml_content(payload, limits))
        .flatten()
        .unwrap_or_else(|| XmlContent::Text(payload.to_owned()));
    let mut block = ContentBlock::new(ContentBinding::new(binding.clone()), content);
    if let Some(label) = headers.text(&h.timestamp_label)? {
        block.timestamp_label =
            Some(
                label
                    .trim()
                    .parse()
                    .map_err(|e: TimestampError| AmqpError::BadHeader {
                        header: h.timestamp_label.clone(),
                        reason: e.to_string(),
                    })?,
            );
    }

    let id = match headers.text(&h.message_id)? {
        Some(id) => id.to_owned(),
        None => match mappings
            .properties
            .message_id
            .and_then(|slot| property(&amqp.properties, slot))
        {
            Some(id) => id.to_owned(),
            // Redelivery of the same payload must dedupe, so the id a
            // producer did not give is derived from what it sent.
            None => {
                let mut digest = Sha256::new();
                digest.update(binding.as_bytes());
                digest.update([0]);
                digest.update(body);
                format!("urn:taxiway:amqp:sha256:{:x}", digest.finalize())
            }
        },
    };

    let mut extended_headers = Vec::new();
    for (name, value) in headers.map {
        let Some(header) = name.strip_prefix(h.extended_header_prefix.as_str()) else {
            continue;
        };
        let value = match value {
            HeaderValue::Text(value) | HeaderValue::Other(value) => value.clone(),
            HeaderValue::List(_) => {
                return Err(AmqpError::BadHeader {
                    header: name.clone(),
                    reason: "a list where one value is expected".to_owned(),
                });
            }
        };
        if header.is_empty() {
            return Err(AmqpError::BadHeader {
                header: name.clone(),
                reason: "an extended header needs a name after the prefix".to_owned(),
            });
        }
        extended_headers.push(ExtendedHeader {
            name: header.to_owned(),
            value: XmlContent::Text(value),
        });
    }

    Ok(Message {
        id,
        in_response_to: None,
        extended_headers,
        body: Body::Inbox(InboxMessage {
            destination_feeds: feeds,
            content_blocks: vec![block],
            ..InboxMessage::default()
        }),
        signature: None,
    })
}

/// A raw payload as XML content, if it is one well-formed element that the
/// TAXII XML codec would read back as it is (declared namespaces, allowed
/// characters, within the limits). The XML declaration goes: the payload
/// becomes an element inside a TAXII message, where none may stand.
fn xml_content(payload: &str, limits: &Limits) -> Option<XmlContent> {
    let mut document = payload.trim_start();
    if document.starts_with("<?xml") {
        document = &document[document.find("?>")? + 2..];
    }
    let document = document.trim();
    if !is_one_element(document) {
        return None;
    }
    // The codec's own reader is the judge of what it can carry. A balanced
    // payload cannot close the wrapper's elements early.
    let prefix = "taxiway_amqp_payload_wrapper";
    let namespace = &ids().dialect(Dialect::V11).namespace;
    let wrapped = format!(
        "<{prefix}:Inbox_Message xmlns:{prefix}=\"{namespace}\" message_id=\"0\">\
         <{prefix}:Content_Block><{prefix}:Content_Binding binding_id=\"0\"/>\
         <{prefix}:Content>{document}</{prefix}:Content></{prefix}:Content_Block>\
         </{prefix}:Inbox_Message>"
    );
    let limits = Limits {
        max_body_bytes: limits
            .max_body_bytes
            .saturating_add(wrapped.len() - document.len()),
        ..limits.clone()
    };
    let parsed = parse_with(wrapped.as_bytes(), &limits).ok()?;
    let Body::Inbox(inbox) = parsed.message.body else {
        return None;
    };
    match <[ContentBlock; 1]>::try_from(inbox.content_blocks) {
        Ok(
            [
                ContentBlock {
                    content: XmlContent::Xml(xml),
                    ..
                },
            ],
        ) => Some(XmlContent::Xml(xml)),
        _ => None,
    }
}

/// Whether a text is exactly one balanced element, with only comments,
/// processing instructions and white space around it.
fn is_one_element(document: &str) -> bool {
    let mut reader = quick_xml::Reader::from_str(document);
    reader.config_mut().check_end_names = true;
    let (mut depth, mut roots) = (0usize, 0usize);
    loop {
        let Ok(event) = reader.read_event() else {
            return false;
        };
        match event {
            Event::Start(_) => {
                roots += usize::from(depth == 0);
                depth += 1;
            }
            Event::End(_) => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Event::Empty(_) => roots += usize::from(depth == 0),
            Event::Text(chunk)
                if depth == 0 && !chunk.as_bytes().iter().all(u8::is_ascii_whitespace) =>
            {
                return false;
            }
            Event::CData(_) | Event::GeneralRef(_) if depth == 0 => return false,
            Event::Decl(_) | Event::DocType(_) => return false,
            Event::Eof => return depth == 0 && roots == 1,
            _ => {}
        }
    }
}

/// The header table and where the mappings put things.
struct Headers<'a> {
    map: &'a BTreeMap<String, HeaderValue>,
    mappings: &'a AmqpMappings,
}

impl<'a> Headers<'a> {
    /// A single-valued header; a number or the like rendered as text will do.
    fn text(&self, name: &str) -> Result<Option<&'a str>, AmqpError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(HeaderValue::Text(value) | HeaderValue::Other(value)) => Ok(Some(value)),
            Some(HeaderValue::List(_)) => Err(AmqpError::BadHeader {
                header: name.to_owned(),
                reason: "a list where one value is expected".to_owned(),
            }),
        }
    }

    /// A header holding one string or an array of them, none empty.
    fn strings(&self, name: &str) -> Result<Vec<String>, AmqpError> {
        let values = match self.map.get(name) {
            None => return Ok(Vec::new()),
            Some(HeaderValue::Text(value)) => vec![value.clone()],
            Some(HeaderValue::List(values)) => values.clone(),
            Some(HeaderValue::Other(_)) => {
                return Err(AmqpError::BadHeader {
                    header: name.to_owned(),
                    reason: "expected a string or an array of strings".to_owned(),
                });
            }
        };
        if values.iter().any(|value| value.trim().is_empty()) {
            return Err(AmqpError::BadHeader {
                header: name.to_owned(),
                reason: "an empty value".to_owned(),
            });
        }
        Ok(values)
    }
}

/// The property a mapping names, set or cleared.
fn set(properties: &mut AmqpProperties, slot: Option<ShortProperty>, value: Option<String>) {
    let Some(slot) = slot else { return };
    *property_mut(properties, slot) = value;
}

fn property(properties: &AmqpProperties, slot: ShortProperty) -> Option<&str> {
    match slot {
        ShortProperty::MessageId => properties.message_id.as_deref(),
        ShortProperty::CorrelationId => properties.correlation_id.as_deref(),
        ShortProperty::Type => properties.kind.as_deref(),
        ShortProperty::AppId => properties.app_id.as_deref(),
    }
    .filter(|value| !value.trim().is_empty())
}

fn property_mut(properties: &mut AmqpProperties, slot: ShortProperty) -> &mut Option<String> {
    match slot {
        ShortProperty::MessageId => &mut properties.message_id,
        ShortProperty::CorrelationId => &mut properties.correlation_id,
        ShortProperty::Type => &mut properties.kind,
        ShortProperty::AppId => &mut properties.app_id,
    }
}

fn text(value: &str) -> HeaderValue {
    HeaderValue::Text(value.to_owned())
}

/// One name as a string (what a headers exchange matches on), several as an array.
fn one_or_many(mut values: Vec<String>) -> Option<HeaderValue> {
    match values.len() {
        0 => None,
        1 => values.pop().map(HeaderValue::Text),
        _ => Some(HeaderValue::List(values)),
    }
}
