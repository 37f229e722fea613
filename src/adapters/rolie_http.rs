//! ROLIE (RFC 8322) over HTTP, the repository side: every hosted feed is a
//! ROLIE collection read from the same store as its TAXII poll service.
//!
//! The service document lists the collections the requester may read; a
//! collection is an Atom feed of its content blocks, newest first, in pages
//! linked as RFC 5005 says; each block is an entry whose content is served
//! out of line, byte for byte as it was received. Pages are addressed by
//! label (`?before=`, `?after=`), so a page does not shift when content
//! arrives and a client walking `next` sees every entry once. An entry
//! POSTed to a collection (AtomPub) is an inbox message like any other: it
//! goes through the routes, and is answered 201 once committed.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Body as HttpBody;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::auth::{Authenticator, TlsPeer};
use crate::bindings::rolie::{self, Category, Collection, Entry, FeedPage, Link, OutOfLine};
use crate::config::{Config, FeedConfig, Right};
use crate::core::*;
use crate::services::{Accepted, Intake, Services, new_message_id};
use crate::store::{BlockSummary, Store, StoredBlock, SummaryQuery};

struct Shared<S> {
    config: Arc<Config>,
    store: S,
    services: Arc<Services<S>>,
    auth: Arc<Authenticator>,
    gateway_id: String,
    /// The repository's absolute base URL: public URL and path.
    base: String,
    page_size: usize,
    /// Rendered pages by feed, latest label and page asked for: content is
    /// only ever appended, so such a page never changes.
    pages: std::sync::Mutex<PageCache>,
}

/// The most recently rendered pages, a bounded few.
#[derive(Default)]
struct PageCache {
    pages: std::collections::VecDeque<(String, axum::body::Bytes)>,
}

impl PageCache {
    const SIZE: usize = 64;

    fn get(&self, key: &str) -> Option<axum::body::Bytes> {
        self.pages
            .iter()
            .find(|(cached, _)| cached == key)
            .map(|(_, page)| page.clone())
    }

    fn put(&mut self, key: String, page: axum::body::Bytes) {
        if self.pages.len() == Self::SIZE {
            self.pages.pop_front();
        }
        self.pages.push_back((key, page));
    }
}

/// The repository's routes, when the configuration has `[rolie]`.
pub fn router<S: Store + Clone>(
    config: Arc<Config>,
    store: S,
    services: Arc<Services<S>>,
    auth: Arc<Authenticator>,
    gateway_id: String,
) -> Router {
    let Some(rolie) = config.rolie.clone() else {
        return Router::new();
    };
    let max_body = config.server.max_body_bytes;
    let shared = Arc::new(Shared {
        base: format!("{}{}", config.public_url(), rolie.path),
        page_size: rolie.page_size,
        pages: std::sync::Mutex::default(),
        config,
        store,
        services,
        auth,
        gateway_id,
    });
    let path = rolie.path;
    Router::new()
        .route(
            &format!("{path}/servicedocument"),
            get(service_document::<S>),
        )
        .route(
            &format!("{path}/feeds/{{feed}}"),
            get(collection::<S>).post(create::<S>),
        )
        .route(
            &format!("{path}/feeds/{{feed}}/entries/{{id}}"),
            get(entry::<S>),
        )
        .route(
            &format!("{path}/feeds/{{feed}}/entries/{{id}}/content"),
            get(content::<S>),
        )
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

/// Why a request is refused, and with which HTTP status.
struct Refusal {
    status: StatusCode,
    reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        problem(self.status, &self.reason)
    }
}

/// Who asks, from their credentials; `Err` is the 401 to send.
async fn identity<S>(
    shared: &Shared<S>,
    headers: &HeaderMap,
    peer: Option<&TlsPeer>,
) -> Result<Identity, Refusal> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    let certificate = peer.and_then(|peer| peer.certificate_subject.as_deref());
    shared
        .auth
        .identify(authorization.as_deref(), certificate)
        .await
        .map_err(|reason| Refusal::new(StatusCode::UNAUTHORIZED, reason))
}

