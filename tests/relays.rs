//! Relays over TAXII: a hub re-sends what one spoke sends to every other
//! spoke, never back to the sender; a ring of three gateways that each
//! forward everything to the next stops when a message comes round. Each
//! gateway stores each message once.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";

struct Node {
    id: String,
    address: SocketAddr,
    dir: PathBuf,
}

impl Node {
    fn new(id: &str) -> Node {
        Node {
            id: id.to_owned(),
            address: format!("127.0.0.1:{}", common::free_port())
                .parse()
                .unwrap(),
            dir: common::temp_dir(id),
        }
    }

    /// An egress to this node's inbox, in `dialect`.
    fn egress(&self, dialect: &str) -> String {
        format!(
            "[[egress]]\nname = \"{id}\"\npeers = [\"{id}\"]\n[egress.taxii]\n\
             url = \"http://{}/inbox\"\ndialect = \"{dialect}\"\n",
            self.address,
            id = self.id
        )
    }

    async fn start(&self, extra: &str) -> Gateway {
        let text = format!(
            "{}\n[gateway]\nid = \"{}\"\n{extra}",
            taxiway::config::DEFAULT_CONFIG,
            self.id
        );
        let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        config.server.listen = self.address;
        config.server.data_dir = self.dir.clone();
        Gateway::start(config).await.expect("the gateway starts")
    }

    async fn send(&self, marker: &str) {
        let body = format!(
            "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:{marker}\">\
             <t:Destination_Collection_Name>Gold</t:Destination_Collection_Name>\
             <t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>\
             <stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
             id=\"example:{marker}\" version=\"1.1.1\"/></t:Content></t:Content_Block>\
             </t:Inbox_Message>"
        );
        let (_, reply) =
            common::post_taxii(self.address, "/inbox", Dialect::V11, &body, None).await;
        assert!(
            matches!(reply.body, Body::Status(ref s) if s.status_type == StatusType::Success),
            "{reply:?}"
        );
    }

    /// How many times each package is in Gold.
    async fn gold(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for block in common::poll_blocks(self.address, "/feeds/pay", "Gold").await {
            let content = block.content.as_str();
            let start = content.find("id=\"example:").unwrap() + "id=\"example:".len();
            let end = content[start..].find('"').unwrap() + start;
            *counts.entry(content[start..end].to_owned()).or_insert(0) += 1;
        }
        counts
    }
}

async fn wait_for(nodes: &[&Node], markers: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in nodes {
        loop {
            let held = node.gold().await;
            if markers.iter().all(|m| held.contains_key(*m)) {
                break;
            }
            assert!(Instant::now() < deadline, "{} has only {held:?}", node.id);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn once_each(markers: &[&str]) -> BTreeMap<String, usize> {
    markers.iter().map(|m| ((*m).to_owned(), 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_relays_between_spokes_without_echo() {
    let hub = Node::new("hub");
    let spokes = [
        Node::new("spoke-1"),
        Node::new("spoke-2"),
        Node::new("spoke-3"),
    ];
    // The spokes speak different dialects to show the record survives each.
    let dialects = ["1.1", "1.0", "draft"];
    let hub_config: String = spokes
        .iter()
        .zip(dialects)
        .map(|(spoke, dialect)| spoke.egress(dialect))
        .chain(std::iter::once(
            "[[routes]]\nname = \"relay\"\nactions = [\"store\", { forward = \"spoke-1\" }, \
             { forward = \"spoke-2\" }, { forward = \"spoke-3\" }]\n"
                .to_owned(),
        ))
        .collect();
    let mut gateways = vec![hub.start(&hub_config).await];
    for spoke in &spokes {
        let config = format!(
            "{}\n[[routes]]\nname = \"up\"\nactions = [\"store\", {{ forward = \"hub\" }}]\n\
             [routes.match]\nrelayed = false\n",
            hub.egress("1.1")
        );
        gateways.push(spoke.start(&config).await);
    }

    spokes[0].send("from-spoke-1").await;
    spokes[2].send("from-spoke-3").await;
    hub.send("from-a-client-of-the-hub").await;
    let markers = ["from-spoke-1", "from-spoke-3", "from-a-client-of-the-hub"];
    let everyone: Vec<&Node> = std::iter::once(&hub).chain(spokes.iter()).collect();
    wait_for(&everyone, &markers).await;
    // Time for an echo or a duplicate to land, then count.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for node in &everyone {
        assert_eq!(node.gold().await, once_each(&markers), "{}", node.id);
    }
    for gateway in gateways {
        gateway.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_of_gateways_does_not_loop() {
    let ring = [
        Node::new("ring-1"),
        Node::new("ring-2"),
        Node::new("ring-3"),
    ];
    let mut gateways = Vec::new();
    for (n, node) in ring.iter().enumerate() {
        let next = &ring[(n + 1) % ring.len()];
        let config = format!(
            "{}\n[[routes]]\nname = \"around\"\nactions = [\"store\", {{ forward = \"{}\" }}]\n",
            next.egress("1.1"),
            next.id
        );
        gateways.push(node.start(&config).await);
    }
    ring[0].send("round-1").await;
    ring[1].send("round-2").await;
    let everyone: Vec<&Node> = ring.iter().collect();
    wait_for(&everyone, &["round-1", "round-2"]).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for node in &everyone {
        assert_eq!(
            node.gold().await,
            once_each(&["round-1", "round-2"]),
            "{}",
            node.id
        );
    }
    for gateway in gateways {
        gateway.stop().await.unwrap();
    }
}

/// An open gateway believes relay records only from its peers: a stranger
/// cannot have a message dropped by claiming it went through here already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_records_count_only_from_the_senders_named() {
    let node = Node::new("guarded");
    let gateway = node.start("[router]\nrelay_senders = [\"demo\"]\n").await;
    let claiming = |marker: &str| {
        format!(
            "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:{marker}\">\
             <t:Extended_Headers><t:Extended_Header name=\"{HOPS_HEADER}\">guarded\
             </t:Extended_Header></t:Extended_Headers>\
             <t:Destination_Collection_Name>Gold</t:Destination_Collection_Name>\
             <t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>\
             <stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
             id=\"example:{marker}\" version=\"1.1.1\"/></t:Content></t:Content_Block>\
             </t:Inbox_Message>"
        )
    };
    for (marker, authorization) in [
        ("from-a-stranger", None),
        ("from-the-peer", Some(common::DEMO_AUTHORIZATION)),
    ] {
        let (_, reply) = common::post_taxii(
            node.address,
            "/inbox",
            Dialect::V11,
            &claiming(marker),
            authorization,
        )
        .await;
        assert!(
            matches!(reply.body, Body::Status(ref s) if s.status_type == StatusType::Success),
            "{reply:?}"
        );
    }
    // The stranger's record was ignored: stored. The peer's said it had
    // been here: a loop, dropped.
    assert_eq!(node.gold().await, once_each(&["from-a-stranger"]));
    gateway.stop().await.unwrap();
}
