//! ROLIE (RFC 8322) over HTTP, the repository side: every hosted feed is a
//! ROLIE collection read from the same store as its TAXII poll service.
//!
//! The service document lists the collections the requester may read; a
//! collection is an Atom feed of its content blocks, newest first, in pages
//! linked as RFC 5005 says; each block is an entry whose content is served
//! out of line, byte for byte as it was received. Pages are addressed by
//! label (`?before=`, `?after=`), so a page does not shift when content
//! arrives and a client walking `next` sees every entry once. An entry
//! POSTed to a collection (AtomPub), or a bare payload (a media entry), is
//! an inbox message like any other: it goes through the routes, and is
//! answered 201 once committed. An entry is replaced (PUT) or removed
//! (DELETE) only with `If-Match`, by an identity the feed lets edit.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Body as HttpBody;
use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::rejection::BytesRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::auth::{Authenticator, TlsPeer};
use crate::bindings::rolie::{
    self, Category, Collection, Entry, FeedPage, IodefFacts, Link, OutOfLine,
};
use crate::config::{Config, FeedConfig, Right};
use crate::core::*;
use crate::services::{Accepted, Intake, Replacing, Services, new_message_id};
use crate::store::{BlockSummary, EditConflict, Store, StoredBlock, SummaryQuery};

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
            &format!("{path}/feeds/{{feed}}/categories"),
            get(categories::<S>),
        )
        .route(
            &format!("{path}/feeds/{{feed}}/entries/{{id}}"),
            get(entry::<S>).put(replace::<S>).delete(remove::<S>),
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
            href: collection_url(&shared, feed),
            title: feed.name.clone(),
            // An empty accept says no POST: the identity may only read.
            accept: if feed.allows(Right::Write, &identity) {
                std::iter::once(rolie::ENTRY_MEDIA_TYPE.to_owned())
                    .chain(payload_media_types(feed))
                    .collect()
            } else {
                vec![String::new()]
            },
            information_type: Some(shared.config.information_type(feed)),
            categories: collection_categories(feed),
            category_document: Some(format!("{}/categories", collection_url(&shared, feed))),
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

/// The media types a collection takes a payload by itself in (a media
/// entry): those its bindings map to. It takes Atom entries besides.
fn payload_media_types(feed: &FeedConfig) -> Vec<String> {
    let mappings = rolie::rolie_mappings();
    let mut accept: Vec<String> = Vec::new();
    for binding in &feed.content_bindings {
        if let Some(mapping) = mappings.binding(binding)
            && !accept.contains(&mapping.media_type)
        {
            accept.push(mapping.media_type.clone());
        }
    }
    accept
}

/// The categories of a collection besides its information type: those
/// configured, and on an IODEF feed the CSIRT purpose and restriction
/// (CSIRT draft 4.1), `other` and `default` unless configured.
fn collection_categories(feed: &FeedConfig) -> Vec<Category> {
    let mut categories: Vec<Category> = feed
        .categories
        .iter()
        .map(|category| Category {
            scheme: Some(category.scheme.clone()),
            term: category.term.clone(),
            label: category.label.clone(),
        })
        .collect();
    if feed.holds_iodef() {
        for (scheme, term) in [
            (rolie::IODEF_PURPOSE_SCHEME, "other"),
            (rolie::IODEF_RESTRICTION_SCHEME, "default"),
        ] {
            if !feed.categories.iter().any(|c| c.scheme == scheme) {
                categories.push(Category {
                    scheme: Some(scheme.to_owned()),
                    term: term.to_owned(),
                    label: None,
                });
            }
        }
    }
    categories
}

/// A collection's category document: its information type and the rest of
/// its categories, as the service document lists them inline.
async fn categories<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path(name): Path<String>,
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
    let mut categories = vec![Category {
        scheme: Some(rolie::INFORMATION_TYPE_SCHEME.to_owned()),
        term: shared.config.information_type(feed),
        label: None,
    }];
    categories.extend(collection_categories(feed));
    atom_response(
        rolie::CATEGORY_MEDIA_TYPE,
        rolie::category_document(&categories),
    )
}

