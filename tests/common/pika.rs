//! The pika peer (tests/peers/amqp/peer.py): a third-party AMQP client that
//! binds queues, reads, publishes and cleans up on a real broker.

use std::path::Path;

use serde_json::Value;

/// Runs the pika peer and returns what it printed; fails the test with
/// the peer's own words if it fails.
pub async fn peer(args: Vec<String>) -> String {
    let python = super::peers_bin("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/amqp/peer.py");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .args(&args)
            .output()
            .expect("the pika peer runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'pika'"),
        "pika is missing from .peers: run scripts/setup"
    );
    assert!(output.status.success(), "the pika peer failed:\n{stderr}");
    String::from_utf8(output.stdout).expect("the peer prints UTF-8")
}

pub fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

pub async fn bind(uri: &str, exchange: &str, kind: &str, queue: &str, key: &str) {
    peer(strings(&["bind", uri, exchange, kind, queue, key])).await;
}

/// Messages of a queue, until `count` distinct message ids arrived or
/// `seconds` passed.
pub async fn get(uri: &str, queue: &str, count: usize, seconds: u64) -> Vec<Value> {
    let printed = peer(strings(&[
        "get",
        uri,
        queue,
        &count.to_string(),
        &seconds.to_string(),
    ]))
    .await;
    printed
        .lines()
        .map(|line| serde_json::from_str(line).expect("the peer prints JSON"))
        .collect()
}

pub async fn publish(uri: &str, queue: &str, dir: &Path, id: &str, body: &[u8], headers: &[&str]) {
    let file = dir.join(format!("body-{id}"));
    std::fs::write(&file, body).unwrap();
    let mut args = strings(&["publish", uri, "", queue]);
    args.push(file.display().to_string());
    args.extend(strings(&["--message-id", id]));
    for header in headers {
        args.extend(strings(&["--header", header]));
    }
    peer(args).await;
}

pub async fn delete(uri: &str, queues: &[&str], exchanges: &[&str]) {
    let mut args = strings(&["delete", uri]);
    for queue in queues {
        args.extend(strings(&["--queue", queue]));
    }
    for exchange in exchanges {
        args.extend(strings(&["--exchange", exchange]));
    }
    peer(args).await;
}

pub fn body_of(message: &Value) -> Vec<u8> {
    let hex = message["body_hex"].as_str().expect("a body");
    (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex[at..at + 2], 16).expect("hex"))
        .collect()
}
