//! TAXII over HTTP: the HTTP protocol binding of the three XML dialects.
//!
//! Every POST carries a TAXII message in the dialect its
//! `X-TAXII-Content-Type` names; the seed's draft also asks for discovery and
//! feed information with a bodiless GET and a query string. Answers go back
//! in the requester's dialect (or one it accepts), with the X-TAXII headers
//! peers such as OpenTAXII require on every response.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::{Body as HttpBody, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::auth::{Authenticator, TlsPeer};
use crate::bindings::taxii_xml::{self, ChunkedWriter, Limits, ParseError};
use crate::core::*;
use crate::services::{MoreBlocks, Reply, Services, status};
use crate::store::Store;

const X_TAXII_CONTENT_TYPE: &str = "x-taxii-content-type";
const X_TAXII_ACCEPT: &str = "x-taxii-accept";
const X_TAXII_PROTOCOL: &str = "x-taxii-protocol";
const X_TAXII_SERVICES: &str = "x-taxii-services";

struct Shared<S> {
    services: Arc<Services<S>>,
    limits: Limits,
    auth: Arc<Authenticator>,
}

/// The routes of every TAXII service of the configuration.
pub fn router<S: Store + Clone>(services: Arc<Services<S>>, auth: Arc<Authenticator>) -> Router {
    let max_body = services.config().server.max_body_bytes;
    let limits = Limits {
        max_body_bytes: max_body,
        ..Limits::default()
    };
    let shared = Arc::new(Shared {
        services,
        limits,
        auth,
    });
    Router::new()
        .fallback(handle::<S>)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

async fn handle<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: Option<Extension<TlsPeer>>,
    // Taken as a Result so that a body over max_body_bytes is refused here,
    // with TAXII headers, rather than by axum in plain text.
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let peer = peer.map(|Extension(peer)| peer);
    let mut response = answer(&shared, method, uri, &headers, peer.as_ref(), body).await;
    // Every response names the binding it travelled on.
    if peer.is_some()
        && let Some(dialect) = response
            .headers()
            .get(X_TAXII_CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| taxii_xml::ids().dialect_of_content_type(value))
        && let Ok(value) = HeaderValue::from_str(&taxii_xml::ids().dialect(dialect).protocol_https)
    {
        response.headers_mut().insert(X_TAXII_PROTOCOL, value);
    }
    response
}

async fn answer<S: Store + Clone>(
    shared: &Shared<S>,
    method: Method,
    uri: Uri,
    headers: &HeaderMap,
    peer: Option<&TlsPeer>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let path = uri.path();
    if !shared.services.serves(path) {
        return http_error(
            headers,
            StatusCode::NOT_FOUND,
            StatusType::NotFound,
            format!("no TAXII service at {path}"),
        );
    }
    let (dialect, request) = match method {
        Method::GET => match draft_get(&shared.services, path, uri.query()) {
            Ok(request) => (Dialect::Draft, request),
            Err(reason) => return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
        },
        Method::POST => {
            let body = match body {
                Ok(body) => body,
                // 413 for a body over the limit (HTTP binding 5.1: BAD_MESSAGE).
                Err(rejection) => {
                    return http_error(
                        headers,
                        rejection.status(),
                        StatusType::BadMessage,
                        rejection.body_text(),
                    );
                }
            };
            match read_post(&shared.limits, headers, &body) {
                Ok(read) => read,
                Err(refusal) => return refusal.into_response(headers),
            }
        }
        _ => {
            let mut response = http_error(
                headers,
                StatusCode::METHOD_NOT_ALLOWED,
                StatusType::Failure,
                "TAXII services take POST (and the draft's GET)".into(),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            return response;
        }
    };
    if let Some(refusal) = protocol_mismatch(headers, peer.is_some(), dialect, &request) {
        return refusal.into_response(headers);
    }
    // Authenticated once the request is read, so that a refusal can answer
    // its message id in its dialect.
    let certificate = peer.and_then(|peer| peer.certificate_subject.as_deref());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let identity = match shared
        .auth
        .identify(authorization.as_deref(), certificate)
        .await
    {
        Ok(identity) => identity,
        Err(reason) => {
            return Refusal::new(dialect, Some(&request.id), StatusType::Unauthorized, reason)
                .into_response(headers);
        }
    };
    tracing::debug!(path, %dialect, kind = %request.kind(), id = %request.id, ?identity, "request");
    match shared
        .services
        .handle(path, dialect, &identity, request)
        .await
    {
        Some(reply) => {
            let refused = match &reply.message.body {
                Body::Status(status) => draft_status_of(&status.status_type),
                _ => None,
            };
            let mut response = reply_in(dialect, reply, headers);
            // Only a reply written in the draft (not a 406) takes its code.
            if let (Dialect::Draft, Some(code), true) =
                (dialect, refused, response.status().is_success())
            {
                set_draft_status(&mut response, code);
            }
            response
        }
        None => empty_reply(dialect),
    }
}

/// The HTTP status the draft gives a refusal found while processing
/// (D-HTTP 7: 401 when the client must authenticate, 403 without permission).
fn draft_status_of(status_type: &StatusType) -> Option<StatusCode> {
    match status_type {
        StatusType::Unauthorized => Some(StatusCode::UNAUTHORIZED),
        StatusType::Denied => Some(StatusCode::FORBIDDEN),
        _ => None,
    }
}

fn set_draft_status(response: &mut Response, code: StatusCode) {
    *response.status_mut() = code;
    if code == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"taxiway\""),
        );
    }
}

