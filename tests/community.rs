//! The seed's peer-to-peer community (section 3): a communal discovery
//! service (hosted by a taxiway) lists every member's inbox; each member
//! fans what its own users send out to every other member. Content from one
//! reaches the others once each, with the community's extended headers
//! untouched, and a member who joins is followed once the list is read again.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
const LABEL: &str = "http://sharinggroupcoordinator.com/ext-hdr#label";

struct Peer {
    name: &'static str,
    address: SocketAddr,
    dir: PathBuf,
}

impl Peer {
    fn new(name: &'static str) -> Peer {
        Peer {
            name,
            address: format!("127.0.0.1:{}", common::free_port())
                .parse()
                .unwrap(),
            dir: common::temp_dir(name),
        }
    }

    fn inbox(&self) -> String {
        format!("http://{}/inbox", self.address)
    }
}

async fn start(address: SocketAddr, dir: &Path, extra: &str) -> Gateway {
    let text = format!("{}\n{extra}", taxiway::config::DEFAULT_CONFIG);
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = address;
    config.server.data_dir = dir.to_owned();
    Gateway::start(config).await.expect("the gateway starts")
}

/// The directory: a taxiway whose /community lists the members' inboxes.
async fn directory(address: SocketAddr, dir: &Path, members: &[&Peer]) -> Gateway {
    let listed: String = members
        .iter()
        .map(|peer| {
            format!(
                "[[services.members]]\nkind = \"inbox\"\naddress = \"{}\"\ndialect = \"1.1\"\n",
                peer.inbox()
            )
        })
        .collect();
    start(
        address,
        dir,
        &format!(
            "[[services]]\nkind = \"discovery\"\npath = \"/community\"\nlist_local = false\n{listed}"
        ),
    )
    .await
}

/// A member: stores what its own users send in Gold and fans it out;
/// stores what members send, labelled Green, in Platinum.
async fn member(peer: &Peer, discovery: SocketAddr) -> Gateway {
    start(
        peer.address,
        &peer.dir,
        &format!(
            r#"
[gateway]
id = "{}"

[[egress]]
name = "community"
[egress.fan_out]
discovery = "http://{discovery}/community"
refresh_seconds = 1

[[routes]]
name = "share-own"
actions = ["store", {{ fan_out = "community" }}]
[routes.match]
relayed = false

# Taken only if the community's label travelled with the content.
[[routes]]
name = "green-from-members"
actions = [{{ store_in = "Platinum" }}]
[routes.match]
relayed = true
headers = {{ "{LABEL}" = "Green" }}
"#,
            peer.name
        ),
    )
    .await
}

async fn send(to: &Peer, marker: &str) {
    let body = format!(
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:{marker}\">\
         <t:Extended_Headers><t:Extended_Header name=\"{LABEL}\">Green</t:Extended_Header>\
         </t:Extended_Headers>\
         <t:Destination_Collection_Name>Gold</t:Destination_Collection_Name>\
         <t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>\
         <stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:{marker}\" \
         version=\"1.1.1\"/></t:Content></t:Content_Block></t:Inbox_Message>"
    );
    let (_, reply) = common::post_taxii(to.address, "/inbox", Dialect::V11, &body, None).await;
    assert!(
        matches!(reply.body, Body::Status(ref s) if s.status_type == StatusType::Success),
        "{reply:?}"
    );
}

/// How many times each package is in a member's feed.
async fn feed(peer: &Peer, feed: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for block in common::poll_blocks(peer.address, "/feeds/pay", feed).await {
        let content = block.content.as_str();
        let start = content.find("id=\"example:").unwrap() + "id=\"example:".len();
        let end = content[start..].find('"').unwrap() + start;
        *counts.entry(content[start..end].to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Everything a member holds: its own users' content and the members'.
async fn held(peer: &Peer) -> BTreeMap<String, usize> {
    let mut counts = feed(peer, "Gold").await;
    for (marker, n) in feed(peer, "Platinum").await {
        *counts.entry(marker).or_insert(0) += n;
    }
    counts
}

async fn wait_until_everyone_has(peers: &[&Peer], marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for peer in peers {
        while !held(peer).await.contains_key(marker) {
            assert!(
                Instant::now() < deadline,
                "{} never got {marker}",
                peer.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_from_one_member_reaches_every_other_once() {
    let (a, b, c) = (
        Peer::new("peer-a"),
        Peer::new("peer-b"),
        Peer::new("peer-c"),
    );
    let directory_address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let directory_dir = common::temp_dir("community-directory");
    // C has not joined yet.
    let listing = directory(directory_address, &directory_dir, &[&a, &b]).await;
    let gateways = [
        member(&a, directory_address).await,
        member(&b, directory_address).await,
        member(&c, directory_address).await,
    ];

    send(&a, "from-a").await;
    wait_until_everyone_has(&[&a, &b], "from-a").await;

    // C joins: the directory lists it from now on.
    listing.stop().await.unwrap();
    let listing = directory(directory_address, &directory_dir, &[&a, &b, &c]).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    send(&b, "from-b").await;
    send(&c, "from-c").await;
    wait_until_everyone_has(&[&a, &b, &c], "from-b").await;
    wait_until_everyone_has(&[&a, &b, &c], "from-c").await;

    // Time for an echo or a duplicate to land, then count.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for peer in [&a, &b] {
        let counts = held(peer).await;
        assert_eq!(
            counts,
            BTreeMap::from([
                ("from-a".to_owned(), 1),
                ("from-b".to_owned(), 1),
                ("from-c".to_owned(), 1)
            ]),
            "{}",
            peer.name
        );
    }
    assert_eq!(
        held(&c).await,
        BTreeMap::from([("from-b".to_owned(), 1), ("from-c".to_owned(), 1)]),
        "C joined after from-a was shared"
    );
    // Each member's own content in Gold; the others', labelled, in Platinum.
    assert_eq!(
        feed(&a, "Gold").await.keys().collect::<Vec<_>>(),
        ["from-a"]
    );
    assert_eq!(
        feed(&a, "Platinum").await.keys().collect::<Vec<_>>(),
        ["from-b", "from-c"]
    );
    for gateway in gateways {
        gateway.stop().await.unwrap();
    }
    listing.stop().await.unwrap();
}