fn service_url<S>(shared: &Shared<S>) -> String {
    format!("{}/servicedocument", shared.base)
}

fn collection_url<S>(shared: &Shared<S>, feed: &FeedConfig) -> String {
    format!("{}/feeds/{}", shared.base, feed.name)
}

/// The absolute address of the service document, when the configuration
/// has a ROLIE repository.
pub fn service_document_url(config: &Config) -> Option<String> {
    let rolie = config.rolie.as_ref()?;
    Some(format!(
        "{}{}/servicedocument",
        config.public_url(),
        rolie.path
    ))
}

/// The forward-slash resource (CSIRT draft 3.1.1, RFC 8322 5.5): `/` is
/// TAXII's for POST and for the draft's GET form (sent with X-TAXII
/// headers); a bare GET of it is a ROLIE client's, sent to the service
/// document.
pub async fn forward_slash(
    State(service_document): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    let uri = request.uri();
    let bare_get = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) && uri.path() == "/"
        && uri.query().is_none_or(str::is_empty)
        && !request
            .headers()
            .keys()
            .any(|name| name.as_str().starts_with("x-taxii-"));
    if !bare_get {
        return next.run(request).await;
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(&service_document) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
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
    match page(&shared, feed, &identity, &query, &headers).await {
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
    identity: &Identity,
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
    // Who reads a feed with restricted entries changes what a page holds.
    let viewer = match identity {
        Identity::Named(who) if !feed.restrictions.is_empty() => format!("-{who}"),
        _ => String::new(),
    };
    // The feed's latest label moves on with every change to it: with the
    // page asked for (and who asks) it names what the page holds.
    let etag = format!(
        "W/\"{}{}{viewer}\"",
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
    let here = collection_url(shared, feed);
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
        // Only an IODEF payload says more of itself: only then is it read.
        let facts = if rolie::is_iodef_binding(&summary.binding.id) {
            store
                .block(&feed.name, summary.id)
                .await?
                .and_then(|stored| rolie::iodef_facts(stored.block.content.as_str()))
        } else {
            None
        };
        if !may_read(feed, identity, facts.as_ref()) {
            continue;
        }
        entries.push(entry_of(shared, feed, &information_type, summary, facts));
    }
    let document = FeedPage {
        id: feed_id(shared, feed),
        title: feed.description.clone(),
        updated: latest.unwrap_or_else(|| Timestamp::from_unix(0, 0)),
        information_type,
        categories: collection_categories(feed),
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

/// Whether the restriction of an IODEF entry lets `identity` read it
/// (CSIRT draft 3.1.2); the feed is readable to it already.
fn may_read(feed: &FeedConfig, identity: &Identity, facts: Option<&IodefFacts>) -> bool {
    feed.allows_restricted(
        facts.and_then(|facts| facts.restriction.as_deref()),
        identity,
    )
}

async fn entry<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path((name, id)): Path<(String, String)>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
) -> Response {
    match changed_member(&shared, &name, &id, &headers, peer.as_deref()).await {
        Ok((feed, stored)) => entry_response(&shared, feed, &stored, StatusCode::OK),
        Err(response) => response,
    }
}

async fn content<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path((name, id)): Path<(String, String)>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
) -> Response {
    let stored = match changed_member(&shared, &name, &id, &headers, peer.as_deref()).await {
        Ok((_, stored)) => stored,
        Err(response) => return response,
    };
    let etag = entry_etag(&stored);
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
    let done = async {
        let (identity, feed) =
            writer(&shared, &name, Right::Write, &headers, peer.as_deref()).await?;
        let incoming = incoming(&shared, feed, &headers, body)?;
        let blocks = take_in(&shared, feed, identity, incoming, None).await?;
        let Some(id) = blocks else {
            return Ok((
                StatusCode::ACCEPTED,
                "taken in; the routes keep no entry of it in this collection\n",
            )
                .into_response());
        };
        let stored = read_back(&shared, feed, id).await?;
        let mut response = entry_response(&shared, feed, &stored, StatusCode::CREATED);
        if let Ok(value) = HeaderValue::from_str(&entry_url(&shared, feed, stored.id)) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Ok(response)
    };
    refused_or(&name, "POST", done.await)
}

/// AtomPub: new content for an entry, in place: it keeps its id and address
/// and takes the feed's next label, so that TAXII pollers and subscribers
/// receive it as new content.
async fn replace<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path((name, id)): Path<(String, String)>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let done = async {
        let (identity, feed) =
            writer(&shared, &name, Right::Edit, &headers, peer.as_deref()).await?;
        let (id, expected) = precondition(&name, &id, &headers)?;
        let incoming = incoming(&shared, feed, &headers, body)?;
        let replacing = Replacing {
            feed: feed.name.clone(),
            id,
            expected,
        };
        take_in(&shared, feed, identity, incoming, Some(replacing)).await?;
        let stored = read_back(&shared, feed, id).await?;
        Ok(entry_response(&shared, feed, &stored, StatusCode::OK))
    };
    refused_or(&name, "PUT", done.await)
}

