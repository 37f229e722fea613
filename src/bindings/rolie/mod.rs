//! The ROLIE binding (RFC 8322 and the CSIRT extension draft): AtomPub
//! service and category documents, collection feeds and entries, written for
//! our repository and read from peers. Nothing here does I/O; the ROLIE
//! adapter serves and fetches what these functions write and read.
//!
//! Writers emit the `http://` Atom and AtomPub namespaces and `rolie-1.0`;
//! readers also accept the `https://` and `rolie:1.0` spellings that RFC
//! 8322's own text uses, under any prefix, since peers copy the RFC.

mod csirt;
mod mappings;
mod read;
mod write;

#[cfg(test)]
mod tests;

use crate::core::Timestamp;

pub use crate::bindings::taxii_xml::Limits;
pub use csirt::{IodefFacts, csirt_id, iodef_facts, is_iodef_binding, payload_format};
pub use mappings::{BindingMapping, RolieMappings, rolie_mappings};
pub use read::{read_entry, read_feed, read_service_document, read_xml_payload};
pub use write::{category_document, entry, entry_to_post, feed, service_document};

pub const ATOM_NAMESPACE: &str = "http://www.w3.org/2005/Atom";
pub const APP_NAMESPACE: &str = "http://www.w3.org/2007/app";
pub const ROLIE_NAMESPACE: &str = "urn:ietf:params:xml:ns:rolie-1.0";

pub const SERVICE_MEDIA_TYPE: &str = "application/atomsvc+xml";
pub const CATEGORY_MEDIA_TYPE: &str = "application/atomcat+xml";
pub const FEED_MEDIA_TYPE: &str = "application/atom+xml;type=feed";
pub const ENTRY_MEDIA_TYPE: &str = "application/atom+xml;type=entry";

/// The one category scheme RFC 8322 registers; every ROLIE feed and
/// collection carries exactly one category of it.
pub const INFORMATION_TYPE_SCHEME: &str = "urn:ietf:params:rolie:category:information-type";
/// CSIRT extension: feed categories of IODEF incident feeds.
pub const IODEF_PURPOSE_SCHEME: &str = "urn:ietf:params:rolie:category:csirt:iodef:purpose";
pub const IODEF_RESTRICTION_SCHEME: &str = "urn:ietf:params:rolie:category:csirt:iodef:restriction";
/// CSIRT extension: the entry property that maps an IODEF incident id to its
/// entry (see [`csirt_id`]). Peers also write `...:csirt:ID`; readers keep the
/// name as sent, so compare it case-insensitively.
pub const CSIRT_ID_PROPERTY: &str = "urn:ietf:params:rolie:property:csirt:id";

/// An `atom:category`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Category {
    pub scheme: Option<String>,
    pub term: String,
    pub label: Option<String>,
}

/// An `atom:link`. Readers turn RFC 8322's `rel="prev"` into `previous` and
/// an absent rel into `alternate`, as Atom defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub rel: String,
    pub href: String,
    pub media_type: Option<String>,
    pub title: Option<String>,
}

/// A `rolie:format`: the data model of an entry's content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Format {
    pub ns: String,
    pub version: Option<String>,
    pub schema_location: Option<String>,
    pub schema_type: Option<String>,
}

/// A `rolie:property`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub value: String,
}

/// An AtomPub service document, written for our repository or read from a peer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDocument {
    pub workspaces: Vec<Workspace>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub title: String,
    pub collections: Vec<Collection>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// The collection's feed.
    pub href: String,
    pub title: String,
    /// Media ranges accepted by POST, one `app:accept` each. Empty: no
    /// `app:accept`, which AtomPub reads as entries only. `[""]`: an empty
    /// `app:accept`, which means no POST at all (a read-only collection).
    pub accept: Vec<String>,
    /// The ROLIE information type; `None` for a non-ROLIE collection.
    pub information_type: Option<String>,
    /// Categories of other schemes.
    pub categories: Vec<Category>,
    /// An out-of-line category document (`app:categories href`) listing
    /// the collection's categories.
    pub category_document: Option<String>,
    /// The `atom:link rel="service"` of the collection.
    pub service: Option<String>,
}