/// A request refused before the services saw it, answered in its dialect.
struct Refusal {
    dialect: Dialect,
    reply: Box<Message>,
    /// The draft reports header and parse errors as HTTP statuses.
    draft_status: StatusCode,
}

impl Refusal {
    fn new(
        dialect: Dialect,
        in_response_to: Option<&str>,
        status_type: StatusType,
        reason: String,
    ) -> Self {
        let request = Message::new(in_response_to.unwrap_or("0"), Body::DiscoveryRequest);
        let draft_status = match status_type {
            StatusType::UnsupportedMessage => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ref other => draft_status_of(other).unwrap_or(StatusCode::BAD_REQUEST),
        };
        tracing::info!(%dialect, status = %status_type, %reason, "request refused");
        Refusal {
            dialect,
            reply: Box::new(status(&request, dialect, status_type, reason)),
            draft_status,
        }
    }

    fn into_response(self, headers: &HeaderMap) -> Response {
        let mut response = reply_in(self.dialect, Reply::from(*self.reply), headers);
        if self.dialect == Dialect::Draft {
            set_draft_status(&mut response, self.draft_status);
        }
        response
    }
}

/// An error TAXII cannot report in a 200 (no service at the path, a wrong
/// method, a body over the limit) keeps its HTTP status; a request whose
/// X-TAXII-Content-Type names a dialect also gets a status message in it,
/// with the X-TAXII headers every response to a TAXII client must carry
/// (HTTP binding 4). Before, these were bare text/plain answers.
fn http_error(
    headers: &HeaderMap,
    code: StatusCode,
    status_type: StatusType,
    reason: String,
) -> Response {
    let declared = headers
        .get(X_TAXII_CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| taxii_xml::ids().dialect_of_content_type(value));
    let Some(dialect) = declared else {
        return (code, format!("{reason}\n")).into_response();
    };
    let mut response = Refusal::new(dialect, None, status_type, reason).into_response(headers);
    *response.status_mut() = code;
    response
}

