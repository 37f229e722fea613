//! HTTPS with rustls: client certificates verified against the configured CA
//! map to identities, Basic credentials still work, a certificate from an
//! unknown CA fails the handshake, the protocol binding is checked against
//! the connection, and a TAXII egress proves itself with a certificate.

mod common;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use taxiway::bindings::taxii_xml::parse;
use taxiway::config::{Config, IdentityConfig, TlsConfig};
use taxiway::core::*;
use taxiway::gateway::Gateway;

const NS_11: &str = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1";
const HTTP_11: &str = "urn:taxii.mitre.org:protocol:http:1.0";
const HTTPS_11: &str = "urn:taxii.mitre.org:protocol:https:1.0";

struct Pki {
    ca: String,
    server: (String, String),
    /// Certificate and key PEM, as reqwest::Identity takes them.
    demo: String,
    stranger: String,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn signed(issuer: &Issuer<'_, KeyPair>, names: &[&str], common_name: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "taxiway tests");
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let (params, key, ca_pem) = ca("taxiway test CA");
    let issuer = Issuer::new(params, key);
    let server = signed(&issuer, &["127.0.0.1", "localhost"], "taxiway");
    let (cert, key) = signed(&issuer, &[], common::DEMO_USER);
    let (other_params, other_key, _) = ca("someone else's CA");
    let other = Issuer::new(other_params, other_key);
    let (stranger_cert, stranger_key) = signed(&other, &[], common::DEMO_USER);
    Pki {
        ca: ca_pem,
        server,
        demo: format!("{cert}{key}"),
        stranger: format!("{stranger_cert}{stranger_key}"),
    }
}

/// The default scenario over HTTPS, demo's certificate subject "demo", and a
/// second account "other" (with the demo password).
async fn start(name: &str, pki: &Pki) -> Gateway {
    let dir = common::temp_dir(name);
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut config = Config::default_scenario();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = dir.join("data");
    config.server.tls = Some(TlsConfig {
        certificate: write("server.pem", &pki.server.0),
        key: write("server-key.pem", &pki.server.1),
        client_ca: Some(write("ca.pem", &pki.ca)),
    });
    config.identities[0].certificate_subject = Some(common::DEMO_USER.into());
    let hash = config.identities[0].password_hash.clone();
    config.identities.push(IdentityConfig {
        name: "other".into(),
        password_hash: hash,
        certificate_subject: None,
    });
    Gateway::start(config).await.expect("the gateway starts")
}

fn client(pki: &Pki, identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(pki.ca.as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder().tls_certs_only([ca]);
    if let Some(identity) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(identity.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

struct Reply {
    protocol: Option<String>,
    message: Message,
}

impl Reply {
    fn status(&self) -> StatusType {
        match &self.message.body {
            Body::Status(status) => status.status_type.clone(),
            other => panic!("a status message, not {other:?}"),
        }
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    protocol: &str,
    auth: Option<&str>,
    body: String,
) -> reqwest::Result<Reply> {
    let mut request = client
        .post(url)
        .header("Content-Type", "application/xml")
        .header(
            "X-TAXII-Content-Type",
            "urn:taxii.mitre.org:message:xml:1.1",
        )
        .header("X-TAXII-Accept", "urn:taxii.mitre.org:message:xml:1.1")
        .header("X-TAXII-Protocol", protocol)
        .body(body);
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await?;
    assert_eq!(response.status(), 200);
    let protocol = response
        .headers()
        .get("x-taxii-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.bytes().await?;
    let parsed = parse(&bytes).expect("a TAXII message");
    Ok(Reply {
        protocol,
        message: parsed.message,
    })
}

fn discovery() -> String {
    format!(
        "<t:Discovery_Request xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:0f1e2d3c-0000-4000-8000-0000000000c1\"/>"
    )
}

fn poll(feed: &str) -> String {
    format!(
        "<t:Poll_Request xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:0f1e2d3c-0000-4000-8000-0000000000c2\" \
         collection_name=\"{feed}\"><t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type>\
         </t:Poll_Parameters></t:Poll_Request>"
    )
}

fn inbox(feed: &str) -> String {
    format!(
        "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:0f1e2d3c-0000-4000-8000-0000000000c3\">\
         <t:Destination_Collection_Name>{feed}</t:Destination_Collection_Name>\
         <t:Content_Block><t:Content_Binding binding_id=\"urn:stix.mitre.org:xml:1.1.1\"/>\
         <t:Content><stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-1\" version=\"1.1.1\"/>\
         </t:Content></t:Content_Block></t:Inbox_Message>"
    )
}

fn blocks(reply: &Reply) -> usize {
    match &reply.message.body {
        Body::PollResponse(poll) => poll.content_blocks.len(),
        other => panic!("a poll response, not {other:?}"),
    }
}

#[tokio::test]
async fn discovery_shows_the_for_pay_services_to_the_demo_certificate_or_password_only() {
    let pki = pki();
    let gateway = start("tls-discovery", &pki).await;
    let base = format!("https://localhost:{}", gateway.local_addr.port());
    let addresses = |reply: Reply| -> Vec<String> {
        let Body::DiscoveryResponse(discovery) = reply.message.body else {
            panic!("a discovery response")
        };
        discovery
            .services
            .iter()
            .map(|s| s.address.clone())
            .collect()
    };
    let anonymous = client(&pki, None);
    let certified = client(&pki, Some(&pki.demo));
    let demo = common::demo_auth();
    let url = format!("{base}/");
    let seen = addresses(
        post(&anonymous, &url, HTTPS_11, None, discovery())
            .await
            .unwrap(),
    );
    assert!(!seen.iter().any(|a| a.ends_with("/feeds/pay")), "{seen:?}");
    assert!(seen.iter().all(|a| a.starts_with("https://")), "{seen:?}");
    for (client, auth) in [(&certified, None), (&anonymous, Some(demo.as_str()))] {
        let seen = addresses(
            post(client, &url, HTTPS_11, auth, discovery())
                .await
                .unwrap(),
        );
        let paid = seen.iter().filter(|a| a.ends_with("/feeds/pay")).count();
        assert_eq!(paid, 2, "{seen:?}");
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn the_demo_certificate_polls_gold_and_must_agree_with_a_password() {
    let pki = pki();
    let gateway = start("tls-poll", &pki).await;
    let url = format!("https://127.0.0.1:{}/feeds/pay", gateway.local_addr.port());
    let certified = client(&pki, Some(&pki.demo));
    let reply = post(&certified, &url, HTTPS_11, None, poll("Gold"))
        .await
        .unwrap();
    assert_eq!(blocks(&reply), 0);
    // The same identity both ways is fine; two different ones are refused.
    let demo = common::demo_auth();
    let reply = post(&certified, &url, HTTPS_11, Some(&demo), poll("Gold"))
        .await
        .unwrap();
    assert_eq!(blocks(&reply), 0);
    let other = common::basic("other", common::DEMO_PASSWORD);
    let reply = post(&certified, &url, HTTPS_11, Some(&other), poll("Gold"))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusType::Unauthorized);
    let anonymous = client(&pki, None);
    let reply = post(&anonymous, &url, HTTPS_11, None, poll("Gold"))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusType::Unauthorized);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_certificate_from_an_unknown_ca_fails_the_handshake_and_stores_nothing() {
    let pki = pki();
    let gateway = start("tls-stranger", &pki).await;
    let base = format!("https://127.0.0.1:{}", gateway.local_addr.port());
    let stranger = client(&pki, Some(&pki.stranger));
    for feed in ["Public", "Gold"] {
        let sent = post(
            &stranger,
            &format!("{base}/inbox"),
            HTTPS_11,
            None,
            inbox(feed),
        )
        .await;
        assert!(sent.is_err(), "the handshake should fail");
    }
    let certified = client(&pki, Some(&pki.demo));
    for (path, feed) in [("/feeds/public", "Public"), ("/feeds/pay", "Gold")] {
        let url = format!("{base}{path}");
        let reply = post(&certified, &url, HTTPS_11, None, poll(feed))
            .await
            .unwrap();
        assert_eq!(blocks(&reply), 0, "{feed}");
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn over_tls_the_https_binding_is_right_and_plain_http_is_refused() {
    let pki = pki();
    let gateway = start("tls-protocol", &pki).await;
    let port = gateway.local_addr.port();
    let url = format!("https://127.0.0.1:{port}/feeds/public");
    let anonymous = client(&pki, None);
    let reply = post(&anonymous, &url, HTTP_11, None, poll("Public"))
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusType::UnsupportedProtocol);
    let reply = post(&anonymous, &url, HTTPS_11, None, poll("Public"))
        .await
        .unwrap();
    assert_eq!(blocks(&reply), 0);
    assert_eq!(reply.protocol.as_deref(), Some(HTTPS_11));
    let plain = format!("http://127.0.0.1:{port}/feeds/public");
    assert!(
        post(&anonymous, &plain, HTTP_11, None, poll("Public"))
            .await
            .is_err()
    );
    gateway.stop().await.unwrap();
}

/// A gateway forwards over HTTPS to one whose Gold only the certificate
/// "demo" may fill: with the certificate and the CA configured, the
/// forward is stored; with the certificate left out, it is refused and
/// stays in the outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_egress_proves_itself_with_a_client_certificate() {
    let pki = pki();
    let receiver = {
        let dir = common::temp_dir("tls-egress-receiver");
        let write = |file: &str, text: &str| {
            let path = dir.join(file);
            std::fs::write(&path, text).unwrap();
            path
        };
        let mut config = Config::default_scenario();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.data_dir = dir.join("data");
        config.server.tls = Some(TlsConfig {
            certificate: write("server.pem", &pki.server.0),
            key: write("server-key.pem", &pki.server.1),
            client_ca: Some(write("ca.pem", &pki.ca)),
        });
        config.identities[0].certificate_subject = Some(common::DEMO_USER.into());
        for feed in &mut config.feeds {
            feed.writers = vec![common::DEMO_USER.to_owned()];
        }
        Gateway::start(config).await.expect("the receiver starts")
    };
    let inbox_url = format!("https://127.0.0.1:{}/inbox", receiver.local_addr.port());
    let dir = common::temp_dir("tls-egress-sender");
    let (demo_certificate, demo_key) = pki
        .demo
        .split_at(pki.demo.find("-----BEGIN PRIVATE KEY").unwrap());
    for (file, text) in [
        ("demo.pem", demo_certificate),
        ("demo-key.pem", demo_key),
        ("ca.pem", pki.ca.as_str()),
    ] {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let sender_config = |with_certificate: bool| {
        let certificate = if with_certificate {
            format!(
                "certificate = \"{}\"\nkey = \"{}\"\n",
                dir.join("demo.pem").display(),
                dir.join("demo-key.pem").display()
            )
        } else {
            String::new()
        };
        format!(
            "{}\n[[egress]]\nname = \"partner\"\ninitial_backoff_ms = 100\n[egress.taxii]\n\
             url = \"{inbox_url}\"\ndialect = \"1.1\"\ncollection = \"Gold\"\n\
             [egress.taxii.tls]\nca = \"{}\"\n{certificate}\n\
             [[routes]]\nname = \"out\"\nactions = [\"store\", {{ forward = \"partner\" }}]\n",
            taxiway::config::DEFAULT_CONFIG,
            dir.join("ca.pem").display()
        )
    };
    let start_sender = |with_certificate: bool, name: &'static str| {
        let text = sender_config(with_certificate);
        async move {
            let mut config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
            config.server.listen = "127.0.0.1:0".parse().unwrap();
            config.server.data_dir = common::temp_dir(name);
            Gateway::start(config).await.expect("the sender starts")
        }
    };
    let send = |address: std::net::SocketAddr, marker: &'static str| async move {
        let body = format!(
            "<t:Inbox_Message xmlns:t=\"{NS_11}\" message_id=\"urn:uuid:{marker}\">\
             <t:Destination_Collection_Name>Gold</t:Destination_Collection_Name>\
             <t:Content_Block><t:Content_Binding binding_id=\"urn:stix.mitre.org:xml:1.1.1\"/>\
             <t:Content><stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
             id=\"example:{marker}\"/></t:Content></t:Content_Block></t:Inbox_Message>"
        );
        let (_, reply) = common::post_taxii(address, "/inbox", Dialect::V11, &body, None).await;
        assert!(matches!(reply.body, Body::Status(ref s) if s.status_type == StatusType::Success));
    };
    let stored = || async {
        let certified = client(&pki, Some(&pki.demo));
        let url = format!("https://127.0.0.1:{}/feeds/pay", receiver.local_addr.port());
        let reply = post(&certified, &url, HTTPS_11, None, poll("Gold"))
            .await
            .unwrap();
        blocks(&reply)
    };

    let without = start_sender(false, "tls-egress-without").await;
    send(without.local_addr, "without-certificate").await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert_eq!(stored().await, 0, "anonymous forwards are refused");
    without.stop().await.unwrap();

    let with = start_sender(true, "tls-egress-with").await;
    send(with.local_addr, "with-certificate").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while stored().await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the forward never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(stored().await, 1);
    with.stop().await.unwrap();
    receiver.stop().await.unwrap();
}
