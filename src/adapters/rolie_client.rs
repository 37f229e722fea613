//! ROLIE, client side: a poller that reads a remote ROLIE collection on a
//! schedule and takes in each new entry as an inbox message, and an egress
//! that POSTs forwarded content to a remote collection as entries.
//!
//! A round reads the feed from its newest page, following `next` links,
//! until it reaches entries no newer than the last one taken in; it then
//! takes the new entries in oldest first, fetching each one's out-of-line
//! content. Each entry commits with a dedup key (its id and updated time)
//! and the advanced cursor, so a restart or an entry seen twice across
//! pages neither misses nor repeats anything. A first page that has not
//! changed (ETag) ends the round at once.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use tokio::sync::watch;

use crate::bindings::rolie::{self, IncomingContent, IncomingEntry, Limits};
use crate::config::{
    ClientTlsConfig, EgressConfig, RolieEgressConfig, RoliePollerConfig, resolve_password,
};
use crate::core::*;
use crate::router::Outgoing;
use crate::services::delivery::{Deliver, drain};
use crate::services::{Accepted, Intake, Services};
use crate::store::{Commit, EgressRow, PollCursor, Store};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Pages read in one round at most, so that a feed that never ends cannot
/// hold a round for ever.
const MAX_PAGES: usize = 1000;

/// Runs until `stop` turns true.
pub async fn run<S: Store + Clone>(
    poller: RoliePollerConfig,
    services: Arc<Services<S>>,
    store: S,
    mut stop: watch::Receiver<bool>,
) {
    let client = match client(poller.tls.as_ref(), poller.timeout_ms) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(poller = %poller.name, %error, "cannot start a ROLIE poller");
            return;
        }
    };
    let password = resolve_password(poller.password.as_ref(), poller.password_env.as_ref());
    let reader = Reader {
        credentials: poller.username.clone().zip(password),
        client,
        poller,
    };
    let mut etag: Option<String> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let round = tokio::select! {
            round = reader.round(&services, &store, etag.as_deref()) => round,
            _ = stop.changed() => return,
        };
        match round {
            Ok(seen) => etag = seen,
            Err(reason) => {
                metrics::counter!("taxiway_rolie_poll_failures_total",
                    "poller" => reader.poller.name.clone())
                .increment(1);
                tracing::warn!(poller = %reader.poller.name, %reason, "ROLIE poll failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(reader.poller.interval_seconds)) => {}
            _ = stop.changed() => return,
        }
    }
}

fn client(
    tls: Option<&ClientTlsConfig>,
    timeout_ms: Option<u64>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(tls) = tls {
        builder = tls.configure(builder)?;
    }
    builder.build().map_err(|e| e.to_string())
}

struct Reader {
    poller: RoliePollerConfig,
    client: reqwest::Client,
    credentials: Option<(String, String)>,
}

impl Reader {
    /// One round; `Ok` carries the first page's ETag for the next round.
    async fn round<S: Store + Clone>(
        &self,
        services: &Services<S>,
        store: &S,
        etag: Option<&str>,
    ) -> Result<Option<String>, String> {
        let cursor = store
            .poll_cursor(&self.poller.name, &self.poller.url)
            .await
            .map_err(|e| e.to_string())?;
        let reached: Option<Timestamp> = match &cursor {
            Some(cursor) if !cursor.end_label.is_empty() => Some(
                cursor
                    .end_label
                    .parse()
                    .map_err(|e| format!("the cursor {:?}: {e}", cursor.end_label))?,
            ),
            _ => None,
        };
        let limits = Limits::default();
        let mut url = self.parse_url(&self.poller.url)?;
        let mut fresh: Vec<IncomingEntry> = Vec::new();
        let mut first_etag = None;
        for page in 0..MAX_PAGES {
            let mut request = self.get(url.clone()).header(ACCEPT, rolie::FEED_MEDIA_TYPE);
            if page == 0
                && let Some(etag) = etag
            {
                request = request.header(IF_NONE_MATCH, etag);
            }
            let response = request
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            if page == 0 && response.status() == StatusCode::NOT_MODIFIED {
                return Ok(etag.map(str::to_owned));
            }
            if !response.status().is_success() {
                return Err(format!("GET {url} answered {}", response.status()));
            }
            if page == 0 {
                first_etag = response
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("reading {url}: {e}"))?;
            let feed = rolie::read_feed(&body, &limits, rolie::rolie_mappings())
                .map_err(|e| format!("{url}: {e}"))?;
            let next = feed.link("next").map(str::to_owned);
            let mut older_reached = false;
            for entry in feed.entries {
                match (entry.updated, reached) {
                    // Older than what was taken in: so is everything after it.
                    (Some(updated), Some(reached)) if updated < reached => older_reached = true,
                    _ => fresh.push(entry),
                }
            }
            match next {
                Some(next) if !older_reached => url = self.parse_url(&next)?,
                _ => break,
            }
        }
        // Oldest first, so that the cursor only moves forward.
        fresh.sort_by_key(|entry| entry.updated);
        for entry in fresh {
            self.take_in(services, store, entry).await?;
        }
        Ok(first_etag)
    }

