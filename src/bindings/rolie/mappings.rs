//! Content bindings as ROLIE sees them, loaded from `mappings/rolie.toml` or
//! an operator's file of the same shape.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde::Deserialize;

use super::Format;

const DEFAULT_TABLE: &str = include_str!("../../../mappings/rolie.toml");

/// The whole table; build one with [`RolieMappings::from_toml`], which validates it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolieMappings {
    information_types: Vec<String>,
    bindings: Vec<BindingMapping>,
}

/// How one content binding's payloads appear in entries.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingMapping {
    pub content_binding: String,
    /// The `type` of the entry's `atom:content`, and of the payload served at its `src`.
    pub media_type: String,
    /// The default information type of a feed of this binding.
    pub information_type: String,
    pub format: Option<Format>,
}

/// The table shipped in `mappings/rolie.toml`, read once.
pub fn rolie_mappings() -> &'static RolieMappings {
    static MAPPINGS: OnceLock<RolieMappings> = OnceLock::new();
    MAPPINGS.get_or_init(|| {
        RolieMappings::from_toml(DEFAULT_TABLE).expect("mappings/rolie.toml is valid")
    })
}

impl RolieMappings {
    /// Reads and checks a table; the error says what is wrong and where.
    pub fn from_toml(text: &str) -> Result<RolieMappings, String> {
        let mappings: RolieMappings = toml::from_str(text).map_err(|e| e.to_string())?;
        mappings.validate()?;
        Ok(mappings)
    }

    fn validate(&self) -> Result<(), String> {
        let mut terms = BTreeSet::new();
        for term in &self.information_types {
            if term.trim().is_empty() {
                return Err("information_types holds an empty term".to_owned());
            }
            if !terms.insert(term.to_ascii_lowercase()) {
                return Err(format!("information_types lists {term:?} twice"));
            }
        }
        let mut ids = BTreeSet::new();
        for binding in &self.bindings {
            let id = &binding.content_binding;
            if id.trim().is_empty() {
                return Err("bindings: an entry has an empty content_binding".to_owned());
            }
            if !ids.insert(id.as_str()) {
                return Err(format!("bindings lists {id:?} twice"));
            }
            let well_formed = essence(&binding.media_type)
                .split_once('/')
                .is_some_and(|(kind, sub)| !kind.is_empty() && !sub.is_empty());
            if !well_formed {
                return Err(format!(
                    "bindings: {id:?} has media type {:?}, not type/subtype",
                    binding.media_type
                ));
            }
            if self.information_type(&binding.information_type).is_none() {
                return Err(format!(
                    "bindings: {id:?} has information type {:?}, not in information_types",
                    binding.information_type
                ));
            }
            if binding
                .format
                .as_ref()
                .is_some_and(|format| format.ns.trim().is_empty())
            {
                return Err(format!("bindings: {id:?} has a format with an empty ns"));
            }
        }
        Ok(())
    }

    /// A known information-type term, spelled as the table spells it. Terms
    /// compare case-insensitively: the registry's names are lower case, peers' not always.
    pub fn information_type(&self, term: &str) -> Option<&str> {
        self.information_types
            .iter()
            .find(|known| known.eq_ignore_ascii_case(term.trim()))
            .map(String::as_str)
    }

    /// How a content binding's payloads appear in entries.
    pub fn binding(&self, content_binding: &str) -> Option<&BindingMapping> {
        self.bindings
            .iter()
            .find(|binding| binding.content_binding == content_binding)
    }

    /// The content binding of an entry read from a peer: by its `rolie:format`
    /// (ns and version, or ns alone when only one binding has it), else by a
    /// media type only one binding has. `None` when neither decides, as
    /// `application/xml` alone cannot: the adapter may then look at the
    /// payload's root namespace and pass that as a format.
    pub fn binding_of(&self, media_type: Option<&str>, format: Option<&Format>) -> Option<&str> {
        let by_format = format.and_then(|format| {
            let same_ns: Vec<&BindingMapping> = self
                .bindings
                .iter()
                .filter(|b| b.format.as_ref().is_some_and(|f| f.ns == format.ns))
                .collect();
            same_ns
                .iter()
                .find(|b| {
                    format.version.is_some()
                        && b.format
                            .as_ref()
                            .is_some_and(|f| f.version == format.version)
                })
                .or(match same_ns.as_slice() {
                    [only] => Some(only),
                    _ => None,
                })
                .copied()
        });
        let by_media_type = || {
            let wanted = normalize(media_type?);
            let mut matching = self
                .bindings
                .iter()
                .filter(|b| normalize(&b.media_type) == wanted);
            match (matching.next(), matching.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        };
        by_format
            .or_else(by_media_type)
            .map(|binding| binding.content_binding.as_str())
    }
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
