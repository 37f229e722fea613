//! A namespace-aware pull cursor over a buffered XML document, with the limits
//! that a document from a stranger needs, and the capture of payloads verbatim.
//!
//! quick-xml lexes; this cursor keeps its own stack of namespace bindings so
//! that a payload can be lifted out with every binding it inherited, and so
//! that every prefix, in the envelope and in payloads, is checked to be
//! declared: what we store must stand alone as a namespace-well-formed document.

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::error::ParseError;
use super::limits::Limits;
use crate::core::XmlContent;

const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

struct Binding {
    /// Empty for the default namespace.
    prefix: Box<str>,
    uri: Box<str>,
}

/// An element start tag, resolved.
pub(crate) struct Element<'a> {
    pub qname: &'a str,
    pub local: &'a str,
    pub namespace: Box<str>,
    pub attributes: Vec<(String, String)>,
    pub empty: bool,
    /// Byte offset of the `<` of the start tag.
    start: usize,
    /// Byte offset just after the start tag's `>`.
    start_end: usize,
    /// Length of the binding stack before this element's own declarations.
    outer_scope: usize,
    /// Prefixes this element declares itself (empty string: the default namespace).
    declares: Vec<Box<str>>,
}

impl<'a> Element<'a> {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn required_attribute(&self, name: &str) -> Result<&str, ParseError> {
        self.attribute(name).ok_or_else(|| {
            ParseError::bad_message(format!("<{}> lacks its attribute {name}", self.qname))
        })
    }
}

pub(crate) struct XmlCursor<'a> {
    input: &'a str,
    reader: Reader<&'a [u8]>,
    bindings: Vec<Binding>,
    /// For each open element, the length of `bindings` before its declarations.
    open: Vec<usize>,
    limits: &'a Limits,
}

impl<'a> XmlCursor<'a> {
    pub fn new(input: &'a str, limits: &'a Limits) -> Self {
        let mut reader = Reader::from_str(input);
        let config = reader.config_mut();
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.trim_text(false);
        XmlCursor {
            input,
            reader,
            bindings: Vec::new(),
            open: Vec::new(),
            limits,
        }
    }

    fn position(&self) -> usize {
        self.reader.buffer_position() as usize
    }