    /// Fetches an entry's content and commits it with the cursor.
    async fn take_in<S: Store + Clone>(
        &self,
        services: &Services<S>,
        store: &S,
        entry: IncomingEntry,
    ) -> Result<(), String> {
        let Some(id) = entry.id.clone() else {
            return Err("an entry of the feed has no id".to_owned());
        };
        let updated = entry.updated.unwrap_or_else(|| Timestamp::from_unix(0, 0));
        let (content, media_type) = match entry.content {
            IncomingContent::Xml { media_type, xml } => (XmlContent::Xml(xml), media_type),
            IncomingContent::Text { media_type, text } => (XmlContent::Text(text), media_type),
            IncomingContent::OutOfLine { media_type, src } => {
                let (content, served_as) = self.fetch(&src).await?;
                (content, media_type.or(served_as).unwrap_or_default())
            }
        };
        let format = entry.format.clone().or_else(|| match &content {
            XmlContent::Xml(xml) => rolie::payload_format(xml),
            XmlContent::Text(_) => None,
        });
        let binding = rolie::rolie_mappings()
            .binding_of(Some(&media_type), format.as_ref())
            .ok_or_else(|| format!("entry {id}: no content binding is known for its content"))?;
        let message = Message::new(
            id.clone(),
            Body::Inbox(InboxMessage {
                destination_feeds: self.poller.into.clone(),
                content_blocks: vec![ContentBlock::new(ContentBinding::new(binding), content)],
                ..InboxMessage::default()
            }),
        );
        let intake = Intake {
            envelope: Envelope {
                message,
                origin: Origin {
                    adapter: self.poller.name.clone(),
                    identity: Identity::Anonymous,
                    binding: WireBinding::Rolie,
                },
                received: Timestamp::now(),
                relay: Relay::default(),
            },
            feeds: self.poller.into.clone(),
            // An entry is new again only when it is updated.
            dedup_key: Some(format!("rolie:{}:{id}:{updated}", self.poller.url)),
            replacing: None,
        };
        let cursor = PollCursor {
            poller: self.poller.name.clone(),
            feed: self.poller.url.clone(),
            end_label: updated.to_string(),
            result: None,
        };
        match services
            .accept_with(intake, Some(cursor.clone()))
            .await
            .map_err(|e| e.to_string())?
        {
            Accepted::Stored { .. } | Accepted::Dropped => Ok(()),
            // Taken in before: only the cursor moves.
            Accepted::Duplicate => store
                .commit(Commit {
                    cursor: Some(cursor),
                    ..Commit::default()
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Accepted::Refused(reason) => Err(format!("entry {id}: {reason}")),
            Accepted::Conflict(conflict) => Err(format!("entry {id}: {conflict}")),
            Accepted::Unsupported(binding) => {
                Err(format!("entry {id}: no feed it fills accepts {binding}"))
            }
        }
    }

    /// An entry's out-of-line content, from the remote repository only: a
    /// feed must not be able to make the gateway fetch any other address.
    async fn fetch(&self, src: &str) -> Result<(XmlContent, Option<String>), String> {
        let url = self.parse_url(src)?;
        let feed = self.parse_url(&self.poller.url)?;
        if url.origin() != feed.origin() {
            return Err(format!("content at {src} is not on the feed's server"));
        }
        let response = self
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url} answered {}", response.status()));
        }
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("reading {url}: {e}"))?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("the content at {url} is not UTF-8"))?;
        let xml = media_type.as_deref().is_some_and(|m| m.contains("xml"));
        // Kept as XML only if it is a whole, well-formed document: TAXII
        // writes XML payloads into its messages as they are. Anything else
        // travels as text, escaped.
        let limits = Limits::default();
        let content = match rolie::read_xml_payload(text.as_bytes(), &limits) {
            Ok(payload) if xml => XmlContent::Xml(payload),
            _ => XmlContent::Text(text),
        };
        Ok((content, media_type))
    }

    fn get(&self, url: Url) -> reqwest::RequestBuilder {
        let request = self.client.get(url);
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    fn parse_url(&self, text: &str) -> Result<Url, String> {
        let base = Url::parse(&self.poller.url).map_err(|e| format!("{}: {e}", self.poller.url))?;
        base.join(text).map_err(|e| format!("{text}: {e}"))
    }
}

