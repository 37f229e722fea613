//! TAXII over HTTP, client side: inbox messages POSTed to remote inbox
//! services, both to push subscribers ([`push`]) and to the egress
//! destinations routes forward to ([`egress`]) or fan out to ([`fanout`]),
//! and remote poll services polled on a schedule ([`poller`]).
//!
//! Every POST goes through one tower stack: a timeout per attempt and a few
//! quick retries of transient failures (no answer, HTTP 5xx). What still
//! fails is retried later, with backoff, from the durable outbox.

pub mod egress;
pub mod fanout;
pub mod poller;
pub mod push;

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

use crate::bindings::taxii_xml;
use crate::config::ClientTlsConfig;
use crate::core::*;

/// The most of a receiver's answer read when a status message is expected.
const MAX_STATUS_BYTES: usize = 1024 * 1024;
/// Quick retries of a transient failure within one delivery attempt.
const QUICK_RETRIES: usize = 2;

type HttpService = BoxCloneSyncService<reqwest::Request, reqwest::Response, BoxError>;

/// Sends TAXII messages to remote services.
#[derive(Clone)]
pub struct TaxiiClient {
    /// Builds requests; they are sent through `http`.
    client: reqwest::Client,
    http: HttpService,
}

impl TaxiiClient {
    pub fn new(timeout: Duration, tls: Option<&ClientTlsConfig>) -> Result<TaxiiClient, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            // An allowed destination must not be able to redirect the gateway
            // to an address the allow-list would refuse.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = tls {
            builder = tls.configure(builder)?;
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        let sender = client.clone();
        let http = ServiceBuilder::new()
            .retry(Transient {
                left: QUICK_RETRIES,
            })
            .timeout(timeout)
            .service_fn(move |request: reqwest::Request| {
                let sender = sender.clone();
                async move { sender.execute(request).await }
            });
        Ok(TaxiiClient {
            client,
            http: BoxCloneSyncService::new(http),
        })
    }

    /// POSTs `message`, already in `dialect`'s terms, to `url`; `Ok` once
    /// the receiver answered SUCCESS (in the draft, a 2xx: its push is
    /// one-way). `Err` says why not.
    pub async fn send(
        &self,
        url: &str,
        dialect: Dialect,
        message: &Message,
        credentials: Option<(&str, &str)>,
    ) -> Result<(), String> {
        let answer = self
            .post(url, dialect, message, credentials, MAX_STATUS_BYTES)
            .await?;
        if dialect == Dialect::Draft {
            return Ok(());
        }
        match read(&answer)?.body {
            Body::Status(status) if status.status_type == StatusType::Success => Ok(()),
            Body::Status(status) => Err(format!(
                "answered {}{}",
                status.status_type.name(),
                status.message.map(|m| format!(": {m}")).unwrap_or_default()
            )),
            other => Err(format!("answered a {}", other.kind())),
        }
    }

    /// POSTs a request and reads the TAXII message answered, of at most
    /// `max_answer` bytes.
    pub async fn exchange(
        &self,
        url: &str,
        dialect: Dialect,
        message: &Message,
        credentials: Option<(&str, &str)>,
        max_answer: usize,
    ) -> Result<Message, String> {
        let answer = self
            .post(url, dialect, message, credentials, max_answer)
            .await?;
        read(&answer)
    }

    async fn post(
        &self,
        url: &str,
        dialect: Dialect,
        message: &Message,
        credentials: Option<(&str, &str)>,
        max_answer: usize,
    ) -> Result<Vec<u8>, String> {
        let body = taxii_xml::serialize(message, dialect).map_err(|e| e.to_string())?;
        let ids = taxii_xml::ids().dialect(dialect);
        let protocol = if url.starts_with("https:") {
            &ids.protocol_https
        } else {
            &ids.protocol_http
        };
        let mut builder = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/xml")
            .header(ACCEPT, "application/xml")
            .header("X-TAXII-Content-Type", &ids.content_type)
            .header("X-TAXII-Accept", &ids.content_type)
            .header("X-TAXII-Protocol", protocol);
        if dialect != Dialect::Draft {
            builder = builder.header("X-TAXII-Services", &ids.services_version);
        }
        if let Some((username, password)) = credentials {
            builder = builder.basic_auth(username, Some(password));
        }
        let request = builder
            .body(body)
            .build()
            .map_err(|e| format!("cannot POST to {url}: {e}"))?;
        let mut response = self
            .http
            .clone()
            .ready()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?
            .call(request)
            .await
            .map_err(|e| format!("POST {url} failed: {e}"))?;
        let code = response.status();
        if !code.is_success() {
            return Err(format!("{url} answered HTTP {code}"));
        }
        let mut answer = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the answer failed: {e}"))?
        {
            if answer.len() + chunk.len() > max_answer {
                return Err(format!("the answer is larger than {max_answer} bytes"));
            }
            answer.extend_from_slice(&chunk);
        }
        Ok(answer)
    }
}

fn read(answer: &[u8]) -> Result<Message, String> {
    let limits = taxii_xml::Limits {
        max_body_bytes: usize::MAX,
        ..taxii_xml::Limits::default()
    };
    taxii_xml::parse_with(answer, &limits)
        .map(|parsed| parsed.message)
        .map_err(|e| format!("the answer is not a TAXII message: {}", e.reason))
}

/// Retries what may pass a moment later: no answer at all, or HTTP 5xx.
#[derive(Clone)]
struct Transient {
    left: usize,
}

impl tower::retry::Policy<reqwest::Request, reqwest::Response, BoxError> for Transient {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut reqwest::Request,
        result: &mut Result<reqwest::Response, BoxError>,
    ) -> Option<Self::Future> {
        let transient = match result {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        };
        if !transient || self.left == 0 {
            return None;
        }
        self.left -= 1;
        let wait = 100 * (QUICK_RETRIES - self.left) as u64;
        Some(tokio::time::sleep(Duration::from_millis(wait)))
    }

    fn clone_request(&mut self, request: &reqwest::Request) -> Option<reqwest::Request> {
        request.try_clone()
    }
}