/// AtomPub: an entry removed from its collection, and so from the TAXII
/// feed, with whatever was still to be pushed of it.
async fn remove<S: Store + Clone>(
    State(shared): State<Arc<Shared<S>>>,
    Path((name, id)): Path<(String, String)>,
    peer: Option<Extension<TlsPeer>>,
    headers: HeaderMap,
) -> Response {
    let done = async {
        let (_, feed) = writer(&shared, &name, Right::Edit, &headers, peer.as_deref()).await?;
        let (id, expected) = precondition(&name, &id, &headers)?;
        let conflict = shared
            .services
            .remove(&feed.name, id, expected)
            .await
            .map_err(|error| unavailable("an entry could not be removed", &error))?;
        match conflict {
            None => Ok(StatusCode::NO_CONTENT.into_response()),
            Some(conflict) => Err(conflict_refusal(&name, id, conflict)),
        }
    };
    refused_or(&name, "DELETE", done.await)
}

/// The response, or the refusal logged and sent.
fn refused_or(name: &str, method: &str, done: Result<Response, Refusal>) -> Response {
    match done {
        Ok(response) => response,
        Err(refusal) => {
            tracing::info!(feed = %name, method, status = %refusal.status, reason = %refusal.reason,
                "ROLIE write refused");
            refusal.into_response()
        }
    }
}

/// Who writes, and to which feed, if the identity holds `right` on it.
async fn writer<'c, S>(
    shared: &'c Shared<S>,
    name: &str,
    right: Right,
    headers: &HeaderMap,
    peer: Option<&TlsPeer>,
) -> Result<(Identity, &'c FeedConfig), Refusal> {
    let identity = identity(shared, headers, peer).await?;
    let Some(feed) = shared.config.feed(name) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("no collection {name} here"),
        ));
    };
    if feed.allows(right, &identity) {
        return Ok((identity, feed));
    }
    let verb = match right {
        Right::Edit => "edit entries of",
        _ => "write to",
    };
    Err(match identity {
        Identity::Anonymous => Refusal::new(
            StatusCode::UNAUTHORIZED,
            format!("{name} needs credentials"),
        ),
        Identity::Named(who) => Refusal::new(
            StatusCode::FORBIDDEN,
            format!("{who} may not {verb} {name}"),
        ),
    })
}

