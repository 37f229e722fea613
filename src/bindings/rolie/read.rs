//! Reading peers' entries, feeds and service documents.
//!
//! Elements are recognised by namespace and local name, never by prefix
//! (atom_syndication keys by prefix and refuses a prefixed `<atom:feed>`),
//! on the TAXII codec's cursor, which brings its limits and its refusal of
//! document types and entities. Unknown elements and link relations are
//! skipped, as RFC 4287 and RFC 8322 6.1.2 require.

use super::mappings::RolieMappings;
use super::{
    Category, Collection, Format, INFORMATION_TYPE_SCHEME, IncomingContent, IncomingEntry,
    IncomingFeed, Limits, Link, Property, RolieError, ServiceDocument, Workspace,
};
use crate::bindings::taxii_xml::reader::{Element, XmlCursor};
use crate::core::{Timestamp, XmlContent};

/// Reads an AtomPub POST or PUT body: one `atom:entry`.
pub fn read_entry(
    input: &[u8],
    limits: &Limits,
    mappings: &RolieMappings,
) -> Result<IncomingEntry, RolieError> {
    let text = document(input, limits)?;
    let mut cursor = XmlCursor::new(text, limits);
    let root = cursor.root()?;
    expect_root(&root, Ns::Atom, "entry", "atom:entry")?;
    let entry = entry_body(&mut cursor, &root, mappings)?;
    cursor.finish()?;
    Ok(entry)
}

/// Reads a payload that travels by itself (an AtomPub media resource, or
/// content a peer serves out of line): one XML document, checked as a
/// payload inside a message is, returned from its root element on.
pub fn read_xml_payload(input: &[u8], limits: &Limits) -> Result<String, RolieError> {
    let text = document(input, limits)?;
    let mut cursor = XmlCursor::new(text, limits);
    let root = cursor.root()?;
    let xml = cursor.element(&root)?;
    cursor.finish()?;
    Ok(xml)
}

/// Reads a feed page of a peer's collection. Every entry must have content,
/// and every information type must be known, as in [`read_entry`].
pub fn read_feed(
    input: &[u8],
    limits: &Limits,
    mappings: &RolieMappings,
) -> Result<IncomingFeed, RolieError> {
    let text = document(input, limits)?;
    let mut cursor = XmlCursor::new(text, limits);
    let root = cursor.root()?;
    expect_root(&root, Ns::Atom, "feed", "atom:feed")?;
    let mut feed = IncomingFeed {
        id: None,
        title: String::new(),
        updated: None,
        information_type: None,
        categories: Vec::new(),
        links: Vec::new(),
        entries: Vec::new(),
    };
    let mut title = None;
    each_child(&mut cursor, &root, |cursor, child| {
        match (ns(&child), child.local) {
            (Ns::Atom, "id") => set_once(&mut feed.id, id(cursor, &child)?, "atom:id"),
            (Ns::Atom, "title") => {
                set_once(&mut title, text_construct(cursor, &child)?, "atom:title")
            }
            (Ns::Atom, "updated") => set_once(
                &mut feed.updated,
                timestamp(cursor, &child, "atom:updated")?,
                "atom:updated",
            ),
            (Ns::Atom, "category") => sort_category(
                category(cursor, &child)?,
                Some(mappings),
                &mut feed.information_type,
                &mut feed.categories,
            ),
            (Ns::Atom, "link") => {
                feed.links.push(link(cursor, &child)?);
                Ok(())
            }
            (Ns::Atom, "entry") => {
                feed.entries.push(entry_body(cursor, &child, mappings)?);
                Ok(())
            }
            _ => skip(cursor, &child),
        }
    })?;
    cursor.finish()?;
    feed.title = title.unwrap_or_default();
    Ok(feed)
}

