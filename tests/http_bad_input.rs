//! Bad input over real HTTP against `taxiway serve`'s default scenario: each
//! request is answered with the protocol's own clear error (a Status Message
//! in a 200 for TAXII 1.x, an HTTP status for the draft's header and parse
//! errors) and changes nothing stored.

mod common;

use std::net::SocketAddr;

use taxiway::bindings::taxii_xml::parse;
use taxiway::core::*;
use taxiway::gateway::Gateway;
use taxiway::store::{SqliteStore, Store};

const NS_DRAFT: &str = "http://taxii.mitre.org/messages/xml/1";
const NS_10: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1";
const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";

const STIX_11: &str = "urn:stix.mitre.org:xml:1.1.1";
const NOT_SERVED: &str = "urn:example.org:json:9.9";

const ID_DRAFT: &str = "a84798beffe840ee3722c893288bd3aa";
const ID_10: &str = "31415926";
const ID_11: &str = "urn:uuid:0f1e2d3c-0000-4000-8000-0000000000aa";

const DIALECTS: [Dialect; 3] = [Dialect::Draft, Dialect::V10, Dialect::V11];
const FINALS: [Dialect; 2] = [Dialect::V10, Dialect::V11];
const FEEDS: [&str; 4] = ["Public", "Platinum", "Gold", "Silver"];

// --- The identifiers each dialect puts in its headers (spec §1, §6) --------

fn content_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Draft => "TAXII_1.0/TAXII_XML_BINDING_1.0",
        Dialect::V10 => "urn:taxii.mitre.org:message:xml:1.0",
        Dialect::V11 => "urn:taxii.mitre.org:message:xml:1.1",
    }
}

fn services(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Draft => None,
        Dialect::V10 => Some("urn:taxii.mitre.org:services:1.0"),
        Dialect::V11 => Some("urn:taxii.mitre.org:services:1.1"),
    }
}

fn protocol(dialect: Dialect, https: bool) -> &'static str {
    match (dialect, https) {
        (Dialect::Draft, false) => "TAXII_HTTP_BINDING_1.0",
        (Dialect::Draft, true) => "TAXII_HTTPS_BINDING_1.0",
        (_, false) => "urn:taxii.mitre.org:protocol:http:1.0",
        (_, true) => "urn:taxii.mitre.org:protocol:https:1.0",
    }
}

fn namespace(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Draft => NS_DRAFT,
        Dialect::V10 => NS_10,
        Dialect::V11 => NS_11,
    }
}

fn request_id(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Draft => ID_DRAFT,
        Dialect::V10 => ID_10,
        Dialect::V11 => ID_11,
    }
}

/// The headers a well-behaved client of `dialect` sends with a POST, with
/// the demo account's credentials: the for-pay feeds need an account.
fn headers(dialect: Dialect) -> Vec<(&'static str, &'static str)> {
    let mut headers = vec![
        ("Authorization", common::DEMO_AUTHORIZATION),
        ("Content-Type", "application/xml"),
        ("Accept", "application/xml"),
        ("X-TAXII-Content-Type", content_type(dialect)),
        ("X-TAXII-Accept", content_type(dialect)),
        ("X-TAXII-Protocol", protocol(dialect, false)),
    ];
    if let Some(services) = services(dialect) {
        headers.push(("X-TAXII-Services", services));
    }
    headers
}

/// `headers` with `name` replaced by `value`, or removed.
fn with(
    mut headers: Vec<(&'static str, &'static str)>,
    name: &str,
    value: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    headers.retain(|(key, _)| !key.eq_ignore_ascii_case(name));
    if let Some(value) = value {
        let name = headers_name(name);
        headers.push((name, value));
    }
    headers
}

fn headers_name(name: &str) -> &'static str {
    match name.to_ascii_lowercase().as_str() {
        "content-type" => "Content-Type",
        "x-taxii-content-type" => "X-TAXII-Content-Type",
        "x-taxii-accept" => "X-TAXII-Accept",
        "x-taxii-protocol" => "X-TAXII-Protocol",
        "x-taxii-services" => "X-TAXII-Services",
        other => panic!("no such header in these tests: {other}"),
    }
}

// --- Messages ---------------------------------------------------------------

