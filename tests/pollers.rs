//! Pollers: taxiway polls remote TAXII poll services on a schedule and takes
//! in what they return, continuing from the last end label: from a real
//! OpenTAXII over several rounds and a restart, and from another taxiway
//! whose TAXII 1.1 results come in parts. Nothing is missed or taken twice.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::opentaxii::{self, OpenTaxii};
use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;
use taxiway::store::{PollQuery, SqliteStore, Store};

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";

fn blocks(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| {
            format!(
                "<t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>\
                 <stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
                 id=\"example:p-{n}\" version=\"1.1.1\"/></t:Content></t:Content_Block>"
            )
        })
        .collect()
}

fn inbox(first: usize, count: usize, feed: &str) -> String {
    format!(
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:fill-{first}\">\
         <t:Destination_Collection_Name>{feed}</t:Destination_Collection_Name>{}\
         </t:Inbox_Message>",
        blocks(first, count)
    )
}

async fn fill_opentaxii(server: &OpenTaxii, first: usize, count: usize) {
    let mut headers = opentaxii::taxii_11_headers().to_vec();
    let authorization = server.basic_auth();
    headers.push(("Authorization", &authorization));
    let body = inbox(first, count, "Gold");
    let (status, _, reply) = common::http(
        server.address,
        "POST",
        opentaxii::INBOX_PATH,
        &headers,
        body.as_bytes(),
    )
    .await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(status == 200 && reply.contains("SUCCESS"), "{reply}");
}

async fn gateway(dir: &Path, extra: &str) -> Gateway {
    let text = format!("{}\n{extra}", taxiway::config::DEFAULT_CONFIG);
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = dir.to_owned();
    Gateway::start(config).await.expect("the gateway starts")
}

/// How many times each package is in a feed of a stopped gateway's store.
async fn stored_packages(dir: &Path, feed: &str) -> BTreeMap<usize, usize> {
    let store = SqliteStore::open(dir).await.unwrap();
    let page = store
        .poll(PollQuery {
            feed: feed.to_owned(),
            exclusive_begin: None,
            inclusive_end: None,
            bindings: Vec::new(),
            limit: 1_000_000,
        })
        .await
        .unwrap();
    store.close().await;
    let mut counts = BTreeMap::new();
    for stored in &page.blocks {
        *counts
            .entry(common::package_number(&stored.block))
            .or_insert(0) += 1;
    }
    counts
}

/// Package numbers in a running gateway's Gold feed, by a 1.1 poll.
async fn gold_packages(address: SocketAddr) -> Vec<usize> {
    common::poll_blocks(address, "/feeds/pay", "Gold")
        .await
        .iter()
        .map(common::package_number)
        .collect()
}

async fn wait_for_count(address: SocketAddr, count: usize) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = gold_packages(address).await;
        if got.len() >= count {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} packages arrived: {got:?}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_takes_an_opentaxii_collection_once_across_rounds_and_a_restart() {
    let server = OpenTaxii::start("poller-opentaxii").await;
    let dir = common::temp_dir("poller-sink");
    let poller = format!(
        r#"
[[pollers]]
name = "partner-gold"
url = "http://{}{}"
dialect = "1.1"
feed = "Gold"
interval_seconds = 1
username = "{}"
password = "{}"
"#,
        server.address,
        opentaxii::POLL_PATH,
        opentaxii::USERNAME,
        opentaxii::PASSWORD
    );
    fill_opentaxii(&server, 0, 3).await;
    let sink = gateway(&dir, &poller).await;
    assert_eq!(wait_for_count(sink.local_addr, 3).await, [0, 1, 2]);
    fill_opentaxii(&server, 3, 3).await;
    assert_eq!(wait_for_count(sink.local_addr, 6).await, [0, 1, 2, 3, 4, 5]);
    sink.stop().await.unwrap();

    // Published while the poller was down: fetched after the restart.
    fill_opentaxii(&server, 6, 2).await;
    let sink = gateway(&dir, &poller).await;
    let got = wait_for_count(sink.local_addr, 8).await;
    // Two more rounds, to give a duplicate every chance to appear.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after = gold_packages(sink.local_addr).await;
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    assert_eq!(after, got, "nothing fetched twice");
    sink.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_follows_the_parts_of_a_large_1_1_result() {
    let source = gateway(&common::temp_dir("poller-source"), "").await;
    for first in (0..2_500).step_by(500) {
        let (_, reply) = common::post_taxii(
            source.local_addr,
            "/inbox",
            Dialect::V11,
            &inbox(first, 500, "Public"),
            None,
        )
        .await;
        assert!(matches!(reply.body, Body::Status(ref s) if s.status_type == StatusType::Success));
    }
    let dir = common::temp_dir("poller-parts");
    let sink = gateway(
        &dir,
        &format!(
            r#"
[[pollers]]
name = "source-public"
url = "http://{}/feeds/public"
dialect = "1.1"
feed = "Public"
into = ["Gold"]
interval_seconds = 1
"#,
            source.local_addr
        ),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The first 1.1 part of the sink's own Gold holds at most 1,000.
        let (_, reply) = common::post_taxii(
            sink.local_addr,
            "/feeds/pay",
            Dialect::V10,
            &format!(
                "<t:Poll_Request xmlns:t=\"http://taxii.mitre.org/messages/taxii_xml_binding-1\" \
                 message_id=\"1\" feed_name=\"Gold\"><t:Exclusive_Begin_Timestamp>{}\
                 </t:Exclusive_Begin_Timestamp></t:Poll_Request>",
                "2000-01-01T00:00:00Z"
            ),
            Some(common::DEMO_AUTHORIZATION),
        )
        .await;
        let Body::PollResponse(first_page) = reply.body else {
            panic!("a poll response");
        };
        if first_page.content_blocks.len() == 1_000 {
            break;
        }
        assert!(Instant::now() < deadline, "the poller did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Enough rounds for every part, then one more for a stray repeat.
    tokio::time::sleep(Duration::from_secs(3)).await;
    sink.stop().await.unwrap();
    source.stop().await.unwrap();
    let counts = stored_packages(&dir, "Gold").await;
    assert_eq!(counts.len(), 2_500, "every package");
    assert!(counts.values().all(|n| *n == 1), "each once: {counts:?}");
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..2_500).collect::<Vec<_>>()
    );
}
