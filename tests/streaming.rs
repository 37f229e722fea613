//! Large polls against the real binary: every dialect walks a feed much
//! larger than one response, page by page (1.1 part by part), with each
//! response within its byte budget and sent in chunks as the store is read;
//! and serving responses of 100 MB, the server's peak resident memory grows
//! by far less than one response.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use taxiway::core::*;
use taxiway::services::POLL_PAGE;
use taxiway::store::{NewBlock, SqliteStore, Store};

const NS_DRAFT: &str = "http://taxii.mitre.org/messages/xml/1";
const NS_10: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1";
const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
const FEED: &str = "Public";
const PATH: &str = "/feeds/public";
/// Two pages of blocks of 100 KB: 200 MB in the feed.
const BLOCKS: usize = 2 * POLL_PAGE;
const BLOCK_BYTES: usize = 100 * 1024;
/// The default `max_poll_response_bytes`.
const DEFAULT_BUDGET: usize = 32 * 1024 * 1024;

fn package(n: usize) -> String {
    let filler = "0123456789abcdef".repeat(BLOCK_BYTES / 16);
    format!(
        "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-{n}\" \
         version=\"1.1.1\"><stix:STIX_Header><stix:Description>{filler}</stix:Description>\
         </stix:STIX_Header></stix:STIX_Package>"
    )
}

/// Written through the store before a server starts, so that the server's
/// memory measures polls alone.
async fn fill(dir: &Path) {
    let store = SqliteStore::open(dir).await.expect("the store opens");
    for batch in 0..BLOCKS / 100 {
        let blocks = (batch * 100..(batch + 1) * 100)
            .map(|n| NewBlock {
                feed: FEED.to_owned(),
                binding: ContentBinding::new(STIX),
                content: XmlContent::Xml(package(n)),
                source_message_id: format!("fill-{batch}"),
            })
            .collect();
        store.append(blocks).await.expect("the blocks are stored");
    }
    store.close().await;
}

/// The peak resident set size of a process so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("a VmHWM line");
    let kilobytes: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a size in kB");
    kilobytes * 1024
}

fn poll_response(message: Message) -> PollResponse {
    match message.body {
        Body::PollResponse(response) => response,
        other => panic!("a poll response, not {other:?}"),
    }
}

/// The package numbers of a response's blocks, checking each is whole.
fn packages(response: &PollResponse) -> Vec<usize> {
    response
        .content_blocks
        .iter()
        .map(|block| {
            let n = common::package_number(block);
            assert_eq!(
                block.content.as_str(),
                package(n),
                "block {n} came back whole"
            );
            n
        })
        .collect()
}

/// What a walk over the feed saw.
#[derive(Debug, Default)]
struct Walk {
    packages: Vec<usize>,
    /// The packages of each response.
    responses: Vec<Vec<usize>>,
}

impl Walk {
    fn take(&mut self, headers: &[(String, String)], response: &PollResponse) {
        assert!(
            headers
                .iter()
                .any(|(name, value)| name == "transfer-encoding" && value == "chunked"),
            "a large response is sent as it is read: {headers:?}"
        );
        let taken = packages(response);
        self.packages.extend(&taken);
        self.responses.push(taken);
    }
}

