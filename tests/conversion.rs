//! `convert` between dialects, one rule at a time: small hand-written
//! messages are read, converted, and the result and its notes checked; where
//! the result must be schema-valid it is written and checked with xmllint.

use std::path::{Path, PathBuf};
use std::process::Command;

use taxiway::bindings::taxii_xml::{Conversion, ConversionNote, Effect, convert, parse, serialize};
use taxiway::core::{Body, Dialect, Message, StatusMessage, StatusType};

const NS_10: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1";
const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const NS_DRAFT: &str = "http://taxii.mitre.org/messages/xml/1";

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// Reads `xml` (in `from`) and converts it to `to`.
fn convert_xml(xml: &str, from: Dialect, to: Dialect) -> Conversion {
    let parsed = parse(xml.as_bytes()).unwrap_or_else(|e| panic!("cannot read {xml}: {e}"));
    assert_eq!(parsed.dialect, from, "{xml}");
    convert(parsed.message, from, to).unwrap_or_else(|e| panic!("cannot convert to {to}: {e}"))
}

fn note(effect: Effect, field: &str) -> impl Fn(&ConversionNote) -> bool + '_ {
    move |n| n.effect == effect && n.field == field
}

fn has_note(conversion: &Conversion, effect: Effect, field: &str) -> bool {
    conversion.notes.iter().any(note(effect, field))
}

/// The notes' effects and fields, in order.
fn note_fields(conversion: &Conversion) -> Vec<(Effect, &str)> {
    conversion
        .notes
        .iter()
        .map(|n| (n.effect, n.field.as_str()))
        .collect()
}

fn status(message: &Message) -> &StatusMessage {
    match &message.body {
        Body::Status(status) => status,
        other => panic!("not a status message: {other:?}"),
    }
}