/// The feed named in a path, if hosted and readable by `identity`;
/// otherwise the 404, 401 (with a challenge) or 403 to send.
fn readable<'c, S>(
    shared: &'c Shared<S>,
    name: &str,
    identity: &Identity,
) -> Result<&'c FeedConfig, Refusal> {
    let Some(feed) = shared.config.feed(name) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no collection {name} here"),
        ));
    };
    if feed.allows(Right::Read, identity) {
        return Ok(feed);
    }
    Err(match identity {
        Identity::Anonymous => Refusal::new(
            StatusCode::UNAUTHORIZED,
            format!("{name} needs credentials"),
        ),
        Identity::Named(who) => {
            Refusal::new(StatusCode::FORBIDDEN, format!("{who} may not read {name}"))
        }
    })
}

async fn service_document<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
) -> Response {
    let identity = match identity(&shared, &headers, peer.as_deref()).await {
        Ok(identity) => identity,
        Err(refusal) => return refusal.into_response(),
    };
    // Collections the identity may not read are left out, so that their
    // existence is not revealed (CSIRT draft, security considerations).
    let collections = shared
        .config
        .feeds
        .iter()
        .filter(|feed| feed.allows(Right::Read, &identity))
        .map(|feed| Collection {
            href: format!("{}/feeds/{}", shared.base, feed.name),
            title: feed.name.clone(),
            // An empty accept says no POST: the identity may only read.
            accept: if feed.allows(Right::Write, &identity) {
                vec![rolie::ENTRY_MEDIA_TYPE.to_owned()]
            } else {
                vec![String::new()]
            },
            information_type: Some(shared.config.information_type(feed)),
            categories: Vec::new(),
            service: Some(service_url(&shared)),
        })
        .collect();
    let document = rolie::ServiceDocument {
        workspaces: vec![rolie::Workspace {
            title: shared
                .config
                .rolie
                .as_ref()
                .map(|rolie| rolie.workspace.clone())
                .unwrap_or_default(),
            collections,
        }],
    };
    atom_response(
        rolie::SERVICE_MEDIA_TYPE,
        rolie::service_document(&document),
    )
}

fn service_url<S>(shared: &Shared<S>) -> String {
    format!("{}/servicedocument", shared.base)
}

/// Which page of a collection: the newest (no parameter), the one older
/// than a label, the one newer than a label, or the oldest.
#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    before: Option<i64>,
    after: Option<i64>,
    last: Option<String>,
}

async fn collection<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
) -> Response {
    let identity = match identity(&shared, &headers, peer.as_deref()).await {
        Ok(identity) => identity,
        Err(refusal) => return refusal.into_response(),
    };
    let feed = match readable(&shared, &name, &identity) {
        Ok(feed) => feed,
        Err(refusal) => return refusal.into_response(),
    };
    let Ok(Query(query)) = query else {
        return problem(
            StatusCode::BAD_REQUEST,
            "before and after are labels in microseconds; last takes no value",
        );
    };
    let kinds = [
        query.before.is_some(),
        query.after.is_some(),
        query.last.is_some(),
    ];
    if kinds.iter().filter(|given| **given).count() > 1 {
        return problem(
            StatusCode::BAD_REQUEST,
            "ask for one page: before, after or last",
        );
    }
    match page(&shared, feed, &query, &headers).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, feed = %feed.name, "a ROLIE page could not be read");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; try again",
            )
        }
    }
}

