//! TAXII egress: routes forward what taxiway takes in to remote TAXII inbox
//! services, through the durable outbox: to a real OpenTAXII server in
//! TAXII 1.1 with its account, and to a second taxiway in the seed's draft,
//! which keeps the relay record and never stores a message twice.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::opentaxii::{self, OpenTaxii};
use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";

fn package(marker: &str) -> String {
    format!(
        "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-{marker}\" \
         version=\"1.1.1\"><stix:STIX_Header><stix:Title>{marker}</stix:Title></stix:STIX_Header>\
         </stix:STIX_Package>"
    )
}

fn inbox(id: &str, feed: &str, marker: &str) -> String {
    format!(
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"{id}\">\
         <t:Destination_Collection_Name>{feed}</t:Destination_Collection_Name>\
         <t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>{}</t:Content>\
         </t:Content_Block></t:Inbox_Message>",
        package(marker)
    )
}

async fn gateway(name: &str, extra: &str) -> Gateway {
    let text = format!("{}\n{extra}", taxiway::config::DEFAULT_CONFIG);
    let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir(name);
    Gateway::start(config).await.expect("the gateway starts")
}

async fn push(address: SocketAddr, id: &str, marker: &str) {
    let (_, reply) = common::post_taxii(
        address,
        "/inbox",
        Dialect::V11,
        &inbox(id, "Gold", marker),
        None,
    )
    .await;
    match reply.body {
        Body::Status(status) => assert_eq!(status.status_type, StatusType::Success, "{status:?}"),
        other => panic!("a status message, not {other:?}"),
    }
}

/// The titles of the packages in an OpenTAXII collection.
async fn opentaxii_titles(server: &OpenTaxii) -> Vec<String> {
    let request = format!(
        "<t:Poll_Request xmlns:t=\"{NS_11}\" message_id=\"poll\" collection_name=\"Gold\">\
         <t:Poll_Parameters allow_asynch=\"false\"><t:Response_Type>FULL</t:Response_Type>\
         </t:Poll_Parameters></t:Poll_Request>"
    );
    let mut headers = opentaxii::taxii_11_headers().to_vec();
    let authorization = server.basic_auth();
    headers.push(("Authorization", &authorization));
    let (status, _, reply) = common::http(
        server.address,
        "POST",
        opentaxii::POLL_PATH,
        &headers,
        request.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    let message = taxiway::bindings::taxii_xml::parse(&reply)
        .unwrap_or_else(|e| panic!("not TAXII ({e}): {}", String::from_utf8_lossy(&reply)))
        .message;
    let Body::PollResponse(response) = message.body else {
        panic!("a poll response, not {message:?}");
    };
    titles(&response.content_blocks)
}

fn titles(blocks: &[ContentBlock]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|block| {
            let content = block.content.as_str();
            let start = content.find("<stix:Title>")? + "<stix:Title>".len();
            let end = content[start..].find('<')? + start;
            Some(content[start..end].to_owned())
        })
        .collect()
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_reach_an_opentaxii_collection_once_each() {
    let server = OpenTaxii::start("egress-opentaxii").await;
    let gateway = gateway(
        "egress-to-opentaxii",
        &format!(
            r#"
[[egress]]
name = "partner"
[egress.taxii]
url = "http://{}{}"
dialect = "1.1"
collection = "Gold"
username = "{}"
password = "{}"

[[routes]]
name = "share-gold"
actions = ["store", {{ forward = "partner" }}]
[routes.match]
feed = ["Gold"]
"#,
            server.address,
            opentaxii::INBOX_PATH,
            opentaxii::USERNAME,
            opentaxii::PASSWORD
        ),
    )
    .await;
    let sent = ["first", "second", "third"];
    for (n, marker) in sent.iter().enumerate() {
        push(gateway.local_addr, &format!("urn:uuid:egress-{n}"), marker).await;
    }
    eventually("the forwards in OpenTAXII", || async {
        opentaxii_titles(&server).await.len() >= sent.len()
    })
    .await;
    // Time for a stray duplicate to arrive, then count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got = opentaxii_titles(&server).await;
    got.sort();
    let mut expected: Vec<String> = sent.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    assert_eq!(got, expected, "each forward once\n{}", server.log());
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_relay_keeps_its_record_and_stores_once() {
    let spoke = gateway("egress-spoke", "[gateway]\nid = \"spoke\"").await;
    let hub = gateway(
        "egress-hub",
        &format!(
            r#"
[gateway]
id = "hub"

[[egress]]
name = "spoke"
peers = ["spoke"]
[egress.taxii]
url = "http://{}/inbox"
dialect = "draft"

[[routes]]
name = "relay"
actions = ["store", {{ forward = "spoke" }}, {{ forward = "spoke" }}]
"#,
            spoke.local_addr
        ),
    )
    .await;
    push(hub.local_addr, "urn:uuid:relay-1", "relayed").await;
    let spoke_titles =
        || async { titles(&common::poll_blocks(spoke.local_addr, "/feeds/pay", "Gold").await) };
    eventually("the relayed message at the spoke", || async {
        !spoke_titles().await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(spoke_titles().await, ["relayed"], "stored once");

    // The same message again through another path (its relay record says
    // where it has been): the spoke remembers its origin id.
    let again = format!(
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:relay-1-copy\">\
         <t:Extended_Headers><t:Extended_Header name=\"{HOPS_HEADER}\">other-hub</t:Extended_Header>\
         <t:Extended_Header name=\"{ORIGIN_HEADER}\">urn:uuid:relay-1</t:Extended_Header>\
         </t:Extended_Headers><t:Destination_Collection_Name>Gold</t:Destination_Collection_Name>\
         <t:Content_Block><t:Content_Binding binding_id=\"{STIX}\"/><t:Content>{}</t:Content>\
         </t:Content_Block></t:Inbox_Message>",
        package("relayed")
    );
    let (_, reply) =
        common::post_taxii(spoke.local_addr, "/inbox", Dialect::V11, &again, None).await;
    match reply.body {
        Body::Status(status) => {
            assert_eq!(status.status_type, StatusType::Success);
            assert!(
                status
                    .message
                    .as_deref()
                    .unwrap_or("")
                    .contains("taken in before"),
                "{status:?}"
            );
        }
        other => panic!("a status, not {other:?}"),
    }
    assert_eq!(spoke_titles().await, ["relayed"], "still once");

    // What came through the spoke's own relay record back to the hub is a loop.
    let looped = again
        .replace("other-hub", "hub spoke")
        .replace("relay-1-copy", "loop");
    let (_, reply) =
        common::post_taxii(hub.local_addr, "/inbox", Dialect::V11, &looped, None).await;
    match reply.body {
        Body::Status(status) => assert_eq!(status.status_type, StatusType::Success),
        other => panic!("a status, not {other:?}"),
    }
    assert_eq!(
        titles(&common::poll_blocks(hub.local_addr, "/feeds/pay", "Gold").await),
        ["relayed"],
        "the loop stored nothing"
    );
    hub.stop().await.unwrap();
    spoke.stop().await.unwrap();
}