/// An inbox message (the draft's STIX message) with one block per
/// `(binding, payload)`, the payload inserted raw; `prolog` goes before the
/// root, and `destinations` are 1.1 Destination_Collection_Names.
fn inbox_with(
    dialect: Dialect,
    prolog: &str,
    destinations: &[&str],
    blocks: &[(&str, &[u8])],
) -> Vec<u8> {
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{prolog}").into_bytes();
    match dialect {
        Dialect::Draft => {
            let (binding, payload) = blocks[0];
            let binding = binding.replace("urn:stix.mitre.org:xml:", "STIX_XML_");
            out.extend(
                format!(
                    "<TAXII_STIXMessage xmlns=\"{NS_DRAFT}\" message-id=\"{ID_DRAFT}\">\n  \
                     <content-binding>{binding}</content-binding>\n  "
                )
                .bytes(),
            );
            out.extend(payload);
            out.extend(b"\n</TAXII_STIXMessage>\n");
        }
        Dialect::V10 | Dialect::V11 => {
            let v11 = dialect == Dialect::V11;
            out.extend(
                format!(
                    "<t:Inbox_Message xmlns:t=\"{}\" message_id=\"{}\">\n",
                    namespace(dialect),
                    request_id(dialect)
                )
                .bytes(),
            );
            for name in destinations {
                out.extend(
                    format!(
                        "  <t:Destination_Collection_Name>{name}</t:Destination_Collection_Name>\n"
                    )
                    .bytes(),
                );
            }
            for (binding, payload) in blocks {
                let binding = if v11 {
                    format!("<t:Content_Binding binding_id=\"{binding}\"/>")
                } else {
                    format!("<t:Content_Binding>{binding}</t:Content_Binding>")
                };
                out.extend(format!("  <t:Content_Block>\n    {binding}\n    <t:Content>").bytes());
                out.extend(*payload);
                out.extend(b"</t:Content>\n  </t:Content_Block>\n");
            }
            out.extend(b"</t:Inbox_Message>\n");
        }
    }
    out
}

/// A STIX payload fit for the dialect's content.
fn stix(dialect: Dialect) -> &'static [u8] {
    match dialect {
        Dialect::Draft => b"<STIX xmlns=\"http://stix.mitre.org\"/>",
        _ => b"<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-1\" version=\"1.1.1\"/>",
    }
}

fn inbox(dialect: Dialect) -> Vec<u8> {
    inbox_with(dialect, "", &[], &[(STIX_11, stix(dialect))])
}

/// A poll request for `feed`, by subscription or else for any content.
fn poll(dialect: Dialect, feed: &str, subscription: Option<&str>) -> Vec<u8> {
    let text = match (dialect, subscription) {
        (Dialect::Draft, Some(id)) => format!(
            "<TAXII_PollRequest xmlns=\"{NS_DRAFT}\" message-id=\"{ID_DRAFT}\">\
             <feed-name>{feed}</feed-name><subscription-id>{id}</subscription-id>\
             </TAXII_PollRequest>"
        ),
        (Dialect::Draft, None) => format!(
            "<TAXII_PollRequest xmlns=\"{NS_DRAFT}\" message-id=\"{ID_DRAFT}\">\
             <feed-name>{feed}</feed-name><content-binding>STIX_XML_1.0</content-binding>\
             </TAXII_PollRequest>"
        ),
        (Dialect::V10, Some(id)) => format!(
            "<t:Poll_Request xmlns:t=\"{NS_10}\" message_id=\"{ID_10}\" feed_name=\"{feed}\" \
             subscription_id=\"{id}\"/>"
        ),
        (Dialect::V10, None) => format!(
            "<t:Poll_Request xmlns:t=\"{NS_10}\" message_id=\"{ID_10}\" feed_name=\"{feed}\"/>"
        ),
        (Dialect::V11, Some(id)) => format!(
            "<t:Poll_Request xmlns:t=\"{NS_11}\" message_id=\"{ID_11}\" collection_name=\"{feed}\">\
             <t:Subscription_ID>{id}</t:Subscription_ID></t:Poll_Request>"
        ),
        (Dialect::V11, None) => format!(
            "<t:Poll_Request xmlns:t=\"{NS_11}\" message_id=\"{ID_11}\" collection_name=\"{feed}\">\
             <t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type></t:Poll_Parameters>\
             </t:Poll_Request>"
        ),
    };
    text.into_bytes()
}