async fn page<S: Store + Clone>(
    shared: &Shared<S>,
    feed: &FeedConfig,
    query: &PageQuery,
    headers: &HeaderMap,
) -> Result<Response, crate::store::StoreError> {
    let store = &shared.store;
    let latest = store.latest_label(&feed.name).await?;
    let self_query = match (query.before, query.after, &query.last) {
        (Some(before), _, _) => format!("?before={before}"),
        (_, Some(after), _) => format!("?after={after}"),
        (_, _, Some(_)) => "?last".to_owned(),
        _ => String::new(),
    };
    // Content is only ever appended: the latest label and the page asked
    // for name what the page holds.
    let etag = format!(
        "W/\"{}{}\"",
        latest.map_or(0, micros),
        self_query.replace(['?', '='], "-")
    );
    if not_modified(headers, &etag, latest) {
        return Ok(cache_headers(
            StatusCode::NOT_MODIFIED.into_response(),
            &etag,
            latest,
        ));
    }
    let cache_key = format!("{}\n{etag}", feed.name);
    let cached = shared
        .pages
        .lock()
        .ok()
        .and_then(|pages| pages.get(&cache_key));
    if let Some(page) = cached {
        let response = atom_response(rolie::FEED_MEDIA_TYPE, page);
        return Ok(cache_headers(response, &etag, latest));
    }
    let size = shared.page_size;
    // Nothing past the latest label read above, so that the page is the
    // one its ETag (and the page cache) names even as content arrives.
    let bound = latest.map(|latest| latest.shifted_nanos(1_000));
    let range =
        |after: Option<Timestamp>, before: Option<Timestamp>, newest_first, limit| SummaryQuery {
            feed: feed.name.clone(),
            after,
            before: before.or(bound),
            newest_first,
            limit,
        };
    // Newest first, whichever way the page was found.
    let blocks: Vec<BlockSummary> = match (query.before, query.after, &query.last) {
        (Some(before), _, _) => {
            store
                .summaries(range(None, Some(from_micros(before)), true, size))
                .await?
        }
        (_, Some(after), _) => {
            let mut newer = store
                .summaries(range(Some(from_micros(after)), None, false, size))
                .await?;
            newer.reverse();
            newer
        }
        (_, _, Some(_)) => {
            let mut oldest = store.summaries(range(None, None, false, size)).await?;
            oldest.reverse();
            oldest
        }
        _ => store.summaries(range(None, None, true, size)).await?,
    };
    let here = format!("{}/feeds/{}", shared.base, feed.name);
    let mut links = vec![
        link("self", format!("{here}{self_query}")),
        link("first", here.clone()),
        link("last", format!("{here}?last")),
    ];
    if let (Some(newest), Some(oldest)) = (blocks.first(), blocks.last()) {
        let newer = store
            .summaries(range(Some(newest.label), None, false, 1))
            .await?;
        if !newer.is_empty() {
            links.push(link(
                "previous",
                format!("{here}?after={}", micros(newest.label)),
            ));
        }
        let older = store
            .summaries(range(None, Some(oldest.label), true, 1))
            .await?;
        if !older.is_empty() {
            links.push(link(
                "next",
                format!("{here}?before={}", micros(oldest.label)),
            ));
        }
    }
    let information_type = shared.config.information_type(feed);
    let mut entries = Vec::with_capacity(blocks.len());
    for summary in &blocks {
        // Only an IODEF payload has a CSIRT id: only then is it read.
        let csirt = if summary.binding.id.contains("iodef") {
            store
                .block(&feed.name, summary.id)
                .await?
                .and_then(|stored| rolie::csirt_id(stored.block.content.as_str()))
        } else {
            None
        };
        entries.push(entry_of(shared, feed, &information_type, summary, csirt));
    }
    let document = FeedPage {
        id: feed_id(shared, feed),
        title: feed.description.clone(),
        updated: latest.unwrap_or_else(|| Timestamp::from_unix(0, 0)),
        information_type,
        categories: Vec::new(),
        service: service_url(shared),
        links,
        entries,
    };
    let page = axum::body::Bytes::from(rolie::feed(&document));
    if let Ok(mut pages) = shared.pages.lock() {
        pages.put(cache_key, page.clone());
    }
    let response = atom_response(rolie::FEED_MEDIA_TYPE, page);
    Ok(cache_headers(response, &etag, latest))
}