    fn read(&mut self) -> Result<Event<'a>, ParseError> {
        let at = self.position();
        self.reader.read_event().map_err(|error| {
            ParseError::bad_message(format!("malformed XML near byte {at}: {error}"))
        })
    }

    /// Reads up to and including the root element's start tag.
    pub fn root(&mut self) -> Result<Element<'a>, ParseError> {
        // quick-xml does not check for characters XML forbids everywhere
        // (C0 controls, U+FFFE, U+FFFF); a raw one would be kept in a field or
        // payload that no XML writer can then express.
        check_characters(self.input)?;
        // The caller strips one byte order mark and quick-xml silently skips
        // another, which would put every offset we take from it 3 bytes off.
        // A second one is a character before the root: not well-formed.
        if self.input.starts_with('\u{FEFF}') {
            return Err(ParseError::bad_message(
                "text (a second byte order mark) before the root element is not allowed",
            ));
        }
        let mut seen_declaration = false;
        loop {
            let at = self.position();
            match self.read()? {
                Event::Decl(declaration) => {
                    if seen_declaration || at != 0 {
                        return Err(ParseError::bad_message(
                            "the XML declaration must come first and only once",
                        ));
                    }
                    seen_declaration = true;
                    if let Some(encoding) = declaration.encoding() {
                        let encoding = encoding.map_err(|e| {
                            ParseError::bad_message(format!("bad XML declaration: {e}"))
                        })?;
                        if !encoding.eq_ignore_ascii_case("utf-8") {
                            return Err(ParseError::bad_message(format!(
                                "only UTF-8 documents are accepted, not {encoding}"
                            )));
                        }
                    }
                }
                Event::DocType(_) => {
                    return Err(ParseError::bad_message(
                        "document type declarations are not accepted",
                    ));
                }
                Event::Text(text) if is_whitespace(text.as_bytes()) => {}
                Event::Comment(_) | Event::PI(_) => {}
                Event::Start(start) => return self.open(start, at, false, true),
                Event::Empty(start) => return self.open(start, at, true, true),
                Event::Eof => return Err(ParseError::bad_message("the document is empty")),
                _ => {
                    return Err(ParseError::bad_message(
                        "text before the root element is not allowed",
                    ));
                }
            }
        }
    }

    /// Checks that nothing but comments and whitespace follows the root element.
    pub fn finish(&mut self) -> Result<(), ParseError> {
        loop {
            match self.read()? {
                Event::Eof => return Ok(()),
                Event::Text(text) if is_whitespace(text.as_bytes()) => {}
                Event::Comment(_) | Event::PI(_) => {}
                _ => {
                    return Err(ParseError::bad_message(
                        "content after the root element is not allowed",
                    ));
                }
            }
        }
    }

    fn open(
        &mut self,
        start: BytesStart<'a>,
        at: usize,
        empty: bool,
        keep_attributes: bool,
    ) -> Result<Element<'a>, ParseError> {
        if self.open.len() >= self.limits.max_depth {
            return Err(ParseError::bad_message(format!(
                "elements nest deeper than {} levels",
                self.limits.max_depth
            )));
        }
        let start_end = self.position();
        let name_len = start.name().as_ref().len();
        // Offsets come from quick-xml; should one ever be off, refuse the
        // document rather than panic on a slice.
        let qname = self
            .input
            .get(at + 1..at + 1 + name_len)
            .filter(|qname| {
                let name = start.name();
                let name: &str = name.as_ref();
                *qname == name
            })
            .ok_or_else(|| {
                ParseError::bad_message(format!("malformed start tag near byte {at}"))
            })?;
        let outer_scope = self.bindings.len();
        let mut attributes = Vec::new();
        let mut declares = Vec::new();
        let mut count = 0;
        for attribute in start.attributes().with_checks(true) {
            count += 1;
            if count > self.limits.max_attributes {
                return Err(ParseError::bad_message(format!(
                    "<{qname}> has more than {} attributes",
                    self.limits.max_attributes
                )));
            }
            let attribute = attribute.map_err(|e| {
                ParseError::bad_message(format!("malformed attribute in <{qname}>: {e}"))
            })?;
            let key: &str = attribute.key.as_ref();
            // quick-xml lets a raw `<` through in a value; XML forbids it.
            if attribute.value.contains('<') {
                return Err(ParseError::bad_message(format!(
                    "attribute {key} of <{qname}> holds a raw <"
                )));
            }
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| {
                    ParseError::bad_message(format!("bad attribute {key} in <{qname}>: {e}"))
                })?;
            if value.len() > self.limits.max_field_bytes {
                return Err(ParseError::bad_message(format!(
                    "attribute {key} of <{qname}> is longer than {} bytes",
                    self.limits.max_field_bytes
                )));
            }
            let declared = if key == "xmlns" {
                Some("")
            } else {
                key.strip_prefix("xmlns:")
            };
            match declared {
                Some(prefix) => {
                    if prefix == "xml" || prefix == "xmlns" {
                        continue;
                    }
                    if !prefix.is_empty() && value.is_empty() {
                        return Err(ParseError::bad_message(format!(
                            "the prefix {prefix} cannot be bound to an empty namespace"
                        )));
                    }
                    declares.push(prefix.into());
                    self.bindings.push(Binding {
                        prefix: prefix.into(),
                        uri: value.into_owned().into_boxed_str(),
                    });
                }
                None => {
                    if let Some((prefix, _)) = key.split_once(':') {
                        self.resolve(prefix, qname)?;
                    }
                    if keep_attributes {
                        attributes.push((key.to_owned(), value.into_owned()));
                    }
                }
            }
        }
        let (prefix, local) = match qname.split_once(':') {
            Some((prefix, local)) => (prefix, local),
            None => ("", qname),
        };
        let namespace = self.resolve(prefix, qname)?.0.into();
        if empty {
            self.bindings.truncate(outer_scope);
        } else {
            self.open.push(outer_scope);
        }
        Ok(Element {
            qname,
            local,
            namespace,
            attributes,
            empty,
            start: at,
            start_end,
            outer_scope,
            declares,
        })
    }

    /// The namespace of a prefix and the index of its binding.
    fn resolve(&self, prefix: &str, qname: &str) -> Result<(&str, Option<usize>), ParseError> {
        if prefix == "xml" {
            return Ok((XML_NAMESPACE, None));
        }
        match self
            .bindings
            .iter()
            .rposition(|binding| &*binding.prefix == prefix)
        {
            Some(index) => Ok((&self.bindings[index].uri, Some(index))),
            None if prefix.is_empty() => Ok(("", None)),
            None => Err(ParseError::bad_message(format!(
                "the prefix {prefix} of <{qname}> is not declared"
            ))),
        }
    }

    fn close(&mut self) {
        if let Some(outer) = self.open.pop() {
            self.bindings.truncate(outer);
        }
    }

    /// The next child element of the current element, or `None` at its end.
    /// Character data between children is an error unless `tolerate_text`.
    pub fn next_child(&mut self, tolerate_text: bool) -> Result<Option<Element<'a>>, ParseError> {
        loop {
            let at = self.position();
            match self.read()? {
                Event::Start(start) => return self.open(start, at, false, true).map(Some),
                Event::Empty(start) => return self.open(start, at, true, true).map(Some),
                Event::End(_) => {
                    self.close();
                    return Ok(None);
                }
                Event::Text(text) if tolerate_text || is_whitespace(text.as_bytes()) => {}
                Event::GeneralRef(_) | Event::CData(_) if tolerate_text => {}
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Err(truncated()),
                Event::DocType(_) | Event::Decl(_) => {
                    return Err(ParseError::bad_message("misplaced declaration"));
                }
                Event::Text(_) | Event::GeneralRef(_) | Event::CData(_) => {
                    return Err(ParseError::bad_message(format!(
                        "unexpected text near byte {at}"
                    )));
                }
            }
        }
    }

    /// The character data of an element that must hold text only.
    pub fn text(&mut self, element: &Element<'a>) -> Result<String, ParseError> {
        let mut text = String::new();
        if element.empty {
            return Ok(text);
        }
        loop {
            match self.read()? {
                Event::Text(chunk) => text.push_str(&chunk.xml10_content()),
                Event::CData(chunk) => text.push_str(&chunk.xml10_content()),
                Event::GeneralRef(reference) => push_reference(&mut text, &reference)?,
                Event::Comment(_) | Event::PI(_) => {}
                Event::End(_) => {
                    self.close();
                    return Ok(text);
                }
                Event::Start(_) | Event::Empty(_) => {
                    return Err(ParseError::bad_message(format!(
                        "<{}> must hold text only",
                        element.qname
                    )));
                }
                Event::Eof => return Err(truncated()),
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(ParseError::bad_message("misplaced declaration"));
                }
            }
            if text.len() > self.limits.max_field_bytes {
                return Err(ParseError::bad_message(format!(
                    "<{}> holds more than {} bytes of text",
                    element.qname, self.limits.max_field_bytes
                )));
            }
        }
    }

    /// Mixed content kept as received: character data alone becomes text;
    /// anything with markup is kept verbatim, each top-level element
    /// re-declaring the namespaces it inherited.
    pub fn content(&mut self, element: &Element<'a>) -> Result<XmlContent, ParseError> {
        if element.empty {
            return Ok(XmlContent::Text(String::new()));
        }
        let mut text = String::new();
        let mut roots: Vec<(Element<'a>, usize, bool)> = Vec::new();
        let end_start = loop {
            let at = self.position();
            match self.read()? {
                Event::Text(chunk) => {
                    if roots.is_empty() {
                        text.push_str(&chunk.xml10_content());
                    }
                }
                Event::CData(chunk) => {
                    if roots.is_empty() {
                        text.push_str(&chunk.xml10_content());
                    }
                }
                Event::GeneralRef(reference) => push_reference(&mut text, &reference)?,
                Event::Comment(_) | Event::PI(_) => {}
                Event::Start(start) => {
                    let root = self.open(start, at, false, false)?;
                    let (end, uses_outer_default) = self.skip_subtree(&root)?;
                    roots.push((root, end, uses_outer_default));
                }
                Event::Empty(start) => {
                    let root = self.open(start, at, true, false)?;
                    let uses_outer_default = self.uses_outer_default(&root);
                    let end = self.position();
                    roots.push((root, end, uses_outer_default));
                }
                Event::End(_) => {
                    self.close();
                    break at;
                }
                Event::Eof => return Err(truncated()),
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(ParseError::bad_message("misplaced declaration"));
                }
            }
            if text.len() > self.limits.max_body_bytes {
                return Err(ParseError::bad_message("text is too long"));
            }
        };
        if roots.is_empty() {
            return Ok(XmlContent::Text(text));
        }
        let raw = &self.input[element.start_end..end_start];
        let leading = raw.len() - raw.trim_start().len();
        let trailing = raw.len() - raw.trim_end().len();
        let (from, to) = (element.start_end + leading, end_start - trailing);
        let mut xml = String::with_capacity(to - from + 64);
        let mut copied = from;
        for (root, end, uses_outer_default) in &roots {
            let insert_at = self.declaration_point(root);
            xml.push_str(&self.input[copied..insert_at]);
            self.push_inherited(
                &mut xml,
                root,
                &self.input[root.start..*end],
                *uses_outer_default,
            );
            copied = insert_at;
        }
        xml.push_str(&self.input[copied..to]);
        Ok(XmlContent::Xml(xml))
    }

    /// An element kept whole, re-declaring the namespaces it inherited.
    pub fn element(&mut self, element: &Element<'a>) -> Result<String, ParseError> {
        let (end, uses_outer_default) = if element.empty {
            (element.start_end, self.uses_outer_default(element))
        } else {
            self.skip_subtree(element)?
        };
        let insert_at = self.declaration_point(element);
        let mut xml = String::with_capacity(end - element.start + 64);
        xml.push_str(&self.input[element.start..insert_at]);
        self.push_inherited(
            &mut xml,
            element,
            &self.input[element.start..end],
            uses_outer_default,
        );
        xml.push_str(&self.input[insert_at..end]);
        Ok(xml)
    }

    /// Skips an element's content; it is still checked, as everything is.
    pub fn skip(&mut self, element: &Element<'a>) -> Result<(), ParseError> {
        if !element.empty {
            self.skip_subtree(element)?;
        }
        Ok(())
    }

    /// Where inherited declarations go: just before the start tag's closing `>` or `/>`.
    fn declaration_point(&self, element: &Element<'a>) -> usize {
        if element.empty {
            element.start_end - 2
        } else {
            element.start_end - 1
        }
    }

    fn uses_outer_default(&self, element: &Element<'a>) -> bool {
        !element.qname.contains(':')
            && !element.declares.iter().any(|p| p.is_empty())
            && !element.namespace.is_empty()
    }

    /// Writes ` xmlns:p="..."` for every binding in scope outside `root` that
    /// `root` does not declare itself and that its text mentions.
    fn push_inherited(&self, out: &mut String, root: &Element<'a>, span: &str, uses_default: bool) {
        let scope = &self.bindings[..root.outer_scope];
        for (index, binding) in scope.iter().enumerate().rev() {
            let prefix = &*binding.prefix;
            let shadowed = scope[index + 1..]
                .iter()
                .any(|b| b.prefix == binding.prefix);
            if shadowed || root.declares.iter().any(|p| &**p == prefix) {
                continue;
            }
            if prefix.is_empty() {
                if uses_default && !binding.uri.is_empty() {
                    out.push_str(" xmlns=\"");
                    escape_attribute_into(out, &binding.uri);
                    out.push('"');
                }
            } else if mentions_prefix(span, prefix) {
                out.push_str(" xmlns:");
                out.push_str(prefix);
                out.push_str("=\"");
                escape_attribute_into(out, &binding.uri);
                out.push('"');
            }
        }
    }

    /// Reads to the end of an open element. Returns the offset after its end
    /// tag and whether any element inside takes the default namespace from
    /// outside the subtree.
    fn skip_subtree(&mut self, root: &Element<'a>) -> Result<(usize, bool), ParseError> {
        let mut uses_outer_default = self.uses_outer_default(root);
        let base = self.open.len();
        loop {
            let at = self.position();
            match self.read()? {
                Event::Start(start) => {
                    let element = self.open(start, at, false, false)?;
                    uses_outer_default |= self.default_from_outside(&element, root);
                }
                Event::Empty(start) => {
                    let element = self.open(start, at, true, false)?;
                    uses_outer_default |= self.default_from_outside(&element, root);
                }
                Event::End(_) => {
                    self.close();
                    if self.open.len() < base {
                        return Ok((self.position(), uses_outer_default));
                    }
                }
                Event::GeneralRef(reference) => check_reference(&reference)?,
                Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Err(truncated()),
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(ParseError::bad_message("misplaced declaration"));
                }
            }
        }
    }

    /// Whether an unprefixed element inside `root` is in a default namespace
    /// declared outside `root`.
    fn default_from_outside(&self, element: &Element<'a>, root: &Element<'a>) -> bool {
        if element.qname.contains(':') || element.namespace.is_empty() {
            return false;
        }
        let declared_at = self
            .bindings
            .iter()
            .rposition(|binding| binding.prefix.is_empty());
        declared_at.is_some_and(|index| index < root.outer_scope)
            && !root.declares.iter().any(|p| p.is_empty())
    }
}

