//! The container image's command line (Dockerfile CMD, which
//! docker-compose.yml runs) is one the binary accepts: run as the image runs
//! it, with only the port and the data directory moved for the test, it
//! serves the default scenario and gives out service addresses at the
//! public URL rather than at its listen address.

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
