//! A namespace-aware pull cursor over a buffered XML document, with the limits
//! that a document from a stranger needs, and the capture of payloads verbatim.
//!
//! quick-xml lexes; this cursor keeps its own stack of namespace bindings so
//! that a payload can be lifted out with every binding it inherited, and so
//! that every prefix, in the envelope and in payloads, is checked to be
//! declared: what we store must stand alone as a namespace-well-formed document.

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::error::ParseError;
use super::limits::Limits;
use crate::core::XmlContent;

const XML_NAMESPACE: &str = "http://www.w3.org/XML/1998/namespace";

/// Prefixes and URIs borrow the input unless a URI held a reference: a
/// payload's many declarations cost no allocation.
struct Binding<'a> {
    /// Empty for the default namespace.
    prefix: &'a str,
    uri: Cow<'a, str>,
}

/// An element start tag, resolved.
pub(crate) struct Element<'a> {
    pub qname: &'a str,
    pub local: &'a str,
    /// Resolved for envelope elements only; payload elements are checked, not interpreted.
    pub namespace: Cow<'a, str>,
    pub attributes: Vec<(&'a str, Cow<'a, str>)>,
    pub empty: bool,
    /// Byte offset of the `<` of the start tag.
    start: usize,
    /// Byte offset just after the start tag's `>`.
    start_end: usize,
    /// Length of the binding stack before this element's own declarations.
    outer_scope: usize,
    /// Prefixes this element declares itself (empty string: the default namespace).
    declares: Vec<&'a str>,
    /// For an unprefixed name, the binding that gives it its namespace.
    default_binding: Option<usize>,
}

impl<'a> Element<'a> {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| &**value)
    }

    pub fn required_attribute(&self, name: &str) -> Result<&str, ParseError> {
        self.attribute(name).ok_or_else(|| {
            ParseError::bad_message(format!("<{}> lacks its attribute {name}", self.qname))
        })
    }
}

/// Bindings in scope up to which shadowing is found by a plain search.
const SMALL_SCOPE: usize = 32;
/// Inherited prefixes up to which each is looked for in a payload by a
/// search of its own rather than by one pass over every colon.
const FEW_PREFIXES: usize = 4;