async fn entry<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path((name, id)): Path<(String, String)>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
) -> Response {
    let (feed, stored) = match member(&shared, &name, &id, &headers, peer.as_deref()).await {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let information_type = shared.config.information_type(feed);
    let (summary, csirt) = summary_of(&stored);
    let document = entry_of(&shared, feed, &information_type, &summary, csirt);
    let etag = format!("\"{}\"", stored.id);
    let response = atom_response(rolie::ENTRY_MEDIA_TYPE, rolie::entry(&document, true));
    cache_headers(response, &etag, Some(stored.label))
}

async fn content<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path((name, id)): Path<(String, String)>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
) -> Response {
    let (_, stored) = match member(&shared, &name, &id, &headers, peer.as_deref()).await {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let etag = format!("\"{}\"", stored.id);
    if not_modified(&headers, &etag, Some(stored.label)) {
        return cache_headers(
            StatusCode::NOT_MODIFIED.into_response(),
            &etag,
            Some(stored.label),
        );
    }
    let media_type = media_type_of(&stored.block.binding.id);
    let body = match stored.block.content {
        XmlContent::Xml(xml) | XmlContent::Text(xml) => xml,
    };
    let mut response = Response::new(HttpBody::from(body));
    if let Ok(value) = HeaderValue::from_str(&media_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    cache_headers(response, &etag, Some(stored.label))
}

/// AtomPub: an entry POSTed to a collection becomes a content block of the
/// feed, through the routes like any inbox message.
async fn create<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path(name): Path<String>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match created(&shared, &name, peer.as_deref(), &headers, body).await {
        Ok(response) => response,
        Err(refusal) => {
            tracing::info!(feed = %name, status = %refusal.status, reason = %refusal.reason,
                "ROLIE write refused");
            refusal.into_response()
        }
    }
}

async fn created<S: Store + Clone>(
    shared: &Shared<S>,
    name: &str,
    peer: Option<&TlsPeer>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let identity = identity(shared, headers, peer).await?;
    let Some(feed) = shared.config.feed(name) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no collection {name} here"),
        ));
    };
    if !feed.allows(Right::Write, &identity) {
        return Err(match identity {
            Identity::Anonymous => Refusal::new(
                StatusCode::UNAUTHORIZED,
                format!("{name} needs credentials"),
            ),
            Identity::Named(who) => Refusal::new(
                StatusCode::FORBIDDEN,
                format!("{who} may not write to {name}"),
            ),
        });
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = media_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/atom+xml") {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "POST an Atom entry ({}), not {media_type:?}",
                rolie::ENTRY_MEDIA_TYPE
            ),
        ));
    }
    let body = body.map_err(|rejection| Refusal::new(rejection.status(), rejection.body_text()))?;
    let limits = rolie::Limits {
        max_body_bytes: shared.config.server.max_body_bytes,
        ..rolie::Limits::default()
    };
    let mappings = rolie::rolie_mappings();
    let entry = rolie::read_entry(&body, &limits, mappings)
        .map_err(|error| Refusal::new(StatusCode::BAD_REQUEST, error.to_string()))?;
    let information_type = shared.config.information_type(feed);
    if let Some(given) = &entry.information_type
        && !given.eq_ignore_ascii_case(&information_type)
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("{name} holds {information_type}, not {given}"),
        ));
    }
    let (content, media, format) = match entry.content {
        rolie::IncomingContent::Xml { media_type, xml } => {
            let format = entry.format.clone().or_else(|| rolie::payload_format(&xml));
            (XmlContent::Xml(xml), media_type, format)
        }
        rolie::IncomingContent::Text { media_type, text } => {
            (XmlContent::Text(text), media_type, entry.format.clone())
        }
        rolie::IncomingContent::OutOfLine { .. } => {
            // Fetching it would let a writer make the gateway request any URL.
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "POST the content inline: taxiway does not fetch a src given to it",
            ));
        }
    };
    let Some(binding) = mappings.binding_of(Some(&media), format.as_ref()) else {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("no content binding is known for {media} content in this data model"),
        ));
    };
    if !feed.content_bindings.iter().any(|b| b == binding) {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{name} does not accept {binding}"),
        ));
    }
    let message = Message::new(
        entry
            .id
            .clone()
            .unwrap_or_else(|| new_message_id(Dialect::V11)),
        Body::Inbox(InboxMessage {
            destination_feeds: vec![feed.name.clone()],
            content_blocks: vec![ContentBlock::new(ContentBinding::new(binding), content)],
            ..InboxMessage::default()
        }),
    );
    let intake = Intake {
        envelope: Envelope {
            message,
            origin: Origin {
                adapter: "rolie_http".to_owned(),
                identity,
                binding: WireBinding::Rolie,
            },
            received: Timestamp::now(),
            relay: Relay::default(),
        },
        feeds: vec![feed.name.clone()],
        dedup_key: None,
    };
    let accepted = shared.services.accept(intake).await.map_err(|error| {
        tracing::error!(%error, "a ROLIE entry could not be committed");
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unavailable; try again",
        )
    })?;
    let blocks = match accepted {
        Accepted::Stored { blocks, .. } => blocks,
        Accepted::Dropped | Accepted::Duplicate => {
            return Ok((
                StatusCode::ACCEPTED,
                "taken in; the routes keep no entry of it here\n",
            )
                .into_response());
        }
        Accepted::Refused(reason) => return Err(Refusal::new(StatusCode::BAD_REQUEST, reason)),
        Accepted::Unsupported(binding) => {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("no feed it goes to accepts {binding}"),
            ));
        }
    };
    let Some((_, id)) = blocks.iter().find(|(stored_in, _)| *stored_in == feed.name) else {
        return Ok((
            StatusCode::ACCEPTED,
            "taken in and stored elsewhere by the routes\n",
        )
            .into_response());
    };
    let stored = shared
        .store
        .block(&feed.name, *id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stored, but cannot be read back",
            )
        })?;
    let (summary, csirt) = summary_of(&stored);
    let document = entry_of(shared, feed, &information_type, &summary, csirt);
    let location = format!("{}/feeds/{}/entries/{}", shared.base, feed.name, stored.id);
    let mut response = atom_response(rolie::ENTRY_MEDIA_TYPE, rolie::entry(&document, true));
    *response.status_mut() = StatusCode::CREATED;
    if let Ok(value) = HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(header::LOCATION, value.clone());
        response
            .headers_mut()
            .insert(header::CONTENT_LOCATION, value);
    }
    Ok(cache_headers(
        response,
        &format!("\"{}\"", stored.id),
        Some(stored.label),
    ))
}

