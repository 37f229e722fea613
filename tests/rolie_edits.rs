//! The ROLIE repository's writes beyond a POST, and the CSIRT extension:
//! an editor replaces and removes entries only with a current `If-Match`,
//! and the TAXII side sees each change; a bare payload is a media entry;
//! IODEF collections carry the CSIRT purpose and restriction categories,
//! a category document and configured link relations, and an entry's
//! restriction decides who reads it; `/` leads a ROLIE client to the
//! service document while staying TAXII discovery for POST.

mod common;

use std::net::SocketAddr;

use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;

const ENTRY_TYPE: &str = "application/atom+xml;type=entry";

fn package(version: &str) -> String {
    format!(
        "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
         id=\"example:p-edited\" version=\"1.1.1\"><stix:STIX_Header><stix:Title>{version}\
         </stix:Title></stix:STIX_Header></stix:STIX_Package>"
    )
}

fn entry_of(information_type: &str, content: &str) -> String {
    format!(
        "<entry xmlns=\"http://www.w3.org/2005/Atom\"><id>urn:uuid:{}</id>\
         <title>edited</title><updated>2026-11-23T10:00:00Z</updated>\
         <category scheme=\"urn:ietf:params:rolie:category:information-type\" \
         term=\"{information_type}\"/>\
         <content type=\"application/xml\">{content}</content></entry>",
        uuid_like(content)
    )
}

/// A distinct id per content, so that no entry is taken for a repeat.
fn uuid_like(content: &str) -> String {
    let sum: u64 = content.bytes().fold(1469598103934665603, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(1099511628211)
    });
    format!("{sum:016x}-0000-4000-8000-000000000000")
}