pub(crate) struct XmlCursor<'a> {
    input: &'a str,
    reader: Reader<&'a [u8]>,
    bindings: Vec<Binding<'a>>,
    /// For each open element, the length of `bindings` before its declarations.
    open: Vec<usize>,
    /// The attribute names of the start tag being read, kept to refuse duplicates.
    seen_keys: Vec<&'a str>,
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
            seen_keys: Vec::new(),
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
        envelope: bool,
    ) -> Result<Element<'a>, ParseError> {
        if self.open.len() >= self.limits.max_depth {
            return Err(ParseError::bad_message(format!(
                "elements nest deeper than {} levels",
                self.limits.max_depth
            )));
        }
        let start_end = self.position();
        // The name is a slice of the input; that it starts right after the
        // `<` at `at` proves the offsets we slice payloads with. Should one
        // ever be off, the document is refused rather than mis-sliced.
        let qname = self
            .input_slice(start.name().as_ref())
            .filter(|qname| qname.as_ptr() as usize == self.input.as_ptr() as usize + at + 1)
            .ok_or_else(|| {
                ParseError::bad_message(format!("malformed start tag near byte {at}"))
            })?;
        let outer_scope = self.bindings.len();
        let mut attributes = Vec::new();
        let mut declares = Vec::new();
        let malformed = |reason: &str| {
            ParseError::bad_message(format!("malformed attribute in <{qname}>: {reason}"))
        };
        let mut rest = match start.attributes_raw() {
            "" => "",
            raw => self
                .input_slice(raw)
                .ok_or_else(|| malformed("not where the tag is"))?,
        };
        self.seen_keys.clear();
        while let Some(RawAttribute {
            key,
            value: raw,
            plain,
        }) = next_attribute(&mut rest).map_err(malformed)?
        {
            if self.seen_keys.len() >= self.limits.max_attributes {
                return Err(ParseError::bad_message(format!(
                    "<{qname}> has more than {} attributes",
                    self.limits.max_attributes
                )));
            }
            if self.seen_keys.contains(&key) {
                return Err(malformed(&format!("{key} appears twice")));
            }
            self.seen_keys.push(key);
            if raw.len() > self.limits.max_field_bytes {
                return Err(ParseError::bad_message(format!(
                    "attribute {key} of <{qname}> is longer than {} bytes",
                    self.limits.max_field_bytes
                )));
            }
            // Most names do not start with `x`: skip the comparisons for them.
            let declared = if !key.starts_with('x') {
                None
            } else if key == "xmlns" {
                Some("")
            } else {
                key.strip_prefix("xmlns:")
            };
            let Some(prefix) = declared else {
                if let Some((prefix, _)) = split_name(key) {
                    self.resolve(prefix, qname)?;
                }
                // A payload attribute is only checked: its references must
                // resolve, but its value is not needed.
                if envelope {
                    attributes.push((key, attribute_value(raw)?));
                } else if !plain {
                    attribute_value(raw)?;
                }
                continue;
            };
            if prefix == "xml" || prefix == "xmlns" {
                continue;
            }
            let uri = attribute_value(raw)?;
            if !prefix.is_empty() && uri.is_empty() {
                return Err(ParseError::bad_message(format!(
                    "the prefix {prefix} cannot be bound to an empty namespace"
                )));
            }
            declares.push(prefix);
            self.bindings.push(Binding { prefix, uri });
        }
        let (prefix, local) = match split_name(qname) {
            Some((prefix, local)) => (prefix, local),
            None => ("", qname),
        };
        let (_, binding) = self.resolve(prefix, qname)?;
        let namespace = match binding {
            _ if !envelope => Cow::Borrowed(""),
            Some(index) => self.bindings[index].uri.clone(),
            None if prefix == "xml" => Cow::Borrowed(XML_NAMESPACE),
            None => Cow::Borrowed(""),
        };
        let default_binding = binding.filter(|_| prefix.is_empty());
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
            default_binding,
        })
    }

    /// The same text as a slice of the input, when it is one.
    fn input_slice(&self, part: &str) -> Option<&'a str> {
        let offset = (part.as_ptr() as usize).checked_sub(self.input.as_ptr() as usize)?;
        self.input
            .get(offset..offset + part.len())
            .filter(|slice| slice.as_ptr() == part.as_ptr())
    }

    /// The namespace of a prefix and the index of its binding.
    fn resolve(&self, prefix: &str, qname: &str) -> Result<(&str, Option<usize>), ParseError> {
        if prefix == "xml" {
            return Ok((XML_NAMESPACE, None));
        }
        match self
            .bindings
            .iter()
            .rposition(|binding| binding.prefix == prefix)
        {
            Some(index) if self.bindings[index].uri.is_empty() => Ok(("", None)),
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
                // The element stays open until its roots have taken the
                // declarations in scope, its own among them.
                Event::End(_) => break at,
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
            self.close();
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
        self.close();
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

    /// Where inherited declarations go: just before the start tag's closing `>` or `/>`.
    fn declaration_point(&self, element: &Element<'a>) -> usize {
        if element.empty {
            element.start_end - 2
        } else {
            element.start_end - 1
        }
    }

    /// Whether an unprefixed element takes its namespace from a declaration outside itself.
    fn uses_outer_default(&self, element: &Element<'a>) -> bool {
        element
            .default_binding
            .is_some_and(|index| index < element.outer_scope)
    }

    /// Writes ` xmlns:p="..."` for every binding in scope outside `root` that
    /// `root` does not declare itself and that its text mentions.
    fn push_inherited(&self, out: &mut String, root: &Element<'a>, span: &str, uses_default: bool) {
        // Innermost first: a binding shadows those of its prefix further
        // out, and the root's own declarations shadow them all.
        let scope = &self.bindings[..root.outer_scope];
        let effective: Vec<&Binding<'a>> = if scope.len() + root.declares.len() <= SMALL_SCOPE {
            let mut seen: Vec<&str> = root.declares.clone();
            scope
                .iter()
                .rev()
                .filter(|binding| {
                    let fresh = !seen.contains(&binding.prefix);
                    seen.push(binding.prefix);
                    fresh
                })
                .collect()
        } else {
            // A set, not a search per binding: a hostile document can put
            // 100,000 bindings in scope.
            let mut seen: HashSet<&str> = root.declares.iter().copied().collect();
            scope
                .iter()
                .rev()
                .filter(|binding| seen.insert(binding.prefix))
                .collect()
        };
        let mentioned = mentioned_among(span, &effective);
        for (binding, mentioned) in effective.iter().zip(mentioned) {
            if binding.prefix.is_empty() {
                if uses_default && !binding.uri.is_empty() {
                    out.push_str(" xmlns=\"");
                    escape_attribute_into(out, &binding.uri);
                    out.push('"');
                }
            } else if mentioned {
                out.push_str(" xmlns:");
                out.push_str(binding.prefix);
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
        element
            .default_binding
            .is_some_and(|index| index < root.outer_scope)
    }
}

/// Reads the next `name="value"` of a start tag's attribute text, returning
/// the name and the still-escaped value. quick-xml's own iterator does more
/// than we need and dominated the parse of large payloads, every element of
/// which is checked.
fn next_attribute<'t>(rest: &mut &'t str) -> Result<Option<RawAttribute<'t>>, &'static str> {
    let text: &'t str = rest;
    let bytes = text.as_bytes();
    let is_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut at = bytes
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(bytes.len());
    if at == bytes.len() {
        *rest = "";
        return Ok(None);
    }
    if at == 0 {
        return Err("attributes must be separated by whitespace");
    }
    let Some(equals) = memchr::memchr(b'=', &bytes[at..]) else {
        return Err("an attribute without a value");
    };
    let key = text[at..at + equals].trim_end_matches([' ', '\t', '\n', '\r']);
    // Branch-free over the whole name: names are short and mostly clean.
    let bad_name = key.bytes().fold(false, |bad, b| {
        bad | matches!(
            b,
            b'"' | b'\'' | b'<' | b'>' | b'&' | b' ' | b'\t' | b'\n' | b'\r'
        )
    });
    if key.is_empty() || bad_name {
        return Err("a name holds a character names cannot");
    }
    at += equals + 1;
    while at < bytes.len() && is_space(bytes[at]) {
        at += 1;
    }
    let quote = match bytes.get(at) {
        Some(&quote @ (b'"' | b'\'')) => quote,
        _ => return Err("an unquoted value"),
    };
    let value_start = at + 1;
    let Some(length) = memchr::memchr(quote, &bytes[value_start..]) else {
        return Err("an unterminated value");
    };
    let plain = !bytes[value_start..value_start + length]
        .iter()
        .fold(false, |found, &b| {
            found | matches!(b, b'&' | b'<' | b'\t' | b'\n' | b'\r')
        });
    let value = &text[value_start..value_start + length];
    *rest = &text[value_start + length + 1..];
    Ok(Some(RawAttribute { key, value, plain }))
}

/// An attribute as written; `plain` when its value needs no unescaping or
/// normalisation and holds nothing to refuse.
struct RawAttribute<'t> {
    key: &'t str,
    value: &'t str,
    plain: bool,
}

