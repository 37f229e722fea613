//! What an operator watches: health, Prometheus metrics, graceful stop.

mod common;

const INBOX: &str = r#"<taxii_11:Inbox_Message xmlns:taxii_11="http://taxii.mitre.org/messages/taxii_xml_binding-1.1" message_id="m-1"><taxii_11:Destination_Collection_Name>Gold</taxii_11:Destination_Collection_Name><taxii_11:Content_Block><taxii_11:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/><taxii_11:Content><stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" id="example:p-1" version="1.1.1"/></taxii_11:Content></taxii_11:Content_Block></taxii_11:Inbox_Message>"#;

const TAXII_11: [(&str, &str); 3] = [
    ("Content-Type", "application/xml"),
    (
        "X-TAXII-Content-Type",
        "urn:taxii.mitre.org:message:xml:1.1",
    ),
    ("X-TAXII-Services", "urn:taxii.mitre.org:services:1.1"),
];

#[tokio::test]
async fn health_and_metrics_are_served_beside_the_taxii_services() {
    let gateway = common::start_default("operations").await;
    let address = gateway.local_addr;
    let (status, _, body) = common::http(address, "GET", "/healthz", &[], b"").await;
    assert_eq!((status, body.as_slice()), (200, b"ok\n".as_slice()));

    let (status, _, body) =
        common::http(address, "POST", "/inbox", &TAXII_11, INBOX.as_bytes()).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains(r#"status_type="SUCCESS""#));

    let (status, _, body) = common::http(address, "GET", "/metrics", &[], b"").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(body).unwrap();
    let requests = metrics
        .lines()
        .find(|line| {
            line.starts_with("taxiway_taxii_requests_total")
                && line.contains(r#"path="/inbox""#)
                && line.contains(r#"outcome="success""#)
        })
        .unwrap_or_else(|| panic!("no inbox request counted:\n{metrics}"));
    let count: f64 = requests.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{requests}");
    assert!(
        metrics.lines().any(
            |line| line.starts_with("taxiway_content_blocks_stored_total")
                && line.contains(r#"feed="Gold""#)
        ),
        "{metrics}"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_stopped_gateway_refuses_new_connections() {
    let gateway = common::start_default("operations-stop").await;
    let address = gateway.local_addr;
    gateway.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}