/// The entry a PUT or DELETE names and the version it expects: `If-Match`
/// is required, so that no one overwrites a change they have not seen.
fn precondition(
    name: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<(i64, Option<Timestamp>), Refusal> {
    let id: i64 = id
        .parse()
        .map_err(|_| Refusal::new(StatusCode::NOT_FOUND, format!("no entry {id} in {name}")))?;
    let Some(tags) = headers.get(header::IF_MATCH) else {
        return Err(Refusal::new(
            StatusCode::PRECONDITION_REQUIRED,
            "send If-Match with the entry's ETag (or *), so that no change is lost",
        ));
    };
    let tags = tags.to_str().unwrap_or_default();
    if tags.trim() == "*" {
        return Ok((id, None));
    }
    // An entry has one current version: a list matches if one of it does,
    // and only a tag naming this entry can.
    let expected = tags.split(',').find_map(|tag| {
        let (entry, label) = tag.trim().trim_matches('"').split_once('-')?;
        (entry.parse::<i64>().ok()? == id).then(|| label.parse::<i64>().ok())?
    });
    match expected {
        Some(label) => Ok((id, Some(from_micros(label)))),
        None => Err(Refusal::new(
            StatusCode::PRECONDITION_FAILED,
            format!("If-Match names no version of entry {id}"),
        )),
    }
}

fn conflict_refusal(name: &str, id: i64, conflict: EditConflict) -> Refusal {
    match conflict {
        EditConflict::Missing => {
            Refusal::new(StatusCode::NOT_FOUND, format!("no entry {id} in {name}"))
        }
        EditConflict::Changed(_) => Refusal::new(
            StatusCode::PRECONDITION_FAILED,
            format!("entry {id} has changed since that ETag: GET it again"),
        ),
    }
}

/// Content taken from a POST or PUT body.
struct Incoming {
    /// The entry's own id, kept as the message id.
    id: Option<String>,
    block: ContentBlock,
}

/// The content of a POST or PUT: an Atom entry with inline content, or a
/// payload by itself in a media type of the collection's bindings.
fn incoming<S>(
    shared: &Shared<S>,
    feed: &FeedConfig,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Incoming, Refusal> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = media_type.split(';').next().unwrap_or("").trim();
    let body = body.map_err(|rejection| Refusal::new(rejection.status(), rejection.body_text()))?;
    let limits = rolie::Limits {
        max_body_bytes: shared.config.server.max_body_bytes,
        ..rolie::Limits::default()
    };
    let mappings = rolie::rolie_mappings();
    let name = &feed.name;
    let payload_types = payload_media_types(feed);
    let (id, content, media, format) = if essence.eq_ignore_ascii_case("application/atom+xml") {
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
        let fixed = collection_categories(feed);
        if let Some(category) = entry
            .categories
            .iter()
            .find(|category| !accepts_category(&fixed, category))
        {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{name} does not accept the category {:?} of scheme {:?}",
                    category.term,
                    category.scheme.as_deref().unwrap_or("")
                ),
            ));
        }
        match entry.content {
            rolie::IncomingContent::Xml { media_type, xml } => {
                let format = entry.format.clone().or_else(|| rolie::payload_format(&xml));
                (entry.id, XmlContent::Xml(xml), media_type, format)
            }
            rolie::IncomingContent::Text { media_type, text } => (
                entry.id,
                XmlContent::Text(text),
                media_type,
                entry.format.clone(),
            ),
            rolie::IncomingContent::OutOfLine { .. } => {
                // Fetching it would let a writer make the gateway request any URL.
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "send the content inline: taxiway does not fetch a src given to it",
                ));
            }
        }
    } else if payload_types.iter().any(|accepted| {
        let accepted = accepted.split(';').next().unwrap_or_default().trim();
        accepted.eq_ignore_ascii_case(essence)
    }) {
        // A media entry: the payload by itself.
        let content = if essence.contains("xml") {
            let xml = rolie::read_xml_payload(&body, &limits)
                .map_err(|error| Refusal::new(StatusCode::BAD_REQUEST, error.to_string()))?;
            XmlContent::Xml(xml)
        } else {
            let text = String::from_utf8(body.to_vec())
                .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "the payload is not UTF-8"))?;
            XmlContent::Text(text)
        };
        let format = rolie::payload_format(content.as_str());
        (None, content, media_type.to_owned(), format)
    } else {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "send an Atom entry ({}) or a payload in one of {:?}, not {media_type:?}",
                rolie::ENTRY_MEDIA_TYPE,
                payload_types
            ),
        ));
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
    Ok(Incoming {
        id,
        block: ContentBlock::new(ContentBinding::new(binding), content),
    })
}

