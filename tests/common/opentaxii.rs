//! A real OpenTAXII 0.9.3 server (TAXII 1.x, Python, under gunicorn) on
//! loopback, for interoperability tests and benchmarks.
//!
//! Its configuration is tests/peers/opentaxii/: `opentaxii.yml` (SQLite
//! databases in a fresh temporary directory, the address as domain) and
//! `data.yml` (the services at the paths below; collections `Public`,
//! accepting any content, and `Gold`, accepting STIX 1.1.1 only; one account
//! allowed to read and write both).
//!
//! Poll bounds as OpenTAXII treats them, seen on 0.9.3 with SQLite:
//! - the begin bound is exclusive and the end bound inclusive, both honoured
//!   exactly at microsecond precision: polling from a block's own label
//!   leaves that block out, polling up to it takes it in;
//! - a Poll_Response carries back the request's own bounds, not the extent
//!   of its content: a request with no end gets a response with no
//!   Inclusive_End_Timestamp_Label, so a poller continuing from "the last
//!   end" must send an end of its own (or continue from the last label);
//! - libtaxii's schema allows at most six fractional digits: a label or
//!   bound with nanoseconds is refused as BAD_MESSAGE;
//! - the zone is dropped, not converted: a label or bound written
//!   `02:00:01+02:00` is stored and compared as `02:00:01+00:00`. Only UTC
//!   timestamps give the right answers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use taxiway::core::Body;

/// The account `data.yml` creates, with read and write access to both
/// collections.
pub const USERNAME: &str = "taxiway";
pub const PASSWORD: &str = "taxiway-peer";

pub const DISCOVERY_PATH: &str = "/services/discovery";
pub const INBOX_PATH: &str = "/services/inbox";
pub const COLLECTION_MANAGEMENT_PATH: &str = "/services/collection-management";
pub const POLL_PATH: &str = "/services/poll";

/// A running OpenTAXII: the gunicorn master and its workers, all in one
/// process group that is SIGKILLed on drop, a panicking test included.
pub struct OpenTaxii {
    pub address: SocketAddr,
    /// The SQLite databases, the configuration written for this run and
    /// `gunicorn.log`.
    pub dir: PathBuf,
    master: Child,
}

impl OpenTaxii {
    /// OpenTAXII with two gunicorn workers, as benchmarks run it.
    pub async fn start(name: &str) -> OpenTaxii {
        Self::start_with_workers(name, 2).await
    }

    /// OpenTAXII with `workers` gunicorn workers, once its discovery service
    /// answers a TAXII 1.1 Discovery_Request.
    pub async fn start_with_workers(name: &str, workers: usize) -> OpenTaxii {
        let dir = super::temp_dir(name);
        let address = SocketAddr::from(([127, 0, 0, 1], super::free_port()));
        let config = dir.join("opentaxii.yml");
        let template = std::fs::read_to_string(peer_file("opentaxii.yml")).unwrap();
        std::fs::write(
            &config,
            template
                .replace("@DIR@", dir.to_str().expect("a UTF-8 temporary path"))
                .replace("@ADDRESS@", &address.to_string()),
        )
        .unwrap();

        // The sync creates the tables, services, collections and the account
        // with its permissions (`opentaxii-create-account` gives none).
        let mut sync = Command::new(super::peers_bin("opentaxii-sync-data"));
        sync.arg(peer_file("data.yml"))
            .env("OPENTAXII_CONFIG", &config);
        let output = tokio::task::spawn_blocking(move || sync.output().expect("the sync runs"))
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "opentaxii-sync-data failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );

        let log = std::fs::File::create(dir.join("gunicorn.log")).unwrap();
        let master = {
            use std::os::unix::process::CommandExt;
            Command::new(super::peers_bin("gunicorn"))
                .arg("opentaxii.http:app")
                .args(["--bind", &address.to_string()])
                .args(["--workers", &workers.to_string()])
                // Hands gunicorn's own logging to OpenTAXII's.
                .args(["--config", "python:opentaxii.http"])
                // gunicorn 27 otherwise binds one control socket per user,
                // which servers running side by side would fight over.
                .arg("--no-control-socket")
                .env("OPENTAXII_CONFIG", &config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                // Its own group, so that Drop reaches the workers too.
                .process_group(0)
                .spawn()
                .expect("gunicorn starts")
        };
        let mut server = OpenTaxii {
            address,
            dir,
            master,
        };
        server.wait_for_discovery().await;
        server
    }

    async fn wait_for_discovery(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.master.try_wait().unwrap() {
                panic!("OpenTAXII exited early ({status}):\n{}", self.log());
            }
            if tokio::net::TcpStream::connect(self.address).await.is_ok() {
                let (status, _, body) = super::http(
                    self.address,
                    "POST",
                    DISCOVERY_PATH,
                    &taxii_11_headers(),
                    br#"<taxii_11:Discovery_Request xmlns:taxii_11="http://taxii.mitre.org/messages/taxii_xml_binding-1.1" message_id="ready"/>"#,
                )
                .await;
                if status == 200
                    && taxiway::bindings::taxii_xml::parse(&body).is_ok_and(|parsed| {
                        matches!(parsed.message.body, Body::DiscoveryResponse(_))
                    })
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "OpenTAXII never answered a discovery request:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What gunicorn and OpenTAXII logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gunicorn.log")).unwrap_or_default()
    }

    /// The account's `Authorization` header value for HTTP Basic, which
    /// costs OpenTAXII an scrypt hash (about 115 ms of CPU) per request.
    pub fn basic_auth(&self) -> String {
        super::basic(USERNAME, PASSWORD)
    }

    /// A JWT for the account from `POST /management/auth`; sent as
    /// `Authorization: Bearer <token>` it skips the per-request scrypt hash.
    pub async fn jwt(&self) -> String {
        let body = serde_json::json!({ "username": USERNAME, "password": PASSWORD }).to_string();
        let (status, _, reply) = super::http(
            self.address,
            "POST",
            "/management/auth",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        let reply: serde_json::Value = serde_json::from_slice(&reply).expect("a JSON reply");
        reply["token"].as_str().expect("a token").to_owned()
    }
}

impl Drop for OpenTaxii {
    fn drop(&mut self) {
        // SIGKILL to the group (the master's pid is its id) ends master and
        // workers at once, with no time for either to outlive the other; the
        // workers, orphaned, are reaped by init.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.master.id())])
            .status();
        let _ = self.master.wait();
    }
}

/// The headers of a TAXII 1.1 request over HTTP, as OpenTAXII requires them.
pub fn taxii_11_headers() -> [(&'static str, &'static str); 6] {
    [
        ("Content-Type", "application/xml"),
        ("Accept", "application/xml"),
        (
            "X-TAXII-Content-Type",
            "urn:taxii.mitre.org:message:xml:1.1",
        ),
        ("X-TAXII-Accept", "urn:taxii.mitre.org:message:xml:1.1"),
        ("X-TAXII-Protocol", "urn:taxii.mitre.org:protocol:http:1.0"),
        ("X-TAXII-Services", "urn:taxii.mitre.org:services:1.1"),
    ]
}

fn peer_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers/opentaxii")
        .join(name)
}