async fn send(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let (status, headers, body) = common::http(address, method, path, headers, body).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn path_of(url: &str) -> &str {
    &url[url.find("/rolie/").expect("a repository URL")..]
}

/// The default scenario with "other" (same password as demo); every feed
/// writable by both, editable by demo only; and `more` added.
async fn start(name: &str, more: &str) -> Gateway {
    let hash = Config::default_scenario().identities[0]
        .password_hash
        .clone();
    let text = format!(
        "extends = \"default\"\n[[identities]]\nname = \"other\"\npassword_hash = \"{hash}\"\n{more}"
    );
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir(name);
    for feed in &mut config.feeds {
        feed.writers = vec![common::DEMO_USER.to_owned(), "other".to_owned()];
        feed.editors = vec![common::DEMO_USER.to_owned()];
    }
    Gateway::start(config).await.expect("the gateway starts")
}

/// A request refused: why, its headers, and the status expected.
type Refused<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_replaces_and_removes_entries_with_if_match_and_taxii_sees_it() {
    let gateway = start("rolie-edits", "").await;
    let address = gateway.local_addr;
    let demo = ("Authorization", common::DEMO_AUTHORIZATION);
    let other = common::basic("other", common::DEMO_PASSWORD);
    let other = ("Authorization", other.as_str());
    let entry_type = ("Content-Type", ENTRY_TYPE);

    let first = entry_of("indicator", &package("first version"));
    let (status, headers, body) = send(
        address,
        "POST",
        "/rolie/feeds/Gold",
        &[demo, entry_type],
        first.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let member = path_of(header(&headers, "location").unwrap()).to_owned();
    let created_etag = header(&headers, "etag").unwrap().to_owned();
    assert!(body.contains("rel=\"edit\""), "the member URI: {body}");
    let (_, headers, _) = send(address, "GET", "/rolie/feeds/Gold", &[demo], b"").await;
    let page_etag = header(&headers, "etag").unwrap().to_owned();

    let second = entry_of("indicator", &package("second version"));
    let refused: [Refused; 5] = [
        ("no If-Match", vec![demo, entry_type], 428),
        (
            "another entry's version",
            vec![demo, entry_type, ("If-Match", "\"999999-1\"")],
            412,
        ),
        (
            "a writer who is no editor",
            vec![other, entry_type, ("If-Match", created_etag.as_str())],
            403,
        ),
        (
            "no credentials",
            vec![entry_type, ("If-Match", created_etag.as_str())],
            401,
        ),
        (
            "a malformed entry",
            vec![demo, entry_type, ("If-Match", created_etag.as_str())],
            400,
        ),
    ];
    for (what, headers, expected) in refused {
        let body = if expected == 400 {
            "<entry>"
        } else {
            second.as_str()
        };
        let (status, _, text) = send(address, "PUT", &member, &headers, body.as_bytes()).await;
        assert_eq!(status, expected, "{what}: {text}");
        assert!(!text.trim().is_empty(), "{what}: says why");
    }
    let (_, _, content) = send(address, "GET", &format!("{member}/content"), &[demo], b"").await;
    assert_eq!(content, package("first version"), "nothing changed");

    let if_match = ("If-Match", created_etag.as_str());
    let (status, headers, body) = send(
        address,
        "PUT",
        &member,
        &[demo, entry_type, if_match],
        second.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let replaced_etag = header(&headers, "etag").unwrap().to_owned();
    assert_ne!(replaced_etag, created_etag, "a new version");
    let (_, _, content) = send(address, "GET", &format!("{member}/content"), &[demo], b"").await;
    assert_eq!(content, package("second version"), "byte for byte");
    let (status, _, text) = send(
        address,
        "PUT",
        &member,
        &[demo, entry_type, if_match],
        first.as_bytes(),
    )
    .await;
    assert_eq!(status, 412, "a stale version loses no update: {text}");
    for path in [member.clone(), format!("{member}/content")] {
        for (tag, expected) in [(replaced_etag.as_str(), 304), (created_etag.as_str(), 200)] {
            let (status, _, _) =
                send(address, "GET", &path, &[demo, ("If-None-Match", tag)], b"").await;
            assert_eq!(status, expected, "{path} with If-None-Match {tag}");
        }
    }
    let (status, _, _) = send(
        address,
        "GET",
        "/rolie/feeds/Gold",
        &[demo, ("If-None-Match", page_etag.as_str())],
        b"",
    )
    .await;
    assert_eq!(status, 200, "the collection changed");
    let blocks = common::poll_blocks(address, "/feeds/pay", "Gold").await;
    let polled: Vec<&str> = blocks.iter().map(|b| b.content.as_str()).collect();
    assert_eq!(
        polled,
        [package("second version")],
        "TAXII polls the new content, once"
    );

    let (status, _, text) = send(address, "DELETE", &member, &[demo, if_match], b"").await;
    assert_eq!(status, 412, "{text}");
    let (status, _, text) =
        send(address, "DELETE", &member, &[other, ("If-Match", "*")], b"").await;
    assert_eq!(status, 403, "{text}");
    let (status, _, text) = send(
        address,
        "DELETE",
        &member,
        &[demo, ("If-Match", replaced_etag.as_str())],
        b"",
    )
    .await;
    assert_eq!(status, 204, "{text}");
    for path in [member.clone(), format!("{member}/content")] {
        let (status, _, _) = send(address, "GET", &path, &[demo], b"").await;
        assert_eq!(status, 404, "{path} is gone");
    }
    let (_, _, page) = send(address, "GET", "/rolie/feeds/Gold", &[demo], b"").await;
    assert!(!page.contains("<entry>"), "{page}");
    assert!(
        common::poll_blocks(address, "/feeds/pay", "Gold")
            .await
            .is_empty(),
        "gone from the TAXII feed too"
    );
    let (status, _, _) = send(address, "DELETE", &member, &[demo, ("If-Match", "*")], b"").await;
    assert_eq!(status, 404);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_bare_payload_is_a_media_entry_and_bad_ones_store_nothing() {
    let gateway = start("rolie-media", "").await;
    let address = gateway.local_addr;
    let demo = ("Authorization", common::DEMO_AUTHORIZATION);
    let payload = package("posted bare");
    let document = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{payload}\n");
    let (status, headers, body) = send(
        address,
        "POST",
        "/rolie/feeds/Gold",
        &[demo, ("Content-Type", "application/xml"), ("Slug", "bare")],
        document.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let member = path_of(header(&headers, "location").unwrap()).to_owned();
    let (_, _, content) = send(address, "GET", &format!("{member}/content"), &[demo], b"").await;
    assert_eq!(content, payload, "the document's root element on");

    let foreign_category = entry_of("indicator", &package("categorised")).replace(
        "<content",
        "<category scheme=\"urn:example:sector\" term=\"energy\"/><content",
    );
    let bad: [(&str, &str, String, u16); 4] = [
        (
            "malformed XML",
            "application/xml",
            format!("{payload}<oops"),
            400,
        ),
        (
            "two roots",
            "application/xml",
            format!("{payload}{payload}"),
            400,
        ),
        (
            "a media type no binding has",
            "application/pdf",
            payload.clone(),
            415,
        ),
        (
            "a category the collection does not take",
            ENTRY_TYPE,
            foreign_category,
            400,
        ),
    ];
    for (what, content_type, body, expected) in bad {
        let (status, _, text) = send(
            address,
            "POST",
            "/rolie/feeds/Gold",
            &[demo, ("Content-Type", content_type)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, expected, "{what}: {text}");
        assert!(!text.trim().is_empty(), "{what}: says why");
    }
    let blocks = common::poll_blocks(address, "/feeds/pay", "Gold").await;
    assert_eq!(blocks.len(), 1, "only the good one is stored");
    gateway.stop().await.unwrap();
}

const INCIDENTS: &str = r#"
[[feeds]]
name = "Incidents"
description = "Incidents of the consortium"
content_bindings = ["urn:ietf:params:xml:ns:iodef-2.0"]
readers = ["demo", "other"]
[[feeds.categories]]
scheme = "urn:ietf:params:rolie:category:csirt:iodef:purpose"
term = "mitigation"
[[feeds.entry_links]]
rel = "history"
href = "https://history.example/{feed}/{csirt_id}"
[[feeds.entry_links]]
rel = "indicators"
href = "https://indicators.example/{entry}"
[feeds.restrictions]
private = ["demo"]
[[services]]
kind = "poll"
path = "/feeds/incidents"
feeds = ["Incidents"]
[[services]]
kind = "feed_management"
path = "/feeds/incidents"
feeds = ["Incidents"]
"#;

/// The blocks of a TAXII 1.1 poll of Incidents, and of a push subscription
/// of `inbox` to it, as `authorization`.
async fn incidents_taxii(address: SocketAddr, authorization: &str, request: &str) -> Body {
    let (_, reply) = common::post_taxii(
        address,
        "/feeds/incidents",
        Dialect::V11,
        request,
        Some(authorization),
    )
    .await;
    reply.body
}

const T11: &str = "xmlns:t=\"http://taxii.mitre.org/messages/taxii_xml_binding-1.1\"";

fn incident(id: &str, restriction: &str) -> String {
    format!(
        "<IODEF-Document xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\" version=\"2.0\">\
         <Incident purpose=\"reporting\" restriction=\"{restriction}\">\
         <IncidentID name=\"csirt.example.com\">{id}</IncidentID></Incident></IODEF-Document>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iodef_collections_carry_csirt_categories_and_restrictions_decide_readers() {
    let gateway = start("rolie-iodef", INCIDENTS).await;
    let address = gateway.local_addr;
    let demo = ("Authorization", common::DEMO_AUTHORIZATION);
    let other = common::basic("other", common::DEMO_PASSWORD);
    let other = ("Authorization", other.as_str());
    let inbox = common::receiver::Receiver::start(std::time::Duration::ZERO).await;
    let subscribe = format!(
        "<t:Subscription_Management_Request {T11} message_id=\"urn:uuid:s\" action=\"SUBSCRIBE\" \
         collection_name=\"Incidents\"><t:Subscription_Parameters><t:Response_Type>FULL\
         </t:Response_Type></t:Subscription_Parameters><t:Push_Parameters>\
         <t:Protocol_Binding>urn:taxii.mitre.org:protocol:http:1.0</t:Protocol_Binding>\
         <t:Address>{}</t:Address><t:Message_Binding>urn:taxii.mitre.org:message:xml:1.1\
         </t:Message_Binding></t:Push_Parameters></t:Subscription_Management_Request>",
        inbox.url()
    );
    let subscribed = incidents_taxii(address, other.1, &subscribe).await;
    assert!(
        matches!(subscribed, Body::SubscriptionManagementResponse(_)),
        "{subscribed:?}"
    );
    let mut members = Vec::new();
    for (id, restriction) in [("1001", "private"), ("1002", "public")] {
        let entry = entry_of("incident", &incident(id, restriction));
        let (status, headers, body) = send(
            address,
            "POST",
            "/rolie/feeds/Incidents",
            &[demo, ("Content-Type", ENTRY_TYPE)],
            entry.as_bytes(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        members.push(path_of(header(&headers, "location").unwrap()).to_owned());
    }

    let (_, _, services) = send(address, "GET", "/rolie/servicedocument", &[demo], b"").await;
    let purpose =
        "scheme=\"urn:ietf:params:rolie:category:csirt:iodef:purpose\" term=\"mitigation\"";
    let restriction =
        "scheme=\"urn:ietf:params:rolie:category:csirt:iodef:restriction\" term=\"default\"";
    assert!(services.contains(purpose), "configured purpose: {services}");
    assert!(
        services.contains(restriction),
        "default restriction: {services}"
    );
    assert!(
        services.contains("/rolie/feeds/Incidents/categories\""),
        "{services}"
    );
    let (status, headers, categories) = send(
        address,
        "GET",
        "/rolie/feeds/Incidents/categories",
        &[demo],
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("application/atomcat+xml")
    );
    for wanted in ["term=\"incident\"", purpose, restriction] {
        assert!(categories.contains(wanted), "{wanted}: {categories}");
    }

    let (_, _, page) = send(address, "GET", "/rolie/feeds/Incidents", &[demo], b"").await;
    assert_eq!(page.matches("<entry>").count(), 2, "{page}");
    assert!(
        page.contains(purpose) && page.contains(restriction),
        "feed categories: {page}"
    );
    let private_entry = "scheme=\"urn:ietf:params:rolie:category:csirt:iodef:restriction\" \
         term=\"private\"";
    assert!(
        page.contains(private_entry),
        "the entry's own restriction: {page}"
    );
    assert!(
        page.contains("term=\"reporting\""),
        "the entry's own purpose: {page}"
    );
    assert!(
        page.contains("https://history.example/Incidents/csirt.example.com1001"),
        "a configured link with the CSIRT id: {page}"
    );
    let number = members[0].rsplit('/').next().unwrap();
    assert!(
        page.contains(&format!(
            "rel=\"indicators\" href=\"https://indicators.example/{number}\""
        )),
        "{page}"
    );

    let (_, _, page) = send(address, "GET", "/rolie/feeds/Incidents", &[other], b"").await;
    assert_eq!(
        page.matches("<entry>").count(),
        1,
        "other reads the public one: {page}"
    );
    assert!(!page.contains("1001"), "{page}");
    for path in [members[0].clone(), format!("{}/content", members[0])] {
        let (status, _, _) = send(address, "GET", &path, &[other], b"").await;
        assert_eq!(
            status, 404,
            "{path}: a private entry is not revealed to other"
        );
        let (status, _, _) = send(address, "GET", &path, &[demo], b"").await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _, _) = send(address, "GET", &members[1], &[other], b"").await;
    assert_eq!(status, 200);

    // The same over TAXII: polls and pushes leave out what other may not read.
    let poll = format!(
        "<t:Poll_Request {T11} message_id=\"urn:uuid:p\" collection_name=\"Incidents\">\
         <t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type></t:Poll_Parameters>\
         </t:Poll_Request>"
    );
    for (who, expected) in [(demo.1, vec!["1001", "1002"]), (other.1, vec!["1002"])] {
        let Body::PollResponse(response) = incidents_taxii(address, who, &poll).await else {
            panic!("a poll response");
        };
        let polled: Vec<bool> = expected
            .iter()
            .map(|id| {
                response
                    .content_blocks
                    .iter()
                    .any(|b| b.content.as_str().contains(id))
            })
            .collect();
        assert!(
            polled.iter().all(|found| *found),
            "{expected:?} in {response:?}"
        );
        assert_eq!(
            response.content_blocks.len(),
            expected.len(),
            "{response:?}"
        );
    }
    let pushed = inbox.wait_for(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let pushed_all = inbox.all();
    assert_eq!(pushed_all.len(), 1, "the private incident is withheld");
    let body = String::from_utf8_lossy(&pushed[0].body);
    assert!(body.contains("1002") && !body.contains("1001"), "{body}");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn the_forward_slash_resource_leads_to_the_service_document() {
    let gateway = start("rolie-slash", "").await;
    let address = gateway.local_addr;
    let (status, headers, _) = send(address, "GET", "/", &[], b"").await;
    assert_eq!(status, 303);
    let location = header(&headers, "location").unwrap();
    assert!(location.ends_with("/rolie/servicedocument"), "{location}");
    let (status, _, services) = send(address, "GET", path_of(location), &[], b"").await;
    assert_eq!(status, 200);
    assert!(services.contains("<service"), "{services}");

    let discovery = "<taxii_11:Discovery_Request \
         xmlns:taxii_11=\"http://taxii.mitre.org/messages/taxii_xml_binding-1.1\" \
         message_id=\"urn:uuid:slash\"/>";
    let (_, reply) = common::post_taxii(address, "/", Dialect::V11, discovery, None).await;
    assert!(
        matches!(reply.body, Body::DiscoveryResponse(_)),
        "POST / is still TAXII discovery: {reply:?}"
    );
    gateway.stop().await.unwrap();
}

/// Restrictions hold in every part of a multi-part result, the parts read
/// ahead included: what is read ahead is shared by whoever asks for the
/// part next, and is filtered for that identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restrictions_hold_in_every_part_of_a_result_read_ahead_or_not() {
    let inbox = "[[services]]\nkind = \"inbox\"\npath = \"/feeds/incidents/inbox\"\n\
                 feeds = [\"Incidents\"]\n";
    let gateway = start("rolie-iodef-parts", &format!("{INCIDENTS}{inbox}")).await;
    let address = gateway.local_addr;
    let demo = common::DEMO_AUTHORIZATION;
    let other = common::basic("other", common::DEMO_PASSWORD);
    // Every third incident private: 500 of 1,500.
    let blocks: String = (0..1500)
        .map(|n| {
            let restriction = if n % 3 == 0 { "private" } else { "public" };
            format!(
                "<t:Content_Block><t:Content_Binding binding_id=\"urn:ietf:params:xml:ns:iodef-2.0\"/>\
                 <t:Content>{}</t:Content></t:Content_Block>",
                incident(&format!("incident-{n}-"), restriction)
            )
        })
        .collect();
    let message = format!(
        "<t:Inbox_Message {T11} message_id=\"urn:uuid:incidents\">\
         <t:Destination_Collection_Name>Incidents</t:Destination_Collection_Name>{blocks}\
         </t:Inbox_Message>"
    );
    let (_, reply) = common::post_taxii(
        address,
        "/feeds/incidents/inbox",
        Dialect::V11,
        &message,
        Some(demo),
    )
    .await;
    assert!(
        matches!(&reply.body, Body::Status(s) if s.status_type == StatusType::Success),
        "{reply:?}"
    );

    let used = || async {
        let (_, _, metrics) = send(address, "GET", "/metrics", &[], b"").await;
        metrics
            .lines()
            .find(|line| {
                line.starts_with("taxiway_poll_parts_read_ahead_total")
                    && line.contains("feed=\"Incidents\"")
                    && line.contains("outcome=\"used\"")
            })
            .and_then(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let poll = format!(
        "<t:Poll_Request {T11} message_id=\"urn:uuid:p\" collection_name=\"Incidents\">\
         <t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type></t:Poll_Parameters>\
         </t:Poll_Request>"
    );
    for (who, private_seen) in [(other.as_str(), 0), (demo, 500)] {
        let Body::PollResponse(first) = incidents_taxii(address, who, &poll).await else {
            panic!("a poll response");
        };
        assert_eq!(first.more, Some(true));
        let result_id = first.result_id.clone().expect("a result id");
        let before = used().await;
        let fulfil = format!(
            "<t:Poll_Fulfillment {T11} message_id=\"urn:uuid:f\" collection_name=\"Incidents\" \
             result_id=\"{result_id}\" result_part_number=\"2\"/>"
        );
        let Body::PollResponse(second) = incidents_taxii(address, who, &fulfil).await else {
            panic!("a poll response");
        };
        assert_eq!(used().await, before + 1, "part 2 was read ahead");
        let contents: Vec<&str> = [&first, &second]
            .into_iter()
            .flat_map(|part| part.content_blocks.iter().map(|b| b.content.as_str()))
            .collect();
        let private = contents
            .iter()
            .filter(|c| c.contains("restriction=\"private\""))
            .count();
        assert_eq!(private, private_seen, "private incidents read");
        assert_eq!(contents.len(), 1000 + private_seen, "public ones: 1,000");
        assert!(
            second
                .content_blocks
                .iter()
                .any(|b| b.content.as_str().contains("incident-1499-")),
            "part 2 holds the last"
        );
    }
    gateway.stop().await.unwrap();
}
