//! What an entry's payload says of itself: the CSIRT extension's link
//! between an IODEF incident and its entry, and the data model a payload
//! posted without a `rolie:format` is in.

use super::{Format, Limits};
use crate::bindings::taxii_xml::reader::{Element, XmlCursor};

/// What the CSIRT extension exposes of an IODEF 1 or 2 document's first
/// incident.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IodefFacts {
    /// The `urn:ietf:params:rolie:property:csirt:id` value: the IncidentID
    /// `name` attribute followed by the IncidentID text (CSIRT draft 4.2).
    pub csirt_id: Option<String>,
    /// The incident's `purpose` (the CSIRT purpose category).
    pub purpose: Option<String>,
    /// The incident's `restriction`, or the document's when the incident
    /// has none (the CSIRT restriction category, which decides who may
    /// read the entry: CSIRT draft 3.1.2).
    pub restriction: Option<String>,
}

/// Whether a content binding is IODEF (1 or 2), whose payloads the CSIRT
/// extension reads: [`iodef_facts`].
pub fn is_iodef_binding(content_binding: &str) -> bool {
    content_binding.starts_with("urn:ietf:params:xml:ns:iodef-")
}

/// [`IodefFacts`] of a payload; `None` when it is not an IODEF document
/// with an incident.
pub fn iodef_facts(iodef_payload: &str) -> Option<IodefFacts> {
    // Payloads are already stored, hence bounded; the default limits still
    // keep a hostile one from costing more than any other document.
    let limits = Limits::default();
    let payload = iodef_payload.trim_start_matches('\u{FEFF}').trim_start();
    let mut cursor = XmlCursor::new(payload, &limits);
    let root = cursor.root().ok()?;
    if !is_iodef(&root, "IODEF-Document") || root.empty {
        return None;
    }
    let attribute = |element: &Element<'_>, name: &str| {
        element
            .attribute(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    while let Some(incident) = cursor.next_child(true).ok()? {
        if !is_iodef(&incident, "Incident") {
            skip(&mut cursor, &incident)?;
            continue;
        }
        let mut facts = IodefFacts {
            csirt_id: None,
            purpose: attribute(&incident, "purpose"),
            restriction: attribute(&incident, "restriction")
                .or_else(|| attribute(&root, "restriction")),
        };
        if incident.empty {
            return Some(facts);
        }
        while let Some(part) = cursor.next_child(true).ok()? {
            if is_iodef(&part, "IncidentID") {
                let name = part.attribute("name").map(|name| name.trim().to_owned());
                let id = cursor.text(&part).ok()?;
                facts.csirt_id = name.map(|name| format!("{name}{}", id.trim()));
                return Some(facts);
            }
            skip(&mut cursor, &part)?;
        }
        return Some(facts);
    }
    None
}

/// The `urn:ietf:params:rolie:property:csirt:id` value of an IODEF payload
/// (see [`IodefFacts::csirt_id`]); `None` for any other payload, whose entry
/// then carries no such property.
pub fn csirt_id(iodef_payload: &str) -> Option<String> {
    iodef_facts(iodef_payload)?.csirt_id
}

/// The data model of an XML payload, as its root names it: the root's
/// namespace and its `version` attribute (STIX 1.x and IODEF carry one).
/// With `RolieMappings::binding_of` it finds the content binding of an
/// entry posted without a `rolie:format`.
pub fn payload_format(xml: &str) -> Option<Format> {
    let limits = Limits::default();
    let payload = xml.trim_start_matches('\u{FEFF}').trim_start();
    let mut cursor = XmlCursor::new(payload, &limits);
    let root = cursor.root().ok()?;
    if root.namespace.is_empty() {
        return None;
    }
    Some(Format {
        ns: root.namespace.to_string(),
        version: root.attribute("version").map(|v| v.trim().to_owned()),
        schema_location: None,
        schema_type: None,
    })
}

fn is_iodef(element: &Element<'_>, local: &str) -> bool {
    element.local == local
        && matches!(
            &*element.namespace,
            "urn:ietf:params:xml:ns:iodef-1.0" | "urn:ietf:params:xml:ns:iodef-2.0"
        )
}

fn skip<'a>(cursor: &mut XmlCursor<'a>, element: &Element<'a>) -> Option<()> {
    if !element.empty {
        cursor.element(element).ok()?;
    }
    Some(())
}