/// A block of a readable feed named by a path, or the refusal to send.
async fn member<'c, S: Store + Clone>(
    shared: &'c Shared<S>,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    peer: Option<&TlsPeer>,
) -> Result<(&'c FeedConfig, StoredBlock), Refusal> {
    let identity = identity(shared, headers, peer).await?;
    let feed = readable(shared, name, &identity)?;
    let missing = || Refusal::new(StatusCode::NOT_FOUND, format!("no entry {id} in {name}"));
    let Ok(id) = id.parse::<i64>() else {
        return Err(missing());
    };
    match shared.store.block(&feed.name, id).await {
        Ok(Some(stored)) => Ok((feed, stored)),
        Ok(None) => Err(missing()),
        Err(error) => {
            tracing::error!(%error, "a ROLIE entry could not be read");
            Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; try again",
            ))
        }
    }
}

fn entry_of<S>(
    shared: &Shared<S>,
    feed: &FeedConfig,
    information_type: &str,
    summary: &BlockSummary,
    csirt: Option<String>,
) -> Entry {
    let here = format!("{}/feeds/{}/entries/{}", shared.base, feed.name, summary.id);
    let mapping = rolie::rolie_mappings().binding(&summary.binding.id);
    let properties = csirt
        .map(|id| rolie::Property {
            name: rolie::CSIRT_ID_PROPERTY.to_owned(),
            value: id,
        })
        .into_iter()
        .collect();
    Entry {
        id: format!(
            "urn:taxiway:{}:{}:{}",
            shared.gateway_id, feed.name, summary.id
        ),
        title: format!("{} content block {}", feed.name, summary.id),
        updated: summary.label,
        published: Some(summary.label),
        information_type: information_type.to_owned(),
        categories: vec![Category {
            scheme: Some("urn:taxiway:content-binding".to_owned()),
            term: summary.binding.id.clone(),
            label: None,
        }],
        content: OutOfLine {
            media_type: media_type_of(&summary.binding.id),
            src: format!("{here}/content"),
        },
        links: vec![link("self", here)],
        collections: vec![format!("{}/feeds/{}", shared.base, feed.name)],
        format: mapping.and_then(|m| m.format.clone()),
        properties,
    }
}