/// Runs an egress to a remote collection until `stop` turns true.
pub async fn run_egress<S: Store + Clone>(
    egress: EgressConfig,
    rolie: RolieEgressConfig,
    gateway_id: String,
    store: S,
    stop: watch::Receiver<bool>,
) {
    let client = match client(rolie.tls.as_ref(), rolie.timeout_ms) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(egress = %egress.name, %error, "cannot start a ROLIE egress");
            return;
        }
    };
    let password = resolve_password(rolie.password.as_ref(), rolie.password_env.as_ref());
    let mut poster = ToCollection {
        credentials: rolie.username.clone().zip(password),
        client,
        rolie,
        gateway_id,
        store: store.clone(),
    };
    drain(&egress, &store, stop, &mut poster).await;
}

/// POSTs each content block of a forwarded message as an entry with its
/// content inline, remembering which were created so that a retry does not
/// create them twice.
struct ToCollection<S> {
    client: reqwest::Client,
    rolie: RolieEgressConfig,
    credentials: Option<(String, String)>,
    gateway_id: String,
    store: S,
}

impl<S: Store> Deliver for ToCollection<S> {
    fn deliver(&mut self, row: &EgressRow) -> impl Future<Output = Result<(), String>> + Send {
        let row = row.clone();
        async move {
            let outgoing: Outgoing = serde_json::from_str(&row.payload)
                .map_err(|e| format!("the outbox row cannot be read: {e}"))?;
            let Body::Inbox(inbox) = &outgoing.message.body else {
                return Err(format!(
                    "a {} has no entries to post",
                    outgoing.message.kind()
                ));
            };
            let origin = outgoing
                .relay
                .origin_id
                .clone()
                .unwrap_or_else(|| outgoing.message.id.clone());
            let mut done: Vec<usize> = row
                .progress
                .as_deref()
                .and_then(|progress| serde_json::from_str(progress).ok())
                .unwrap_or_default();
            for (index, block) in inbox.content_blocks.iter().enumerate() {
                if done.contains(&index) {
                    continue;
                }
                let posted = self.post(&origin, index, &outgoing.feeds, block).await;
                if let Err(reason) = posted {
                    if !done.is_empty() {
                        let progress = serde_json::to_string(&done).map_err(|e| e.to_string())?;
                        self.store
                            .egress_progress(row.id, &progress)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    return Err(reason);
                }
                done.push(index);
            }
            Ok(())
        }
    }
}

impl<S> ToCollection<S> {
    async fn post(
        &self,
        origin: &str,
        index: usize,
        feeds: &[String],
        block: &ContentBlock,
    ) -> Result<(), String> {
        let mappings = rolie::rolie_mappings();
        let mapping = mappings.binding(&block.binding.id);
        let now = Timestamp::now();
        let entry = rolie::Entry {
            // The same on every attempt, so that the receiver can tell a retry.
            id: format!("urn:taxiway:{}:{origin}:{index}", self.gateway_id),
            title: format!("{} from {}", feeds.join(", "), self.gateway_id),
            updated: now,
            published: Some(now),
            information_type: mapping
                .map_or_else(|| "indicator".to_owned(), |m| m.information_type.clone()),
            categories: Vec::new(),
            content: rolie::OutOfLine {
                media_type: mapping
                    .map_or_else(|| "application/xml".to_owned(), |m| m.media_type.clone()),
                src: String::new(),
            },
            links: Vec::new(),
            collections: Vec::new(),
            format: mapping.and_then(|m| m.format.clone()),
            properties: Vec::new(),
        };
        let body = rolie::entry_to_post(&entry, &block.content);
        let mut request = self
            .client
            .post(&self.rolie.url)
            .header(reqwest::header::CONTENT_TYPE, rolie::ENTRY_MEDIA_TYPE)
            .header(ACCEPT, rolie::ENTRY_MEDIA_TYPE)
            .body(body);
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.rolie.url))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let reason = response.text().await.unwrap_or_default();
        Err(format!(
            "{} answered {status}: {}",
            self.rolie.url,
            reason.trim()
        ))
    }
}
