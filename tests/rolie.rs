//! The ROLIE repository over HTTP (read side): feedparser walks every page
//! of a large collection once; a block pushed by cabby through TAXII is an
//! entry whose content URL serves the payload byte for byte; the service
//! document shows an identity only its collections, and a collection
//! answers 401 with a challenge or 403; conditional GETs answer 304 until
//! something changes.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde_json::Value;
use taxiway::bindings::rolie::{self, Limits};
use taxiway::config::{Config, IdentityConfig};
use taxiway::core::*;
use taxiway::gateway::Gateway;

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";

/// The default scenario, with a second account "other" that may read
/// nothing for pay.
async fn start(name: &str) -> Gateway {
    let mut config = Config::default_scenario();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir(name);
    let hash = config.identities[0].password_hash.clone();
    config.identities.push(IdentityConfig {
        name: "other".into(),
        password_hash: hash,
        certificate_subject: None,
    });
    Gateway::start(config).await.expect("the gateway starts")
}

async fn fill(address: SocketAddr, feed: &str, first: usize, count: usize) {
    let blocks: String = (first..first + count)
        .map(|n| {
            format!(
                "<t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>\
                 <stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
                 id=\"example:p-{n}\" version=\"1.1.1\"/></t:Content></t:Content_Block>"
            )
        })
        .collect();
    let body = format!(
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:fill-{feed}-{first}\">\
         <t:Destination_Collection_Name>{feed}</t:Destination_Collection_Name>{blocks}\
         </t:Inbox_Message>"
    );
    let (_, reply) = common::post_taxii(address, "/inbox", Dialect::V11, &body, None).await;
    assert!(
        matches!(reply.body, Body::Status(ref s) if s.status_type == StatusType::Success),
        "{reply:?}"
    );
}