/// The 1.1 request id as a 1.0 answer refers to it.
fn id_11_in_10() -> String {
    let uuid = uuid::Uuid::parse_str(ID_11.trim_start_matches("urn:uuid:")).unwrap();
    uuid.as_u128().to_string()
}

// --- HTTP -------------------------------------------------------------------

struct HttpReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// What was sent, for failure messages.
    sent: String,
}

impl HttpReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The TAXII message of a response in `dialect`, after checking the
    /// HTTP status and every header the dialect's responses must carry.
    #[track_caller]
    fn taxii(&self, http_status: u16, dialect: Dialect) -> Message {
        let context = format!("{} -> {} {}", self.sent, self.status, self.text());
        assert_eq!(self.status, http_status, "{context}");
        assert_eq!(
            self.header("Content-Type"),
            Some("application/xml"),
            "{context}"
        );
        assert_eq!(
            self.header("X-TAXII-Content-Type"),
            Some(content_type(dialect)),
            "{context}"
        );
        assert_eq!(
            self.header("X-TAXII-Protocol"),
            Some(protocol(dialect, false)),
            "{context}"
        );
        assert_eq!(
            self.header("X-TAXII-Services"),
            services(dialect),
            "{context}"
        );
        assert!(self.header("X-TAXII-Accept").is_none(), "{context}");
        assert!(
            self.text().contains(namespace(dialect)),
            "the body is not in the {dialect} namespace: {context}"
        );
        let parsed =
            parse(&self.body).unwrap_or_else(|e| panic!("not a TAXII message ({e}): {context}"));
        assert_eq!(parsed.dialect, dialect, "{context}");
        parsed.message
    }

    /// A status message of `status_type` answering `in_response_to`.
    #[track_caller]
    fn status(
        &self,
        http_status: u16,
        dialect: Dialect,
        status_type: StatusType,
        in_response_to: &str,
    ) -> StatusMessage {
        let message = self.taxii(http_status, dialect);
        let context = format!("{} -> {}", self.sent, self.text());
        assert_eq!(
            message.in_response_to.as_deref(),
            Some(in_response_to),
            "{context}"
        );
        let Body::Status(status) = message.body else {
            panic!("not a status message: {context}")
        };
        assert_eq!(status.status_type, status_type, "{context}");
        assert!(
            status
                .message
                .as_deref()
                .is_some_and(|m| !m.trim().is_empty()),
            "a refusal says why: {context}"
        );
        status
    }
}

/// One request over a fresh TCP connection. The body is written while the
/// response is read, so that a server answering before it has read all of a
/// large body is heard.
async fn send(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {address}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let sent = format!(
        "{method} {target} [{}] {}",
        headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect::<Vec<_>>()
            .join("; "),
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let (status, headers, body) = common::exchange(address, request).await;
    HttpReply {
        status,
        headers,
        body,
        sent,
    }
}

async fn post(address: SocketAddr, path: &str, dialect: Dialect, body: &[u8]) -> HttpReply {
    send(address, "POST", path, &headers(dialect), body).await
}

// --- What is stored ---------------------------------------------------------

/// Blocks a 1.1 poll of every pollable feed returns over HTTP.
async fn polled_blocks(address: SocketAddr) -> usize {
    let mut total = 0;
    for (path, feed) in [
        ("/feeds/public", "Public"),
        ("/feeds/pay", "Platinum"),
        ("/feeds/pay", "Gold"),
    ] {
        let reply = post(address, path, Dialect::V11, &poll(Dialect::V11, feed, None)).await;
        let Body::PollResponse(response) = reply.taxii(200, Dialect::V11).body else {
            panic!("a poll response: {}", reply.text())
        };
        assert_eq!(
            response.record_count.map(|c| c.count),
            Some(response.content_blocks.len() as u64)
        );
        total += response.content_blocks.len();
    }
    total
}

/// Stops the gateway and reads its store: the feeds that hold anything
/// (Silver cannot be polled over HTTP).
async fn filled_feeds(gateway: Gateway) -> Vec<&'static str> {
    let data_dir = gateway.config.server.data_dir.clone();
    gateway.stop().await.unwrap();
    let store = SqliteStore::open(&data_dir).await.unwrap();
    let mut filled = Vec::new();
    for feed in FEEDS {
        if store.latest_label(feed).await.unwrap().is_some() {
            filled.push(feed);
        }
    }
    filled
}

