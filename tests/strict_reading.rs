//! Where the 1.0 and 1.1 schemas are strict, so is the reader: each message
//! here breaks one rule and is refused with BAD_MESSAGE and a reason that
//! names it; the few that a schema allows are read.

use taxiway::bindings::taxii_xml::{parse, serialize};
use taxiway::core::{Body, Dialect, StatusType, XmlContent};

const NS10: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1";
const NS11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";

fn v11(root: &str, attributes: &str, children: &str) -> String {
    format!(r#"<t:{root} xmlns:t="{NS11}" {attributes}>{children}</t:{root}>"#)
}

fn v10(root: &str, attributes: &str, children: &str) -> String {
    format!(r#"<t:{root} xmlns:t="{NS10}" {attributes}>{children}</t:{root}>"#)
}

fn refused(xml: &str, reason: &str) {
    let error = parse(xml.as_bytes()).expect_err(xml);
    assert_eq!(error.status, StatusType::BadMessage, "{xml}: {error}");
    assert!(
        error.reason.contains(reason),
        "{xml}: {:?} should mention {reason:?}",
        error.reason
    );
}

const SERVICE10: &str = "<t:Protocol_Binding>urn:taxii.mitre.org:protocol:http:1.0</t:Protocol_Binding><t:Address>http://a/</t:Address><t:Message_Binding>urn:taxii.mitre.org:message:xml:1.0</t:Message_Binding>";

#[test]
fn responses_name_their_request_and_requests_do_not() {
    refused(
        &v11("Discovery_Response", r#"message_id="1""#, ""),
        "needs in_response_to",
    );
    refused(
        &v10(
            "Status_Message",
            r#"message_id="1" status_type="SUCCESS""#,
            "",
        ),
        "needs in_response_to",
    );
    refused(
        &v11(
            "Discovery_Request",
            r#"message_id="1" in_response_to="5""#,
            "",
        ),
        "must not carry in_response_to",
    );
    refused(
        &v10("Inbox_Message", r#"message_id="1" in_response_to="5""#, ""),
        "must not carry",
    );
}

#[test]
fn a_status_has_one_status_detail() {
    let detail = r#"<t:Status_Detail><t:Detail name="RESULT_ID">r</t:Detail></t:Status_Detail>"#;
    let attributes = r#"message_id="1" in_response_to="2" status_type="PENDING""#;
    refused(
        &v11("Status_Message", attributes, &format!("{detail}{detail}")),
        "more than once",
    );
    refused(
        &v11("Status_Message", attributes, "<t:Status_Detail/>"),
        "at least one <Detail>",
    );
}

#[test]
fn a_detail_keeps_the_markup_it_holds() {
    let xml = v11(
        "Status_Message",
        r#"message_id="1" in_response_to="2" status_type="urn:example:custom""#,
        r#"<t:Status_Detail><t:Detail name="urn:example:d"><x:a xmlns:x="urn:x">v</x:a></t:Detail></t:Status_Detail>"#,
    );
    let parsed = parse(xml.as_bytes()).unwrap();
    let Body::Status(status) = &parsed.message.body else {
        panic!("a status message")
    };
    assert_eq!(
        status.details[0].value,
        XmlContent::Xml(r#"<x:a xmlns:x="urn:x">v</x:a>"#.into())
    );
    let written = serialize(&parsed.message, Dialect::V11).unwrap();
    assert!(
        written.contains(r#"<x:a xmlns:x="urn:x">v</x:a>"#),
        "{written}"
    );
}

#[test]
fn signatures_stand_only_where_the_schemas_allow_them() {
    let signature = r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>"#;
    let service = format!(
        r#"<t:Service_Instance service_type="DISCOVERY" service_version="urn:taxii.mitre.org:services:1.0">{SERVICE10}{signature}</t:Service_Instance>"#
    );
    refused(
        &v10(
            "Discovery_Response",
            r#"message_id="1" in_response_to="2""#,
            &service,
        ),
        "not expected",
    );
    let at_root = v10(
        "Discovery_Response",
        r#"message_id="1" in_response_to="2""#,
        signature,
    );
    assert!(
        parse(at_root.as_bytes())
            .unwrap()
            .message
            .signature
            .is_some()
    );
}

#[test]
fn timestamps_follow_the_label_pattern() {
    let poll = |stamp: &str| {
        v11(
            "Poll_Request",
            r#"message_id="1" collection_name="Gold""#,
            &format!(
                "<t:Exclusive_Begin_Timestamp>{stamp}</t:Exclusive_Begin_Timestamp><t:Subscription_ID>s</t:Subscription_ID>"
            ),
        )
    };
    refused(&poll("2012-11-12T14:43:34+05:3"), "zone");
    refused(&poll("2012-11-12T14:43:3Z"), "ss");
    refused(
        &poll("2012-11-12T14:43:34.1234560Z"),
        "six fractional digits",
    );
    refused(&poll("12012-11-12T14:43:34Z"), "four-digit year");
    assert!(parse(poll("2012-11-12T14:43:34.123456+05:30").as_bytes()).is_ok());
}

#[test]
fn taxii_10_has_none_of_the_11_parts() {
    let feed = |extra: &str| {
        v10(
            "Feed_Information_Response",
            r#"message_id="1" in_response_to="2""#,
            &format!(
                r#"<t:Feed feed_name="Gold"><t:Description>d</t:Description>{extra}<t:Content_Binding>urn:stix.mitre.org:xml:1.0</t:Content_Binding><t:Polling_Service>{SERVICE10}</t:Polling_Service></t:Feed>"#
            ),
        )
    };
    assert!(parse(feed("").as_bytes()).is_ok());
    refused(
        &feed("<t:Collection_Volume>5</t:Collection_Volume>"),
        "not expected",
    );
    let bare_feed = v10(
        "Feed_Information_Response",
        r#"message_id="1" in_response_to="2""#,
        r#"<t:Feed feed_name="Gold"><t:Description>d</t:Description></t:Feed>"#,
    );
    refused(
        &bare_feed,
        "needs a Content_Binding and a Push_Method or Polling_Service",
    );
    let service = |service_type: &str| {
        v10(
            "Discovery_Response",
            r#"message_id="1" in_response_to="2""#,
            &format!(
                r#"<t:Service_Instance service_type="{service_type}" service_version="urn:taxii.mitre.org:services:1.0">{SERVICE10}</t:Service_Instance>"#
            ),
        )
    };
    assert!(parse(service("FEED_MANAGEMENT").as_bytes()).is_ok());
    refused(
        &service("COLLECTION_MANAGEMENT"),
        "not a TAXII 1.0 service type",
    );
    // `more` and `result_id` are 1.1 attributes: in 1.0 they mean nothing.
    let response = v10(
        "Poll_Response",
        r#"message_id="1" in_response_to="2" feed_name="Gold" more="true""#,
        "<t:Inclusive_End_Timestamp>2012-11-12T14:43:34Z</t:Inclusive_End_Timestamp>",
    );
    let Body::PollResponse(poll) = parse(response.as_bytes()).unwrap().message.body else {
        panic!("a poll response")
    };
    assert_eq!(poll.more, None);
}

#[test]
fn smaller_schema_rules() {
    refused(
        &v11(
            "Discovery_Request",
            r#"message_id="1""#,
            "<t:Extended_Headers/>",
        ),
        "at least one <Extended_Header>",
    );
    let block = |binding: &str| {
        v11(
            "Inbox_Message",
            r#"message_id="1""#,
            &format!("<t:Content_Block>{binding}<t:Content>x</t:Content></t:Content_Block>"),
        )
    };
    refused(
        &block(
            r#"<t:Content_Binding binding_id="b"><t:Subtype subtype_id="1"/><t:Subtype subtype_id="2"/></t:Content_Binding>"#,
        ),
        "one subtype at most",
    );
    refused(
        &block(
            r#"<t:Content_Binding binding_id="b"><t:Subtype subtype_id="1">text</t:Subtype></t:Content_Binding>"#,
        ),
        "<Subtype> holds text",
    );
    assert!(parse(block(r#"<t:Content_Binding binding_id="b"><t:Subtype subtype_id="1"/></t:Content_Binding>"#).as_bytes()).is_ok());
    let delivery = "<t:Delivery_Parameters><t:Protocol_Binding>urn:taxii.mitre.org:protocol:http:1.0</t:Protocol_Binding><t:Address>http://a/</t:Address><t:Message_Binding>urn:taxii.mitre.org:message:xml:1.1</t:Message_Binding></t:Delivery_Parameters>";
    let poll = |allow: &str| {
        v11(
            "Poll_Request",
            r#"message_id="1" collection_name="Gold""#,
            &format!("<t:Poll_Parameters{allow}>{delivery}</t:Poll_Parameters>"),
        )
    };
    refused(&poll(""), "allow_asynch");
    assert!(parse(poll(r#" allow_asynch="true""#).as_bytes()).is_ok());
}