/// Reads a peer's AtomPub service document. Information types are taken as
/// the peer names them, known or not: a client only chooses among collections.
pub fn read_service_document(input: &[u8], limits: &Limits) -> Result<ServiceDocument, RolieError> {
    let text = document(input, limits)?;
    let mut cursor = XmlCursor::new(text, limits);
    let root = cursor.root()?;
    expect_root(&root, Ns::App, "service", "app:service")?;
    let mut workspaces = Vec::new();
    each_child(&mut cursor, &root, |cursor, child| {
        if (ns(&child), child.local) == (Ns::App, "workspace") {
            workspaces.push(workspace(cursor, &child)?);
            Ok(())
        } else {
            skip(cursor, &child)
        }
    })?;
    cursor.finish()?;
    Ok(ServiceDocument { workspaces })
}

fn workspace<'a>(
    cursor: &mut XmlCursor<'a>,
    element: &Element<'a>,
) -> Result<Workspace, RolieError> {
    let mut title = None;
    let mut collections = Vec::new();
    each_child(cursor, element, |cursor, child| {
        match (ns(&child), child.local) {
            (Ns::Atom, "title") => {
                set_once(&mut title, text_construct(cursor, &child)?, "atom:title")
            }
            (Ns::App, "collection") => {
                collections.push(collection(cursor, &child)?);
                Ok(())
            }
            _ => skip(cursor, &child),
        }
    })?;
    Ok(Workspace {
        title: title.unwrap_or_default(),
        collections,
    })
}

fn collection<'a>(
    cursor: &mut XmlCursor<'a>,
    element: &Element<'a>,
) -> Result<Collection, RolieError> {
    let href = required(element, "href", "app:collection")?;
    let mut title = None;
    let mut collection = Collection {
        href,
        title: String::new(),
        accept: Vec::new(),
        information_type: None,
        categories: Vec::new(),
        category_document: None,
        service: None,
    };
    each_child(cursor, element, |cursor, child| {
        match (ns(&child), child.local) {
            (Ns::Atom, "title") => {
                set_once(&mut title, text_construct(cursor, &child)?, "atom:title")
            }
            (Ns::App, "accept") => {
                collection
                    .accept
                    .push(cursor.text(&child)?.trim().to_owned());
                Ok(())
            }
            (Ns::App, "categories") if child.attribute("href").is_some() => {
                collection.category_document = optional(&child, "href");
                skip(cursor, &child)
            }
            (Ns::App, "categories") => each_child(cursor, &child, |cursor, category_element| {
                if (ns(&category_element), category_element.local) == (Ns::Atom, "category") {
                    sort_category(
                        category(cursor, &category_element)?,
                        None,
                        &mut collection.information_type,
                        &mut collection.categories,
                    )
                } else {
                    skip(cursor, &category_element)
                }
            }),
            (Ns::Atom, "link") => {
                let link = link(cursor, &child)?;
                if link.rel == "service" && collection.service.is_none() {
                    collection.service = Some(link.href);
                }
                Ok(())
            }
            _ => skip(cursor, &child),
        }
    })?;
    collection.title = title.unwrap_or_default();
    Ok(collection)
}