fn read_post(
    limits: &Limits,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Dialect, Message), Refusal> {
    let ids = taxii_xml::ids();
    let declared = headers.get(X_TAXII_CONTENT_TYPE).map(|value| {
        value
            .to_str()
            .ok()
            .and_then(|v| ids.dialect_of_content_type(v))
    });
    let parsed = taxii_xml::parse_with(body, limits);
    let body_dialect = match &parsed {
        Ok(parsed) => Some(parsed.dialect),
        Err(error) => error.dialect,
    };
    let answer_in = declared.flatten().or(body_dialect).unwrap_or(Dialect::V11);
    let message_id = match &parsed {
        Ok(parsed) => Some(parsed.message.id.as_str()),
        Err(error) => error.message_id.as_deref(),
    };
    match declared {
        None => {
            return Err(Refusal::new(
                answer_in,
                message_id,
                StatusType::BadMessage,
                "X-TAXII-Content-Type is missing: a TAXII message must name its binding".into(),
            ));
        }
        Some(None) => {
            return Err(Refusal::new(
                answer_in,
                message_id,
                StatusType::UnsupportedMessage,
                "X-TAXII-Content-Type names no message binding served here".into(),
            ));
        }
        Some(Some(_)) => {}
    }
    if let Some(content_type) = headers.get(header::CONTENT_TYPE)
        && !content_type
            .to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("xml"))
    {
        return Err(Refusal::new(
            answer_in,
            message_id,
            StatusType::BadMessage,
            "Content-Type must be application/xml".into(),
        ));
    }
    let parsed = parsed.map_err(|error: ParseError| {
        Refusal::new(
            answer_in,
            error.message_id.as_deref(),
            error.status,
            error.reason,
        )
    })?;
    if parsed.dialect != answer_in {
        return Err(Refusal::new(
            answer_in,
            Some(&parsed.message.id),
            StatusType::BadMessage,
            format!(
                "X-TAXII-Content-Type says TAXII {answer_in} but the body is TAXII {}",
                parsed.dialect
            ),
        ));
    }
    Ok((parsed.dialect, parsed.message))
}

/// The draft's bodiless GET: `message_type`, `message_id`, and any other
/// parameter as an extended header.
fn draft_get<S: Store + Clone>(
    services: &Services<S>,
    path: &str,
    query: Option<&str>,
) -> Result<Message, String> {
    let mut kind = None;
    let mut id = None;
    let mut headers = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(name)?, percent_decode(value)?);
        match name.as_str() {
            "message_type" => kind = Some(value.to_ascii_lowercase()),
            "message_id" => id = Some(value),
            _ => headers.push(ExtendedHeader {
                name,
                value: XmlContent::Text(value),
            }),
        }
    }
    let id = id
        .filter(|id| !id.is_empty())
        .ok_or("a draft GET request needs a message_id")?;
    let has = |kind| services.config().services_at(path).any(|s| s.kind == kind);
    use crate::config::ServiceKind;
    let body = match kind.as_deref() {
        Some("feed_information_request") => Body::FeedInformationRequest,
        // The seed (figure 6) asks a feed management address for its feeds
        // with a discovery request: that address has no discovery to give.
        Some("discovery_request")
            if !has(ServiceKind::Discovery) && has(ServiceKind::FeedManagement) =>
        {
            Body::FeedInformationRequest
        }
        Some("discovery_request") => Body::DiscoveryRequest,
        Some(other) => return Err(format!("message_type {other:?} cannot be sent with GET")),
        None => return Err("a draft GET request needs a message_type".into()),
    };
    let mut message = Message::new(id, body);
    message.extended_headers = headers;
    Ok(message)
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' => {
                let hex = text
                    .get(at + 1..at + 3)
                    .ok_or("a truncated %-escape in the query")?;
                out.push(
                    u8::from_str_radix(hex, 16).map_err(|_| format!("%{hex} is not an escape"))?,
                );
                at += 3;
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            byte => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "the query is not UTF-8".into())
}

/// The HTTPS binding named over plain HTTP (a protection the request does
/// not have), or the HTTP binding over TLS.
fn protocol_mismatch(
    headers: &HeaderMap,
    tls: bool,
    dialect: Dialect,
    request: &Message,
) -> Option<Refusal> {
    let value = headers.get(X_TAXII_PROTOCOL)?.to_str().ok()?;
    let claimed = taxii_xml::ids().protocol(value);
    let reason = match (claimed, tls) {
        (ProtocolBinding::Https, false) => {
            "the request names the HTTPS binding but came over plain HTTP"
        }
        (ProtocolBinding::Http, true) => "the request names the HTTP binding but came over HTTPS",
        _ => return None,
    };
    Some(Refusal::new(
        dialect,
        Some(&request.id),
        StatusType::UnsupportedProtocol,
        reason.into(),
    ))
}