/// Polls the whole feed in `dialect`, part by part or page by page.
async fn walk(address: SocketAddr, dialect: Dialect) -> Walk {
    let mut walk = Walk::default();
    match dialect {
        Dialect::V11 => {
            let request = format!(
                "<t:Poll_Request xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:poll\" \
                 collection_name=\"{FEED}\"><t:Poll_Parameters>\
                 <t:Response_Type>FULL</t:Response_Type></t:Poll_Parameters></t:Poll_Request>"
            );
            let (mut headers, reply) =
                common::post_taxii(address, PATH, dialect, &request, None).await;
            let mut part = poll_response(reply);
            loop {
                walk.take(&headers, &part);
                let count = part.record_count.as_ref().expect("a record count").count;
                assert_eq!(count, part.content_blocks.len() as u64);
                if part.more != Some(true) {
                    break;
                }
                let next = part.result_part_number.expect("a part number") + 1;
                let request = format!(
                    "<t:Poll_Fulfillment xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:fulfil-{next}\" \
                     collection_name=\"{FEED}\" result_id=\"{}\" result_part_number=\"{next}\"/>",
                    part.result_id.as_deref().expect("a result id")
                );
                let (next_headers, reply) =
                    common::post_taxii(address, PATH, dialect, &request, None).await;
                headers = next_headers;
                part = poll_response(reply);
                assert_eq!(part.result_part_number, Some(next));
            }
        }
        Dialect::V10 | Dialect::Draft => {
            let mut begin: Option<String> = None;
            loop {
                let request = if dialect == Dialect::V10 {
                    let begin = begin.as_deref().map_or(String::new(), |b| {
                        format!("<t:Exclusive_Begin_Timestamp>{b}</t:Exclusive_Begin_Timestamp>")
                    });
                    format!(
                        "<t:Poll_Request xmlns:t=\"{NS_10}\" message_id=\"{}\" \
                         feed_name=\"{FEED}\">{begin}</t:Poll_Request>",
                        walk.packages.len() + 1
                    )
                } else {
                    let begin = begin.as_deref().map_or(String::new(), |b| {
                        format!("<begin-timestamp>{b}</begin-timestamp>")
                    });
                    format!(
                        "<TAXII_PollRequest xmlns=\"{NS_DRAFT}\" message-id=\"{:x}\">\
                         <feed-name>{FEED}</feed-name>{begin}\
                         <content-binding>STIX_XML_1.1.1</content-binding></TAXII_PollRequest>",
                        walk.packages.len() + 1
                    )
                };
                let (headers, reply) =
                    common::post_taxii(address, PATH, dialect, &request, None).await;
                let page = poll_response(reply);
                if page.content_blocks.is_empty() {
                    break;
                }
                walk.take(&headers, &page);
                // Continue from the end label, as the seed advises: 1.0's
                // begin is exclusive, the draft's inclusive.
                let end = page.inclusive_end.expect("an end label");
                let after = if dialect == Dialect::V10 { 0 } else { 1_000 };
                begin = Some(end.shifted_nanos(after).to_string());
            }
        }
    }
    walk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_polls_come_in_bounded_pages_streamed_in_flat_memory() {
    let dir = common::temp_dir("streaming");
    fill(&dir).await;
    let everything: Vec<usize> = (0..BLOCKS).collect();

    // The default budget: pages of at most 32 MiB of content, each full up
    // to the block that would pass it.
    let address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let server = common::spawn_binary(address, &dir, "default.log").await;
    let bytes = |packages: &[usize]| packages.iter().map(|n| package(*n).len()).sum::<usize>();
    for dialect in [Dialect::V11, Dialect::V10, Dialect::Draft] {
        let walk = walk(address, dialect).await;
        assert_eq!(
            walk.packages, everything,
            "{dialect}: every block once, in order"
        );
        assert!(
            walk.responses.len() > 2,
            "{dialect}: {} responses",
            walk.responses.len()
        );
        for (n, pair) in walk.responses.windows(2).enumerate() {
            let size = bytes(&pair[0]);
            let with_next = size + package(pair[1][0]).len();
            assert!(
                size <= DEFAULT_BUDGET,
                "{dialect}: response {n} holds {size} bytes"
            );
            assert!(
                with_next > DEFAULT_BUDGET,
                "{dialect}: response {n} could hold more"
            );
        }
        let last = walk.responses.last().unwrap();
        assert!(
            bytes(last) <= DEFAULT_BUDGET,
            "{dialect}: the last response"
        );
    }
    drop(server);

    // With a budget that lets a response hold a whole 1,000-block page
    // (100 MB), the server still holds only a chunk of it at a time.
    let config = common::default_config_with(&dir, &["max_poll_response_bytes = 1073741824"]);
    let address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    let arguments = [std::ffi::OsStr::new("--config"), config.as_os_str()];
    let server = common::spawn_binary_with(address, &dir, "large.log", &arguments).await;
    let pid = server.0.id();
    let before = peak_rss(pid);
    let walk = walk(address, Dialect::V11).await;
    assert_eq!(walk.packages, everything);
    let sizes: Vec<usize> = walk.responses.iter().map(Vec::len).collect();
    assert_eq!(sizes, [POLL_PAGE, POLL_PAGE], "1,000-block parts");
    let after = peak_rss(pid);
    let response_bytes = bytes(&walk.responses[0]) as u64;
    eprintln!(
        "peak RSS {} MB before, {} MB after serving {} MB responses",
        before >> 20,
        after >> 20,
        response_bytes >> 20
    );
    assert!(
        after.saturating_sub(before) < response_bytes / 2,
        "the server's peak memory grew by {} MB serving {} MB responses: \
         it held a response rather than streaming it",
        after.saturating_sub(before) >> 20,
        response_bytes >> 20
    );
}