async fn assert_nothing_stored(gateway: Gateway) {
    assert_eq!(polled_blocks(gateway.local_addr).await, 0);
    assert_eq!(filled_feeds(gateway).await, Vec::<&str>::new());
}

// --- The tests --------------------------------------------------------------

/// The checks above can see what an accepted inbox message stores.
#[tokio::test]
async fn a_valid_inbox_message_is_stored_and_seen() {
    let gateway = common::start_default("bad-input-control").await;
    let address = gateway.local_addr;
    let reply = post(address, "/inbox", Dialect::V11, &inbox(Dialect::V11)).await;
    reply.status(200, Dialect::V11, StatusType::Success, ID_11);
    let reply = post(address, "/inbox", Dialect::V10, &inbox(Dialect::V10)).await;
    reply.status(200, Dialect::V10, StatusType::Success, ID_10);
    // Each message fills all four feeds.
    assert_eq!(polled_blocks(address).await, 6);
    assert_eq!(filled_feeds(gateway).await, FEEDS.to_vec());
}

fn billion_laughs() -> String {
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
    dtd
}

/// The codec's hostile documents, each with whether its message id can be
/// read before the attack is noticed.
fn hostile_documents(dialect: Dialect) -> Vec<(&'static str, Vec<u8>, bool)> {
    let stix_ns = match dialect {
        Dialect::Draft => "<STIX xmlns=\"http://stix.mitre.org\">",
        _ => "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\">",
    };
    let stix_end = match dialect {
        Dialect::Draft => "</STIX>",
        _ => "</stix:STIX_Package>",
    };
    let deep = format!(
        "{stix_ns}{}{}{stix_end}",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    );
    let valid = inbox(dialect);
    let one =
        |prolog: &str, payload: &[u8]| inbox_with(dialect, prolog, &[], &[(STIX_11, payload)]);
    let bad_id = {
        let text = String::from_utf8(valid.clone()).unwrap();
        let id = request_id(dialect);
        let mut bytes = Vec::new();
        let (head, tail) = text.split_once(id).unwrap();
        bytes.extend(head.as_bytes());
        bytes.extend(b"12\xff\xfe34");
        bytes.extend(tail.as_bytes());
        bytes
    };
    let root_at = valid
        .windows(5)
        .position(|w| w == b"<TAXI" || w == b"<t:In")
        .unwrap();
    vec![
        ("billion laughs", one(&billion_laughs(), b"&lol9;"), false),
        (
            "external entity",
            one(
                "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n",
                b"&e;",
            ),
            false,
        ),
        ("nesting 10,000 deep", one("", deep.as_bytes()), true),
        // The codec checks the encoding before it reads anything.
        (
            "invalid UTF-8 in the content",
            one("", b"caf\xc3\x28 \xff\xfe"),
            false,
        ),
        ("invalid UTF-8 in the message id", bad_id, false),
        (
            "truncated in the content",
            valid[..valid.len() - 40].to_vec(),
            true,
        ),
        (
            "truncated in the root's start tag",
            valid[..root_at + 12].to_vec(),
            false,
        ),
        ("empty", Vec::new(), false),
    ]
}

