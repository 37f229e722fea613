//! The `taxiway validate`, `convert` and `routes test` commands, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use taxiway::bindings::taxii_xml::parse;
use taxiway::core::{Dialect, MessageKind};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/spec/examples")
}

fn taxiway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taxiway"))
        .args(args)
        .output()
        .expect("the taxiway binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

#[test]
fn validate_prints_dialect_and_type_of_each_file() {
    let dir = examples();
    let seed = dir.join("seed/fig11-poll-request.xml");
    let v10 = dir.join("taxii-1.0/inbox-message.xml");
    let v11 = dir.join("taxii-1.1/poll-fulfillment.xml");
    let output = taxiway(&[
        "validate",
        seed.to_str().unwrap(),
        v10.to_str().unwrap(),
        v11.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].ends_with(": draft poll_request"), "{text}");
    assert!(lines[1].ends_with(": 1.0 inbox_message"), "{text}");
    assert!(lines[2].ends_with(": 1.1 poll_fulfillment"), "{text}");
}

#[test]
fn validate_reports_invalid_files_and_exits_1() {
    let dir = examples();
    let valid = dir.join("taxii-1.1/discovery-request.xml");
    let invalid = dir.join("invalid/taxii-1.0-nondigit-message-id.xml");
    let output = taxiway(&[
        "validate",
        valid.to_str().unwrap(),
        invalid.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = stdout(&output);
    let invalid_line = text.lines().nth(1).unwrap();
    assert!(invalid_line.contains("invalid: BAD_MESSAGE"), "{text}");
    assert!(
        invalid_line.contains("digits"),
        "the reason is given: {text}"
    );
}

#[test]
fn validate_json_prints_one_object_per_file() {
    let dir = examples();
    let valid = dir.join("seed/fig17-stix-message.xml");
    let invalid = dir.join("invalid/taxii-1.1-timestamp-without-timezone.xml");
    let missing = dir.join("no-such-file.xml");
    let output = taxiway(&[
        "validate",
        "--json",
        valid.to_str().unwrap(),
        invalid.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let objects: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
        .collect();
    assert_eq!(objects.len(), 3);
    assert_eq!(objects[0]["valid"], true);
    assert_eq!(objects[0]["dialect"], "draft");
    assert_eq!(objects[0]["message_type"], "inbox_message");
    assert_eq!(objects[1]["valid"], false);
    assert_eq!(objects[1]["dialect"], "1.1");
    assert_eq!(objects[1]["status_type"], "BAD_MESSAGE");
    assert_eq!(objects[1]["message_id"], "43");
    assert!(objects[1]["reason"].as_str().unwrap().contains("time zone"));
    assert_eq!(objects[2]["valid"], false);
    assert!(
        objects[2]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot read")
    );
}

#[test]
fn convert_prints_the_message_in_another_dialect_and_reports_losses() {
    let file = examples().join("taxii-1.1/inbox-message.xml");
    let output = taxiway(&["convert", "--to", "1.0", file.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let converted = parse(&output.stdout).expect("the output is a TAXII message");
    assert_eq!(converted.dialect, Dialect::V10);
    assert_eq!(converted.message.kind(), MessageKind::Inbox);
    assert!(converted.message.id.bytes().all(|b| b.is_ascii_digit()));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("remapped message_id"), "{stderr}");
    assert!(stderr.contains("lost destination_feeds"), "{stderr}");
}

#[test]
fn convert_refuses_a_message_the_target_dialect_lacks() {
    let file = examples().join("taxii-1.1/poll-fulfillment.xml");
    let output = taxiway(&["convert", "--to", "draft", file.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("draft dialect has no poll_fulfillment"),
        "{stderr}"
    );
}

#[test]
fn convert_rejects_an_unknown_dialect() {
    let file = examples().join("taxii-1.1/inbox-message.xml");
    let output = taxiway(&["convert", "--to", "2.0", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("expected draft, 1.0 or 1.1")
    );
}

/// The seed's figure 17 message, labelled Green by its sharing community,
/// through routes that send Green to a queue and drop Red.
#[test]
fn routes_test_explains_which_routes_a_message_takes() {
    let dir = std::env::temp_dir().join(format!("taxiway-routes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("routes.toml");
    std::fs::write(
        &config,
        r#"
[[feeds]]
name = "Gold"
description = "Gold"
writers = ["anonymous"]

[[egress]]
name = "soc"
[egress.amqp]
uri = "amqp://127.0.0.1"
exchange = "taxii"

[[routes]]
name = "no-red"
actions = ["drop"]
[routes.match]
headers = { "http://sharinggroupcoordinator.com/ext-hdr#label" = "Red" }

[[routes]]
name = "green-to-soc"
actions = ["store", { forward = "soc" }]
[routes.match]
headers = { "http://sharinggroupcoordinator.com/ext-hdr#label" = "Green" }
message_type = ["inbox"]
"#,
    )
    .unwrap();
    let message = examples().join("seed/fig17-stix-message.xml");
    let output = taxiway(&[
        "routes",
        "test",
        "--config",
        config.to_str().unwrap(),
        "--feed",
        "Gold",
        message.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with("draft inbox_message for [\"Gold\"]"),
        "{text}"
    );
    assert!(
        lines[1].contains("route no-red: not taken (header")
            && lines[1].contains("is Some(\"Green\")"),
        "{text}"
    );
    assert_eq!(lines[2].trim(), "route green-to-soc: taken", "{text}");
    assert!(text.contains("=> store in Gold\n"), "{text}");
    assert!(
        text.contains("=> forward to soc for [\"Gold\"]\n"),
        "{text}"
    );

    let unknown = taxiway(&[
        "routes",
        "test",
        "--config",
        config.to_str().unwrap(),
        "--feed",
        "Elsewhere",
        message.to_str().unwrap(),
    ]);
    assert!(unknown.status.success(), "{unknown:?}");
    assert!(
        stdout(&unknown).contains("=> refused: Elsewhere is not a feed hosted here"),
        "{}",
        stdout(&unknown)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A data directory with one dead push and one dead forward, made through
/// the store as the delivery workers would leave them.
async fn outbox_with_dead_rows(dir: &Path) -> (i64, i64) {
    use taxiway::core::*;
    use taxiway::store::{Commit, NewBlock, NewEgress, Retry, SqliteStore, Store, Subscription};
    let store = SqliteStore::open(dir).await.unwrap();
    let subscription = Subscription {
        id: "3f1e0c1a-5b2d-4c3e-8f4a-0b1c2d3e4f50".to_owned(),
        feed: "Gold".to_owned(),
        status: SubscriptionStatus::Active,
        delivery: Delivery::Push(PushParameters {
            protocol: ProtocolBinding::Http,
            address: "http://127.0.0.1:1/inbox".to_owned(),
            message_binding: MessageBinding::Xml(Dialect::V11),
        }),
        content_bindings: Vec::new(),
        created: Timestamp::from_unix(1_700_000_000, 0),
        created_by: None,
    };
    store.create_subscription(subscription).await.unwrap();
    store
        .commit(Commit {
            blocks: vec![NewBlock {
                feed: "Gold".to_owned(),
                binding: ContentBinding::new("urn:stix.mitre.org:xml:1.1.1"),
                content: XmlContent::Xml("<x/>".to_owned()),
                source_message_id: "m-1".to_owned(),
            }],
            egress: vec![NewEgress {
                destination: "partner".to_owned(),
                message_id: "urn:uuid:m-1".to_owned(),
                payload: "{}".to_owned(),
            }],
            ..Commit::default()
        })
        .await
        .unwrap();
    let later = Timestamp::from_unix(4_000_000_000, 0);
    let push = store.claim_due(later, 10).await.unwrap()[0].row.id;
    store
        .record_failure(push, "refused", Retry::Dead)
        .await
        .unwrap();
    let forward = store.claim_egress("partner", later, 10).await.unwrap()[0].id;
    store
        .egress_failed(forward, "unreachable", Retry::Dead)
        .await
        .unwrap();
    store.close().await;
    (push, forward)
}

#[tokio::test]
async fn outbox_lists_and_replays_dead_pushes_and_forwards() {
    let dir = std::env::temp_dir().join(format!("taxiway-outbox-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (push, forward) = outbox_with_dead_rows(&dir).await;
    let data_dir = dir.to_str().unwrap();

    let listed = taxiway(&["outbox", "list", "--dead", "--data-dir", data_dir]);
    assert!(listed.status.success(), "{listed:?}");
    let text = stdout(&listed);
    assert!(text.contains(&format!("{push}\tdead\t1\t")), "{text}");
    assert!(text.contains("\trefused\n"), "{text}");
    assert!(
        text.contains(&format!(
            "e{forward}\tdead\t1\tpartner\turn:uuid:m-1\tunreachable\n"
        )),
        "{text}"
    );

    let replayed = taxiway(&[
        "outbox",
        "replay",
        "--data-dir",
        data_dir,
        &format!("e{forward}"),
    ]);
    assert!(replayed.status.success(), "{replayed:?}");
    assert_eq!(
        stdout(&replayed),
        "0 dead push(es) and 1 dead forward(s) made pending again\n"
    );
    let text = stdout(&taxiway(&[
        "outbox",
        "list",
        "--dead",
        "--data-dir",
        data_dir,
    ]));
    assert!(!text.contains(&format!("e{forward}\t")), "{text}");
    assert!(text.contains(&format!("{push}\tdead\t")), "{text}");

    let all = taxiway(&["outbox", "replay", "--data-dir", data_dir]);
    assert_eq!(
        stdout(&all),
        "1 dead push(es) and 0 dead forward(s) made pending again\n"
    );
    let bad = taxiway(&["outbox", "replay", "--data-dir", data_dir, "x7"]);
    assert!(!bad.status.success());
    let missing = taxiway(&["outbox", "list", "--data-dir", "/nonexistent/taxiway"]);
    assert!(!missing.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