/// Whether a collection takes an entry carrying this category: one of its
/// own, or one taxiway derives from the payload itself (the content
/// binding, the IODEF purpose and restriction), whatever the writer says.
fn accepts_category(fixed: &[Category], category: &Category) -> bool {
    let derived = [
        CONTENT_BINDING_SCHEME,
        rolie::IODEF_PURPOSE_SCHEME,
        rolie::IODEF_RESTRICTION_SCHEME,
    ];
    let scheme = category.scheme.as_deref().unwrap_or_default();
    derived.contains(&scheme)
        || fixed
            .iter()
            .any(|own| own.scheme == category.scheme && own.term == category.term)
}

const CONTENT_BINDING_SCHEME: &str = "urn:taxiway:content-binding";

/// Routes and commits what a POST or PUT brought; the id of the block it
/// left in `feed`, if the routes kept it there.
async fn take_in<S: Store + Clone>(
    shared: &Shared<S>,
    feed: &FeedConfig,
    identity: Identity,
    incoming: Incoming,
    replacing: Option<Replacing>,
) -> Result<Option<i64>, Refusal> {
    let message = Message::new(
        incoming.id.unwrap_or_else(|| new_message_id(Dialect::V11)),
        Body::Inbox(InboxMessage {
            destination_feeds: vec![feed.name.clone()],
            content_blocks: vec![incoming.block],
            ..InboxMessage::default()
        }),
    );
    let replaced = replacing.as_ref().map(|replacing| replacing.id);
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
        replacing,
    };
    let accepted = shared
        .services
        .accept(intake)
        .await
        .map_err(|error| unavailable("a ROLIE entry could not be committed", &error))?;
    match accepted {
        Accepted::Stored { blocks, .. } => Ok(blocks
            .iter()
            .find(|(stored_in, _)| *stored_in == feed.name)
            .map(|(_, id)| *id)),
        Accepted::Dropped | Accepted::Duplicate => Ok(None),
        Accepted::Refused(reason) => Err(Refusal::new(StatusCode::BAD_REQUEST, reason)),
        Accepted::Conflict(conflict) => Err(conflict_refusal(
            &feed.name,
            replaced.unwrap_or_default(),
            conflict,
        )),
        Accepted::Unsupported(binding) => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("no feed it goes to accepts {binding}"),
        )),
    }
}

async fn read_back<S: Store + Clone>(
    shared: &Shared<S>,
    feed: &FeedConfig,
    id: i64,
) -> Result<StoredBlock, Refusal> {
    shared
        .store
        .block(&feed.name, id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stored, but cannot be read back",
            )
        })
}

fn unavailable(what: &str, error: &crate::store::StoreError) -> Refusal {
    tracing::error!(%error, "{what}");
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is unavailable; try again",
    )
}

/// A stored block as an entry document, with its ETag.
fn entry_response<S>(
    shared: &Shared<S>,
    feed: &FeedConfig,
    stored: &StoredBlock,
    status: StatusCode,
) -> Response {
    let information_type = shared.config.information_type(feed);
    let (summary, facts) = summary_of(stored);
    let document = entry_of(shared, feed, &information_type, &summary, facts);
    let mut response = atom_response(rolie::ENTRY_MEDIA_TYPE, rolie::entry(&document, true));
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(&entry_url(shared, feed, stored.id)) {
        response
            .headers_mut()
            .insert(header::CONTENT_LOCATION, value);
    }
    cache_headers(response, &entry_etag(stored), Some(stored.label))
}

/// An entry's version: its number and label, which every change moves on.
fn entry_etag(stored: &StoredBlock) -> String {
    format!("\"{}-{}\"", stored.id, micros(stored.label))
}

