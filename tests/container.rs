//! The container: the image's default command line (Dockerfile CMD) is one
//! the binary accepts (run as the image runs it, with only the port and the
//! data directory moved for the test, it serves the default scenario and
//! gives out service addresses at the public URL rather than at its listen
//! address), and docker-compose.yml runs it bridged to RabbitMQ with a
//! valid configuration.

mod common;

use std::ffi::OsStr;
use std::net::SocketAddr;

use taxiway::core::*;

/// The JSON array of the Dockerfile's CMD.
fn container_command() -> Vec<String> {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let line = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("a CMD line");
    serde_json::from_str(line).expect("CMD in exec form")
}

fn value_after<'a>(command: &'a [String], flag: &str) -> &'a str {
    let at = command
        .iter()
        .position(|arg| arg == flag)
        .unwrap_or_else(|| panic!("{flag} in {command:?}"));
    &command[at + 1]
}

#[tokio::test]
async fn the_container_command_serves_the_default_scenario_at_its_public_url() {
    let mut command = container_command();
    assert_eq!(command[0], "serve");
    assert_eq!(value_after(&command, "--listen"), "0.0.0.0:9000");
    let public_url = value_after(&command, "--public-url").to_owned();
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .unwrap();
    assert!(
        compose.contains("127.0.0.1:9000:9000"),
        "compose publishes the port the public URL names"
    );

    let dir = common::temp_dir("container");
    let address: SocketAddr = format!("127.0.0.1:{}", common::free_port())
        .parse()
        .unwrap();
    for (flag, value) in [
        ("--listen", address.to_string()),
        ("--data-dir", dir.display().to_string()),
    ] {
        let at = command.iter().position(|arg| arg == flag).unwrap();
        command[at + 1] = value;
    }
    let arguments: Vec<&OsStr> = command.iter().map(OsStr::new).collect();
    let server = common::spawn_command_line(address, &dir.join("server.log"), &arguments).await;

    let request = "<t:Discovery_Request xmlns:t=\"http://taxii.mitre.org/messages/taxii_xml_binding-1.1\" \
                   message_id=\"urn:uuid:discover\"/>";
    let (_, reply) = common::post_taxii(address, "/", Dialect::V11, request, None).await;
    let Body::DiscoveryResponse(discovery) = reply.body else {
        panic!("a discovery response, not {reply:?}");
    };
    assert!(!discovery.services.is_empty());
    for service in &discovery.services {
        let address = &service.address;
        assert!(
            address.starts_with(&public_url),
            "{address} is at {public_url}"
        );
    }
    assert!(
        dir.join("taxiway.sqlite3").exists(),
        "the data is in the data directory"
    );
    drop(server);
}

/// docker-compose.yml (read with PyYAML: no Docker engine here) runs
/// taxiway with config/compose.toml beside a healthy RabbitMQ, and that
/// configuration is valid and reaches RabbitMQ with the account compose
/// gives it.
#[test]
fn compose_runs_taxiway_bridged_to_rabbitmq() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let output = std::process::Command::new(common::peers_bin("python"))
        .args(["-c", read, &format!("{root}/docker-compose.yml")])
        .output()
        .expect("the peers' Python runs");
    assert!(output.status.success(), "{output:?}");
    let compose: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let taxiway = &compose["services"]["taxiway"];
    let rabbitmq = &compose["services"]["rabbitmq"];
    let command: Vec<&str> = taxiway["command"]
        .as_array()
        .expect("a command in exec form")
        .iter()
        .map(|arg| arg.as_str().unwrap())
        .collect();
    assert_eq!(command[..2], ["serve", "--config"]);
    let mounted = format!("./config/compose.toml:{}:ro", command[2]);
    assert!(
        taxiway["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_str() == Some(mounted.as_str())),
        "{taxiway}"
    );
    assert_eq!(
        taxiway["depends_on"]["rabbitmq"]["condition"],
        "service_healthy"
    );
    assert!(rabbitmq["image"].as_str().unwrap().starts_with("rabbitmq:"));
    assert!(rabbitmq["healthcheck"]["test"].is_array());
    let account = format!(
        "{}:{}@rabbitmq:5672",
        rabbitmq["environment"]["RABBITMQ_DEFAULT_USER"]
            .as_str()
            .unwrap(),
        rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"]
            .as_str()
            .unwrap()
    );

    let text = std::fs::read_to_string(format!("{root}/config/compose.toml")).unwrap();
    let config = taxiway::config::Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
    assert!(
        taxiway["ports"][0]
            .as_str()
            .unwrap()
            .ends_with(":9000:9000")
    );
    let uris: Vec<&str> = config
        .egress
        .iter()
        .filter_map(|egress| egress.amqp.as_ref().map(|amqp| amqp.uri.as_str()))
        .chain(
            config
                .amqp_ingress
                .iter()
                .map(|ingress| ingress.uri.as_str()),
        )
        .collect();
    assert_eq!(uris.len(), 2, "one egress and one ingress");
    assert!(uris.iter().all(|uri| uri.contains(&account)), "{uris:?}");
}
