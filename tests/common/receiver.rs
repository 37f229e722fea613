//! A bare TAXII inbox for tests: records what is POSTed to it, answers
//! SUCCESS, and can be told to fail for a while.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use taxiway::bindings::taxii_xml;
use taxiway::core::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One POST a receiver got: its headers (names lower-cased) and body.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A TAXII inbox: records each POST as soon as it has it, waits `delay`,
/// then answers in the request's dialect: a SUCCESS Status Message in 1.1
/// and 1.0, an empty 200 in the draft. While failing, it answers HTTP 503
/// and records nothing.
pub struct Receiver {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    failing: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let recorded = received.clone();
        let failing: Arc<AtomicBool> = Arc::default();
        let refusing = failing.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                let refusing = refusing.clone();
                tokio::spawn(async move {
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 8192];
                    let (headers, body) = loop {
                        let Ok(n) = stream.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        raw.extend_from_slice(&buf[..n]);
                        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
                        let headers: Vec<(String, String)> = head
                            .lines()
                            .skip(1)
                            .filter_map(|l| l.split_once(':'))
                            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                            .collect();
                        let length: usize = headers
                            .iter()
                            .find(|(n, _)| n == "content-length")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        if raw.len() >= split + 4 + length {
                            break (headers, raw[split + 4..split + 4 + length].to_vec());
                        }
                    };
                    if refusing.load(Ordering::SeqCst) {
                        let refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
                                       Connection: close\r\n\r\n";
                        let _ = stream.write_all(refusal.as_bytes()).await;
                        return;
                    }
                    let received = Received { headers, body };
                    let dialect = match received.header("x-taxii-content-type") {
                        Some("urn:taxii.mitre.org:message:xml:1.0") => Dialect::V10,
                        Some("TAXII_1.0/TAXII_XML_BINDING_1.0") => Dialect::Draft,
                        _ => Dialect::V11,
                    };
                    let in_response_to = taxii_xml::parse(&received.body)
                        .map(|p| p.message.id)
                        .unwrap_or_else(|_| "0".to_owned());
                    recorded.lock().unwrap().push(received);
                    tokio::time::sleep(delay).await;
                    let reply = if dialect == Dialect::Draft {
                        String::new()
                    } else {
                        let status = Message::new(
                            format!("{}", uuid::Uuid::new_v4().as_u128() >> 64),
                            Body::Status(StatusMessage::new(StatusType::Success, "received")),
                        )
                        .in_response_to(in_response_to);
                        taxii_xml::serialize(&status, dialect).unwrap()
                    };
                    let ids = taxii_xml::ids().dialect(dialect);
                    let mut head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n",
                        reply.len()
                    );
                    if dialect != Dialect::Draft {
                        head.push_str(&format!(
                            "Content-Type: application/xml\r\nX-TAXII-Content-Type: {}\r\n\
                             X-TAXII-Services: {}\r\nX-TAXII-Protocol: {}\r\n",
                            ids.content_type, ids.services_version, ids.protocol_http
                        ));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Receiver {
            address,
            received,
            failing,
            task,
        }
    }

    /// Answers 503 to everything from now until told otherwise.
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://{}/inbox", self.address)
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until `count` POSTs have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(40);
        while self.count() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = self.all();
        assert!(
            all.len() >= count,
            "{} of {count} pushes arrived",
            all.len()
        );
        all
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
