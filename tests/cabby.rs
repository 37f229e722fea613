//! cabby, a TAXII client from PyPI, drives discovery, feed (collection)
//! information, inbox push and poll against the default scenario, in TAXII
//! 1.0 and 1.1. cabby's commands exit 0 even on errors: their output is read.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::cabby;

const STIX: &str = r#"<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" id="example:package-cabby" version="1.1.1"><stix:STIX_Header><stix:Title>pushed by cabby</stix:Title></stix:STIX_Header></stix:STIX_Package>"#;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn exchange_in(version: &str) {
    let gateway = common::start_default(&format!("cabby-{version}")).await;
    let address = gateway.local_addr;

    let discovery = cabby(
        address,
        "taxii-discovery",
        args(&["--discovery", "/", "--taxii-version", version]),
    )
    .await;
    let services_version = format!("urn:taxii.mitre.org:services:{version}");
    assert_eq!(discovery.matches("Service Type:").count(), 5, "{discovery}");
    assert_eq!(
        discovery.matches(&services_version).count(),
        5,
        "{discovery}"
    );
    assert!(discovery.contains("/feeds/pay"), "{discovery}");

    let collections = cabby(
        address,
        "taxii-collections",
        args(&["--path", "/feeds/pay", "--taxii-version", version]),
    )
    .await;
    for feed in ["Platinum", "Gold", "Silver"] {
        assert!(collections.contains(feed), "{feed} missing:\n{collections}");
    }

    let file = common::temp_dir(&format!("cabby-stix-{version}")).join("package.xml");
    std::fs::write(&file, STIX).unwrap();
    let mut push = args(&[
        "--path",
        "/inbox",
        "--taxii-version",
        version,
        "--content-file",
        file.to_str().unwrap(),
        "--binding",
        "urn:stix.mitre.org:xml:1.1.1",
    ]);
    if version == "1.1" {
        push.extend(args(&["--dest", "Gold"]));
    }
    if version == "1.0" {
        // cabby's taxii-push command is broken for TAXII 1.0 (a client bug):
        // push through its library instead.
        push_with_cabby_library(address, &file).await;
    } else {
        let pushed = cabby(address, "taxii-push", push).await;
        assert!(
            pushed.contains("Content block successfully pushed"),
            "{pushed}"
        );
    }

    let polled = cabby(
        address,
        "taxii-poll",
        args(&[
            "--path",
            "/feeds/pay",
            "--taxii-version",
            version,
            "--collection",
            "Gold",
        ]),
    )
    .await;
    assert!(polled.contains("pushed by cabby"), "{polled}");
    assert!(polled.contains("1 blocks polled"), "{polled}");

    let unknown = cabby(
        address,
        "taxii-poll",
        args(&[
            "--path",
            "/feeds/pay",
            "--taxii-version",
            version,
            "--collection",
            "Bronze",
        ]),
    )
    .await;
    assert!(unknown.contains("NOT_FOUND"), "{unknown}");
    gateway.stop().await.unwrap();
}

async fn push_with_cabby_library(address: SocketAddr, file: &std::path::Path) {
    let python = common::peers_bin("python");
    let script = format!(
        r#"
import cabby
client = cabby.create_client("127.0.0.1", port={port}, discovery_path="/", version="1.0")
client.push(open({file:?}).read(), "urn:stix.mitre.org:xml:1.1.1", uri="/inbox")
print("pushed")
"#,
        port = address.port(),
        file = file.display().to_string()
    );
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).args(["-c", &script]).output().unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && text.contains("pushed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cabby_speaks_taxii_11_with_taxiway() {
    exchange_in("1.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cabby_speaks_taxii_10_with_taxiway() {
    exchange_in("1.0").await;
}