fn entry_body<'a>(
    cursor: &mut XmlCursor<'a>,
    element: &Element<'a>,
    mappings: &RolieMappings,
) -> Result<IncomingEntry, RolieError> {
    let mut id_ = None;
    let mut title = None;
    let mut updated = None;
    let mut published = None;
    let mut information_type = None;
    let mut categories = Vec::new();
    let mut links = Vec::new();
    let mut format = None;
    let mut properties = Vec::new();
    let mut content = None;
    each_child(cursor, element, |cursor, child| {
        match (ns(&child), child.local) {
            (Ns::Atom, "id") => set_once(&mut id_, id(cursor, &child)?, "atom:id"),
            (Ns::Atom, "title") => {
                set_once(&mut title, text_construct(cursor, &child)?, "atom:title")
            }
            (Ns::Atom, "updated") => set_once(
                &mut updated,
                timestamp(cursor, &child, "atom:updated")?,
                "atom:updated",
            ),
            (Ns::Atom, "published") => set_once(
                &mut published,
                timestamp(cursor, &child, "atom:published")?,
                "atom:published",
            ),
            (Ns::Atom, "category") => sort_category(
                category(cursor, &child)?,
                Some(mappings),
                &mut information_type,
                &mut categories,
            ),
            (Ns::Atom, "link") => {
                links.push(link(cursor, &child)?);
                Ok(())
            }
            (Ns::Atom, "content") => {
                set_once(&mut content, entry_content(cursor, &child)?, "atom:content")
            }
            (Ns::Rolie, "format") => {
                let value = Format {
                    ns: required(&child, "ns", "rolie:format")?,
                    version: optional(&child, "version"),
                    schema_location: optional(&child, "schema-location"),
                    schema_type: optional(&child, "schema-type"),
                };
                skip(cursor, &child)?;
                set_once(&mut format, value, "rolie:format")
            }
            (Ns::Rolie, "property") => {
                properties.push(Property {
                    name: required(&child, "name", "rolie:property")?,
                    value: required(&child, "value", "rolie:property")?,
                });
                skip(cursor, &child)
            }
            _ => skip(cursor, &child),
        }
    })?;
    Ok(IncomingEntry {
        id: id_,
        title: title.unwrap_or_default(),
        updated,
        published,
        information_type,
        categories,
        links,
        format,
        properties,
        content: content.ok_or(RolieError::NoContent)?,
    })
}

fn entry_content<'a>(
    cursor: &mut XmlCursor<'a>,
    element: &Element<'a>,
) -> Result<IncomingContent, RolieError> {
    let media_type = optional(element, "type");
    if let Some(src) = optional(element, "src") {
        skip(cursor, element)?;
        return Ok(IncomingContent::OutOfLine { media_type, src });
    }
    // Atom's default content type.
    let media_type = media_type.unwrap_or_else(|| "text".to_owned());
    match cursor.content(element)? {
        XmlContent::Xml(xml) if holds_markup(&media_type) => {
            Ok(IncomingContent::Xml { media_type, xml })
        }
        XmlContent::Xml(_) => Err(RolieError::Invalid {
            element: "atom:content",
            reason: format!("type {media_type:?} cannot hold elements"),
        }),
        XmlContent::Text(text) if text.trim().is_empty() => Err(RolieError::NoContent),
        XmlContent::Text(text) => Ok(IncomingContent::Text { media_type, text }),
    }
}

/// Whether Atom lets content of this type be inline markup (RFC 4287 4.1.3.3).
fn holds_markup(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "xhtml" || essence.ends_with("/xml") || essence.ends_with("+xml")
}

/// Puts a category where it belongs. With `mappings`, the information type
/// must be a known term; without, any term is kept.
fn sort_category(
    category: Category,
    mappings: Option<&RolieMappings>,
    information_type: &mut Option<String>,
    others: &mut Vec<Category>,
) -> Result<(), RolieError> {
    if category.scheme.as_deref() != Some(INFORMATION_TYPE_SCHEME) {
        others.push(category);
        return Ok(());
    }
    let term = match mappings {
        Some(mappings) => mappings
            .information_type(&category.term)
            .ok_or_else(|| RolieError::UnknownInformationType(category.term.clone()))?
            .to_owned(),
        None => category.term,
    };
    match information_type {
        // The same category twice says nothing new.
        Some(known) if *known == term => Ok(()),
        Some(_) => Err(RolieError::SeveralInformationTypes),
        None => {
            *information_type = Some(term);
            Ok(())
        }
    }
}

fn category<'a>(cursor: &mut XmlCursor<'a>, element: &Element<'a>) -> Result<Category, RolieError> {
    let category = Category {
        scheme: optional(element, "scheme"),
        term: required(element, "term", "atom:category")?,
        label: optional(element, "label"),
    };
    skip(cursor, element)?;
    Ok(category)
}

