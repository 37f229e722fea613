//! The OpenTAXII harness (tests/common/opentaxii.rs) runs a real server:
//! cabby pushes a STIX 1.1.1 package into its `Gold` collection over TAXII
//! 1.1, a raw Poll_Request gets it back, and its poll bounds behave as the
//! harness documents them.

mod common;

use std::process::Command;
use std::time::Instant;

use common::opentaxii::{self, OpenTaxii};
use taxiway::core::{Body, Message, PollResponse, StatusType, Timestamp};

const STIX: &str = r#"<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" id="example:package-opentaxii" version="1.1.1"><stix:STIX_Header><stix:Title>pushed into OpenTAXII</stix:Title></stix:STIX_Header></stix:STIX_Package>"#;

/// A TAXII 1.1 Poll_Request for `Gold` with the given bounds, answered.
async fn poll(
    server: &OpenTaxii,
    authorization: &str,
    begin: Option<Timestamp>,
    end: Option<Timestamp>,
) -> Message {
    let bound = |name: &str, at: Option<Timestamp>| {
        at.map(|at| format!("<taxii_11:{name}>{at}</taxii_11:{name}>"))
            .unwrap_or_default()
    };
    let request = format!(
        r#"<taxii_11:Poll_Request xmlns:taxii_11="http://taxii.mitre.org/messages/taxii_xml_binding-1.1" message_id="poll-1" collection_name="Gold">{}{}<taxii_11:Poll_Parameters allow_asynch="false"><taxii_11:Response_Type>FULL</taxii_11:Response_Type></taxii_11:Poll_Parameters></taxii_11:Poll_Request>"#,
        bound("Exclusive_Begin_Timestamp", begin),
        bound("Inclusive_End_Timestamp", end),
    );
    let mut headers = opentaxii::taxii_11_headers().to_vec();
    headers.push(("Authorization", authorization));
    let (status, _, reply) = common::http(
        server.address,
        "POST",
        opentaxii::POLL_PATH,
        &headers,
        request.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    taxiway::bindings::taxii_xml::parse(&reply)
        .unwrap_or_else(|e| panic!("not TAXII ({e}): {}", String::from_utf8_lossy(&reply)))
        .message
}

fn poll_response(message: Message) -> PollResponse {
    match message.body {
        Body::PollResponse(response) => response,
        other => panic!("not a poll response: {other:?}"),
    }
}

/// `xml` without the indentation OpenTAXII pretty-prints content with.
fn without_indentation(xml: &str) -> String {
    xml.lines().map(str::trim).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentaxii_keeps_a_package_pushed_by_cabby() {
    let started = Instant::now();
    let server = OpenTaxii::start("opentaxii-peer").await;
    eprintln!(
        "OpenTAXII answered discovery {:?} after start",
        started.elapsed()
    );

    let file = server.dir.join("package.xml");
    std::fs::write(&file, STIX).unwrap();
    let mut push = Command::new(common::peers_bin("taxii-push"));
    push.args([
        "--host",
        "127.0.0.1",
        "--port",
        &server.address.port().to_string(),
    ])
    .args(["--path", opentaxii::INBOX_PATH, "--taxii-version", "1.1"])
    .args([
        "--username",
        opentaxii::USERNAME,
        "--password",
        opentaxii::PASSWORD,
    ])
    .args(["--content-file", file.to_str().unwrap()])
    .args([
        "--binding",
        "urn:stix.mitre.org:xml:1.1.1",
        "--dest",
        "Gold",
    ]);
    let pushed = tokio::task::spawn_blocking(move || push.output().expect("cabby runs"))
        .await
        .unwrap();
    // cabby exits 0 even on errors.
    let pushed = String::from_utf8_lossy(&pushed.stderr).into_owned();
    assert!(
        pushed.contains("Content block successfully pushed"),
        "{pushed}"
    );

    let everything = poll_response(poll(&server, &server.basic_auth(), None, None).await);
    assert_eq!(everything.content_blocks.len(), 1, "{everything:?}");
    let block = &everything.content_blocks[0];
    assert_eq!(block.binding.id, "urn:stix.mitre.org:xml:1.1.1");
    assert_eq!(without_indentation(block.content.as_str()), STIX);
    let label = block.timestamp_label.expect("a timestamp label");
    // The response echoes the request's bounds: none were asked for.
    assert_eq!(everything.exclusive_begin, None);
    assert_eq!(everything.inclusive_end, None);

    // The bounds are exact at the label's microsecond: exclusive begin,
    // inclusive end.
    let token = format!("Bearer {}", server.jwt().await);
    let after = poll_response(poll(&server, &token, Some(label), None).await);
    assert!(after.content_blocks.is_empty(), "{after:?}");
    let before = poll_response(
        poll(
            &server,
            &token,
            Some(label.shifted_nanos(-1_000)),
            Some(label),
        )
        .await,
    );
    assert_eq!(before.content_blocks.len(), 1, "{before:?}");
    assert_eq!(before.inclusive_end, Some(label));

    let wrong = common::basic(opentaxii::USERNAME, "not-the-password");
    match poll(&server, &wrong, None, None).await.body {
        Body::Status(status) => assert_eq!(status.status_type, StatusType::Unauthorized),
        other => panic!("a wrong password was let in: {other:?}"),
    }
}
