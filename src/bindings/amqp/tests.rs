use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::bindings::taxii_xml::Limits;
use crate::core::*;

const STIX: &str = r#"<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" id="example:Package-1" version="1.1.1"><stix:STIX_Header><stix:Title>A &amp; B</stix:Title></stix:STIX_Header></stix:STIX_Package>"#;

fn meta() -> EncodeMeta {
    EncodeMeta {
        feeds: vec!["alpha".to_owned()],
        source: WireBinding::TaxiiXml(Dialect::V11),
        hops: vec!["gw-a".to_owned(), "gw-b".to_owned()],
        app_id: Some("gw-b".to_owned()),
        published: Timestamp::from_unix(1_700_000_000, 0),
    }
}

fn inbox(id: &str) -> Message {
    let mut first = ContentBlock::new(
        ContentBinding::new("urn:stix.mitre.org:xml:1.1.1"),
        XmlContent::Xml(STIX.to_owned()),
    );
    first.timestamp_label = Some("2024-01-02T03:04:05.123456Z".parse().unwrap());
    let second = ContentBlock::new(
        ContentBinding::new("urn:stix.mitre.org:json:2.1"),
        XmlContent::Text(r#"{"type":"bundle","id":"bundle--1 <&>"}"#.to_owned()),
    );
    let mut message = Message::new(
        id,
        Body::Inbox(InboxMessage {
            destination_feeds: vec!["alpha".to_owned()],
            content_blocks: vec![first, second],
            ..InboxMessage::default()
        }),
    );
    message.extended_headers = vec![
        ExtendedHeader {
            name: "urn:example:priority".to_owned(),
            value: XmlContent::Text("high".to_owned()),
        },
        ExtendedHeader {
            name: "urn:example:xml".to_owned(),
            value: XmlContent::Xml(r#"<ex:a xmlns:ex="urn:example">1</ex:a>"#.to_owned()),
        },
    ];
    message
}

fn decode_default(amqp: &AmqpMessage) -> Result<Decoded, AmqpError> {
    decode(amqp, amqp_mappings(), &Limits::default())
}

fn raw(body: &str, headers: &[(&str, HeaderValue)]) -> AmqpMessage {
    AmqpMessage {
        properties: AmqpProperties {
            content_type: Some("application/xml".to_owned()),
            message_id: Some("raw-1".to_owned()),
            ..AmqpProperties::default()
        },
        headers: headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

fn text(value: &str) -> HeaderValue {
    HeaderValue::Text(value.to_owned())
}

#[test]
fn the_default_mappings_parse() {
    let m = amqp_mappings();
    assert_eq!(m.body.dialect, Dialect::V11);
    assert_eq!(m.body.delivery_mode, 2);
    assert_eq!(m.message_type(MessageKind::Inbox), "Inbox_Message");
    assert_eq!(
        m.binding_of_media_type("application/xml"),
        Some("urn:stix.mitre.org:xml:1.2")
    );
    assert_eq!(
        m.binding_of_media_type("Application/STIX+json; version=2.0"),
        Some("urn:stix.mitre.org:json:2.0")
    );
    assert_eq!(
        m.binding_of_media_type("application/stix+json"),
        Some("urn:stix.mitre.org:json:2.1")
    );
    assert!(m.is_xml_binding("urn:ietf:params:xml:ns:iodef-2.0"));
    assert!(!m.is_xml_binding("urn:stix.mitre.org:json:2.1"));
}

#[test]
fn encode_sets_the_convention() {
    let encoded = encode(&inbox("m-1"), &meta(), amqp_mappings()).unwrap();
    assert!(encoded.notes.is_empty());
    let amqp = encoded.message;
    let p = &amqp.properties;
    assert_eq!(p.content_type.as_deref(), Some("application/xml"));
    assert_eq!(p.delivery_mode, Some(2));
    assert_eq!(p.message_id.as_deref(), Some("m-1"));
    assert_eq!(p.kind.as_deref(), Some("Inbox_Message"));
    assert_eq!(p.app_id.as_deref(), Some("gw-b"));
    assert_eq!(p.timestamp, Some(1_700_000_000));
    let h = &amqp.headers;
    assert_eq!(
        h["x-taxii-content-type"],
        text("urn:taxii.mitre.org:message:xml:1.1")
    );
    assert_eq!(h["x-taxii-source-dialect"], text("1.1"));
    assert_eq!(h["x-taxii-message-id"], text("m-1"));
    assert_eq!(h["x-taxii-collection"], text("alpha"));
    assert_eq!(
        h["x-taxii-content-binding"],
        HeaderValue::List(vec![
            "urn:stix.mitre.org:xml:1.1.1".to_owned(),
            "urn:stix.mitre.org:json:2.1".to_owned()
        ])
    );
    assert_eq!(
        h["x-taxii-timestamp-label"],
        text("2024-01-02T03:04:05.123456Z")
    );
    assert_eq!(
        h["x-taxii-hops"],
        HeaderValue::List(vec!["gw-a".to_owned(), "gw-b".to_owned()])
    );
    assert_eq!(h["x-taxii-ext-urn:example:priority"], text("high"));
    assert_eq!(
        h["x-taxii-ext-urn:example:xml"],
        text(r#"<ex:a xmlns:ex="urn:example">1</ex:a>"#)
    );
    let body = String::from_utf8(amqp.body).unwrap();
    assert!(body.contains(STIX), "the payload travels verbatim");
}

#[test]
fn encode_then_decode_gives_the_inbox_message_back() {
    let message = inbox("m-1");
    let amqp = encode(&message, &meta(), amqp_mappings()).unwrap().message;
    let decoded = decode_default(&amqp).unwrap();
    assert_eq!(decoded.message, message);
    assert_eq!(decoded.dialect, Some(Dialect::V11));
    assert_eq!(decoded.feeds, vec!["alpha".to_owned()]);
    assert_eq!(decoded.hops, meta().hops);
}

#[test]
fn a_long_message_id_gets_a_deterministic_substitute() {
    let id = "x".repeat(300);
    let one = encode(&inbox(&id), &meta(), amqp_mappings())
        .unwrap()
        .message;
    let two = encode(&inbox(&id), &meta(), amqp_mappings())
        .unwrap()
        .message;
    let substitute = one.properties.message_id.clone().unwrap();
    assert!(substitute.starts_with("sha256:") && substitute.len() <= SHORTSTR_MAX);
    assert_eq!(two.properties.message_id, Some(substitute));
    assert_eq!(one.headers["x-taxii-message-id"], text(&id));
    assert_eq!(decode_default(&one).unwrap().message.id, id);
}

#[test]
fn a_too_long_app_id_is_refused() {
    let meta = EncodeMeta {
        app_id: Some("g".repeat(256)),
        ..meta()
    };
    assert!(matches!(
        encode(&inbox("m"), &meta, amqp_mappings()),
        Err(AmqpError::PropertyTooLong {
            property: "app_id",
            ..
        })
    ));
}

#[test]
fn a_raw_stix_payload_decodes_to_one_block() {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{STIX}\n");
    let amqp = raw(
        &body,
        &[
            ("x-taxii-collection", text("alpha")),
            (
                "x-taxii-content-binding",
                text("urn:stix.mitre.org:xml:1.1.1"),
            ),
            ("x-taxii-timestamp-label", text("2024-05-06T07:08:09Z")),
            ("x-taxii-hops", HeaderValue::List(vec!["gw-a".to_owned()])),
            ("x-taxii-ext-urn:example:tlp", text("green")),
        ],
    );
    let decoded = decode_default(&amqp).unwrap();
    assert_eq!(decoded.dialect, None);
    assert_eq!(decoded.feeds, vec!["alpha".to_owned()]);
    assert_eq!(decoded.hops, vec!["gw-a".to_owned()]);
    let message = decoded.message;
    assert_eq!(message.id, "raw-1");
    assert_eq!(
        message.extended_headers,
        vec![ExtendedHeader {
            name: "urn:example:tlp".to_owned(),
            value: XmlContent::Text("green".to_owned()),
        }]
    );
    let Body::Inbox(inbox) = message.body else {
        panic!("not an inbox message");
    };
    assert_eq!(inbox.destination_feeds, vec!["alpha".to_owned()]);
    let [block] = inbox.content_blocks.as_slice() else {
        panic!("not one block");
    };
    assert_eq!(block.binding.id, "urn:stix.mitre.org:xml:1.1.1");
    assert_eq!(block.content, XmlContent::Xml(STIX.to_owned()));
    assert_eq!(
        block.timestamp_label,
        Some("2024-05-06T07:08:09Z".parse().unwrap())
    );
}

#[test]
fn a_raw_payload_takes_its_binding_from_its_content_type() {
    let mut amqp = raw(r#"{"type":"bundle"}"#, &[("x-taxii-collection", text("a"))]);
    amqp.properties.content_type = Some("application/stix+json;version=2.1".to_owned());
    let Body::Inbox(inbox) = decode_default(&amqp).unwrap().message.body else {
        panic!("not an inbox message");
    };
    let block = &inbox.content_blocks[0];
    assert_eq!(block.binding.id, "urn:stix.mitre.org:json:2.1");
    assert_eq!(
        block.content,
        XmlContent::Text(r#"{"type":"bundle"}"#.to_owned())
    );
}

#[test]
fn raw_xml_that_the_codec_could_not_carry_as_markup_is_text() {
    for body in [
        "<a><b></a>",
        "<a/><b/>",
        "<u:a>undeclared prefix</u:a>",
        "<!DOCTYPE a><a/>",
        "text <a/>",
    ] {
        let amqp = raw(body, &[("x-taxii-collection", text("a"))]);
        let Body::Inbox(inbox) = decode_default(&amqp).unwrap().message.body else {
            panic!("not an inbox message");
        };
        assert_eq!(
            inbox.content_blocks[0].content,
            XmlContent::Text(body.to_owned()),
            "{body}"
        );
    }
}

#[test]
fn a_raw_payload_without_an_id_gets_one_from_its_bytes() {
    let mut amqp = raw(STIX, &[("x-taxii-collection", text("a"))]);
    amqp.properties.message_id = None;
    let one = decode_default(&amqp).unwrap().message.id;
    assert!(one.starts_with("urn:taxiway:amqp:sha256:"));
    assert_eq!(decode_default(&amqp).unwrap().message.id, one);
    amqp.body.push(b' ');
    assert_ne!(decode_default(&amqp).unwrap().message.id, one);
}

fn feed() -> (&'static str, HeaderValue) {
    ("x-taxii-collection", text("a"))
}

fn error_of(amqp: &AmqpMessage) -> AmqpError {
    decode_default(amqp).unwrap_err()
}

#[test]
fn every_bad_delivery_has_its_reason() {
    let limits = Limits {
        max_body_bytes: 8,
        ..Limits::default()
    };
    let big = raw(STIX, &[feed()]);
    let too_large = decode(&big, amqp_mappings(), &limits).unwrap_err();
    assert!(matches!(too_large, AmqpError::TooLarge { limit: 8, .. }));
    assert_eq!(
        too_large.to_string(),
        format!("the body is {} bytes, more than the 8 accepted", STIX.len())
    );

    assert_eq!(error_of(&raw("", &[feed()])), AmqpError::EmptyBody);
    assert_eq!(error_of(&raw("\u{feff}", &[feed()])), AmqpError::EmptyBody);

    let mut latin1 = raw("", &[feed()]);
    latin1.body = b"caf\xe9".to_vec();
    assert_eq!(error_of(&latin1), AmqpError::NotUtf8 { at: 3 });

    let mut gzip = raw(STIX, &[feed()]);
    gzip.properties.content_encoding = Some("gzip".to_owned());
    assert!(matches!(error_of(&gzip), AmqpError::UnsupportedEncoding(_)));

    let unknown = raw(
        STIX,
        &[feed(), ("x-taxii-content-type", text("urn:example:json"))],
    );
    assert!(matches!(
        error_of(&unknown),
        AmqpError::UnknownMessageBinding { .. }
    ));

    let broken = r#"<taxii_11:Inbox_Message xmlns:taxii_11="http://taxii.mitre.org/messages/taxii_xml_binding-1.1"><taxii_11:Content_Block>"#;
    assert!(matches!(
        error_of(&raw(broken, &[feed()])),
        AmqpError::MalformedTaxii(_)
    ));
    let labelled = raw(
        "not xml",
        &[
            feed(),
            (
                "x-taxii-content-type",
                text("urn:taxii.mitre.org:message:xml:1.1"),
            ),
        ],
    );
    assert!(matches!(error_of(&labelled), AmqpError::MalformedTaxii(_)));

    let poll = Message::new(
        "p-1",
        Body::PollRequest(PollRequest {
            feed_name: "a".to_owned(),
            exclusive_begin: None,
            inclusive_end: None,
            subscription_id: None,
            parameters: None,
        }),
    );
    let poll = encode(&poll, &meta(), amqp_mappings()).unwrap().message;
    assert_eq!(
        error_of(&poll),
        AmqpError::NotInbox(MessageKind::PollRequest)
    );

    let mut unbound = raw(STIX, &[feed()]);
    unbound.properties.content_type = Some("application/octet-stream".to_owned());
    assert!(matches!(error_of(&unbound), AmqpError::NoBinding { .. }));
    unbound.properties.content_type = None;
    assert!(matches!(error_of(&unbound), AmqpError::NoBinding { .. }));

    let several = raw(
        STIX,
        &[
            feed(),
            (
                "x-taxii-content-binding",
                HeaderValue::List(vec!["urn:a".to_owned(), "urn:b".to_owned()]),
            ),
        ],
    );
    assert!(matches!(
        error_of(&several),
        AmqpError::SeveralBindings { .. }
    ));

    assert!(matches!(
        error_of(&raw(STIX, &[])),
        AmqpError::NoFeed { .. }
    ));

    for (name, value) in [
        ("x-taxii-hops", HeaderValue::Other("{}".to_owned())),
        (
            "x-taxii-collection",
            HeaderValue::List(vec![" ".to_owned()]),
        ),
        ("x-taxii-message-id", HeaderValue::List(Vec::new())),
        ("x-taxii-timestamp-label", text("yesterday")),
        ("x-taxii-ext-urn:x", HeaderValue::List(Vec::new())),
        ("x-taxii-ext-", text("v")),
    ] {
        let mut amqp = raw(STIX, &[feed()]);
        amqp.headers.insert(name.to_owned(), value);
        match error_of(&amqp) {
            AmqpError::BadHeader { header, .. } => assert_eq!(header, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn an_operator_table_replaces_the_default() {
    let shipped = include_str!("../../../mappings/amqp.toml");
    let custom = shipped
        .replace("dialect = \"1.0\"", "")
        .replace("dialect = \"1.1\"", "dialect = \"1.0\"")
        .replace("delivery_mode = 2", "delivery_mode = 1")
        .replace("\"x-taxii-collection\"", "\"x-feed\"")
        .replace("gateway = \"app_id\"\n", "");
    let mappings = AmqpMappings::from_toml(&custom).unwrap();
    let amqp = encode(&inbox("m-1"), &meta(), &mappings).unwrap().message;
    assert_eq!(amqp.properties.delivery_mode, Some(1));
    assert_eq!(amqp.properties.app_id, None);
    assert_eq!(amqp.headers["x-feed"], text("alpha"));
    assert_eq!(
        amqp.headers["x-taxii-content-type"],
        text("urn:taxii.mitre.org:message:xml:1.0")
    );
    let decoded = decode(&amqp, &mappings, &Limits::default()).unwrap();
    assert_eq!(decoded.dialect, Some(Dialect::V10));
    assert_eq!(decoded.feeds, vec!["alpha".to_owned()]);
}

#[test]
fn a_bad_operator_table_is_refused_with_a_reason() {
    let shipped = include_str!("../../../mappings/amqp.toml");
    for (from, to, says) in [
        (
            "delivery_mode = 2",
            "delivery_mode = 2\ncolour = \"red\"",
            "colour",
        ),
        ("delivery_mode = 2", "delivery_mode = 3", "delivery_mode"),
        ("dialect = \"1.1\"", "dialect = \"2.0\"", "2.0"),
        (
            "in_response_to = \"correlation_id\"",
            "in_response_to = \"message_id\"",
            "in_response_to",
        ),
        ("\"x-taxii-hops\"", "\"x-taxii-collection\"", "hops"),
        ("\"x-taxii-hops\"", "\"x-taxii-ext-hops\"", "prefix"),
        ("inbox = \"Inbox_Message\"\n", "", "inbox_message"),
        (
            "id = \"urn:stix.mitre.org:xml:1.1\"\nmedia_type = \"application/xml\"",
            "id = \"urn:stix.mitre.org:xml:1.1\"\nmedia_type = \"xml\"",
            "type/subtype",
        ),
        (
            "id = \"urn:stix.mitre.org:xml:1.1\"\n",
            "id = \"urn:stix.mitre.org:xml:1.2\"\n",
            "twice",
        ),
    ] {
        assert!(shipped.contains(from), "{from}");
        let error = AmqpMappings::from_toml(&shipped.replacen(from, to, 1)).unwrap_err();
        assert!(error.contains(says), "{says}: {error}");
    }
}

proptest! {
    #[test]
    fn decode_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        content_type in proptest::option::of("[a-z/+;=.0-9]{0,30}"),
        header in proptest::option::of(".{0,40}"),
    ) {
        let mut headers = BTreeMap::new();
        if let Some(header) = header {
            headers.insert("x-taxii-content-binding".to_owned(), HeaderValue::Text(header.clone()));
            headers.insert("x-taxii-collection".to_owned(), HeaderValue::Text(header));
        }
        let amqp = AmqpMessage {
            properties: AmqpProperties { content_type, ..AmqpProperties::default() },
            headers,
            body,
        };
        let _ = decode_default(&amqp);
    }

    #[test]
    fn raw_text_payloads_come_back_unchanged(payload in "[^\u{0}\u{feff}][^\u{0}]{0,199}") {
        let amqp = raw(&payload, &[
            ("x-taxii-collection", text("a")),
            ("x-taxii-content-binding", text("urn:stix.mitre.org:json:2.1")),
        ]);
        let Body::Inbox(inbox) = decode_default(&amqp).unwrap().message.body else {
            panic!("not an inbox message");
        };
        prop_assert_eq!(&inbox.content_blocks[0].content, &XmlContent::Text(payload));
    }
}