/// A stored block as a page or an entry shows it.
fn summary_of(stored: &StoredBlock) -> (BlockSummary, Option<String>) {
    let summary = BlockSummary {
        id: stored.id,
        label: stored.label,
        binding: stored.block.binding.clone(),
    };
    (summary, rolie::csirt_id(stored.block.content.as_str()))
}

fn media_type_of(binding: &str) -> String {
    rolie::rolie_mappings()
        .binding(binding)
        .map_or_else(|| "application/xml".to_owned(), |m| m.media_type.clone())
}

fn feed_id<S>(shared: &Shared<S>, feed: &FeedConfig) -> String {
    format!("urn:taxiway:{}:{}", shared.gateway_id, feed.name)
}

fn link(rel: &str, href: String) -> Link {
    Link {
        rel: rel.to_owned(),
        href,
        media_type: None,
        title: None,
    }
}

fn micros(label: Timestamp) -> i64 {
    i64::try_from(label.unix_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

fn from_micros(micros: i64) -> Timestamp {
    Timestamp::from_unix(
        micros.div_euclid(1_000_000),
        (micros.rem_euclid(1_000_000) * 1_000) as u32,
    )
}

/// Whether the client's copy is current: its ETag matches, or it has
/// everything up to the latest label (at the second's resolution of HTTP dates).
fn not_modified(headers: &HeaderMap, etag: &str, latest: Option<Timestamp>) -> bool {
    if let Some(tags) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return tags.split(',').map(str::trim).any(|tag| {
            tag == "*"
                || tag == etag
                || tag.trim_start_matches("W/") == etag.trim_start_matches("W/")
        });
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match (since, latest) {
        (Some(since), Some(latest)) => system_time(latest) < since + Duration::from_secs(1),
        (Some(_), None) => true,
        _ => false,
    }
}

fn system_time(label: Timestamp) -> std::time::SystemTime {
    let nanos = label.unix_nanos().max(0) as u128;
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

fn cache_headers(mut response: Response, etag: &str, latest: Option<Timestamp>) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(latest) = latest
        && let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(system_time(latest)))
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    response
}

fn atom_response(media_type: &str, body: impl Into<HttpBody>) -> Response {
    let mut response = Response::new(body.into());
    if let Ok(value) = HeaderValue::from_str(&format!("{media_type};charset=utf-8")) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// A 4xx or 5xx with a plain-text body that says why; 401 carries the
/// challenge that tells the client how to authenticate.
fn problem(status: StatusCode, reason: &str) -> Response {
    let mut response = (status, format!("{reason}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"taxiway\", charset=\"UTF-8\""),
        );
    }
    response
}
