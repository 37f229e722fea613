//! Where each TAXII field travels in an AMQP message, loaded from
//! `mappings/amqp.toml` or an operator's file of the same shape.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::core::{Dialect, MessageKind};

const DEFAULT_TABLE: &str = include_str!("../../../mappings/amqp.toml");

/// A shortstr can hold this many bytes: property values and header names.
pub const SHORTSTR_MAX: usize = 255;

/// The whole table. Fields are public to read; build one with
/// [`AmqpMappings::from_toml`], which validates it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpMappings {
    pub body: BodyMapping,
    pub properties: PropertyMapping,
    pub headers: HeaderMapping,
    message_types: HashMap<MessageKind, String>,
    content_bindings: Vec<MediaTypeEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyMapping {
    pub dialect: Dialect,
    pub content_type: String,
    pub delivery_mode: u8,
}

/// The basic properties AMQP gives string-valued TAXII fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShortProperty {
    MessageId,
    CorrelationId,
    /// AMQP `type` (lapin `kind`).
    Type,
    AppId,
}

/// Which property carries each field; `None`: the field is not sent there.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyMapping {
    pub message_id: Option<ShortProperty>,
    pub in_response_to: Option<ShortProperty>,
    pub message_type: Option<ShortProperty>,
    pub gateway: Option<ShortProperty>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMapping {
    pub content_type: String,
    pub services: String,
    pub source_dialect: String,
    pub message_id: String,
    pub collection: String,
    pub content_binding: String,
    pub timestamp_label: String,
    pub hops: String,
    pub extended_header_prefix: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaTypeEntry {
    id: String,
    media_type: String,
}

/// The table shipped in `mappings/amqp.toml`, read once.
pub fn amqp_mappings() -> &'static AmqpMappings {
    static MAPPINGS: OnceLock<AmqpMappings> = OnceLock::new();
    MAPPINGS.get_or_init(|| {
        AmqpMappings::from_toml(DEFAULT_TABLE).expect("mappings/amqp.toml is valid")
    })
}

impl AmqpMappings {
    /// Reads and checks a table; the error says what is wrong and where.
    pub fn from_toml(text: &str) -> Result<AmqpMappings, String> {
        let mappings: AmqpMappings = toml::from_str(text).map_err(|e| e.to_string())?;
        mappings.validate()?;
        Ok(mappings)
    }

    fn validate(&self) -> Result<(), String> {
        if !matches!(self.body.delivery_mode, 1 | 2) {
            return Err(format!(
                "body.delivery_mode is {}: AMQP knows 1 (transient) and 2 (persistent)",
                self.body.delivery_mode
            ));
        }
        check_shortstr("body.content_type", &self.body.content_type)?;

        let p = &self.properties;
        let mut used = BTreeSet::new();
        for (field, property) in [
            ("message_id", p.message_id),
            ("in_response_to", p.in_response_to),
            ("message_type", p.message_type),
            ("gateway", p.gateway),
        ] {
            if let Some(property) = property
                && !used.insert(property)
            {
                return Err(format!(
                    "properties.{field} uses the {property:?} property another field already uses"
                ));
            }
        }

        let h = &self.headers;
        let prefix = &h.extended_header_prefix;
        check_shortstr("headers.extended_header_prefix", prefix)?;
        let mut names = BTreeSet::new();
        for (field, name) in h.named() {
            check_shortstr(&format!("headers.{field}"), name)?;
            if !names.insert(name) {
                return Err(format!(
                    "headers.{field} is {name:?}, the name of another header"
                ));
            }
            // An extended header must never be read as one of ours.
            if name.starts_with(prefix.as_str()) {
                return Err(format!(
                    "headers.{field} ({name:?}) starts with the extended header prefix {prefix:?}"
                ));
            }
        }

        if let Some(kind) = MessageKind::ALL
            .into_iter()
            .find(|kind| !self.message_types.contains_key(kind))
        {
            return Err(format!("message_types has no name for {kind}"));
        }
        for (kind, name) in &self.message_types {
            check_shortstr(&format!("message_types.{kind}"), name)?;
        }

        let mut ids = BTreeSet::new();
        for entry in &self.content_bindings {
            if entry.id.trim().is_empty() {
                return Err("content_bindings: an entry has an empty id".to_owned());
            }
            if !ids.insert(entry.id.as_str()) {
                return Err(format!("content_bindings lists {:?} twice", entry.id));
            }
            let essence = essence(&entry.media_type);
            let well_formed = essence
                .split_once('/')
                .is_some_and(|(kind, sub)| !kind.is_empty() && !sub.is_empty());
            if !well_formed {
                return Err(format!(
                    "content_bindings: {:?} has media type {:?}, not type/subtype",
                    entry.id, entry.media_type
                ));
            }
            check_shortstr(
                &format!("the media type of {:?}", entry.id),
                &entry.media_type,
            )?;
        }
        Ok(())
    }

    /// The `type` property value of a message kind.
    pub fn message_type(&self, kind: MessageKind) -> &str {
        &self.message_types[&kind]
    }

    /// The media type of a content binding's payloads.
    pub fn media_type_of(&self, binding: &str) -> Option<&str> {
        self.content_bindings
            .iter()
            .find(|entry| entry.id == binding)
            .map(|entry| entry.media_type.as_str())
    }

    /// The binding of a payload that names only its media type: the first
    /// entry with exactly that type (parameters too), else the first with
    /// the same type and subtype.
    pub fn binding_of_media_type(&self, media_type: &str) -> Option<&str> {
        let wanted = normalize(media_type);
        let wanted_essence = essence(&wanted);
        self.content_bindings
            .iter()
            .find(|entry| normalize(&entry.media_type) == wanted)
            .or_else(|| {
                self.content_bindings
                    .iter()
                    .find(|entry| essence(&normalize(&entry.media_type)) == wanted_essence)
            })
            .map(|entry| entry.id.as_str())
    }

    /// Whether a binding's payloads are XML documents, as its media type says.
    pub fn is_xml_binding(&self, binding: &str) -> bool {
        self.media_type_of(binding).is_some_and(is_xml_media_type)
    }
}

impl HeaderMapping {
    /// Every fixed header name with its field name, for checks.
    fn named(&self) -> [(&'static str, &String); 8] {
        [
            ("content_type", &self.content_type),
            ("services", &self.services),
            ("source_dialect", &self.source_dialect),
            ("message_id", &self.message_id),
            ("collection", &self.collection),
            ("content_binding", &self.content_binding),
            ("timestamp_label", &self.timestamp_label),
            ("hops", &self.hops),
        ]
    }
}

pub(super) fn is_xml_media_type(media_type: &str) -> bool {
    let essence = essence(media_type).to_ascii_lowercase();
    essence.ends_with("/xml") || essence.ends_with("+xml")
}

fn check_shortstr(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.len() > SHORTSTR_MAX {
        return Err(format!(
            "{field} is {} bytes; AMQP allows {SHORTSTR_MAX}",
            value.len()
        ));
    }
    Ok(())
}

/// Media types compare case-insensitively and without spaces around `;`.
fn normalize(media_type: &str) -> String {
    media_type
        .split(';')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(";")
        .to_ascii_lowercase()
}

fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or_default().trim()
}
