//! What an entry's payload says of itself: the CSIRT extension's link
//! between an IODEF incident and its entry, and the data model a payload
//! posted without a `rolie:format` is in.

use super::{Format, Limits};
use crate::bindings::taxii_xml::reader::{Element, XmlCursor};

/// The value of the `urn:ietf:params:rolie:property:csirt:id` property of an
/// entry holding an IODEF 1 or 2 document: its first incident's IncidentID
/// `name` attribute followed by the IncidentID text, concatenated as the
/// CSIRT draft (4.2) says. `None` when the payload is not an IODEF document
/// or has no IncidentID: the entry then carries no such property.
pub fn csirt_id(iodef_payload: &str) -> Option<String> {
    // Payloads are already stored, hence bounded; the default limits still
    // keep a hostile one from costing more than any other document.
    let limits = Limits::default();
    let payload = iodef_payload.trim_start_matches('\u{FEFF}').trim_start();
    let mut cursor = XmlCursor::new(payload, &limits);
    let root = cursor.root().ok()?;
    if !is_iodef(&root, "IODEF-Document") || root.empty {
        return None;
    }
    while let Some(incident) = cursor.next_child(true).ok()? {
        if !is_iodef(&incident, "Incident") {
            skip(&mut cursor, &incident)?;
            continue;
        }
        if incident.empty {
            return None;
        }
        while let Some(part) = cursor.next_child(true).ok()? {
            if is_iodef(&part, "IncidentID") {
                let name = part.attribute("name")?.trim().to_owned();
                let id = cursor.text(&part).ok()?;
                return Some(format!("{name}{}", id.trim()));
            }
            skip(&mut cursor, &part)?;
        }
        // IODEF requires an IncidentID in every Incident; one without is not IODEF.
        return None;
    }
    None
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