#[tokio::test]
async fn hostile_documents_are_bad_messages_and_store_nothing() {
    let gateway = common::start_default("bad-input-hostile").await;
    let address = gateway.local_addr;
    for dialect in DIALECTS {
        for (name, document, id_readable) in hostile_documents(dialect) {
            let reply = post(address, "/inbox", dialect, &document).await;
            // The draft reports parse errors as HTTP 400 with its error
            // message; 1.x answers every error in a 200.
            let http = if dialect == Dialect::Draft { 400 } else { 200 };
            let in_response_to = if id_readable {
                request_id(dialect)
            } else {
                "0"
            };
            let status = reply.status(http, dialect, StatusType::BadMessage, in_response_to);
            eprintln!("{dialect} {name}: {:?}", status.message);
        }
    }
    assert_nothing_stored(gateway).await;
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_413_and_stores_nothing() {
    let gateway = common::start_default("bad-input-size").await;
    let address = gateway.local_addr;
    let max = gateway.config.server.max_body_bytes;
    assert_eq!(max, 16 * 1024 * 1024);
    for dialect in DIALECTS {
        // A valid message, padded past the limit inside its content.
        let padding = vec![b' '; max];
        let mut payload = stix(dialect).to_vec();
        payload.extend(&padding);
        let document = inbox_with(dialect, "", &[], &[(STIX_11, &payload)]);
        assert!(document.len() > max);
        let reply = post(address, "/inbox", dialect, &document).await;
        // The id is not read: the body is refused before it is parsed.
        reply.status(413, dialect, StatusType::BadMessage, "0");
    }
    assert_nothing_stored(gateway).await;
}

#[tokio::test]
async fn header_errors_are_answered_in_the_requesters_dialect() {
    let gateway = common::start_default("bad-input-headers").await;
    let address = gateway.local_addr;
    for dialect in DIALECTS {
        let id = request_id(dialect);
        let (bad_request, unsupported_media) = if dialect == Dialect::Draft {
            (400, 415)
        } else {
            (200, 200)
        };
        let body = inbox(dialect);

        // No X-TAXII-Content-Type: the body is not declared a TAXII message.
        let missing = with(headers(dialect), "X-TAXII-Content-Type", None);
        let reply = send(address, "POST", "/inbox", &missing, &body).await;
        reply.status(bad_request, dialect, StatusType::BadMessage, id);

        // A binding nobody serves.
        let unknown = with(
            headers(dialect),
            "X-TAXII-Content-Type",
            Some("urn:example.org:message:json:1.0"),
        );
        let reply = send(address, "POST", "/inbox", &unknown, &body).await;
        reply.status(
            unsupported_media,
            dialect,
            StatusType::UnsupportedMessage,
            id,
        );

        // Content-Type text/plain.
        let plain = with(headers(dialect), "Content-Type", Some("text/plain"));
        let reply = send(address, "POST", "/inbox", &plain, &body).await;
        reply.status(bad_request, dialect, StatusType::BadMessage, id);
    }

    // The header names 1.0, the body is 1.1 (and the other way round): the
    // answer is in the dialect the header named, which the client reads.
    let reply = send(
        address,
        "POST",
        "/inbox",
        &headers(Dialect::V10),
        &inbox(Dialect::V11),
    )
    .await;
    reply.status(200, Dialect::V10, StatusType::BadMessage, &id_11_in_10());
    let reply = send(
        address,
        "POST",
        "/inbox",
        &headers(Dialect::V11),
        &inbox(Dialect::V10),
    )
    .await;
    reply.status(200, Dialect::V11, StatusType::BadMessage, ID_10);
    assert_nothing_stored(gateway).await;
}

#[tokio::test]
async fn the_https_binding_over_plain_http_is_unsupported_protocol() {
    let gateway = common::start_default("bad-input-protocol").await;
    let address = gateway.local_addr;
    for dialect in DIALECTS {
        let https = with(
            headers(dialect),
            "X-TAXII-Protocol",
            Some(protocol(dialect, true)),
        );
        let http = if dialect == Dialect::Draft { 400 } else { 200 };
        let reply = send(address, "POST", "/inbox", &https, &inbox(dialect)).await;
        reply.status(
            http,
            dialect,
            StatusType::UnsupportedProtocol,
            request_id(dialect),
        );
        let reply = send(
            address,
            "POST",
            "/feeds/pay",
            &https,
            &poll(dialect, "Gold", None),
        )
        .await;
        reply.status(
            http,
            dialect,
            StatusType::UnsupportedProtocol,
            request_id(dialect),
        );
    }
    assert_nothing_stored(gateway).await;
}

#[tokio::test]
async fn x_taxii_accept_chooses_the_answers_dialect() {
    let gateway = common::start_default("bad-input-accept").await;
    let address = gateway.local_addr;

    // A 1.1 client that reads only 1.0 is answered in 1.0.
    let only_10 = with(
        headers(Dialect::V11),
        "X-TAXII-Accept",
        Some("urn:taxii.mitre.org:message:xml:1.0"),
    );
    let request = poll(Dialect::V11, "Gold", None);
    let reply = send(address, "POST", "/feeds/pay", &only_10, &request).await;
    let answer = reply.taxii(200, Dialect::V10);
    assert!(
        matches!(answer.body, Body::PollResponse(_)),
        "{}",
        reply.text()
    );
    // 1.0 ids are digits: the 1.1 UUID id is echoed as its number.
    assert_eq!(answer.in_response_to, Some(id_11_in_10()));

    // So is its refusal.
    let request = poll(Dialect::V11, "Bronze", None);
    let reply = send(address, "POST", "/feeds/pay", &only_10, &request).await;
    let answer = reply.taxii(200, Dialect::V10);
    let Body::Status(status) = answer.body else {
        panic!("a status message: {}", reply.text())
    };
    assert_eq!(status.status_type, StatusType::NotFound);

    // Naming nothing served here: answered in the request's dialect.
    for dialect in FINALS {
        let nothing = with(
            headers(dialect),
            "X-TAXII-Accept",
            Some("urn:example.org:message:json:1.0 urn:example.org:message:cbor:2"),
        );
        let request = poll(dialect, "Gold", None);
        let reply = send(address, "POST", "/feeds/pay", &nothing, &request).await;
        let answer = reply.taxii(200, dialect);
        assert_eq!(answer.in_response_to.as_deref(), Some(request_id(dialect)));
        assert!(
            matches!(answer.body, Body::PollResponse(_)),
            "{}",
            reply.text()
        );
    }
    assert_nothing_stored(gateway).await;
}

#[tokio::test]
async fn polls_of_what_cannot_be_polled_are_not_found() {
    let gateway = common::start_default("bad-input-poll").await;
    let address = gateway.local_addr;
    for dialect in DIALECTS {
        let id = request_id(dialect);
        for (what, request) in [
            ("an unknown feed", poll(dialect, "Bronze", None)),
            (
                "an unknown subscription",
                poll(dialect, "Gold", Some("no-such-subscription")),
            ),
            ("push-only Silver", poll(dialect, "Silver", None)),
        ] {
            let reply = post(address, "/feeds/pay", dialect, &request).await;
            let status = reply.status(200, dialect, StatusType::NotFound, id);
            eprintln!("{dialect} {what}: {:?}", status.message);
        }
        // A feed served at another path is unknown here.
        let reply = post(
            address,
            "/feeds/public",
            dialect,
            &poll(dialect, "Gold", None),
        )
        .await;
        reply.status(200, dialect, StatusType::NotFound, id);
    }
    assert_nothing_stored(gateway).await;
}

#[tokio::test]
async fn inbox_destination_and_content_errors_store_nothing() {
    let gateway = common::start_default("bad-input-inbox").await;
    let address = gateway.local_addr;

    // A destination the inbox does not fill, alone or after one it does.
    for destinations in [&["Bronze"][..], &["Gold", "Bronze"][..]] {
        let request = inbox_with(
            Dialect::V11,
            "",
            destinations,
            &[(STIX_11, stix(Dialect::V11))],
        );
        let reply = post(address, "/inbox", Dialect::V11, &request).await;
        let status = reply.status(
            200,
            Dialect::V11,
            StatusType::DestinationCollectionError,
            ID_11,
        );
        let acceptable: Vec<&str> = status
            .details
            .iter()
            .filter(|d| d.name == "ACCEPTABLE_DESTINATION")
            .map(|d| d.value.as_str())
            .collect();
        assert_eq!(acceptable, FEEDS.to_vec(), "{}", reply.text());
    }

    // A content binding no feed takes, alone or after one they do.
    for dialect in DIALECTS {
        let unsupported: &[u8] = if dialect == Dialect::Draft {
            stix(dialect)
        } else {
            b"{\"json\": true}"
        };
        for blocks in [
            vec![(NOT_SERVED, unsupported)],
            vec![(STIX_11, stix(dialect)), (NOT_SERVED, unsupported)],
        ] {
            if dialect == Dialect::Draft && blocks.len() > 1 {
                continue; // the draft has one binding per message
            }
            let binding = if dialect == Dialect::Draft {
                "STIX_XML_9.9"
            } else {
                NOT_SERVED
            };
            let blocks: Vec<(&str, &[u8])> = blocks
                .into_iter()
                .map(|(b, p)| (if b == NOT_SERVED { binding } else { b }, p))
                .collect();
            let request = inbox_with(dialect, "", &[], &blocks);
            let reply = post(address, "/inbox", dialect, &request).await;
            let status = reply.status(
                200,
                dialect,
                StatusType::UnsupportedContent,
                request_id(dialect),
            );
            match dialect {
                Dialect::V11 => {
                    let supported: Vec<&str> = status
                        .details
                        .iter()
                        .filter(|d| d.name == "SUPPORTED_CONTENT")
                        .map(|d| d.value.as_str())
                        .collect();
                    assert!(supported.contains(&STIX_11), "{}", reply.text());
                    assert!(!supported.contains(&NOT_SERVED), "{}", reply.text());
                }
                _ => {
                    let detail = status.detail_text.unwrap_or_default();
                    assert!(detail.contains("1.1.1"), "{}", reply.text());
                }
            }
        }
    }
    assert_nothing_stored(gateway).await;
}

#[tokio::test]
async fn wrong_paths_and_methods_are_refused() {
    let gateway = common::start_default("bad-input-paths").await;
    let address = gateway.local_addr;
    for dialect in DIALECTS {
        let id = request_id(dialect);
        // A poll request at the inbox, which has no poll service.
        let reply = post(address, "/inbox", dialect, &poll(dialect, "Gold", None)).await;
        let status = reply.taxii(200, dialect);
        assert_eq!(status.in_response_to.as_deref(), Some(id));
        let Body::Status(status) = status.body else {
            panic!("a status message: {}", reply.text())
        };
        // 1.x has no UNSUPPORTED_SERVICE: its generic FAILURE says which.
        let expected = if dialect == Dialect::Draft {
            StatusType::UnsupportedService
        } else {
            StatusType::Failure
        };
        assert_eq!(status.status_type, expected, "{}", reply.text());
        assert!(
            status.message.unwrap_or_default().contains("/inbox"),
            "{}",
            reply.text()
        );
        // An inbox message at a poll address.
        let reply = post(address, "/feeds/pay", dialect, &inbox(dialect)).await;
        let Body::Status(status) = reply.taxii(200, dialect).body else {
            panic!("a status message: {}", reply.text())
        };
        assert_eq!(status.status_type, expected, "{}", reply.text());

        // No service at all at the path.
        let reply = post(address, "/feeds/nowhere", dialect, &inbox(dialect)).await;
        reply.status(404, dialect, StatusType::NotFound, "0");

        // PUT is no TAXII method.
        let reply = send(address, "PUT", "/inbox", &headers(dialect), &inbox(dialect)).await;
        assert_eq!(reply.header("Allow"), Some("GET, POST"));
        reply.status(405, dialect, StatusType::Failure, "0");
    }
    // Without TAXII headers, plain HTTP errors.
    let reply = send(address, "GET", "/nowhere", &[], b"").await;
    assert_eq!(reply.status, 404);
    let reply = send(address, "DELETE", "/inbox", &[], b"").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("Allow"), Some("GET, POST"));
    assert_nothing_stored(gateway).await;
}

#[tokio::test]
async fn a_draft_get_without_message_id_is_400() {
    let gateway = common::start_default("bad-input-get").await;
    let address = gateway.local_addr;
    let draft = headers(Dialect::Draft);
    for target in [
        "/?message_type=discovery_request",
        "/?message_type=discovery_request&message_id=",
        "/feeds/pay?message_type=feed_information_request",
        "/",
    ] {
        let reply = send(address, "GET", target, &draft, b"").await;
        assert_eq!(reply.status, 400, "{target}: {}", reply.text());
        assert!(
            reply.text().contains("message_"),
            "{target}: {}",
            reply.text()
        );
    }
    // The same with an id is answered.
    let reply = send(
        address,
        "GET",
        "/?message_type=discovery_request&message_id=a84798beffe840ee3722c893288bd3ab",
        &draft,
        b"",
    )
    .await;
    assert!(matches!(
        reply.taxii(200, Dialect::Draft).body,
        Body::DiscoveryResponse(_)
    ));
    assert_nothing_stored(gateway).await;
}
