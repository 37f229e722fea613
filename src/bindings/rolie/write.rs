//! Writing service and category documents, feeds and entries.
//!
//! Written by hand rather than with atom_syndication, which writes extension
//! attribute values and namespace URIs unescaped: every value here passes
//! through one escaping path, so no title or href can break the document.

use super::{
    APP_NAMESPACE, ATOM_NAMESPACE, Category, Collection, Entry, FeedPage, Format,
    INFORMATION_TYPE_SCHEME, Link, Property, ROLIE_NAMESPACE, ServiceDocument,
};
use crate::core::{Timestamp, XmlContent};

const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// An AtomPub service document (`application/atomsvc+xml`); Atom elements
/// take the `atom` prefix, AtomPub ones the default namespace.
pub fn service_document(document: &ServiceDocument) -> String {
    let mut w = Writer::new(false);
    w.start(
        "service",
        &[
            ("xmlns", Some(APP_NAMESPACE)),
            ("xmlns:atom", Some(ATOM_NAMESPACE)),
        ],
    );
    for workspace in &document.workspaces {
        w.start("workspace", &[]);
        w.text_element("atom:title", &workspace.title);
        for collection in &workspace.collections {
            w.collection(collection);
        }
        w.end("workspace");
    }
    w.end("service");
    w.out
}

/// An AtomPub category document (`application/atomcat+xml`), fixed: a ROLIE
/// collection takes no categories but its own.
pub fn category_document(categories: &[Category]) -> String {
    let mut w = Writer::new(false);
    w.start(
        "categories",
        &[
            ("xmlns", Some(APP_NAMESPACE)),
            ("xmlns:atom", Some(ATOM_NAMESPACE)),
            ("fixed", Some("yes")),
        ],
    );
    for category in categories {
        w.category(category);
    }
    w.end("categories");
    w.out
}

/// A collection feed page (`application/atom+xml`).
pub fn feed(page: &FeedPage) -> String {
    let mut w = Writer::new(true);
    w.start(
        "feed",
        &[
            ("xmlns", Some(ATOM_NAMESPACE)),
            ("xmlns:rolie", Some(ROLIE_NAMESPACE)),
        ],
    );
    w.text_element("id", &page.id);
    w.text_element("title", &page.title);
    w.timestamp("updated", &page.updated);
    w.information_type(&page.information_type);
    for category in &page.categories {
        w.category(category);
    }
    w.simple_link("service", &page.service);
    for link in &page.links {
        w.link(link);
    }
    for entry in &page.entries {
        w.entry(entry, false, None);
    }
    w.end("feed");
    w.out
}

/// An entry (`application/atom+xml;type=entry`). A standalone entry (served
/// outside its feed) declares its namespaces and carries what RFC 8322 6.2.5
/// asks of it: its `collection` links and the information-type category.
pub fn entry(entry: &Entry, standalone: bool) -> String {
    let mut w = Writer::new(true);
    w.entry(entry, standalone, None);
    w.out
}

/// An entry to POST to a collection (AtomPub): standalone, its content
/// inline (of `entry.content.media_type`; XML verbatim, text escaped)
/// rather than by reference, since the receiver cannot be made to fetch it.
pub fn entry_to_post(entry: &Entry, content: &XmlContent) -> String {
    let mut w = Writer::new(true);
    w.entry(entry, true, Some(content));
    w.out
}

struct Writer {
    out: String,
    /// Atom elements are in the default namespace (feeds and entries) or
    /// under `atom:` (AtomPub documents).
    atom_prefix: &'static str,
}

impl Writer {
    fn new(atom_default: bool) -> Self {
        let mut out = String::with_capacity(4096);
        out.push_str(DECLARATION);
        Writer {
            out,
            atom_prefix: if atom_default { "" } else { "atom:" },
        }
    }