/// An attribute value unescaped and normalised as XML 1.0 says: references
/// resolved, literal tabs and line ends read as spaces.
fn attribute_value(raw: &str) -> Result<Cow<'_, str>, ParseError> {
    let needs_work = raw.bytes().fold(false, |found, b| {
        found | matches!(b, b'&' | b'<' | b'\t' | b'\n' | b'\r')
    });
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '<' => return Err(ParseError::bad_message("an attribute value holds a raw <")),
            '\t' | '\n' | '\r' => value.push(' '),
            '&' => {
                let Some(length) = raw[at + 1..].find(';') else {
                    return Err(ParseError::bad_message(
                        "an unterminated reference in an attribute value",
                    ));
                };
                value.push(resolve_reference(&raw[at + 1..at + 1 + length])?);
                chars.nth(length);
            }
            c => value.push(c),
        }
    }
    Ok(Cow::Owned(value))
}

/// `prefix:local` split at its colon; names are short, so a plain scan beats
/// a searcher.
fn split_name(name: &str) -> Option<(&str, &str)> {
    let colon = name.bytes().position(|b| b == b':')?;
    Some((&name[..colon], &name[colon + 1..]))
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

fn push_reference(out: &mut String, reference: &BytesRef<'_>) -> Result<(), ParseError> {
    out.push(resolve_reference(reference)?);
    Ok(())
}

/// Resolves a character reference or one of the five predefined entities.
/// No other entity exists, since no document type is accepted.
fn resolve_reference(name: &str) -> Result<char, ParseError> {
    let invalid =
        || ParseError::bad_message(format!("&{name}; is not a valid character reference"));
    Ok(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => {
            let Some(number) = name.strip_prefix('#') else {
                return Err(ParseError::bad_message(format!(
                    "the entity &{name}; is not defined (entities are not accepted)"
                )));
            };
            let (digits, radix) = match number.strip_prefix('x') {
                Some(hex) => (hex, 16),
                None => (number, 10),
            };
            let all_digits = !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix));
            u32::from_str_radix(digits, radix)
                .ok()
                .filter(|_| all_digits)
                .and_then(char::from_u32)
                .filter(|c| is_xml_char(*c))
                .ok_or_else(invalid)?
        }
    })
}

