//! Hostile input: every attack a stranger can mount on the XML codec is
//! refused with BAD_MESSAGE (or UNSUPPORTED_MESSAGE for a well-formed message
//! of no dialect we know), without expanding anything, without panicking and
//! without costing more than the body's own size. Behaviour is asserted, not
//! speed: an attack that got through would show up as an accepted message, a
//! panic, or a test that never finishes.

use std::path::{Path, PathBuf};

use taxiway::bindings::taxii_xml::{Limits, ParseError, parse, parse_with};
use taxiway::core::{Body, StatusType, XmlContent};

const TAXII_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";

/// A valid 1.1 Inbox_Message: `message` is the text of its Message field
/// (inserted raw) and `payload` the raw content of its one Content.
fn inbox(message: &str, payload: &str) -> String {
    inbox_with_prolog("", message, payload)
}

fn inbox_with_prolog(prolog: &str, message: &str, payload: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
{prolog}<taxii_11:Inbox_Message xmlns:taxii_11="{TAXII_11}" message_id="urn:uuid:1">
  <taxii_11:Message>{message}</taxii_11:Message>
  <taxii_11:Content_Block>
    <taxii_11:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/>
    <taxii_11:Content>{payload}</taxii_11:Content>
  </taxii_11:Content_Block>
</taxii_11:Inbox_Message>
"#
    )
}

/// The same message as bytes, so that invalid UTF-8 can go anywhere.
fn inbox_bytes(message: &[u8], payload: &[u8]) -> Vec<u8> {
    let template = inbox("\u{1}", "\u{2}");
    let (head, rest) = template.split_once('\u{1}').unwrap();
    let (middle, tail) = rest.split_once('\u{2}').unwrap();
    [
        head.as_bytes(),
        message,
        middle.as_bytes(),
        payload,
        tail.as_bytes(),
    ]
    .concat()
}

const STIX: &str = r#"xmlns:stix="http://stix.mitre.org/stix-1""#;

#[track_caller]
fn refused(input: &[u8]) -> ParseError {
    refused_with(input, &Limits::default())
}

#[track_caller]
fn refused_with(input: &[u8], limits: &Limits) -> ParseError {
    match parse_with(input, limits) {
        Ok(parsed) => panic!("accepted: {:?}", parsed.message),
        Err(error) => {
            assert_eq!(error.status, StatusType::BadMessage, "{error}");
            assert!(!error.reason.is_empty());
            error
        }
    }
}

#[track_caller]
fn assert_mentions(error: &ParseError, words: &[&str]) {
    let reason = error.reason.to_lowercase();
    assert!(
        words.iter().any(|word| reason.contains(word)),
        "the reason {:?} mentions none of {words:?}",
        error.reason
    );
}

fn payload_of(input: &[u8]) -> XmlContent {
    let parsed = parse(input).unwrap_or_else(|e| panic!("{e}"));
    let Body::Inbox(inbox) = parsed.message.body else {
        panic!("not an inbox message");
    };
    inbox.content_blocks[0].content.clone()
}

