//! TAXII 1.1 multi-part poll results over real HTTP: a poll matching more
//! than a page is answered in parts of a result fixed when part 1 was
//! answered, fetched with Poll_Fulfillment; out-of-range parts and unknown
//! result ids are refused.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use taxiway::bindings::taxii_xml::parse;
use taxiway::config::Config;
use taxiway::core::*;
use taxiway::gateway::Gateway;
use taxiway::services::POLL_PAGE;

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const BINDING_11: &str = "urn:taxii.mitre.org:message:xml:1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
const FEED: &str = "Public";
const POLL_PATH: &str = "/feeds/public";

async fn post(address: SocketAddr, path: &str, body: &str) -> Message {
    post_as(address, path, None, body).await
}

async fn post_as(
    address: SocketAddr,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> Message {
    let mut headers = vec![
        ("Content-Type", "application/xml"),
        ("X-TAXII-Content-Type", BINDING_11),
        ("X-TAXII-Accept", BINDING_11),
        ("X-TAXII-Protocol", "urn:taxii.mitre.org:protocol:http:1.0"),
        ("X-TAXII-Services", "urn:taxii.mitre.org:services:1.1"),
    ];
    headers.extend(authorization.map(|value| ("Authorization", value)));
    let (status, _, body) = common::http(address, "POST", path, &headers, body.as_bytes()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let parsed = parse(&body)
        .unwrap_or_else(|e| panic!("not TAXII ({e}): {}", String::from_utf8_lossy(&body)));
    assert_eq!(parsed.dialect, Dialect::V11);
    parsed.message
}

/// Where a feed of the default scenario is polled, and as whom: Public by
/// anyone, the others by the demo account.
fn poll_service(feed: &str) -> (&'static str, Option<&'static str>) {
    if feed == FEED {
        (POLL_PATH, None)
    } else {
        ("/feeds/pay", Some(common::DEMO_AUTHORIZATION))
    }
}

/// Stores packages `first..first + count` in the feed, in one message.
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
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:inbox-{first}\">\
         <t:Destination_Collection_Name>{feed}</t:Destination_Collection_Name>{blocks}\
         </t:Inbox_Message>"
    );
    match post(address, "/inbox", &body).await.body {
        Body::Status(status) => assert_eq!(status.status_type, StatusType::Success, "{status:?}"),
        other => panic!("a status, not {other:?}"),
    }
}

async fn poll(address: SocketAddr, feed: &str) -> Message {
    let body = format!(
        "<t:Poll_Request xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:poll-1\" \
         collection_name=\"{feed}\"><t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type>\
         </t:Poll_Parameters></t:Poll_Request>"
    );
    let (path, authorization) = poll_service(feed);
    post_as(address, path, authorization, &body).await
}

async fn fulfil(address: SocketAddr, feed: &str, result_id: &str, part: u64) -> Message {
    let body = format!(
        "<t:Poll_Fulfillment xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:fulfil-{part}\" \
         collection_name=\"{feed}\" result_id=\"{result_id}\" result_part_number=\"{part}\"/>"
    );
    let (path, authorization) = poll_service(feed);
    post_as(address, path, authorization, &body).await
}

fn response(message: Message) -> PollResponse {
    match message.body {
        Body::PollResponse(response) => response,
        other => panic!("a poll response, not {other:?}"),
    }
}

fn refusal(message: Message) -> StatusMessage {
    match message.body {
        Body::Status(status) => status,
        other => panic!("a status message, not {other:?}"),
    }
}

/// The package numbers of a part, in order.
fn packages(response: &PollResponse) -> Vec<usize> {
    response
        .content_blocks
        .iter()
        .map(common::package_number)
        .collect()
}

fn labels(response: &PollResponse) -> Vec<Timestamp> {
    response
        .content_blocks
        .iter()
        .map(|block| block.timestamp_label.expect("a timestamp label"))
        .collect()
}