/// Refuses a character that XML 1.0 allows nowhere, raw or escaped.
fn check_characters(input: &str) -> Result<(), ParseError> {
    let bytes = input.as_bytes();
    // A branch-free pass over each chunk (which the compiler vectorises)
    // finds the rare chunk worth a closer look: any control byte, or 0xEF
    // that may begin U+FFFE or U+FFFF.
    let suspicious = |chunk: &[u8]| {
        chunk.iter().fold(false, |found, &b| {
            found | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0xEF)
        })
    };
    if !bytes.chunks(256).any(suspicious) {
        return Ok(());
    }
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
pub(crate) fn mentions_prefix(span: &str, prefix: &str) -> bool {
    let mut needle = String::with_capacity(prefix.len() + 1);
    needle.push_str(prefix);
    needle.push(':');
    let bytes = span.as_bytes();
    memchr::memmem::find_iter(bytes, needle.as_bytes())
        .any(|at| at == 0 || !is_name_byte(bytes[at - 1]))
}

/// For each binding, whether [`mentions_prefix`] finds its prefix in the
/// text; beyond a few, in one pass for all of them (a STIX package can
/// inherit a dozen or more): the name before each `:` that starts at a name boundary is
/// looked up among the prefixes. Each byte is looked at once going back
/// from a colon, whatever the text holds.
fn mentioned_among(span: &str, bindings: &[&Binding<'_>]) -> Vec<bool> {
    // A few prefixes are each found faster by a search of their own.
    if bindings.len() <= FEW_PREFIXES {
        return bindings
            .iter()
            .map(|binding| !binding.prefix.is_empty() && mentions_prefix(span, binding.prefix))
            .collect();
    }
    let mut mentioned = vec![false; bindings.len()];
    let mut by_prefix: Vec<(&str, usize)> = bindings
        .iter()
        .enumerate()
        .filter(|(_, binding)| !binding.prefix.is_empty())
        .map(|(index, binding)| (binding.prefix, index))
        .collect();
    by_prefix.sort_unstable();
    let mut unseen = by_prefix.len();
    let bytes = span.as_bytes();
    for colon in memchr::memchr_iter(b':', bytes) {
        if unseen == 0 {
            break;
        }
        let start = bytes[..colon]
            .iter()
            .rposition(|&byte| !is_name_byte(byte))
            .map_or(0, |before| before + 1);
        // A boundary inside a multi-byte character cannot be: every byte
        // of one is a name byte.
        let Some(name) = span.get(start..colon) else {
            continue;
        };
        if let Ok(at) = by_prefix.binary_search_by(|(prefix, _)| prefix.cmp(&name)) {
            let index = by_prefix[at].1;
            if !mentioned[index] {
                mentioned[index] = true;
                unseen -= 1;
            }
        }
    }
    mentioned
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.') || byte >= 0x80
}

pub(crate) fn escape_attribute_into(out: &mut String, value: &str) {
    escape_into(out, value, |byte| match byte {
        b'&' => Some("&amp;"),
        b'<' => Some("&lt;"),
        b'"' => Some("&quot;"),
        b'\n' => Some("&#10;"),
        b'\r' => Some("&#13;"),
        b'\t' => Some("&#9;"),
        _ => None,
    });
}

/// `text` with the ASCII bytes `replacement` names replaced, the runs
/// between them copied whole (a poll response escapes an attribute or two
/// for each of its blocks).
pub(crate) fn escape_into(
    out: &mut String,
    text: &str,
    replacement: impl Fn(u8) -> Option<&'static str>,
) {
    let mut last = 0;
    for (at, byte) in text.bytes().enumerate() {
        if let Some(replacement) = replacement(byte) {
            // An ASCII byte: both slices end on character boundaries.
            out.push_str(&text[last..at]);
            out.push_str(replacement);
            last = at + 1;
        }
    }
    out.push_str(&text[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_escape_markup_and_whitespace_and_keep_the_rest() {
        let mut out = String::from("=");
        escape_attribute_into(&mut out, "é&<\"\n\r\tü>'ß");
        assert_eq!(out, "=é&amp;&lt;&quot;&#10;&#13;&#9;ü>'ß");
        let mut clean = String::new();
        escape_attribute_into(&mut clean, "urn:stix.mitre.org:xml:1.1.1");
        assert_eq!(clean, "urn:stix.mitre.org:xml:1.1.1");
    }

    #[test]
    fn the_prefixes_mentioned_are_those_mentions_prefix_finds() {
        let span = concat!(
            r#"<stix:Package xmlns:own="urn:own" xsi:type="stixVocabs:Kind-1.0" "#,
            r#"a.b-c_d:x="1"><é:t>x:y ::z 2:30 -no:</é:t></stix:Package>"#,
        );
        let prefixes = [
            "stix",
            "xmlns",
            "xsi",
            "stixVocabs",
            "a.b-c_d",
            "é",
            "x",
            "2",
            "-no",
            "urn",
            "own",
            "Package",
            "tix",
            "b-c_d",
            "z",
            "y",
            "",
        ];
        let bindings: Vec<Binding> = prefixes
            .iter()
            .map(|prefix| Binding {
                prefix,
                uri: Cow::Borrowed("urn:x"),
            })
            .collect();
        let refs: Vec<&Binding> = bindings.iter().collect();
        let mentioned = mentioned_among(span, &refs);
        for (prefix, mentioned) in prefixes.iter().zip(&mentioned) {
            let expected = !prefix.is_empty() && mentions_prefix(span, prefix);
            assert_eq!(*mentioned, expected, "{prefix}");
        }
        assert_eq!(mentioned.iter().filter(|m| **m).count(), 10);
        // A few at a time are searched for one by one, to the answers of
        // the pass over every colon.
        for (few, expected) in refs
            .chunks(FEW_PREFIXES)
            .zip(mentioned.chunks(FEW_PREFIXES))
        {
            assert_eq!(mentioned_among(span, few), expected);
        }
    }
}