async fn get(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    common::http(address, "GET", path, headers, b"").await
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// feedparser's walk of a collection, following `next` links.
async fn walk(url: String, auth: Option<&str>) -> Value {
    let python = common::peers_bin("python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/rolie/walk.py");
    let mut args = vec![script.to_owned(), url];
    if let Some(auth) = auth {
        args.extend(["--auth".to_owned(), auth.to_owned()]);
    }
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(&args)
            .output()
            .expect("the feedparser walk runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'feedparser'"),
        "feedparser is missing from .peers: run scripts/setup"
    );
    assert!(output.status.success(), "the walk failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).expect("the walk prints JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedparser_reads_every_page_of_a_large_collection_once() {
    let gateway = start("rolie-pages").await;
    let address = gateway.local_addr;
    for first in (0..250).step_by(50) {
        fill(address, "Public", first, 50).await;
    }
    // The service document names the collection.
    let (status, headers, body) = get(address, "/rolie/servicedocument", &[]).await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("application/atomsvc+xml")
    );
    let document = rolie::read_service_document(&body, &Limits::default()).unwrap();
    let public = document.workspaces[0]
        .collections
        .iter()
        .find(|c| c.title == "Public")
        .expect("Public in the service document");
    assert_eq!(public.information_type.as_deref(), Some("indicator"));

    let walked = walk(public.href.clone(), None).await;
    let pages = walked["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3, "{walked}");
    for page in pages {
        assert_eq!(page["bozo"], false, "{page}");
    }
    let ids: Vec<&str> = walked["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&&str> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (250, 250), "every entry once");
    for link in ["service", "self", "first", "last", "next"] {
        assert!(walked["links"][link].is_string(), "{link}: {walked}");
    }
    // Newest first: the first entry of the first page is the last stored.
    let first_entry = &walked["entries"][0];
    let src = first_entry["content_src"].as_str().unwrap();
    let path = &src[src.find("/rolie/").unwrap()..];
    let (status, _, payload) = get(address, path, &[]).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&payload).contains("example:p-249"));

    // Content arriving while a client walks does not shift the pages.
    let second = walked["pages"][1]["url"].as_str().unwrap().to_owned();
    fill(address, "Public", 250, 10).await;
    let again = walk(second, None).await;
    assert_eq!(again["pages"].as_array().unwrap().len(), 2);
    assert_eq!(
        again["entries"][0]["id"], walked["entries"][100]["id"],
        "the second page starts where it did"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_pushed_by_cabby_is_an_entry_serving_its_payload() {
    let gateway = start("rolie-cabby").await;
    let address = gateway.local_addr;
    let dir = common::temp_dir("rolie-cabby-files");
    let file = dir.join("package.xml");
    std::fs::write(
        &file,
        "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-cabby\" \
         version=\"1.1.1\"><stix:STIX_Header><stix:Title>pushed by cabby</stix:Title>\
         </stix:STIX_Header></stix:STIX_Package>",
    )
    .unwrap();
    let pushed = common::cabby(
        address,
        "taxii-push",
        [
            "--path",
            "/inbox",
            "--taxii-version",
            "1.1",
            "--content-file",
            file.to_str().unwrap(),
            "--binding",
            STIX,
            "--dest",
            "Gold",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect(),
    )
    .await;
    assert!(
        pushed.contains("Content block successfully pushed"),
        "{pushed}"
    );

    let auth = format!("{}:{}", common::DEMO_USER, common::DEMO_PASSWORD);
    let walked = walk(format!("http://{address}/rolie/feeds/Gold"), Some(&auth)).await;
    let entries = walked["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{walked}");
    assert_eq!(entries[0]["content_type"], "application/xml");
    let src = entries[0]["content_src"].as_str().unwrap();
    let path = &src[src.find("/rolie/").unwrap()..];
    let demo = [("Authorization", common::DEMO_AUTHORIZATION)];
    let (status, headers, payload) = get(address, path, &demo).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/xml"));
    // Byte for byte what taxiway received (and a TAXII poll returns).
    let polled = common::poll_blocks(address, "/feeds/pay", "Gold").await;
    assert_eq!(payload, polled[0].content.as_str().as_bytes());
    assert!(String::from_utf8_lossy(&payload).contains("pushed by cabby"));

    // The entry on its own names its collection and information type.
    let self_link = entries[0]["self"].as_str().unwrap();
    let (status, headers, body) = get(
        address,
        &self_link[self_link.find("/rolie/").unwrap()..],
        &demo,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .contains("type=entry")
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("rel=\"collection\""), "{text}");
    assert!(text.contains(rolie::INFORMATION_TYPE_SCHEME), "{text}");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn an_identity_sees_and_reads_only_its_collections() {
    let gateway = start("rolie-auth").await;
    let address = gateway.local_addr;
    let titles = |body: &[u8]| -> Vec<String> {
        rolie::read_service_document(body, &Limits::default())
            .unwrap()
            .workspaces[0]
            .collections
            .iter()
            .map(|c| c.title.clone())
            .collect()
    };
    let (_, _, anonymous) = get(address, "/rolie/servicedocument", &[]).await;
    assert_eq!(titles(&anonymous), ["Public"]);
    let demo = [("Authorization", common::DEMO_AUTHORIZATION)];
    let (_, _, all) = get(address, "/rolie/servicedocument", &demo).await;
    assert_eq!(titles(&all), ["Public", "Platinum", "Gold", "Silver"]);
    let other = common::basic("other", common::DEMO_PASSWORD);
    let (_, _, others) = get(
        address,
        "/rolie/servicedocument",
        &[("Authorization", &other)],
    )
    .await;
    assert_eq!(titles(&others), ["Public"]);

    let (status, headers, _) = get(address, "/rolie/feeds/Gold", &[]).await;
    assert_eq!(status, 401);
    assert!(
        header(&headers, "www-authenticate")
            .unwrap()
            .starts_with("Basic ")
    );
    let (status, _, _) = get(address, "/rolie/feeds/Gold", &[("Authorization", &other)]).await;
    assert_eq!(status, 403);
    let (status, _, _) = get(address, "/rolie/feeds/Gold", &demo).await;
    assert_eq!(status, 200);
    let wrong = common::basic(common::DEMO_USER, "not-the-password");
    let (status, headers, _) =
        get(address, "/rolie/feeds/Public", &[("Authorization", &wrong)]).await;
    assert_eq!(status, 401);
    assert!(header(&headers, "www-authenticate").is_some());
    let (status, _, body) = get(address, "/rolie/feeds/Bronze", &demo).await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = get(address, "/rolie/feeds/Public/entries/1/content", &[]).await;
    assert_eq!(status, 404, "no such entry yet");
    let (status, _, _) = get(address, "/rolie/feeds/Public?before=soon", &[]).await;
    assert_eq!(status, 400);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_conditional_get_answers_304_until_the_collection_changes() {
    let gateway = start("rolie-conditional").await;
    let address = gateway.local_addr;
    fill(address, "Public", 0, 3).await;
    let (status, headers, _) = get(address, "/rolie/feeds/Public", &[]).await;
    assert_eq!(status, 200);
    let etag = header(&headers, "etag").unwrap().to_owned();
    let modified = header(&headers, "last-modified").unwrap().to_owned();
    let (status, _, body) = get(address, "/rolie/feeds/Public", &[("If-None-Match", &etag)]).await;
    assert_eq!((status, body.len()), (304, 0));
    let (status, _, _) = get(
        address,
        "/rolie/feeds/Public",
        &[("If-Modified-Since", &modified)],
    )
    .await;
    assert_eq!(status, 304);

    fill(address, "Public", 3, 1).await;
    let (status, headers, body) =
        get(address, "/rolie/feeds/Public", &[("If-None-Match", &etag)]).await;
    assert_eq!(status, 200, "changed");
    assert_ne!(header(&headers, "etag"), Some(etag.as_str()));
    let entries = String::from_utf8(body).unwrap().matches("<entry>").count();
    assert_eq!(
        entries, 4,
        "the page is rendered anew, not served from before"
    );
    gateway.stop().await.unwrap();
}

fn posted_entry(content: &str) -> String {
    format!(
        "<entry xmlns=\"http://www.w3.org/2005/Atom\"><id>urn:uuid:posted-1</id>\
         <title>posted</title><updated>2026-11-23T10:00:00Z</updated>\
         <category scheme=\"urn:ietf:params:rolie:category:information-type\" term=\"indicator\"/>\
         {content}</entry>"
    )
}

const POSTED_PACKAGE: &str = "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
     id=\"example:p-posted\" version=\"1.1.1\"><stix:STIX_Header><stix:Title>posted through \
     AtomPub</stix:Title></stix:STIX_Header></stix:STIX_Package>";

async fn post_entry(
    address: SocketAddr,
    feed: &str,
    authorization: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(authorization) = authorization {
        headers.push(("Authorization", authorization));
    }
    let path = format!("/rolie/feeds/{feed}");
    let (status, headers, body) = common::http(address, "POST", &path, &headers, body).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Gold, writable by the demo account only.
async fn start_writable(name: &str) -> Gateway {
    let mut config = Config::default_scenario();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir(name);
    let hash = config.identities[0].password_hash.clone();
    config.identities.push(IdentityConfig {
        name: "other".into(),
        password_hash: hash,
        certificate_subject: None,
    });
    for feed in &mut config.feeds {
        feed.writers = vec![common::DEMO_USER.to_owned()];
    }
    Gateway::start(config).await.expect("the gateway starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_posted_through_atompub_reaches_taxii_pollers_and_subscribers() {
    let gateway = start_writable("rolie-post").await;
    let address = gateway.local_addr;
    let subscriber = common::receiver::Receiver::start(std::time::Duration::ZERO).await;
    common::subscribe_push(address, "Gold", &subscriber.url()).await;

    let entry = posted_entry(&format!(
        "<content type=\"application/xml\">{POSTED_PACKAGE}</content>"
    ));
    let (status, headers, body) = post_entry(
        address,
        "Gold",
        Some(common::DEMO_AUTHORIZATION),
        "application/atom+xml;type=entry",
        entry.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let location = header(&headers, "location").expect("a Location").to_owned();
    assert!(header(&headers, "etag").is_some());
    assert!(body.contains("rel=\"collection\""), "{body}");
    let demo = [("Authorization", common::DEMO_AUTHORIZATION)];
    let (status, _, _) = get(
        address,
        &location[location.find("/rolie/").unwrap()..],
        &demo,
    )
    .await;
    assert_eq!(status, 200);

    let polled = common::cabby(
        address,
        "taxii-poll",
        [
            "--path",
            "/feeds/pay",
            "--taxii-version",
            "1.1",
            "--collection",
            "Gold",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .collect(),
    )
    .await;
    assert!(polled.contains("posted through AtomPub"), "{polled}");
    assert!(polled.contains("1 blocks polled"), "{polled}");
    let blocks = common::poll_blocks(address, "/feeds/pay", "Gold").await;
    assert_eq!(blocks[0].content.as_str(), POSTED_PACKAGE, "byte for byte");
    assert_eq!(blocks[0].binding.id, STIX);
    let pushed = subscriber.wait_for(1).await;
    assert!(String::from_utf8_lossy(&pushed[0].body).contains("example:p-posted"));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn bad_atompub_writes_get_a_4xx_that_says_why_and_store_nothing() {
    let gateway = start_writable("rolie-bad-posts").await;
    let address = gateway.local_addr;
    let demo = Some(common::DEMO_AUTHORIZATION);
    let entry_type = "application/atom+xml;type=entry";
    let inline = format!("<content type=\"application/xml\">{POSTED_PACKAGE}</content>");
    let iodef = "<content type=\"application/xml\"><IODEF-Document \
         xmlns=\"urn:ietf:params:xml:ns:iodef-2.0\" version=\"2.0\"><Incident>\
         <IncidentID name=\"csirt.example.com\">189493</IncidentID></Incident>\
         </IODEF-Document></content>";
    let other = common::basic("other", common::DEMO_PASSWORD);
    let oversized = posted_entry(&format!(
        "<content type=\"text/plain\">{}</content>",
        "x".repeat(17 * 1024 * 1024)
    ));
    let cases: Vec<(&str, Option<&str>, &str, String, u16)> = vec![
        (
            "malformed Atom",
            demo,
            entry_type,
            "<entry><title>".to_owned(),
            400,
        ),
        ("no content", demo, entry_type, posted_entry(""), 400),
        (
            "an unknown information type",
            demo,
            entry_type,
            posted_entry(&inline).replace("term=\"indicator\"", "term=\"weather\""),
            400,
        ),
        (
            "another collection's information type",
            demo,
            entry_type,
            posted_entry(&inline).replace("term=\"indicator\"", "term=\"incident\""),
            400,
        ),
        (
            "content by reference",
            demo,
            entry_type,
            posted_entry("<content type=\"application/xml\" src=\"http://10.0.0.1/secret\"/>"),
            400,
        ),
        (
            "a data model the collection does not accept",
            demo,
            entry_type,
            posted_entry(iodef).replace("term=\"indicator\"", "term=\"incident\""),
            400,
        ),
        (
            "IODEF into an indicator collection",
            demo,
            entry_type,
            posted_entry(iodef),
            415,
        ),
        (
            "not an entry",
            demo,
            "application/json",
            "{}".to_owned(),
            415,
        ),
        ("an oversized body", demo, entry_type, oversized, 413),
        (
            "no credentials",
            None,
            entry_type,
            posted_entry(&inline),
            401,
        ),
        (
            "no right",
            Some(other.as_str()),
            entry_type,
            posted_entry(&inline),
            403,
        ),
    ];
    for (what, authorization, content_type, body, expected) in cases {
        let (status, headers, text) = post_entry(
            address,
            "Gold",
            authorization,
            content_type,
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, expected, "{what}: {text}");
        assert!(!text.trim().is_empty(), "{what}: a body that says why");
        if expected == 401 {
            assert!(header(&headers, "www-authenticate").is_some(), "{what}");
        }
    }
    assert!(
        common::poll_blocks(address, "/feeds/pay", "Gold")
            .await
            .is_empty(),
        "nothing stored"
    );
    gateway.stop().await.unwrap();
}

/// What an AtomPub POST brings goes through the routes like any inbox
/// message: here an AMQP route publishes it (real RabbitMQ, read by pika).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amqp_route_sees_an_entry_posted_through_atompub() {
    const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    let (exchange, reader) = (
        format!("taxiway-test-rolie-out-{}", std::process::id()),
        format!("taxiway-test-rolie-out-reader-{}", std::process::id()),
    );
    common::pika::bind(BROKER, &exchange, "topic", &reader, "#").await;
    let text = format!(
        "{}\n[[egress]]\nname = \"queue\"\n[egress.amqp]\nuri = \"{BROKER}\"\n\
         exchange = \"{exchange}\"\n\
         [[routes]]\nname = \"atompub-out\"\nactions = [\"store\", {{ forward = \"queue\" }}]\n\
         [routes.match]\nadapter = [\"rolie_http\"]\n",
        taxiway::config::DEFAULT_CONFIG
    );
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir("rolie-amqp");
    let gateway = Gateway::start(config).await.expect("the gateway starts");
    let entry = posted_entry(&format!(
        "<content type=\"application/xml\">{POSTED_PACKAGE}</content>"
    ));
    let (status, _, body) = post_entry(
        gateway.local_addr,
        "Gold",
        Some(common::DEMO_AUTHORIZATION),
        "application/atom+xml;type=entry",
        entry.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let messages = common::pika::get(BROKER, &reader, 1, 30).await;
    gateway.stop().await.unwrap();
    common::pika::delete(BROKER, &[&reader], &[&exchange]).await;
    let [message] = messages.as_slice() else {
        panic!("one message, not {messages:?}");
    };
    assert_eq!(message["headers"]["x-taxii-source-dialect"], "rolie");
    assert_eq!(message["headers"]["x-taxii-collection"], "Gold");
    let published = String::from_utf8(common::pika::body_of(message)).unwrap();
    assert!(published.contains(POSTED_PACKAGE), "{published}");
}