#[test]
fn the_template_itself_is_accepted() {
    let payload = format!(r#"<stix:STIX_Package {STIX} id="p"/>"#);
    let content = payload_of(inbox("hello", &payload).as_bytes());
    assert_eq!(content, XmlContent::Xml(payload));
    // And the byte template is the same document.
    let content = payload_of(&inbox_bytes(b"hello", b"plain text"));
    assert_eq!(content, XmlContent::Text("plain text".into()));
}

// --- Document types and entities -------------------------------------------

#[test]
fn billion_laughs_is_refused_without_expansion() {
    let mut dtd = String::from("<!DOCTYPE lolz [\n  <!ENTITY lol \"lol\">\n");
    for level in 1..=9 {
        let previous = if level == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", level - 1)
        };
        let refs = format!("&{previous};").repeat(10);
        dtd.push_str(&format!("  <!ENTITY lol{level} \"{refs}\">\n"));
    }
    dtd.push_str("]>\n");
    for document in [
        inbox_with_prolog(&dtd, "&lol9;", "plain"),
        inbox_with_prolog(&dtd, "hello", "&lol9;"),
        inbox_with_prolog(&dtd, "hello", &format!("<stix:S {STIX}>&lol9;</stix:S>")),
        inbox_with_prolog(&dtd, "hello", &format!(r#"<stix:S {STIX} a="&lol9;"/>"#)),
    ] {
        let error = refused(document.as_bytes());
        assert_mentions(&error, &["document type"]);
    }
}

#[test]
fn external_entities_are_never_resolved() {
    let dtd = "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n";
    for document in [
        inbox_with_prolog(dtd, "&e;", "plain"),
        inbox_with_prolog(dtd, "hello", "&e;"),
        inbox_with_prolog(dtd, "hello", &format!("<stix:S {STIX}>&e;</stix:S>")),
        inbox_with_prolog(dtd, "hello", &format!(r#"<stix:S {STIX} a="&e;"/>"#)),
    ] {
        let error = refused(document.as_bytes());
        assert_mentions(&error, &["document type"]);
        assert!(!error.reason.contains("root:"), "{}", error.reason);
    }
    // A parameter entity and an external DTD are document types too.
    let external = r#"<!DOCTYPE x SYSTEM "http://attacker.example/x.dtd">"#;
    refused(inbox_with_prolog(external, "hello", "plain").as_bytes());
    let parameter = "<!DOCTYPE x [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>";
    refused(inbox_with_prolog(parameter, "hello", "plain").as_bytes());
}

#[test]
fn a_document_type_inside_the_document_is_refused() {
    let dtd = "<!DOCTYPE x [<!ENTITY e \"boom\">]>";
    refused(inbox(dtd, "plain").as_bytes());
    refused(inbox("hello", dtd).as_bytes());
    refused(inbox("hello", &format!("<stix:S {STIX}>{dtd}&e;</stix:S>")).as_bytes());
    // After the root, too.
    let after = format!("{}{dtd}", inbox("hello", "plain"));
    refused(after.as_bytes());
}

#[test]
fn undefined_entities_are_refused() {
    for document in [
        inbox("&undefined;", "plain"),
        inbox("hello", "&undefined;"),
        inbox("hello", &format!("<stix:S {STIX}>&undefined;</stix:S>")),
        inbox(
            "hello",
            &format!("<stix:S {STIX}><stix:T>a &undefined; b</stix:T></stix:S>"),
        ),
        inbox("hello", &format!(r#"<stix:S {STIX} a="&undefined;"/>"#)),
    ] {
        let error = refused(document.as_bytes());
        assert_mentions(&error, &["undefined", "not defined", "entit"]);
    }
    // The five predefined entities and character references are fine.
    let content =
        payload_of(inbox("&lt;&amp;&#65;&#x42;", "&lt;&gt;&amp;&apos;&quot;&#67;").as_bytes());
    assert_eq!(content, XmlContent::Text("<>&'\"C".into()));
}

#[test]
fn character_references_to_non_characters_are_refused() {
    for reference in [
        "&#0;",
        "&#x0;",
        "&#1;",
        "&#xFFFE;",
        "&#xD800;",
        "&#x110000;",
    ] {
        refused(inbox(reference, "plain").as_bytes());
        refused(inbox("hello", reference).as_bytes());
        refused(inbox("hello", &format!("<stix:S {STIX}>{reference}</stix:S>")).as_bytes());
    }
}

// --- Size ---------------------------------------------------------------------

#[test]
fn a_100_mb_body_is_refused_by_the_size_check() {
    // A plausible message whose payload alone is 100 MB: refused for its
    // size before a byte of it is parsed.
    let head = inbox("hello", "\u{1}");
    let (head, tail) = head.split_once('\u{1}').unwrap();
    let mut body = Vec::with_capacity(100 * 1024 * 1024 + head.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.resize(100 * 1024 * 1024, b'x');
    body.extend_from_slice(tail.as_bytes());
    let error = refused(&body);
    assert_mentions(&error, &["bytes"]);
    assert!(
        error.reason.contains(&body.len().to_string())
            || error
                .reason
                .contains(&Limits::default().max_body_bytes.to_string()),
        "{}",
        error.reason
    );
    // Even garbage is refused for its size first: the reason is the size, not
    // the invalid UTF-8 or the missing root.
    body.fill(0xFF);
    assert_mentions(&refused(&body), &["bytes"]);
}

#[test]
fn a_huge_text_field_is_refused() {
    let field = Limits::default().max_field_bytes;
    // Exactly at the limit is fine...
    let at_limit = "a".repeat(field);
    parse(inbox(&at_limit, "plain").as_bytes()).unwrap();
    // ...one byte more is not, nor is much more, in a field or an attribute.
    let error = refused(inbox(&"a".repeat(field + 1), "plain").as_bytes());
    assert_mentions(&error, &["bytes"]);
    refused(inbox(&"a".repeat(4 * field), "plain").as_bytes());
    let big_id = inbox("hello", "plain").replace("urn:uuid:1", &"1".repeat(field + 1));
    assert_mentions(&refused(big_id.as_bytes()), &["bytes"]);
    // Text made of references counts by what it expands to (at most 4 bytes
    // per reference), split into many chunks.
    let refs = "&#x10000;".repeat(field / 4 + 1);
    refused(inbox(&refs, "plain").as_bytes());
}

// --- Nesting and attributes ---------------------------------------------------

fn nested(depth: usize) -> String {
    let mut payload = String::with_capacity(depth * 16);
    payload.push_str(&format!("<stix:S {STIX}>"));
    for _ in 1..depth {
        payload.push_str("<stix:S>");
    }
    for _ in 0..depth {
        payload.push_str("</stix:S>");
    }
    payload
}

#[test]
fn nesting_10000_deep_in_a_payload_is_refused() {
    let error = refused(inbox("hello", &nested(10_000)).as_bytes());
    assert_mentions(&error, &["deeper", "nest", "depth"]);
    // Unclosed, too: the depth is refused before the missing end tags matter.
    let unclosed = inbox(
        "hello",
        &format!("<stix:S {STIX}>{}", "<stix:S>".repeat(10_000)),
    );
    assert_mentions(&refused(unclosed.as_bytes()), &["deeper", "nest", "depth"]);
    // In the envelope, with TAXII elements.
    let envelope =
        inbox("hello", "plain").replace("<taxii_11:Message>", &"<taxii_11:Message>".repeat(10_000));
    refused(envelope.as_bytes());
    // An ordinary depth is fine.
    assert!(matches!(
        payload_of(inbox("hello", &nested(100)).as_bytes()),
        XmlContent::Xml(_)
    ));
}

fn many_attributes(count: usize) -> String {
    (0..count).map(|i| format!(" a{i}=\"{i}\"")).collect()
}

#[test]
fn an_element_with_10000_attributes_is_refused() {
    let attributes = many_attributes(10_000);
    let in_payload = inbox("hello", &format!("<stix:S {STIX}{attributes}/>"));
    assert_mentions(&refused(in_payload.as_bytes()), &["attributes"]);
    let in_envelope = inbox("hello", "plain").replace(
        "<taxii_11:Message>",
        &format!("<taxii_11:Message{attributes}>"),
    );
    assert_mentions(&refused(in_envelope.as_bytes()), &["attributes"]);
    let on_root = inbox("hello", "plain").replace(
        r#"message_id="urn:uuid:1""#,
        &format!(r#"message_id="urn:uuid:1"{attributes}"#),
    );
    assert_mentions(&refused(on_root.as_bytes()), &["attributes"]);
    // Namespace declarations count as attributes.
    let declarations: String = (0..10_000)
        .map(|i| format!(" xmlns:p{i}=\"urn:p{i}\""))
        .collect();
    let in_payload = inbox("hello", &format!("<stix:S {STIX}{declarations}/>"));
    assert_mentions(&refused(in_payload.as_bytes()), &["attributes"]);
}

#[test]
fn duplicate_attributes_are_refused() {
    refused(inbox("hello", &format!(r#"<stix:S {STIX} a="1" a="2"/>"#)).as_bytes());
    let root = inbox("hello", "plain").replace(
        r#"message_id="urn:uuid:1""#,
        r#"message_id="urn:uuid:1" message_id="urn:uuid:2""#,
    );
    refused(root.as_bytes());
}

// --- Encoding -------------------------------------------------------------------

#[test]
fn invalid_utf8_is_refused_in_the_envelope_and_in_a_payload() {
    for bad in [
        &b"\xFF"[..],
        b"\xC3\x28",
        b"\xE2\x82",
        b"\xED\xA0\x80", // an encoded surrogate
        b"\xC0\xAF",     // an overlong '/'
        b"\xF4\x90\x80\x80",
    ] {
        let error = refused(&inbox_bytes(&[b"a", bad, b"b"].concat(), b"plain"));
        assert_mentions(&error, &["utf-8"]);
        let error = refused(&inbox_bytes(b"hello", &[b"a", bad, b"b"].concat()));
        assert_mentions(&error, &["utf-8"]);
        let payload = [format!("<stix:S {STIX}>").as_bytes(), bad, b"</stix:S>"].concat();
        refused(&inbox_bytes(b"hello", &payload));
        let payload = [format!("<stix:S {STIX} a=\"").as_bytes(), bad, b"\"/>"].concat();
        refused(&inbox_bytes(b"hello", &payload));
    }
}

#[test]
fn a_document_in_another_encoding_is_refused() {
    for encoding in ["ISO-8859-1", "UTF-16", "windows-1252", "EBCDIC-US", "UTF-7"] {
        let document = inbox("hello", "plain")
            .replace(r#"encoding="UTF-8""#, &format!(r#"encoding="{encoding}""#));
        let error = refused(document.as_bytes());
        assert_mentions(&error, &["utf-8"]);
    }
    // A UTF-16 document, with its byte order mark.
    let utf16: Vec<u8> = std::iter::once(0xFEFFu16)
        .chain(inbox("hello", "plain").encode_utf16())
        .flat_map(u16::to_le_bytes)
        .collect();
    refused(&utf16);
    // The UTF-8 byte order mark is fine; lower case is fine.
    let with_bom = [&b"\xEF\xBB\xBF"[..], inbox("hello", "plain").as_bytes()].concat();
    parse(&with_bom).unwrap();
    let lower = inbox("hello", "plain").replace("UTF-8", "utf-8");
    parse(lower.as_bytes()).unwrap();
    // Two byte order marks: the second is a character before the root. (This
    // once panicked: quick-xml skips a leading mark and its offsets moved.)
    for document in [
        inbox("hello", "plain"),
        inbox("hello", "plain")
            .split_once("?>")
            .unwrap()
            .1
            .trim()
            .to_owned(),
    ] {
        let twice = [&b"\xEF\xBB\xBF\xEF\xBB\xBF"[..], document.as_bytes()].concat();
        refused(&twice);
    }
    refused(b"\xEF\xBB\xBF\xEF\xBB\xBF<<?d x");
}

#[test]
fn control_characters_are_refused() {
    refused(inbox("a\u{1}b", "plain").as_bytes());
    refused(inbox("hello", "a\u{0}b").as_bytes());
    refused(inbox("hello", &format!("<stix:S {STIX}>\u{8}</stix:S>")).as_bytes());
}

// --- Namespaces -------------------------------------------------------------------

#[test]
fn undeclared_prefixes_are_refused() {
    for payload in [
        "<undeclared:S/>".to_owned(),
        "<undeclared:S></undeclared:S>".to_owned(),
        format!("<stix:S {STIX}><undeclared:T/></stix:S>"),
        format!(r#"<stix:S {STIX} undeclared:a="1"/>"#),
        format!(r#"<stix:S {STIX}><stix:T undeclared:a="1"/></stix:S>"#),
        // Declared on a sibling only.
        format!("<stix:S {STIX}/><stix:T/>"),
    ] {
        let error = refused(inbox("hello", &payload).as_bytes());
        assert_mentions(&error, &["not declared"]);
    }
    // In the envelope.
    let envelope = inbox("hello", "plain").replace("taxii_11:Message>", "other:Message>");
    refused(envelope.as_bytes());
    // Binding a prefix to nothing is not allowed either.
    refused(inbox("hello", r#"<p:S xmlns:p=""/>"#).as_bytes());
}

// --- Document structure -------------------------------------------------------

#[test]
fn content_after_the_root_is_refused() {
    let document = inbox("hello", "plain");
    for after in [
        "text",
        "<extra/>",
        "&amp;",
        "<![CDATA[x]]>",
        "</taxii_11:Inbox_Message>",
    ] {
        let error = refused(format!("{document}{after}").as_bytes());
        assert_eq!(error.status, StatusType::BadMessage);
    }
    // Comments, processing instructions and whitespace are fine.
    parse(format!("{document}<!-- end -->\n<?pi x?>\n  ").as_bytes()).unwrap();
}

#[test]
fn two_roots_are_refused() {
    let document = inbox("hello", "plain");
    let body = document.split_once("?>").unwrap().1;
    refused(format!("{document}{body}").as_bytes());
    let error = refused(format!("{document}<taxii_11:Inbox_Message/>").as_bytes());
    assert_mentions(&error, &["after the root"]);
}

#[test]
fn malformed_markup_is_refused() {
    let document = inbox("hello", "plain");
    for (from, to) in [
        ("</taxii_11:Message>", "</taxii_11:Messages>"),
        ("</taxii_11:Content>", "</taxii_11:Content"),
        ("<taxii_11:Content>", "<taxii_11:Content"),
        ("message_id=\"urn:uuid:1\"", "message_id=urn:uuid:1"),
        ("message_id=\"urn:uuid:1\"", "message_id=\"urn:<uuid:1\""),
        ("plain", "<!-- a -- b -->"),
        ("plain", "<![CDATA[never closed"),
        ("plain", "<"),
        ("plain", "</stix:S>"),
        (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "\n<?xml version=\"1.0\"?>",
        ),
    ] {
        assert!(document.contains(from));
        refused(document.replace(from, to).as_bytes());
    }
    refused(b"");
    refused(b"   \n");
    refused(b"<?xml version=\"1.0\"?>");
    refused(b"text only");
    refused(format!("text before{document}").as_bytes());
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    files.sort();
    files
}

/// Every prefix of a valid message that stops before the end of its root
/// element is a BAD_MESSAGE (never a panic, never a message); every prefix
/// that holds the whole root is the message itself.
fn truncations_are_refused(bytes: &[u8], name: &str) {
    let whole = parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let end = bytes.iter().rposition(|b| *b == b'>').unwrap() + 1;
    for cut in 0..bytes.len() {
        let prefix = &bytes[..cut];
        if cut < end {
            let error = parse(prefix)
                .map(|parsed| panic!("{name} cut at {cut} is accepted: {:?}", parsed.message))
                .unwrap_err();
            assert_eq!(
                error.status,
                StatusType::BadMessage,
                "{name} cut at {cut}: {error}"
            );
        } else {
            assert_eq!(parse(prefix).unwrap(), whole, "{name} cut at {cut}");
        }
    }
}

#[test]
fn every_truncation_of_a_poll_response_is_refused() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse/taxii-1.1-poll-response.xml");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    truncations_are_refused(&bytes, "taxii-1.1-poll-response.xml");
}

#[test]
fn every_truncation_of_every_valid_corpus_message_is_refused() {
    let mut checked = 0;
    for path in corpus() {
        let bytes = std::fs::read(&path).unwrap();
        if parse(&bytes).is_ok() {
            truncations_are_refused(&bytes, &path.display().to_string());
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} valid messages in the corpus");
}

// --- Custom limits ---------------------------------------------------------------

#[test]
fn parse_with_enforces_max_body_bytes() {
    let document = inbox("hello", "plain");
    let exact = Limits {
        max_body_bytes: document.len(),
        ..Limits::default()
    };
    parse_with(document.as_bytes(), &exact).unwrap();
    let smaller = Limits {
        max_body_bytes: document.len() - 1,
        ..Limits::default()
    };
    let error = refused_with(document.as_bytes(), &smaller);
    assert_mentions(&error, &["bytes"]);
    // Checked before anything else: garbage of the same size gives the same reason.
    let error = refused_with(&vec![0xFF; document.len()], &smaller);
    assert_mentions(&error, &["bytes"]);
}

#[test]
fn parse_with_enforces_max_depth() {
    // Inbox_Message > Content_Block > Content > payload: the payload's
    // outermost element is the fourth level.
    let limits = Limits {
        max_depth: 6,
        ..Limits::default()
    };
    parse_with(inbox("hello", &nested(3)).as_bytes(), &limits).unwrap();
    let error = refused_with(inbox("hello", &nested(4)).as_bytes(), &limits);
    assert_mentions(&error, &["6"]);
    // An empty element counts as a level too.
    let empty_at_6 = format!("<stix:S {STIX}><stix:T><stix:U/></stix:T></stix:S>");
    parse_with(inbox("hello", &empty_at_6).as_bytes(), &limits).unwrap();
    let empty_at_7 = format!("<stix:S {STIX}><stix:T><stix:U><stix:V/></stix:U></stix:T></stix:S>");
    refused_with(inbox("hello", &empty_at_7).as_bytes(), &limits);
    // The envelope alone is three levels deep: a limit of 2 refuses any inbox message.
    let shallow = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    refused_with(inbox("hello", "plain").as_bytes(), &shallow);
}

#[test]
fn parse_with_enforces_max_attributes() {
    let limits = Limits {
        max_attributes: 3,
        ..Limits::default()
    };
    // The root has two (a declaration and message_id).
    parse_with(inbox("hello", "plain").as_bytes(), &limits).unwrap();
    // The stix declaration and two attributes: three.
    let three = format!(r#"<stix:S {STIX} a="1" b="2"/>"#);
    parse_with(inbox("hello", &three).as_bytes(), &limits).unwrap();
    let four = format!(r#"<stix:S {STIX} a="1" b="2" c="3"/>"#);
    let error = refused_with(inbox("hello", &four).as_bytes(), &limits);
    assert_mentions(&error, &["attributes"]);
    let nested_four = format!(r#"<stix:S {STIX}><stix:T a="1" b="2" c="3" d="4"/></stix:S>"#);
    refused_with(inbox("hello", &nested_four).as_bytes(), &limits);
    // On the root.
    let root = inbox("hello", "plain").replace(
        r#"message_id="urn:uuid:1""#,
        r#"message_id="urn:uuid:1" a="1" b="2""#,
    );
    refused_with(root.as_bytes(), &limits);
}

#[test]
fn parse_with_enforces_max_field_bytes() {
    let limits = Limits {
        max_field_bytes: 100,
        ..Limits::default()
    };
    parse_with(inbox(&"m".repeat(100), "plain").as_bytes(), &limits).unwrap();
    let error = refused_with(inbox(&"m".repeat(101), "plain").as_bytes(), &limits);
    assert_mentions(&error, &["100"]);
    // Character data split by references and CDATA sections adds up.
    let split = format!("{}&amp;<![CDATA[{}]]>", "m".repeat(50), "m".repeat(50));
    refused_with(inbox(&split, "plain").as_bytes(), &limits);
    // Attributes, in the envelope and in payloads.
    let id = inbox("hello", "plain").replace("urn:uuid:1", &"1".repeat(101));
    refused_with(id.as_bytes(), &limits);
    let attribute = format!(r#"<stix:S {STIX} a="{}"/>"#, "v".repeat(101));
    refused_with(inbox("hello", &attribute).as_bytes(), &limits);
    // A payload is not a field: it may be longer.
    let payload = format!("<stix:S {STIX}>{}</stix:S>", "p".repeat(1000));
    parse_with(inbox("hello", &payload).as_bytes(), &limits).unwrap();
}

// --- Unknown messages ---------------------------------------------------------------

#[test]
fn a_well_formed_message_of_no_known_dialect_is_unsupported() {
    for document in [
        r#"<x:Inbox_Message xmlns:x="urn:example:not-taxii" message_id="1"/>"#.to_owned(),
        r#"<Inbox_Message xmlns="http://taxii.mitre.org/messages/taxii_xml_binding-2.0"/>"#
            .to_owned(),
        "<Inbox_Message message_id=\"1\"><Message>hi</Message></Inbox_Message>".to_owned(),
        inbox("hello", "plain").replace(TAXII_11, "urn:example:not-taxii"),
    ] {
        let error = parse(document.as_bytes()).unwrap_err();
        assert_eq!(error.status, StatusType::UnsupportedMessage, "{error}");
    }
}