fn entry_url<S>(shared: &Shared<S>, feed: &FeedConfig, id: i64) -> String {
    format!("{}/entries/{id}", collection_url(shared, feed))
}

/// A block of a readable feed named by a path; or the refusal to send, or
/// the 304 when the client's copy of it is current.
async fn changed_member<'c, S: Store + Clone>(
    shared: &'c Shared<S>,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    peer: Option<&TlsPeer>,
) -> Result<(&'c FeedConfig, StoredBlock), Response> {
    let refused = IntoResponse::into_response;
    let identity = identity(shared, headers, peer).await.map_err(refused)?;
    let feed = readable(shared, name, &identity).map_err(refused)?;
    let missing = || Refusal::new(StatusCode::NOT_FOUND, format!("no entry {id} in {name}"));
    let Ok(id) = id.parse::<i64>() else {
        return Err(missing().into_response());
    };
    let stored = match shared.store.block(&feed.name, id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Err(missing().into_response()),
        Err(error) => {
            return Err(unavailable("a ROLIE entry could not be read", &error).into_response());
        }
    };
    if !feed.restrictions.is_empty() {
        let (_, facts) = summary_of(&stored);
        if !may_read(feed, &identity, facts.as_ref()) {
            // As if absent: a restricted entry's existence is not revealed.
            return Err(missing().into_response());
        }
    }
    let etag = entry_etag(&stored);
    if not_modified(headers, &etag, Some(stored.label)) {
        return Err(cache_headers(
            StatusCode::NOT_MODIFIED.into_response(),
            &etag,
            Some(stored.label),
        ));
    }
    Ok((feed, stored))
}

fn entry_of<S>(
    shared: &Shared<S>,
    feed: &FeedConfig,
    information_type: &str,
    summary: &BlockSummary,
    facts: Option<IodefFacts>,
) -> Entry {
    let here = entry_url(shared, feed, summary.id);
    let mapping = rolie::rolie_mappings().binding(&summary.binding.id);
    let facts = facts.unwrap_or_default();
    let mut categories = vec![Category {
        scheme: Some(CONTENT_BINDING_SCHEME.to_owned()),
        term: summary.binding.id.clone(),
        label: None,
    }];
    // CSIRT draft 3.1.2 and 8.1.1: an IODEF entry's purpose and
    // restriction as categories, which readers are authorized by.
    for (scheme, term) in [
        (rolie::IODEF_PURPOSE_SCHEME, &facts.purpose),
        (rolie::IODEF_RESTRICTION_SCHEME, &facts.restriction),
    ] {
        if let Some(term) = term {
            categories.push(Category {
                scheme: Some(scheme.to_owned()),
                term: term.clone(),
                label: None,
            });
        }
    }
    let mut links = vec![link("self", here.clone()), link("edit", here.clone())];
    for template in &feed.entry_links {
        if let Some(href) = template.href_for(&feed.name, summary.id, facts.csirt_id.as_deref()) {
            links.push(Link {
                rel: template.rel.clone(),
                href,
                media_type: None,
                title: template.title.clone(),
            });
        }
    }
    let properties = facts
        .csirt_id
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
        categories,
        content: OutOfLine {
            media_type: media_type_of(&summary.binding.id),
            src: format!("{here}/content"),
        },
        links,
        collections: vec![collection_url(shared, feed)],
        format: mapping.and_then(|m| m.format.clone()),
        properties,
    }
}

/// A stored block as a page or an entry shows it.
fn summary_of(stored: &StoredBlock) -> (BlockSummary, Option<IodefFacts>) {
    let summary = BlockSummary {
        id: stored.id,
        label: stored.label,
        binding: stored.block.binding.clone(),
    };
    let facts = if rolie::is_iodef_binding(&stored.block.binding.id) {
        rolie::iodef_facts(stored.block.content.as_str())
    } else {
        None
    };
    (summary, facts)
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
