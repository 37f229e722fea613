//! ROLIE as a client, against a second taxiway. The poller reads a remote
//! collection: every entry of a collection larger than a page comes in
//! once, what is added later comes in at the next rounds, across a restart
//! of the reader, and nothing is taken in twice. The egress POSTs forwards
//! to a remote collection, each once and byte for byte.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;
use taxiway::store::{PollQuery, SqliteStore, Store};

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";

async fn fill(address: SocketAddr, first: usize, count: usize) {
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
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:fill-{first}\">\
         <t:Destination_Collection_Name>Public</t:Destination_Collection_Name>{blocks}\
         </t:Inbox_Message>"
    );
    let (_, reply) = common::post_taxii(address, "/inbox", Dialect::V11, &body, None).await;
    assert!(matches!(reply.body, Body::Status(ref s) if s.status_type == StatusType::Success));
}

async fn reader(dir: &Path, source: SocketAddr) -> Gateway {
    let text = format!(
        "{}\n[[rolie_pollers]]\nname = \"partner-public\"\n\
         url = \"http://{source}/rolie/feeds/Public\"\ninto = [\"Gold\"]\ninterval_seconds = 1\n",
        taxiway::config::DEFAULT_CONFIG
    );
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = dir.to_owned();
    Gateway::start(config).await.expect("the reader starts")
}

async fn gold_count(address: SocketAddr) -> usize {
    // The first 1.0 page holds up to 1,000 blocks: enough here.
    let (_, reply) = common::post_taxii(
        address,
        "/feeds/pay",
        Dialect::V10,
        "<t:Poll_Request xmlns:t=\"http://taxii.mitre.org/messages/taxii_xml_binding-1\" \
         message_id=\"1\" feed_name=\"Gold\"/>",
        Some(common::DEMO_AUTHORIZATION),
    )
    .await;
    match reply.body {
        Body::PollResponse(response) => response.content_blocks.len(),
        other => panic!("a poll response, not {other:?}"),
    }
}

async fn wait_for(address: SocketAddr, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while gold_count(address).await < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count}",
            gold_count(address).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many times each package is in the stopped reader's Gold.
async fn stored(dir: &Path) -> BTreeMap<usize, usize> {
    let store = SqliteStore::open(dir).await.unwrap();
    let page = store
        .poll(PollQuery {
            feed: "Gold".to_owned(),
            exclusive_begin: None,
            inclusive_end: None,
            bindings: Vec::new(),
            limit: 100_000,
        })
        .await
        .unwrap();
    store.close().await;
    let mut counts = BTreeMap::new();
    for block in &page.blocks {
        *counts
            .entry(common::package_number(&block.block))
            .or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_rolie_collection_comes_in_once_across_rounds_and_restarts() {
    let source = common::start_default("rolie-source").await;
    for first in (0..250).step_by(50) {
        fill(source.local_addr, first, 50).await;
    }
    let dir = common::temp_dir("rolie-reader");
    let sink = reader(&dir, source.local_addr).await;
    wait_for(sink.local_addr, 250).await;
    fill(source.local_addr, 250, 30).await;
    wait_for(sink.local_addr, 280).await;
    sink.stop().await.unwrap();

    fill(source.local_addr, 280, 20).await;
    let sink = reader(&dir, source.local_addr).await;
    wait_for(sink.local_addr, 300).await;
    // A few more rounds (unchanged pages, ETag), for a repeat to show.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    sink.stop().await.unwrap();
    source.stop().await.unwrap();
    let counts = stored(&dir).await;
    assert_eq!(
        counts.keys().copied().collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );
    assert!(counts.values().all(|n| *n == 1), "each once: {counts:?}");
}

/// The ROLIE egress POSTs what a route forwards to a remote collection (a
/// second taxiway's AtomPub) as entries with their content inline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_are_posted_to_a_remote_collection_once_each() {
    let receiver = common::start_default("rolie-egress-receiver").await;
    let text = format!(
        "{}\n[[egress]]\nname = \"partner\"\ninitial_backoff_ms = 100\n[egress.rolie]\n\
         url = \"http://{}/rolie/feeds/Gold\"\nusername = \"{}\"\npassword = \"{}\"\n\
         [[routes]]\nname = \"out\"\nactions = [\"store\", {{ forward = \"partner\" }}]\n",
        taxiway::config::DEFAULT_CONFIG,
        receiver.local_addr,
        common::DEMO_USER,
        common::DEMO_PASSWORD
    );
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir("rolie-egress-sender");
    let sender = Gateway::start(config).await.expect("the sender starts");
    fill(sender.local_addr, 0, 3).await;
    wait_for(receiver.local_addr, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = common::poll_blocks(sender.local_addr, "/feeds/public", "Public").await;
    let received = common::poll_blocks(receiver.local_addr, "/feeds/pay", "Gold").await;
    assert_eq!(received.len(), 3, "each once");
    for (sent, received) in sent.iter().zip(&received) {
        assert_eq!(
            sent.content.as_str(),
            received.content.as_str(),
            "byte for byte"
        );
        assert_eq!(received.binding.id, STIX);
    }
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}