fn truncated() -> ParseError {
    ParseError::bad_message("the document ends before its root element is closed")
}

fn is_whitespace(text: &[u8]) -> bool {
    text.iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn check_reference(reference: &BytesRef<'_>) -> Result<(), ParseError> {
    let mut sink = String::new();
    push_reference(&mut sink, reference)
}

/// Resolves a character reference or one of the five predefined entities.
/// No other entity exists, since no document type is accepted.
fn push_reference(out: &mut String, reference: &BytesRef<'_>) -> Result<(), ParseError> {
    let name: &str = reference;
    let resolved = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => match reference.resolve_char_ref() {
            Ok(Some(c)) if is_xml_char(c) => c,
            Ok(Some(_)) | Err(_) => {
                return Err(ParseError::bad_message(format!(
                    "&{name}; is not a valid character reference"
                )));
            }
            Ok(None) => {
                return Err(ParseError::bad_message(format!(
                    "the entity &{name}; is not defined (entities are not accepted)"
                )));
            }
        },
    };
    out.push(resolved);
    Ok(())
}

/// Refuses a character that XML 1.0 allows nowhere, raw or escaped.
fn check_characters(input: &str) -> Result<(), ParseError> {
    let bytes = input.as_bytes();
    let forbidden = bytes.iter().enumerate().find_map(|(at, &b)| {
        let control = b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r');
        // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
        let non_character = b == 0xEF
            && bytes.get(at + 1) == Some(&0xBF)
            && matches!(bytes.get(at + 2), Some(0xBE | 0xBF));
        (control || non_character).then_some(at)
    });
    match forbidden {
        Some(at) => Err(ParseError::bad_message(format!(
            "the character at byte {at} is not allowed in XML"
        ))),
        None => Ok(()),
    }
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Whether `prefix:` occurs in the text at a name boundary. This finds the
/// prefix in element and attribute names and in QName-valued attributes and
/// text (`xsi:type="stixVocabs:..."`) alike.
fn mentions_prefix(span: &str, prefix: &str) -> bool {
    let bytes = span.as_bytes();
    let mut from = 0;
    while let Some(found) = span[from..].find(prefix) {
        let at = from + found;
        let end = at + prefix.len();
        let boundary_before = at == 0 || !is_name_byte(bytes[at - 1]);
        if boundary_before && bytes.get(end) == Some(&b':') {
            return true;
        }
        from = at + 1;
    }
    false
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.') || byte >= 0x80
}

pub(crate) fn escape_attribute_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
}