fn link<'a>(cursor: &mut XmlCursor<'a>, element: &Element<'a>) -> Result<Link, RolieError> {
    let rel = match element.attribute("rel").map(str::trim) {
        None | Some("") => "alternate".to_owned(),
        // RFC 8322's own example writes `prev`; RFC 5005 says `previous`.
        Some("prev") => "previous".to_owned(),
        Some(rel) => rel.to_owned(),
    };
    let link = Link {
        rel,
        href: required(element, "href", "atom:link")?,
        media_type: optional(element, "type"),
        title: optional(element, "title"),
    };
    skip(cursor, element)?;
    Ok(link)
}

fn id<'a>(cursor: &mut XmlCursor<'a>, element: &Element<'a>) -> Result<String, RolieError> {
    Ok(cursor.text(element)?.trim().to_owned())
}

/// An Atom text construct, as text; `xhtml` keeps its markup.
fn text_construct<'a>(
    cursor: &mut XmlCursor<'a>,
    element: &Element<'a>,
) -> Result<String, RolieError> {
    Ok(match cursor.content(element)? {
        XmlContent::Text(text) | XmlContent::Xml(text) => text,
    })
}

fn timestamp<'a>(
    cursor: &mut XmlCursor<'a>,
    element: &Element<'a>,
    name: &'static str,
) -> Result<Timestamp, RolieError> {
    cursor
        .text(element)?
        .trim()
        .parse()
        .map_err(|e: crate::core::TimestampError| RolieError::Invalid {
            element: name,
            reason: e.to_string(),
        })
}

fn required(element: &Element<'_>, name: &str, owner: &'static str) -> Result<String, RolieError> {
    optional(element, name).ok_or_else(|| RolieError::Invalid {
        element: owner,
        reason: format!("the attribute {name} is missing"),
    })
}

fn optional(element: &Element<'_>, name: &str) -> Option<String> {
    element.attribute(name).map(str::to_owned)
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), RolieError> {
    if slot.is_some() {
        return Err(RolieError::Invalid {
            element: name,
            reason: "it appears twice".to_owned(),
        });
    }
    *slot = Some(value);
    Ok(())
}

/// Reads past an element, whatever it holds.
fn skip<'a>(cursor: &mut XmlCursor<'a>, element: &Element<'a>) -> Result<(), RolieError> {
    if !element.empty {
        cursor.element(element)?;
    }
    Ok(())
}

/// Hands each child of `parent` to `read`, which must consume it whole.
fn each_child<'a>(
    cursor: &mut XmlCursor<'a>,
    parent: &Element<'a>,
    mut read: impl FnMut(&mut XmlCursor<'a>, Element<'a>) -> Result<(), RolieError>,
) -> Result<(), RolieError> {
    if parent.empty {
        return Ok(());
    }
    while let Some(child) = cursor.next_child(true)? {
        read(cursor, child)?;
    }
    Ok(())
}

/// The body as text, within the size limit.
fn document<'a>(input: &'a [u8], limits: &Limits) -> Result<&'a str, RolieError> {
    if input.len() > limits.max_body_bytes {
        return Err(RolieError::TooLarge {
            size: input.len(),
            limit: limits.max_body_bytes,
        });
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    std::str::from_utf8(input).map_err(|e| RolieError::NotUtf8 {
        at: e.valid_up_to(),
    })
}

fn expect_root(
    root: &Element<'_>,
    namespace: Ns,
    local: &str,
    expected: &'static str,
) -> Result<(), RolieError> {
    if ns(root) == namespace && root.local == local {
        return Ok(());
    }
    Err(RolieError::WrongRoot {
        expected,
        local: root.local.to_owned(),
        namespace: root.namespace.to_string(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ns {
    Atom,
    App,
    Rolie,
    Other,
}

/// The namespace of an element, in any spelling RFC 8322 uses for it.
fn ns(element: &Element<'_>) -> Ns {
    match &*element.namespace {
        "http://www.w3.org/2005/Atom" | "https://www.w3.org/2005/Atom" => Ns::Atom,
        "http://www.w3.org/2007/app" | "https://www.w3.org/2007/app" => Ns::App,
        "urn:ietf:params:xml:ns:rolie-1.0" | "urn:ietf:params:xml:ns:rolie:1.0" => Ns::Rolie,
        _ => Ns::Other,
    }
}