    fn open_tag(&mut self, name: &str, attributes: &[(&str, Option<&str>)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attributes {
            if let Some(value) = value {
                self.out.push(' ');
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_into(&mut self.out, value, true);
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
        self.out.push_str(name);
        self.out.push('>');
    }

    fn text_element(&mut self, name: &str, text: &str) {
        self.start(name, &[]);
        escape_into(&mut self.out, text, false);
        self.end(name);
    }

    fn timestamp(&mut self, name: &str, timestamp: &Timestamp) {
        // RFC 3339 requires a zone; a time without one is taken as UTC.
        let mut text = timestamp.to_string();
        if timestamp.offset_minutes().is_none() {
            text.push('Z');
        }
        self.text_element(name, &text);
    }

    fn atom(&self, local: &str) -> String {
        format!("{}{local}", self.atom_prefix)
    }

    fn category(&mut self, category: &Category) {
        let name = self.atom("category");
        self.empty(
            &name,
            &[
                ("scheme", category.scheme.as_deref()),
                ("term", Some(&category.term)),
                ("label", category.label.as_deref()),
            ],
        );
    }

    fn information_type(&mut self, term: &str) {
        self.category(&Category {
            scheme: Some(INFORMATION_TYPE_SCHEME.to_owned()),
            term: term.to_owned(),
            label: None,
        });
    }

    fn link(&mut self, link: &Link) {
        let name = self.atom("link");
        self.empty(
            &name,
            &[
                ("rel", Some(&link.rel)),
                ("href", Some(&link.href)),
                ("type", link.media_type.as_deref()),
                ("title", link.title.as_deref()),
            ],
        );
    }

    fn simple_link(&mut self, rel: &str, href: &str) {
        let name = self.atom("link");
        self.empty(&name, &[("rel", Some(rel)), ("href", Some(href))]);
    }

    fn collection(&mut self, collection: &Collection) {
        self.start("collection", &[("href", Some(&collection.href))]);
        self.text_element("atom:title", &collection.title);
        for accept in &collection.accept {
            self.text_element("accept", accept);
        }
        // A fixed empty list would forbid every category: a collection with
        // none says nothing.
        if collection.information_type.is_some() || !collection.categories.is_empty() {
            self.start("categories", &[("fixed", Some("yes"))]);
            if let Some(term) = &collection.information_type {
                self.information_type(term);
            }
            for category in &collection.categories {
                self.category(category);
            }
            self.end("categories");
        }
        if let Some(href) = &collection.category_document {
            self.start("categories", &[("href", Some(href))]);
            self.end("categories");
        }
        if let Some(service) = &collection.service {
            self.simple_link("service", service);
        }
        self.end("collection");
    }

    fn entry(&mut self, entry: &Entry, standalone: bool, inline: Option<&XmlContent>) {
        if standalone {
            self.start(
                "entry",
                &[
                    ("xmlns", Some(ATOM_NAMESPACE)),
                    ("xmlns:rolie", Some(ROLIE_NAMESPACE)),
                ],
            );
        } else {
            self.start("entry", &[]);
        }
        self.text_element("id", &entry.id);
        self.text_element("title", &entry.title);
        self.timestamp("updated", &entry.updated);
        if let Some(published) = &entry.published {
            self.timestamp("published", published);
        }
        if standalone {
            self.information_type(&entry.information_type);
        }
        for category in &entry.categories {
            self.category(category);
        }
        match inline {
            None => self.empty(
                "content",
                &[
                    ("type", Some(&entry.content.media_type)),
                    ("src", Some(&entry.content.src)),
                ],
            ),
            Some(content) => {
                self.start("content", &[("type", Some(&entry.content.media_type))]);
                match content {
                    XmlContent::Xml(xml) => self.out.push_str(xml),
                    XmlContent::Text(text) => escape_into(&mut self.out, text, false),
                }
                self.end("content");
            }
        }
        for link in &entry.links {
            self.link(link);
        }
        if standalone {
            for collection in &entry.collections {
                self.simple_link("collection", collection);
            }
        }
        if let Some(format) = &entry.format {
            self.format(format);
        }
        for property in &entry.properties {
            self.property(property);
        }
        self.end("entry");
    }

    fn format(&mut self, format: &Format) {
        self.empty(
            "rolie:format",
            &[
                ("ns", Some(&format.ns)),
                ("version", format.version.as_deref()),
                ("schema-location", format.schema_location.as_deref()),
                ("schema-type", format.schema_type.as_deref()),
            ],
        );
    }

    fn property(&mut self, property: &Property) {
        self.empty(
            "rolie:property",
            &[
                ("name", Some(&property.name)),
                ("value", Some(&property.value)),
            ],
        );
    }
}

/// Escapes text or an attribute value. A character XML cannot carry at all
/// (C0 controls, U+FFFE, U+FFFF) becomes U+FFFD, so that what a stranger
/// put in a title can never make our document ill-formed.
fn escape_into(out: &mut String, value: &str, attribute: bool) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            // Kept as written: a literal one would be read back as a space
            // (attributes) or a line feed (line-end normalisation).
            '\r' => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\t' | '\n' => out.push(c),
            '\u{0}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}