#[tokio::test]
async fn a_large_1_1_poll_is_answered_in_stable_parts() {
    assert_eq!(POLL_PAGE, 1000);
    let gateway = common::start_default("multipart").await;
    let address = gateway.local_addr;
    for message in 0..25 {
        fill(address, FEED, message * 100, 100).await;
    }

    let first = response(poll(address, FEED).await);
    assert_eq!(first.content_blocks.len(), 1000);
    assert_eq!(first.more, Some(true));
    assert_eq!(first.result_part_number, Some(1));
    let result_id = first.result_id.clone().expect("a result id");
    let end = first.inclusive_end.expect("an end label");

    // Content arriving after part 1 is not part of the result.
    fill(address, FEED, 2500, 100).await;

    let second = response(fulfil(address, FEED, &result_id, 2).await);
    let third = response(fulfil(address, FEED, &result_id, 3).await);
    assert_eq!(second.content_blocks.len(), 1000);
    assert_eq!(second.more, Some(true));
    assert_eq!(second.result_part_number, Some(2));
    assert_eq!(third.content_blocks.len(), 500);
    assert_eq!(third.more, Some(false));
    assert_eq!(third.result_part_number, Some(3));
    for part in [&second, &third] {
        assert_eq!(part.result_id.as_deref(), Some(result_id.as_str()));
        assert_eq!(part.feed_name.as_deref(), Some(FEED));
        assert_eq!(
            part.inclusive_end,
            Some(end),
            "every part carries the result's end"
        );
    }

    // Together: every block once, in label order, none of the later ones.
    let all: Vec<usize> = [&first, &second, &third]
        .into_iter()
        .flat_map(packages)
        .collect();
    assert_eq!(all, (0..2500).collect::<Vec<_>>());
    let all_labels: Vec<Timestamp> = [&first, &second, &third]
        .into_iter()
        .flat_map(labels)
        .collect();
    assert!(all_labels.windows(2).all(|pair| pair[0] < pair[1]));
    assert_eq!(all_labels.last(), Some(&end));

    // Any part may be asked for again, and is the same.
    let again = response(fulfil(address, FEED, &result_id, 2).await);
    assert_eq!(packages(&again), packages(&second));
    let first_again = response(fulfil(address, FEED, &result_id, 1).await);
    assert_eq!(packages(&first_again), packages(&first));

    // Beyond the last part.
    let beyond = refusal(fulfil(address, FEED, &result_id, 4).await);
    assert_eq!(beyond.status_type, StatusType::InvalidResponsePart);
    let max = beyond
        .details
        .iter()
        .find(|d| d.name == "MAX_PART_NUMBER")
        .expect("a MAX_PART_NUMBER detail");
    assert_eq!(max.value.as_str(), "3");

    // A result id that is not one of ours.
    for garbage in ["not-a-result", "taxiway-result-1.zz.1.2.", "urn:uuid:1234"] {
        let unknown = refusal(fulfil(address, FEED, garbage, 1).await);
        assert_eq!(unknown.status_type, StatusType::NotFound, "{garbage}");
        assert!(
            unknown.message.is_some_and(|m| m.contains("no result")),
            "{garbage}"
        );
    }

    // The next poll, from the result's end, gets only the later content.
    let body = format!(
        "<t:Poll_Request xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:poll-2\" \
         collection_name=\"{FEED}\"><t:Exclusive_Begin_Timestamp>{}</t:Exclusive_Begin_Timestamp>\
         <t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type></t:Poll_Parameters>\
         </t:Poll_Request>",
        end
    );
    let next = response(post(address, POLL_PATH, &body).await);
    assert_eq!(packages(&next), (2500..2600).collect::<Vec<_>>());
    assert_ne!(next.more, Some(true));

    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_result_id_of_another_feed_is_not_found_and_rights_still_hold() {
    let gateway = common::start_default("multipart-foreign").await;
    let address = gateway.local_addr;
    fill(address, FEED, 0, 10).await;
    // A well-formed result id naming Gold, presented for Public.
    let gold: String = "Gold".bytes().map(|b| format!("{b:02x}")).collect();
    let foreign = format!("taxiway-result-1.{gold}._.1000.");
    let unknown = refusal(fulfil(address, FEED, &foreign, 1).await);
    assert_eq!(unknown.status_type, StatusType::NotFound);

    // Gold is for pay: anonymous may not fetch its parts.
    let body = format!(
        "<t:Poll_Fulfillment xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:fulfil-gold\" \
         collection_name=\"Gold\" result_id=\"{foreign}\" result_part_number=\"1\"/>"
    );
    let refused = refusal(post(address, "/feeds/pay", &body).await);
    assert_eq!(refused.status_type, StatusType::Unauthorized);
    gateway.stop().await.unwrap();
}

/// The feed of the read-ahead test: the others poll Public, and the
/// metrics of every gateway of this test binary add up.
const READ_AHEAD_FEED: &str = "Gold";

/// How many parts of the feed's results read ahead were found as they
/// were (`used`) or changed (`stale`) when asked for.
async fn read_ahead(address: SocketAddr, outcome: &str) -> u64 {
    let (status, _, body) = common::http(address, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(body).unwrap();
    let labels = [
        format!("feed=\"{READ_AHEAD_FEED}\""),
        format!("outcome=\"{outcome}\""),
    ];
    metrics
        .lines()
        .find(|line| {
            line.starts_with("taxiway_poll_parts_read_ahead_total")
                && labels.iter().all(|label| line.contains(label.as_str()))
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// The next part is read while the client reads the one before; once a
/// block of it is removed meanwhile, what was read is stale and the part is
/// read afresh, without the block (which may have been removed for being
/// wrong or not to be shared).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_read_ahead_is_not_sent_once_a_block_of_it_is_removed() {
    let mut config = Config::default_scenario();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = common::temp_dir("multipart-read-ahead");
    for feed in config
        .feeds
        .iter_mut()
        .filter(|feed| feed.name == READ_AHEAD_FEED)
    {
        feed.editors = vec![common::DEMO_USER.to_owned()];
    }
    let gateway = Gateway::start(config).await.expect("the gateway starts");
    let address = gateway.local_addr;
    for message in 0..12 {
        fill(address, READ_AHEAD_FEED, message * 100, 100).await;
    }
    let stale = read_ahead(address, "stale").await;
    let used = read_ahead(address, "used").await;

    let first = response(poll(address, READ_AHEAD_FEED).await);
    assert_eq!(packages(&first), (0..1000).collect::<Vec<_>>());
    let result_id = first.result_id.clone().expect("a result id");
    // Part 2 is read ahead now; the removal comes after that read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let demo = [("Authorization", common::DEMO_AUTHORIZATION)];
    let collection = format!("/rolie/feeds/{READ_AHEAD_FEED}");
    let (status, _, page) = common::http(address, "GET", &collection, &demo, b"").await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    // The newest entry comes first: package 1199, in part 2.
    let newest = &page[page.find("<entry>").expect("an entry")..];
    let edit = &newest[..newest.find("rel=\"edit\"").expect("an edit link")];
    let href = &edit[edit.rfind("href=\"").expect("its address") + 6..];
    let member = &href[href.find("/rolie/").unwrap()..href.find('"').unwrap()];
    let headers = [
        ("Authorization", common::DEMO_AUTHORIZATION),
        ("If-Match", "*"),
    ];
    let (status, _, _) = common::http(address, "DELETE", member, &headers, b"").await;
    assert_eq!(status, 204, "{member} removed");

    let second = response(fulfil(address, READ_AHEAD_FEED, &result_id, 2).await);
    assert_eq!(packages(&second), (1000..1199).collect::<Vec<_>>());
    assert_eq!(second.more, Some(false));
    assert_eq!(read_ahead(address, "stale").await, stale + 1);
    assert_eq!(read_ahead(address, "used").await, used);

    // Unchanged, a part read ahead is what is sent: part 2 again, ahead
    // once part 1 is asked for again.
    let first_again = response(fulfil(address, READ_AHEAD_FEED, &result_id, 1).await);
    assert_eq!(packages(&first_again), packages(&first));
    let again = response(fulfil(address, READ_AHEAD_FEED, &result_id, 2).await);
    assert_eq!(packages(&again), packages(&second));
    assert_eq!(read_ahead(address, "used").await, used + 1);
    gateway.stop().await.unwrap();
}

/// cabby's taxii-poll follows a multi-part result with Poll_Fulfillment and
/// prints every block once. (The cabby release installed asks for parts until
/// one comes back empty, ignoring more="false", so it ends by asking for part
/// 4 and logs the INVALID_RESPONSE_PART the spec prescribes; cabby's PR #81
/// fixed that on its side.)
#[tokio::test]
async fn cabby_polls_every_part() {
    let gateway = common::start_default("multipart-cabby").await;
    let address = gateway.local_addr;
    for message in 0..25 {
        fill(address, FEED, message * 100, 100).await;
    }
    let args = [
        "--path",
        POLL_PATH,
        "--taxii-version",
        "1.1",
        "--collection",
        FEED,
    ];
    let text = common::cabby(address, "taxii-poll", args.map(str::to_owned).to_vec()).await;
    for n in [0, 999, 1000, 1999, 2000, 2499] {
        assert!(text.contains(&format!("\"example:p-{n}\"")), "p-{n}");
    }
    assert_eq!(text.matches("id=\"example:p-").count(), 2500);
    gateway.stop().await.unwrap();
}

/// TAXII 1.0 has no multi-part results: a page, continued from its end label.
#[tokio::test]
async fn taxii_1_0_still_pages_by_end_label() {
    let gateway = common::start_default("multipart-10").await;
    let address = gateway.local_addr;
    for message in 0..12 {
        fill(address, FEED, message * 100, 100).await;
    }
    let binding = "urn:taxii.mitre.org:message:xml:1.0";
    let headers = [
        ("Content-Type", "application/xml"),
        ("X-TAXII-Content-Type", binding),
        ("X-TAXII-Accept", binding),
        ("X-TAXII-Protocol", "urn:taxii.mitre.org:protocol:http:1.0"),
    ];
    let body = format!(
        "<t:Poll_Request xmlns:t=\"http://taxii.mitre.org/messages/taxii_xml_binding-1\" \
         message_id=\"31415926\" feed_name=\"{FEED}\"/>"
    );
    let (_, _, reply) = common::http(address, "POST", POLL_PATH, &headers, body.as_bytes()).await;
    let parsed = parse(&reply).expect("a TAXII message");
    assert_eq!(parsed.dialect, Dialect::V10);
    let page = response(parsed.message);
    assert_eq!(packages(&page), (0..1000).collect::<Vec<_>>());
    assert_eq!(page.result_id, None);
    assert_eq!(page.inclusive_end, labels(&page).last().copied());
    gateway.stop().await.unwrap();
}