/// Writes `message` in `dialect`, checks it against the dialect's schema with
/// xmllint and checks that it reads back as written.
fn assert_schema_valid(message: &Message, dialect: Dialect, name: &str) {
    let xml = serialize(message, dialect)
        .unwrap_or_else(|e| panic!("cannot write {name} in {dialect}: {e}"));
    let reread = parse(xml.as_bytes()).unwrap_or_else(|e| panic!("cannot reread {xml}: {e}"));
    assert_eq!(
        &reread.message, message,
        "{name} reads back otherwise:\n{xml}"
    );
    let xsd = shared().join("spec/xsd").join(match dialect {
        Dialect::Draft => "draft/TAXII_XMLSchema_1.0_Draft.xsd",
        Dialect::V10 => "TAXII_XMLMessageBinding_Schema.xsd",
        Dialect::V11 => "TAXII_XMLMessageBinding_Schema_11.xsd",
    });
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conversion");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}-{dialect}.xml"));
    std::fs::write(&file, &xml).unwrap();
    let output = Command::new("xmllint")
        .args(["--nonet", "--noout", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint ({e}): run scripts/setup to install it (libxml2-utils)")
        });
    assert!(
        output.status.success(),
        "{name} is not valid TAXII {dialect}:\n{}\n{xml}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Item 1: 1.x responses require in_response_to; "0" stands for an unknown
/// request (FAQ T-Q1).
#[test]
fn responses_without_in_response_to_answer_request_zero_in_1x() {
    let draft = format!(
        r#"<TAXII_ErrorMessage xmlns="{NS_DRAFT}" message-id="a847 98be ffe8 40ee 3722 c893 288b d375" error-type="BAD-MESSAGE"><message>unreadable</message></TAXII_ErrorMessage>"#
    );
    for to in [Dialect::V10, Dialect::V11] {
        let converted = convert_xml(&draft, Dialect::Draft, to);
        assert_eq!(converted.message.in_response_to.as_deref(), Some("0"));
        assert!(
            has_note(&converted, Effect::Assumed, "in_response_to"),
            "{:?}",
            converted.notes
        );
        assert_eq!(
            status(&converted.message).status_type,
            StatusType::BadMessage
        );
        assert_schema_valid(&converted.message, to, "response-without-in-response-to");
    }
    // The draft does not require it.
    let same = convert_xml(&draft, Dialect::Draft, Dialect::Draft);
    assert_eq!(same.message.in_response_to, None);
    assert!(same.notes.is_empty(), "{:?}", same.notes);
}

/// Item 2: 1.x requests carry no in_response_to.
#[test]
fn requests_lose_in_response_to_in_1x() {
    let draft = format!(
        r#"<TAXII_DiscoveryRequest xmlns="{NS_DRAFT}" message-id="a847 98be ffe8 40ee 3722 c893 288b d376" in-response-to="a847 98be ffe8 40ee 3722 c893 288b d375"/>"#
    );
    for to in [Dialect::V10, Dialect::V11] {
        let converted = convert_xml(&draft, Dialect::Draft, to);
        assert_eq!(converted.message.in_response_to, None);
        assert_eq!(
            converted
                .notes
                .iter()
                .filter(|n| n.field == "in_response_to")
                .map(|n| n.effect)
                .collect::<Vec<_>>(),
            vec![Effect::Lost]
        );
        assert_schema_valid(&converted.message, to, "request-with-in-response-to");
    }
    let same = convert_xml(&draft, Dialect::Draft, Dialect::Draft);
    assert_eq!(
        same.message.in_response_to.as_deref(),
        Some("a847 98be ffe8 40ee 3722 c893 288b d375")
    );
    assert!(same.notes.is_empty(), "{:?}", same.notes);
}

/// Item 5: a signature covers the exact message or block it signs; any other
/// dialect's form breaks it.
#[test]
fn signatures_are_dropped_between_dialects() {
    let signature = r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignatureValue>c2ln</ds:SignatureValue></ds:Signature>"#;
    let v11 = format!(
        r#"<taxii_11:Inbox_Message xmlns:taxii_11="{NS_11}" message_id="m1"><taxii_11:Content_Block><taxii_11:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/><taxii_11:Content><stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1"/></taxii_11:Content>{signature}</taxii_11:Content_Block>{signature}</taxii_11:Inbox_Message>"#
    );
    let kept = convert_xml(&v11, Dialect::V11, Dialect::V11);
    assert!(kept.notes.is_empty(), "{:?}", kept.notes);
    assert!(kept.message.signature.is_some());

    let converted = convert_xml(&v11, Dialect::V11, Dialect::V10);
    assert_eq!(converted.message.signature, None);
    let Body::Inbox(inbox) = &converted.message.body else {
        panic!("not an inbox message: {:?}", converted.message.body);
    };
    assert_eq!(inbox.content_blocks.len(), 1);
    assert_eq!(inbox.content_blocks[0].signature, None);
    assert!(
        has_note(&converted, Effect::Lost, "signature"),
        "{:?}",
        converted.notes
    );
    assert!(
        has_note(&converted, Effect::Lost, "content_blocks[0].signature"),
        "{:?}",
        converted.notes
    );
    assert_schema_valid(&converted.message, Dialect::V10, "signed-inbox");

    // And the other way: a signed 1.0 status message in 1.1.
    let v10 = format!(
        r#"<taxii:Status_Message xmlns:taxii="{NS_10}" message_id="2005" in_response_to="1005" status_type="SUCCESS">{signature}</taxii:Status_Message>"#
    );
    let converted = convert_xml(&v10, Dialect::V10, Dialect::V11);
    assert_eq!(converted.message.signature, None);
    assert_eq!(note_fields(&converted), vec![(Effect::Lost, "signature")]);
    assert_schema_valid(&converted.message, Dialect::V11, "signed-status");
}

/// Item 7: a 1.0 feed needs a push method or a polling service.
#[test]
fn collections_without_delivery_are_left_out_of_1_0() {
    let endpoint = "<taxii_11:Protocol_Binding>urn:taxii.mitre.org:protocol:https:1.0</taxii_11:Protocol_Binding><taxii_11:Address>https://taxii.example.com/x</taxii_11:Address><taxii_11:Message_Binding>urn:taxii.mitre.org:message:xml:1.1</taxii_11:Message_Binding>";
    let v11 = format!(
        r#"<taxii_11:Collection_Information_Response xmlns:taxii_11="{NS_11}" message_id="m2" in_response_to="m1"><taxii_11:Collection collection_name="Inbound"><taxii_11:Description>Contributions only.</taxii_11:Description><taxii_11:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/><taxii_11:Receiving_Inbox_Service>{endpoint}</taxii_11:Receiving_Inbox_Service></taxii_11:Collection><taxii_11:Collection collection_name="Gold"><taxii_11:Description>Pollable.</taxii_11:Description><taxii_11:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/><taxii_11:Polling_Service>{endpoint}</taxii_11:Polling_Service></taxii_11:Collection></taxii_11:Collection_Information_Response>"#
    );
    let converted = convert_xml(&v11, Dialect::V11, Dialect::V10);
    let Body::FeedInformationResponse(response) = &converted.message.body else {
        panic!(
            "not a feed information response: {:?}",
            converted.message.body
        );
    };
    let names: Vec<&str> = response.feeds.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["Gold"]);
    assert!(
        has_note(&converted, Effect::Lost, "feeds[0]"),
        "{:?}",
        converted.notes
    );
    // Only the dropped feed is noted, once; the kept one converts cleanly.
    assert!(
        !converted
            .notes
            .iter()
            .any(|n| n.field.starts_with("feeds[") && n.field != "feeds[0]"),
        "{:?}",
        converted.notes
    );
    assert_schema_valid(
        &converted.message,
        Dialect::V10,
        "collection-without-delivery",
    );

    // 1.1 itself keeps both.
    let kept = convert_xml(&v11, Dialect::V11, Dialect::V11);
    let Body::FeedInformationResponse(response) = &kept.message.body else {
        unreachable!()
    };
    assert_eq!(response.feeds.len(), 2);
}