/// The dialect to answer in: the request's, unless X-TAXII-Accept names
/// others only.
fn reply_dialect(request_dialect: Dialect, headers: &HeaderMap) -> Option<Dialect> {
    let Some(accept) = headers.get(X_TAXII_ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(request_dialect);
    };
    let ids = taxii_xml::ids();
    let accepted: Vec<Dialect> = accept
        .split_whitespace()
        .filter_map(|value| ids.dialect_of_content_type(value))
        .collect();
    if accepted.is_empty() || accepted.contains(&request_dialect) {
        Some(request_dialect)
    } else {
        accepted.first().copied()
    }
}

fn reply_in(request_dialect: Dialect, reply: Reply, headers: &HeaderMap) -> Response {
    let Some(dialect) = reply_dialect(request_dialect, headers) else {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "no accepted TAXII binding is served here\n",
        )
            .into_response();
    };
    let written = match reply.more_blocks {
        None => taxii_xml::convert(reply.message, request_dialect, dialect)
            .and_then(|c| taxii_xml::serialize(&c.message, dialect))
            .map(HttpBody::from),
        Some(more_blocks) => ChunkedWriter::begin(reply.message, request_dialect, dialect)
            .map(|(writer, head)| streamed_body(writer, head, more_blocks)),
    };
    match written {
        Ok(body) => taxii_response(dialect, StatusCode::OK, body),
        Err(reason) => {
            tracing::error!(%reason, "a reply could not be written");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{reason}\n")).into_response()
        }
    }
}

/// A reply written while its blocks are read: the head now, each chunk as
/// the connection takes it, then the tail. A store failure midway cuts the
/// body off, so that the client sees a broken reply, never a short one that
/// looks whole.
fn streamed_body(writer: ChunkedWriter, head: String, more_blocks: MoreBlocks) -> HttpBody {
    enum State {
        Head(String),
        Blocks,
        Done,
    }
    let stream = futures_util::stream::unfold(
        (State::Head(head), Some(writer), more_blocks),
        |(state, mut writer, mut blocks)| async move {
            match state {
                State::Head(head) => Some((Ok(head), (State::Blocks, writer, blocks))),
                State::Blocks => match blocks.next().await {
                    Some(Ok(chunk)) => {
                        let written = writer.as_mut().map(|w| w.blocks(chunk)).unwrap_or_default();
                        Some((Ok(written), (State::Blocks, writer, blocks)))
                    }
                    Some(Err(error)) => {
                        tracing::error!(%error, "a poll response was cut off");
                        Some((Err(error), (State::Done, None, blocks)))
                    }
                    None => {
                        let tail = writer.take().map(ChunkedWriter::finish).unwrap_or_default();
                        Some((Ok(tail), (State::Done, None, blocks)))
                    }
                },
                State::Done => None,
            }
        },
    );
    HttpBody::from_stream(stream)
}

fn empty_reply(dialect: Dialect) -> Response {
    taxii_response(dialect, StatusCode::OK, HttpBody::empty())
}

fn taxii_response(dialect: Dialect, status: StatusCode, body: HttpBody) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    for (name, value) in dialect_headers(dialect) {
        headers.insert(*name, value.clone());
    }
    response
}

/// The X-TAXII headers of each dialect's responses, made once: a header
/// value cloned shares its bytes, one made from a string copies them.
fn dialect_headers(dialect: Dialect) -> &'static [(&'static str, HeaderValue)] {
    type Headers = Vec<(&'static str, HeaderValue)>;
    static HEADERS: OnceLock<Vec<(Dialect, Headers)>> = OnceLock::new();
    let all = HEADERS.get_or_init(|| {
        Dialect::ALL
            .into_iter()
            .map(|dialect| {
                let ids = taxii_xml::ids().dialect(dialect);
                let mut values = vec![
                    (X_TAXII_CONTENT_TYPE, ids.content_type.as_str()),
                    (X_TAXII_PROTOCOL, ids.protocol_http.as_str()),
                ];
                if dialect != Dialect::Draft {
                    values.push((X_TAXII_SERVICES, ids.services_version.as_str()));
                }
                let values = values
                    .into_iter()
                    .filter_map(|(name, value)| Some((name, HeaderValue::from_str(value).ok()?)))
                    .collect();
                (dialect, values)
            })
            .collect()
    });
    all.iter()
        .find(|(known, _)| *known == dialect)
        .map_or(&[], |(_, values)| values.as_slice())
}