/// One page of a collection feed, to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedPage {
    pub id: String,
    pub title: String,
    pub updated: Timestamp,
    pub information_type: String,
    /// Categories of other schemes, the CSIRT IODEF purpose and restriction
    /// among them on IODEF feeds.
    pub categories: Vec<Category>,
    /// The service document (RFC 8322 6.1.2 requires the link).
    pub service: String,
    /// `self` and the RFC 5005 paging links (`first`, `last`, `previous`,
    /// `next`), and any other, written in this order.
    pub links: Vec<Link>,
    /// Written in this order: newest first is the caller's, since the store
    /// cuts the pages.
    pub entries: Vec<Entry>,
}

/// An entry to be written: in a feed, or alone (a member GET, a POST answer
/// or a POST to a peer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub title: String,
    pub updated: Timestamp,
    pub published: Option<Timestamp>,
    /// Written only on a standalone entry; in a feed the feed carries it.
    pub information_type: String,
    pub categories: Vec<Category>,
    /// RFC 8322 allows out-of-line content only.
    pub content: OutOfLine,
    /// Any relation: alternate, related, history, indicators...
    pub links: Vec<Link>,
    /// The feeds holding the entry, written as `rel="collection"` links on a
    /// standalone entry.
    pub collections: Vec<String>,
    pub format: Option<Format>,
    pub properties: Vec<Property>,
}

/// `atom:content` with `src`: the payload is fetched from there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutOfLine {
    pub media_type: String,
    pub src: String,
}

/// The content of an entry read from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncomingContent {
    /// `src` given; `media_type` is `None` when the peer sent no `type`.
    OutOfLine {
        media_type: Option<String>,
        src: String,
    },
    /// An XML payload, lifted verbatim with the namespaces it inherited
    /// re-declared on its root, so that it stands alone.
    Xml { media_type: String, xml: String },
    /// Character data (text, JSON, or escaped markup), unescaped.
    /// `media_type` is Atom's default `text` when the peer sent none.
    Text { media_type: String, text: String },
}

/// An entry read from an AtomPub POST or PUT body or from a peer's feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingEntry {
    /// Absent in a POST body the server is to name.
    pub id: Option<String>,
    pub title: String,
    pub updated: Option<Timestamp>,
    pub published: Option<Timestamp>,
    /// The known term, as the mappings spell it.
    pub information_type: Option<String>,
    /// Categories of other schemes.
    pub categories: Vec<Category>,
    pub links: Vec<Link>,
    pub format: Option<Format>,
    pub properties: Vec<Property>,
    pub content: IncomingContent,
}

/// A feed page read from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingFeed {
    pub id: Option<String>,
    pub title: String,
    pub updated: Option<Timestamp>,
    pub information_type: Option<String>,
    pub categories: Vec<Category>,
    /// Every link, the service and paging ones among them.
    pub links: Vec<Link>,
    pub entries: Vec<IncomingEntry>,
}

impl IncomingFeed {
    /// The first link of a relation (`next`, `previous`, `service`...).
    pub fn link(&self, rel: &str) -> Option<&str> {
        self.links
            .iter()
            .find(|link| link.rel == rel)
            .map(|link| link.href.as_str())
    }
}

/// Why a document could not be read. The text is short and plain, meant for
/// the body of a 4xx answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RolieError {
    #[error("the body is {size} bytes, more than the {limit} accepted")]
    TooLarge { size: usize, limit: usize },
    #[error("the body is not UTF-8 (byte {at})")]
    NotUtf8 { at: usize },
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("<{local}> in namespace {namespace:?} where {expected} is expected")]
    WrongRoot {
        expected: &'static str,
        local: String,
        namespace: String,
    },
    #[error("the entry has no atom:content")]
    NoContent,
    #[error("{0:?} is not a ROLIE information type known here")]
    UnknownInformationType(String),
    #[error("several information-type categories where one is allowed")]
    SeveralInformationTypes,
    #[error("invalid {element}: {reason}")]
    Invalid {
        element: &'static str,
        reason: String,
    },
}

impl From<crate::bindings::taxii_xml::ParseError> for RolieError {
    fn from(error: crate::bindings::taxii_xml::ParseError) -> Self {
        RolieError::Malformed(error.reason)
    }
}