/// Item 8: a draft GUID is hex, even when all its digits are decimal ones; a
/// 1.0 id is decimal. The mapping is stable and goes back and forth.
#[test]
fn draft_guids_of_decimal_digits_are_read_as_hex() {
    let guid = "1234 5678 9012 3456 7890 1234 5678 9012";
    let hex = "12345678901234567890123456789012";
    let decimal = u128::from_str_radix(hex, 16).unwrap().to_string();
    let request = format!(r#"<TAXII_DiscoveryRequest xmlns="{NS_DRAFT}" message-id="{guid}"/>"#);
    let converted = convert_xml(&request, Dialect::Draft, Dialect::V10);
    assert_eq!(converted.message.id, decimal);
    assert_eq!(
        note_fields(&converted),
        vec![(Effect::Remapped, "message_id")]
    );
    // Stable: the same id maps to the same number, and a reply to it names it.
    assert_eq!(
        convert_xml(&request, Dialect::Draft, Dialect::V10)
            .message
            .id,
        decimal
    );
    let reply = format!(
        r#"<TAXII_ErrorMessage xmlns="{NS_DRAFT}" message-id="{hex}" in-response-to="{guid}" error-type="FAILURE"/>"#
    );
    let reply = convert_xml(&reply, Dialect::Draft, Dialect::V10);
    assert_eq!(
        reply.message.in_response_to.as_deref(),
        Some(decimal.as_str())
    );
    assert_eq!(reply.message.id, decimal);
    assert_schema_valid(&converted.message, Dialect::V10, "decimal-draft-guid");

    // Back to the draft: the same 32 hex digits, though 1.0's are 32+ decimal ones.
    let v10 = serialize(&converted.message, Dialect::V10).unwrap();
    let back = convert_xml(&v10, Dialect::V10, Dialect::Draft);
    assert_eq!(back.message.id, hex);

    // A 1.0 id of exactly 32 decimal digits is a number, not a draft GUID.
    let v10 = format!(r#"<taxii:Discovery_Request xmlns:taxii="{NS_10}" message_id="{hex}"/>"#);
    let draft = convert_xml(&v10, Dialect::V10, Dialect::Draft);
    assert_eq!(
        draft.message.id,
        format!("{:032x}", hex.parse::<u128>().unwrap())
    );
    assert_eq!(note_fields(&draft), vec![(Effect::Remapped, "message_id")]);
}

/// Item 9: status types and details that have no form in the target.
#[test]
fn status_types_and_details_keep_their_meaning_across_dialects() {
    let status_11 = |status_type: &str, details: &str| {
        format!(
            r#"<taxii_11:Status_Message xmlns:taxii_11="{NS_11}" message_id="m2" in_response_to="m1" status_type="{status_type}"><taxii_11:Status_Detail>{details}</taxii_11:Status_Detail><taxii_11:Message>see details</taxii_11:Message></taxii_11:Status_Message>"#
        )
    };
    let detail = |name: &str, value: &str| {
        format!(r#"<taxii_11:Detail name="{name}">{value}</taxii_11:Detail>"#)
    };

    // 1.1 PENDING (asynchronous poll) is not the draft's PENDING (repeat later).
    let pending = status_11(
        "PENDING",
        &[
            detail("ESTIMATED_WAIT", "300"),
            detail("RESULT_ID", "r1"),
            detail("WILL_PUSH", "false"),
        ]
        .concat(),
    );
    let converted = convert_xml(&pending, Dialect::V11, Dialect::Draft);
    let result = status(&converted.message);
    assert_eq!(result.status_type, StatusType::Failure);
    assert_eq!(result.detail_text, None);
    assert!(result.details.is_empty());
    assert_eq!(result.message.as_deref(), Some("see details"));
    assert!(
        converted
            .notes
            .iter()
            .any(|n| n.effect == Effect::Remapped && n.field == "status_type")
    );
    for name in ["ESTIMATED_WAIT", "RESULT_ID", "WILL_PUSH"] {
        let field = format!("status_detail[{name}]");
        assert!(
            has_note(&converted, Effect::Lost, &field),
            "{:?}",
            converted.notes
        );
    }
    assert_schema_valid(&converted.message, Dialect::Draft, "pending-11");

    // The draft's own PENDING stays one.
    let draft = format!(
        r#"<TAXII_ErrorMessage xmlns="{NS_DRAFT}" message-id="0" error-type="PENDING"><error-detail>2012-11-12T15:00:00Z</error-detail></TAXII_ErrorMessage>"#
    );
    let same = convert_xml(&draft, Dialect::Draft, Dialect::Draft);
    assert_eq!(status(&same.message).status_type, StatusType::Pending);
    assert!(same.notes.is_empty(), "{:?}", same.notes);

    // 1.1 RETRY's ESTIMATED_WAIT is seconds; 1.0's RETRY detail is a date-time.
    let retry = status_11("RETRY", &detail("ESTIMATED_WAIT", "30"));
    let converted = convert_xml(&retry, Dialect::V11, Dialect::V10);
    let result = status(&converted.message);
    assert_eq!(result.status_type, StatusType::Retry);
    assert_eq!(result.detail_text, None);
    assert!(
        has_note(&converted, Effect::Lost, "status_detail[ESTIMATED_WAIT]"),
        "{:?}",
        converted.notes
    );
    assert_schema_valid(&converted.message, Dialect::V10, "retry-11");

    // The list-valued details become the space-separated list.
    let unsupported = status_11(
        "UNSUPPORTED_CONTENT",
        &[
            detail("SUPPORTED_CONTENT", "urn:stix.mitre.org:xml:1.0"),
            detail("SUPPORTED_CONTENT", "urn:stix.mitre.org:xml:1.1.1"),
        ]
        .concat(),
    );
    let converted = convert_xml(&unsupported, Dialect::V11, Dialect::V10);
    let result = status(&converted.message);
    assert_eq!(result.status_type, StatusType::UnsupportedContent);
    assert_eq!(
        result.detail_text.as_deref(),
        Some("urn:stix.mitre.org:xml:1.0 urn:stix.mitre.org:xml:1.1.1")
    );
    assert!(result.details.is_empty());
    assert!(has_note(&converted, Effect::Remapped, "status_detail"));
    assert!(!converted.notes.iter().any(|n| n.effect == Effect::Lost));
    assert_schema_valid(&converted.message, Dialect::V10, "unsupported-content-11");

    // A status remapped to FAILURE gets no detail text.
    let query = status_11(
        "UNSUPPORTED_QUERY",
        &detail("SUPPORTED_QUERY", "urn:taxii.mitre.org:query:default:1.0"),
    );
    let converted = convert_xml(&query, Dialect::V11, Dialect::V10);
    let result = status(&converted.message);
    assert_eq!(result.status_type, StatusType::Failure);
    assert_eq!(result.detail_text, None);
    assert!(has_note(
        &converted,
        Effect::Lost,
        "status_detail[SUPPORTED_QUERY]"
    ));
    assert_schema_valid(&converted.message, Dialect::V10, "unsupported-query-11");

    // Nor does a draft detail whose status became FAILURE.
    let unrecognized = format!(
        r#"<TAXII_ErrorMessage xmlns="{NS_DRAFT}" message-id="0" in-response-to="0" error-type="UNRECOGNIZED-VALUE"><error-detail>feed-name="x"</error-detail></TAXII_ErrorMessage>"#
    );
    let converted = convert_xml(&unrecognized, Dialect::Draft, Dialect::V10);
    let result = status(&converted.message);
    assert_eq!(result.status_type, StatusType::Failure);
    assert_eq!(result.detail_text, None);
    assert!(has_note(&converted, Effect::Lost, "status_detail"));
    assert_schema_valid(&converted.message, Dialect::V10, "unrecognized-value-draft");
}

/// Item 13: leaving out a schema default (allow_asynch false, Response_Type
/// FULL) loses nothing; leaving out the others does.
#[test]
fn schema_defaults_are_dropped_without_notes() {
    let poll = |asynch: &str, response_type: &str| {
        format!(
            r#"<taxii_11:Poll_Request xmlns:taxii_11="{NS_11}" message_id="17" collection_name="Gold"><taxii_11:Poll_Parameters allow_asynch="{asynch}"><taxii_11:Response_Type>{response_type}</taxii_11:Response_Type><taxii_11:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/></taxii_11:Poll_Parameters></taxii_11:Poll_Request>"#
        )
    };
    for to in [Dialect::V10, Dialect::Draft] {
        let converted = convert_xml(&poll("false", "FULL"), Dialect::V11, to);
        let Body::PollRequest(request) = &converted.message.body else {
            panic!("not a poll request: {:?}", converted.message.body);
        };
        let parameters = request
            .parameters
            .as_ref()
            .expect("the content binding is kept");
        assert_eq!(parameters.allow_asynch, None);
        assert_eq!(parameters.selection.response_type, None);
        let remapped_id = (to == Dialect::Draft).then_some((Effect::Remapped, "message_id"));
        assert_eq!(
            note_fields(&converted),
            remapped_id.into_iter().collect::<Vec<_>>(),
            "{to}"
        );
        if to == Dialect::V10 {
            assert_schema_valid(&converted.message, to, "poll-defaults");
        }

        let converted = convert_xml(&poll("true", "COUNT_ONLY"), Dialect::V11, to);
        let Body::PollRequest(request) = &converted.message.body else {
            unreachable!()
        };
        let parameters = request.parameters.as_ref().unwrap();
        assert_eq!(parameters.allow_asynch, None);
        assert_eq!(parameters.selection.response_type, None);
        assert!(has_note(
            &converted,
            Effect::Lost,
            "parameters.allow_asynch"
        ));
        assert!(has_note(
            &converted,
            Effect::Lost,
            "parameters.response_type"
        ));
    }
}
