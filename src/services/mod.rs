//! What the TAXII services do with a request: discovery, feed information,
//! poll and inbox, on the hosted feeds of the store. Wire formats are the
//! adapters' business: this module sees core messages only.

pub mod delivery;
mod intake;
mod parts;
mod read_ahead;
mod subscriptions;

pub use intake::{Accepted, Intake, Replacing};

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};

use crate::config::{Config, FeedConfig, Right, ServiceConfig, ServiceKind};
use crate::core::*;
use crate::router::Router;
use crate::store::{PollExtent, PollQuery, Store, StoreError, StoredBlock};

/// Most content blocks one poll response carries. In the draft and 1.0 a
/// client continues from the response's end label, which is the label of the
/// last block returned; in 1.1 a larger result is answered in parts of this
/// size, fetched with Poll_Fulfillment.
pub const POLL_PAGE: usize = 1000;

/// Most content blocks, and most bytes of content, read from the store at
/// a time while a poll response is sent: however large the feed or the
/// page, a response holds no more than [`READ_AHEAD_CHUNKS`] such chunks
/// (or a single larger block). The count lets a chunk of typical ~2 KB
/// STIX blocks reach the byte bound: in chunks of 256 such blocks, twice
/// as many store reads and hand-overs made a full poll about a tenth slower
/// (alternating the two on one machine).
pub const POLL_CHUNK_BLOCKS: usize = 512;
pub const POLL_CHUNK_BYTES: u64 = 1 << 20;
/// Polls returning at most this many blocks are read in one query; larger
/// ones cost one such read more, which is small beside them.
const SMALL_POLL_BLOCKS: usize = 32;

/// The chunks of a page read at once: the one being written out and the
/// next.
const READ_AHEAD_CHUNKS: usize = 2;

/// Content blocks that follow those of a reply's message, read from the
/// store while the reply is sent. An error ends the stream: the reply is
/// then incomplete, and must be cut off rather than closed as if whole.
pub type MoreBlocks = Pin<Box<dyn Stream<Item = Result<Vec<ContentBlock>, StoreError>> + Send>>;

/// What the services answer: a message, and for a large poll response, the
/// content blocks that follow those the message holds.
pub struct Reply {
    pub message: Message,
    pub more_blocks: Option<MoreBlocks>,
}

impl From<Message> for Reply {
    fn from(message: Message) -> Self {
        Reply {
            message,
            more_blocks: None,
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("message", &self.message)
            .field("more_blocks", &self.more_blocks.is_some())
            .finish()
    }
}

/// One page of a poll: its size and bounds, its first chunk of blocks, and
/// the rest to read as it is sent.
struct Page {
    first: Vec<ContentBlock>,
    count: u64,
    last: Option<Timestamp>,
    more: bool,
    rest: Option<MoreBlocks>,
}

#[derive(Clone)]
pub struct Services<S> {
    config: Arc<Config>,
    store: S,
    router: Arc<Router>,
    public_url: String,
    part_starts: Arc<parts::PartStarts>,
    parts_ahead: Arc<read_ahead::PartsAhead>,
}

impl<S: Store + Clone> Services<S> {
    pub fn new(config: Arc<Config>, store: S, router: Arc<Router>) -> Self {
        let public_url = config.public_url();
        Services {
            config,
            store,
            router,
            public_url,
            part_starts: Arc::default(),
            parts_ahead: Arc::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether any service lives at this path.
    pub fn serves(&self, path: &str) -> bool {
        self.config.services_at(path).next().is_some()
    }

    /// Answers a request sent to the services at `path`, in terms the
    /// requester's dialect can carry. `None`: the dialect expects no answer
    /// (the draft's one-way push).
    pub async fn handle(
        &self,
        path: &str,
        dialect: Dialect,
        identity: &Identity,
        request: Message,
    ) -> Option<Reply> {
        let kind = request.kind();
        let reply = self.dispatch(path, dialect, identity, request).await;
        let outcome = match &reply {
            None => "none".to_owned(),
            Some(Reply {
                message:
                    Message {
                        body: Body::Status(status),
                        ..
                    },
                ..
            }) => status.status_type.name().to_owned(),
            Some(reply) => reply.message.kind().name().to_owned(),
        };
        metrics::counter!(
            "taxiway_taxii_requests_total",
            "path" => path.to_owned(),
            "dialect" => dialect.name(),
            "message_type" => kind.name(),
            "outcome" => outcome,
        )
        .increment(1);
        reply
    }

    async fn dispatch(
        &self,
        path: &str,
        dialect: Dialect,
        identity: &Identity,
        request: Message,
    ) -> Option<Reply> {
        let services: Vec<&ServiceConfig> = self.config.services_at(path).collect();
        let wanted = match request.kind() {
            MessageKind::DiscoveryRequest => ServiceKind::Discovery,
            MessageKind::FeedInformationRequest | MessageKind::SubscriptionManagementRequest => {
                ServiceKind::FeedManagement
            }
            MessageKind::PollRequest | MessageKind::PollFulfillment => ServiceKind::Poll,
            MessageKind::Inbox => ServiceKind::Inbox,
            other => {
                return Some(Reply::from(status(
                    &request,
                    dialect,
                    StatusType::BadMessage,
                    format!("a {other} is not a request"),
                )));
            }
        };
        let Some(service) = services.into_iter().find(|s| s.kind == wanted) else {
            return Some(Reply::from(status(
                &request,
                dialect,
                StatusType::UnsupportedService,
                format!(
                    "no {wanted:?} service at {path} handles a {}",
                    request.kind()
                ),
            )));
        };
        let outcome = match &request.body {
            Body::DiscoveryRequest => {
                Ok(self.discovery(service, dialect, identity, &request).into())
            }
            Body::FeedInformationRequest => Ok(self
                .feed_information(service, dialect, identity, &request)
                .into()),
            Body::PollRequest(poll) => self.poll(service, dialect, identity, &request, poll).await,
            Body::PollFulfillment(fulfillment) => {
                self.poll_fulfillment(service, dialect, identity, &request, fulfillment)
                    .await
            }
            Body::SubscriptionManagementRequest(asked) => self
                .subscription_management(service, dialect, identity, &request, asked)
                .await
                .map(Reply::from),
            Body::Inbox(inbox) => {
                let reply = self
                    .inbox(service, dialect, identity, &request, inbox)
                    .await;
                if dialect == Dialect::Draft && matches!(&reply, Ok(m) if is_success(m)) {
                    return None;
                }
                reply.map(Reply::from)
            }
            _ => Ok(status(
                &request,
                dialect,
                StatusType::Failure,
                format!("{} is not offered here yet", request.kind()),
            )
            .into()),
        };
        Some(outcome.unwrap_or_else(|error| {
            tracing::error!(%error, path, "store failure");
            status(
                &request,
                dialect,
                StatusType::Failure,
                "the store is unavailable; try again",
            )
            .into()
        }))
    }

    /// Part `part` (from 1) of a poll's result: pages of at most
    /// [`POLL_PAGE`] blocks and `max_poll_response_bytes` of content, each
    /// starting after the last label of the one before. Its extent, or when
    /// there is no such part, how many parts there are. Part 1 always is.
    async fn locate(
        &self,
        query: &PollQuery,
        part: u64,
    ) -> Result<Result<PollExtent, u64>, StoreError> {
        let budget = self.config.server.max_poll_response_bytes;
        let (mut number, mut exclusive_begin) = match self.part_starts.get(query, part) {
            Some(after) => (part, Some(after)),
            None => (1, query.exclusive_begin),
        };
        loop {
            let mut extent = self
                .store
                .poll_extent(PollQuery {
                    exclusive_begin,
                    ..query.clone()
                })
                .await?;
            let mut bytes = 0;
            let fit = extent
                .blocks
                .iter()
                .take_while(|(_, size)| {
                    bytes += size;
                    bytes <= budget
                })
                .count()
                .max(1);
            if fit < extent.blocks.len() {
                extent.blocks.truncate(fit);
                extent.more = true;
            }
            if extent.more
                && let Some(&(last, _)) = extent.blocks.last()
            {
                self.part_starts.remember(query, number + 1, last);
            }
            if number == part {
                return Ok(Ok(extent));
            }
            if !extent.more {
                return Ok(Err(number));
            }
            exclusive_begin = extent.blocks.last().map(|(label, _)| *label);
            number += 1;
        }
    }

    /// The whole result of a poll in one read, when it is a few blocks (a
    /// subscriber's steady state); `None` when it is more, to be measured
    /// and read in chunks. The page is the one [`Services::locate`] finds.
    async fn small_page(
        &self,
        query: &PollQuery,
        reader: &BlockReader,
    ) -> Result<Option<Page>, StoreError> {
        let probe = self
            .store
            .poll(PollQuery {
                limit: SMALL_POLL_BLOCKS,
                ..query.clone()
            })
            .await?;
        let bytes: u64 = probe
            .blocks
            .iter()
            .map(|stored| stored.block.content.as_str().len() as u64)
            .sum();
        let budget = POLL_CHUNK_BYTES.min(self.config.server.max_poll_response_bytes);
        if probe.more || bytes > budget {
            return Ok(None);
        }
        Ok(Some(Page {
            count: probe.blocks.len() as u64,
            last: probe.blocks.last().map(|stored| stored.label),
            more: false,
            first: reader.keep(probe.blocks),
            rest: None,
        }))
    }

    /// A page of a poll: its first chunk read now (unless `ready` holds it,
    /// and maybe the next, as read ahead), the rest as it is sent, without
    /// the blocks `reader` may not read.
    async fn page(
        &self,
        query: &PollQuery,
        extent: PollExtent,
        reader: BlockReader,
        ready: Vec<Vec<StoredBlock>>,
    ) -> Result<Page, StoreError> {
        let chunks = chunk_queries(query, &extent);
        let more_chunks = chunks.len() > 1;
        let unread = chunks.into_iter().skip(ready.len()).collect();
        let kept = {
            let reader = reader.clone();
            ready.into_iter().map(move |blocks| Ok(reader.keep(blocks)))
        };
        let mut blocks: MoreBlocks = Box::pin(futures_util::stream::iter(kept).chain(read_chunks(
            self.store.clone(),
            unread,
            reader,
        )));
        let first = blocks.next().await.transpose()?.unwrap_or_default();
        Ok(Page {
            first,
            count: extent.blocks.len() as u64,
            last: extent.blocks.last().map(|(label, _)| *label),
            more: extent.more,
            rest: more_chunks.then_some(blocks),
        })
    }

    /// Reads part `part` of the query's result ahead, if a slot is free for
    /// it: the client is about to ask for it.
    fn read_ahead(&self, query: &PollQuery, part: u64) {
        let Some(fill) = self.parts_ahead.reserve(query, part) else {
            return;
        };
        let services = self.clone();
        let query = query.clone();
        // A failure leaves the slot empty: the part is then read when asked
        // for, and that read reports the error.
        tokio::spawn(async move {
            let Ok(Ok(extent)) = services.locate(&query, part).await else {
                return;
            };
            let mut chunks = Vec::new();
            for chunk in chunk_queries(&query, &extent)
                .into_iter()
                .take(READ_AHEAD_CHUNKS)
            {
                let Ok(read) = services.store.poll(chunk).await else {
                    return;
                };
                chunks.push(read.blocks);
            }
            // Not taken any more when it was kept too long.
            let _ = fill.send(read_ahead::ReadAhead { extent, chunks });
        });
    }

    fn discovery(
        &self,
        discovery: &ServiceConfig,
        dialect: Dialect,
        identity: &Identity,
        request: &Message,
    ) -> Message {
        // Services the identity cannot use are hidden (seed 2.3.1: some are
        // revealed only to authenticated parties).
        let local = self
            .config
            .services
            .iter()
            .filter(|_| discovery.list_local)
            .filter(|service| service.discoverable && self.may_use(service, identity))
            .map(|service| ServiceInstance {
                service_type: service_type(service.kind),
                version: ServicesVersion::Taxii(dialect),
                available: Some(true),
                protocol: self.protocol(),
                address: self.address(&service.path),
                message_bindings: vec![MessageBinding::Xml(dialect)],
                content_bindings: if service.kind == ServiceKind::Inbox {
                    self.bindings_of(&service.feeds)
                } else {
                    Vec::new()
                },
                supported_queries: Vec::new(),
                message: service.message.clone(),
            });
        // A community's members, each in the dialect it speaks.
        let members = discovery.members.iter().map(|member| ServiceInstance {
            service_type: service_type(member.kind),
            version: ServicesVersion::Taxii(member.dialect),
            available: Some(true),
            protocol: if member.address.starts_with("https:") {
                ProtocolBinding::Https
            } else {
                ProtocolBinding::Http
            },
            address: member.address.clone(),
            message_bindings: vec![MessageBinding::Xml(member.dialect)],
            content_bindings: Vec::new(),
            supported_queries: Vec::new(),
            message: member.message.clone(),
        });
        let services = local.chain(members).collect();
        response(
            request,
            dialect,
            Body::DiscoveryResponse(DiscoveryResponse { services }),
        )
    }

    fn feed_information(
        &self,
        service: &ServiceConfig,
        dialect: Dialect,
        identity: &Identity,
        request: &Message,
    ) -> Message {
        if !self.may_use(service, identity) {
            return refusal(request, dialect, identity, "see these feeds");
        }
        let endpoint = |path: &str| Endpoint {
            protocol: Some(self.protocol()),
            address: Some(self.address(path)),
            message_bindings: vec![MessageBinding::Xml(dialect)],
        };
        let feeds = service
            .feeds
            .iter()
            .filter_map(|name| self.config.feed(name))
            .filter(|feed| {
                feed.allows(Right::Read, identity) || feed.allows(Right::Subscribe, identity)
            })
            .map(|feed| {
                let polled_at = self.config.services.iter().filter(|s| {
                    s.kind == ServiceKind::Poll && s.feeds.contains(&feed.name) && feed.poll
                });
                FeedInfo {
                    name: feed.name.clone(),
                    collection_type: Some(CollectionType::DataFeed),
                    available: Some(true),
                    description: feed.description.clone(),
                    volume: None,
                    content_bindings: feed
                        .content_bindings
                        .iter()
                        .map(ContentBinding::new)
                        .collect(),
                    push_methods: if feed.push {
                        vec![PushMethod {
                            protocol: ProtocolBinding::Http,
                            message_bindings: vec![MessageBinding::Xml(dialect)],
                        }]
                    } else {
                        Vec::new()
                    },
                    polling_services: polled_at.map(|s| endpoint(&s.path)).collect(),
                    subscription_services: vec![endpoint(&service.path)],
                    receiving_inboxes: Vec::new(),
                }
            })
            .collect();
        response(
            request,
            dialect,
            Body::FeedInformationResponse(FeedInformationResponse { feeds }),
        )
    }

    async fn poll(
        &self,
        service: &ServiceConfig,
        dialect: Dialect,
        identity: &Identity,
        request: &Message,
        poll: &PollRequest,
    ) -> Result<Reply, StoreError> {
        let feed = match self.pollable(service, &poll.feed_name, dialect, identity, request) {
            Ok(feed) => feed,
            Err(refused) => return Ok((*refused).into()),
        };
        // Polling by subscription selects its feed's content by its bindings.
        let subscribed = match &poll.subscription_id {
            Some(id) => match self.subscription_for(&feed.name, id, identity).await? {
                Some(s) if s.status != SubscriptionStatus::Unsubscribed => Some(s),
                _ => {
                    return Ok(status(
                        request,
                        dialect,
                        StatusType::NotFound,
                        format!("no subscription {id} exists for {}", feed.name),
                    )
                    .into());
                }
            },
            None => None,
        };
        let wanted: Vec<String> = match &subscribed {
            Some(subscription) => subscription.content_bindings.clone(),
            None => poll
                .parameters
                .iter()
                .flat_map(|p| &p.selection.content_bindings)
                .map(|b| b.id.clone())
                .collect(),
        };
        let served: Vec<String> = wanted
            .iter()
            .filter(|id| feed.content_bindings.contains(id))
            .cloned()
            .collect();
        if !wanted.is_empty() && served.is_empty() {
            return Ok(unsupported_content(request, dialect, feed).into());
        }
        // 1.1 answers a large result in parts. Its upper bound is fixed now,
        // at the latest label committed, so that parts asked for later do not
        // shift as new content arrives.
        let inclusive_end = if dialect == Dialect::V11 {
            match (
                self.store.latest_label(&feed.name).await?,
                poll.inclusive_end,
            ) {
                (Some(latest), Some(end)) => Some(latest.min(end)),
                (latest, end) => latest.or(end),
            }
        } else {
            poll.inclusive_end
        };
        let query = PollQuery {
            feed: feed.name.clone(),
            exclusive_begin: poll.exclusive_begin,
            inclusive_end,
            bindings: served,
            limit: POLL_PAGE,
        };
        let reader = BlockReader::new(feed, identity);
        let page = match self.small_page(&query, &reader).await? {
            Some(page) => page,
            None => {
                let first = self.locate(&query, 1).await?.unwrap_or_default();
                self.page(&query, first, reader, Vec::new()).await?
            }
        };
        if dialect == Dialect::V11
            && page.more
            && let Some(inclusive_end) = inclusive_end
        {
            self.read_ahead(&query, 2);
            let result = ResultSet {
                feed: feed.name.clone(),
                exclusive_begin: poll.exclusive_begin,
                inclusive_end,
                bindings: query.bindings,
            };
            let subscription_id = subscribed.map(|s| s.id);
            return Ok(result_part(
                request,
                dialect,
                &result,
                1,
                page,
                subscription_id,
            ));
        }
        // The end label bounds what was returned, so that a client continuing
        // from it misses nothing and gets nothing twice: the last block's
        // label, or with nothing returned, the latest label committed.
        let inclusive_end = match page.last {
            Some(last) => Some(last),
            None => {
                let latest = self.store.latest_label(&feed.name).await?;
                let bounded = match (latest, poll.inclusive_end) {
                    (Some(latest), Some(end)) => Some(latest.min(end)),
                    (latest, end) => latest.or(end),
                };
                Some(
                    bounded
                        .or(poll.exclusive_begin)
                        .unwrap_or(Timestamp::from_unix(0, 0)),
                )
            }
        };
        let message = response(
            request,
            dialect,
            Body::PollResponse(PollResponse {
                feed_name: Some(feed.name.clone()),
                more: None,
                result_id: None,
                result_part_number: None,
                subscription_id: subscribed.map(|s| s.id),
                exclusive_begin: poll.exclusive_begin,
                inclusive_end,
                record_count: Some(RecordCount {
                    count: page.count,
                    partial: Some(page.more),
                }),
                message: page.more.then(|| {
                    "More content follows: poll again from this response's end label.".to_owned()
                }),
                content_blocks: page.first,
            }),
        );
        Ok(Reply {
            message,
            more_blocks: page.rest,
        })
    }

    /// The feed a poll or a poll fulfillment names, if this service serves
    /// it for polling and the identity may read it; else the refusal to send.
    fn pollable(
        &self,
        service: &ServiceConfig,
        name: &str,
        dialect: Dialect,
        identity: &Identity,
        request: &Message,
    ) -> Result<&FeedConfig, Box<Message>> {
        let Some(feed) = self.served_feed(service, name).filter(|feed| feed.poll) else {
            return Err(Box::new(status(
                request,
                dialect,
                StatusType::NotFound,
                format!("no feed {name} can be polled here"),
            )));
        };
        if !feed.allows(Right::Read, identity) {
            return Err(Box::new(refusal(
                request,
                dialect,
                identity,
                &format!("poll {}", feed.name),
            )));
        }
        Ok(feed)
    }

    /// A part of a multi-part 1.1 result, named by the result id of its
    /// first part; the same rights as the poll that started it.
    async fn poll_fulfillment(
        &self,
        service: &ServiceConfig,
        dialect: Dialect,
        identity: &Identity,
        request: &Message,
        fulfillment: &PollFulfillment,
    ) -> Result<Reply, StoreError> {
        let feed = match self.pollable(service, &fulfillment.feed_name, dialect, identity, request)
        {
            Ok(feed) => feed,
            Err(refused) => return Ok((*refused).into()),
        };
        let latest = self.store.latest_label(&feed.name).await?;
        let Some(result) = ResultSet::parse(&fulfillment.result_id).filter(|result| {
            result.feed == feed.name
                && result
                    .bindings
                    .iter()
                    .all(|b| feed.content_bindings.contains(b))
                && latest.is_some_and(|latest| result.inclusive_end <= latest)
        }) else {
            return Ok(detailed_status(
                request,
                dialect,
                StatusType::NotFound,
                format!(
                    "no result {} exists for {}: poll again to start a new one",
                    fulfillment.result_id, feed.name
                ),
                "ITEM",
                [fulfillment.result_id.clone()],
            )
            .into());
        };
        let part = fulfillment.result_part_number.unwrap_or(1);
        let query = result.query();
        let located = match part {
            0 => None,
            part => Some(self.locate(&query, part).await?),
        };
        let parts = match located {
            Some(Ok(extent)) => {
                let ready = self.parts_ahead.take_current(&query, part, &extent).await;
                let page = self
                    .page(&query, extent, BlockReader::new(feed, identity), ready)
                    .await?;
                if page.more {
                    self.read_ahead(&query, part + 1);
                }
                return Ok(result_part(request, dialect, &result, part, page, None));
            }
            Some(Err(parts)) => parts,
            None => self
                .locate(&query, u64::MAX)
                .await?
                .err()
                .unwrap_or(u64::MAX),
        };
        Ok(detailed_status(
            request,
            dialect,
            StatusType::InvalidResponsePart,
            format!(
                "result {} has parts 1 to {parts}; there is no part {part}",
                fulfillment.result_id
            ),
            "MAX_PART_NUMBER",
            [parts.to_string()],
        )
        .into())
    }

    async fn inbox(
        &self,
        service: &ServiceConfig,
        dialect: Dialect,
        identity: &Identity,
        request: &Message,
        inbox: &InboxMessage,
    ) -> Result<Message, StoreError> {
        let destinations: Vec<&FeedConfig> = if inbox.destination_feeds.is_empty() {
            // No destination named: the inbox's feeds the sender may fill.
            let writable: Vec<&FeedConfig> = service
                .feeds
                .iter()
                .filter_map(|name| self.config.feed(name))
                .filter(|feed| feed.allows(Right::Write, identity))
                .collect();
            if writable.is_empty() {
                return Ok(refusal(
                    request,
                    dialect,
                    identity,
                    "fill this inbox's feeds",
                ));
            }
            writable
        } else {
            let mut chosen = Vec::new();
            for name in &inbox.destination_feeds {
                match self.served_feed(service, name) {
                    Some(feed) => chosen.push(feed),
                    None => {
                        return Ok(detailed_status(
                            request,
                            dialect,
                            StatusType::DestinationCollectionError,
                            format!("this inbox does not fill {name}"),
                            "ACCEPTABLE_DESTINATION",
                            service.feeds.iter().cloned(),
                        ));
                    }
                }
            }
            if let Some(closed) = chosen.iter().find(|f| !f.allows(Right::Write, identity)) {
                return Ok(refusal(
                    request,
                    dialect,
                    identity,
                    &format!("fill {}", closed.name),
                ));
            }
            chosen
        };
        let mut message = request.clone();
        let mut relay = Relay::take_from(&mut message);
        if !self.config.router.believes_relays_of(identity) {
            if !relay.hops.is_empty() || relay.origin_id.is_some() {
                tracing::info!(message_id = %request.id, ?identity,
                    "a relay record from a sender not in router.relay_senders is ignored");
            }
            relay = Relay::default();
        }
        let intake = Intake {
            dedup_key: relay.origin_id.clone(),
            replacing: None,
            envelope: Envelope {
                message,
                origin: Origin {
                    adapter: "taxii_http".to_owned(),
                    identity: identity.clone(),
                    binding: WireBinding::TaxiiXml(dialect),
                },
                received: Timestamp::now(),
                relay,
            },
            feeds: destinations.iter().map(|feed| feed.name.clone()).collect(),
        };
        let inbox_feeds = &service.feeds;
        Ok(match self.accept(intake).await? {
            Accepted::Stored { blocks, forwarded } => status(
                request,
                dialect,
                StatusType::Success,
                format!(
                    "{} content block(s) stored, {forwarded} forward(s) queued",
                    blocks.len()
                ),
            ),
            Accepted::Duplicate => status(
                request,
                dialect,
                StatusType::Success,
                "this message was taken in before: nothing more was done",
            ),
            Accepted::Dropped => status(
                request,
                dialect,
                StatusType::Success,
                "taken in; the routes keep nothing of it",
            ),
            Accepted::Refused(reason) => status(request, dialect, StatusType::Failure, reason),
            Accepted::Conflict(conflict) => {
                status(request, dialect, StatusType::Failure, conflict.to_string())
            }
            Accepted::Unsupported(binding) => detailed_status(
                request,
                dialect,
                StatusType::UnsupportedContent,
                format!("no destination accepts {binding}"),
                "SUPPORTED_CONTENT",
                self.bindings_of(inbox_feeds).into_iter().map(|b| b.id),
            ),
        })
    }

    /// Whether discovery shows `service` to `identity`: it may read (or
    /// subscribe to) one of its feeds, or for an inbox, fill one.
    fn may_use(&self, service: &ServiceConfig, identity: &Identity) -> bool {
        let mut feeds = service
            .feeds
            .iter()
            .filter_map(|name| self.config.feed(name));
        match service.kind {
            ServiceKind::Discovery => true,
            ServiceKind::Inbox => feeds.any(|feed| feed.allows(Right::Write, identity)),
            ServiceKind::Poll => feeds.any(|feed| feed.allows(Right::Read, identity)),
            ServiceKind::FeedManagement => feeds.any(|feed| {
                feed.allows(Right::Read, identity) || feed.allows(Right::Subscribe, identity)
            }),
        }
    }

    fn served_feed(&self, service: &ServiceConfig, name: &str) -> Option<&FeedConfig> {
        service
            .feeds
            .iter()
            .any(|served| served == name)
            .then(|| self.config.feed(name))
            .flatten()
    }

    fn bindings_of(&self, feeds: &[String]) -> Vec<ContentBinding> {
        let mut bindings: Vec<ContentBinding> = Vec::new();
        for feed in feeds.iter().filter_map(|name| self.config.feed(name)) {
            for id in &feed.content_bindings {
                if !bindings.iter().any(|b| &b.id == id) {
                    bindings.push(ContentBinding::new(id.clone()));
                }
            }
        }
        bindings
    }

    fn protocol(&self) -> ProtocolBinding {
        if self.public_url.starts_with("https:") {
            ProtocolBinding::Https
        } else {
            ProtocolBinding::Http
        }
    }

    fn address(&self, path: &str) -> String {
        format!("{}{path}", self.public_url)
    }
}

/// A multi-part 1.1 poll result, fixed when its first part was answered.
/// Stateless: its result id encodes it, and parses back.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ResultSet {
    feed: String,
    exclusive_begin: Option<Timestamp>,
    inclusive_end: Timestamp,
    /// Content binding ids selected; empty means any.
    bindings: Vec<String>,
}

impl ResultSet {
    const PREFIX: &'static str = "taxiway-result-1";

    /// URL-safe text: the prefix, the feed name in hex, the bounds in
    /// nanoseconds since the epoch (`_` for no begin), the bindings in hex.
    fn id(&self) -> String {
        let nanos = |t: Timestamp| t.unix_nanos().to_string();
        format!(
            "{}.{}.{}.{}.{}",
            Self::PREFIX,
            hex(&self.feed),
            self.exclusive_begin.map_or_else(|| "_".to_owned(), nanos),
            nanos(self.inclusive_end),
            hex(&self.bindings.join("\n")),
        )
    }

    fn parse(id: &str) -> Option<ResultSet> {
        let mut fields = id.split('.');
        if fields.next()? != Self::PREFIX {
            return None;
        }
        let feed = unhex(fields.next()?)?;
        let exclusive_begin = match fields.next()? {
            "_" => None,
            begin => Some(from_nanos(begin)?),
        };
        let inclusive_end = from_nanos(fields.next()?)?;
        let bindings = unhex(fields.next()?)?;
        if fields.next().is_some() || exclusive_begin.is_some_and(|b| b >= inclusive_end) {
            return None;
        }
        Some(ResultSet {
            feed,
            exclusive_begin,
            inclusive_end,
            bindings: if bindings.is_empty() {
                Vec::new()
            } else {
                bindings.split('\n').map(str::to_owned).collect()
            },
        })
    }

    fn query(&self) -> PollQuery {
        PollQuery {
            feed: self.feed.clone(),
            exclusive_begin: self.exclusive_begin,
            inclusive_end: Some(self.inclusive_end),
            bindings: self.bindings.clone(),
            limit: POLL_PAGE,
        }
    }
}

/// The store reads of a page, chunk by chunk.
fn chunk_queries(query: &PollQuery, extent: &PollExtent) -> Vec<PollQuery> {
    chunk_ranges(&extent.blocks)
        .map(|(first, last, count)| PollQuery {
            // Labels are whole microseconds: one before the first excludes none.
            exclusive_begin: Some(first.shifted_nanos(-1_000)),
            inclusive_end: Some(last),
            limit: count,
            ..query.clone()
        })
        .collect()
}

/// A page's blocks in runs of consecutive labels, each of at most
/// [`POLL_CHUNK_BLOCKS`] blocks and [`POLL_CHUNK_BYTES`] of content (or one
/// larger block): the first label, the last and how many.
fn chunk_ranges(
    blocks: &[(Timestamp, u64)],
) -> impl Iterator<Item = (Timestamp, Timestamp, usize)> {
    let mut rest = blocks;
    std::iter::from_fn(move || {
        let (first, _) = *rest.first()?;
        let mut bytes = 0;
        let count = rest
            .iter()
            .take(POLL_CHUNK_BLOCKS)
            .take_while(|(_, size)| {
                bytes += size;
                bytes <= POLL_CHUNK_BYTES
            })
            .count()
            .max(1);
        let last = rest[count - 1].0;
        rest = &rest[count..];
        Some((first, last, count))
    })
}

/// Reads the chunks of a page in order, the next one read while the one
/// before is written out, so that the store and the connection work side by
/// side; no more than [`READ_AHEAD_CHUNKS`] chunks are held at once.
fn read_chunks<S: Store + Clone>(
    store: S,
    chunks: Vec<PollQuery>,
    reader: BlockReader,
) -> MoreBlocks {
    Box::pin(
        futures_util::stream::iter(chunks)
            .map(move |chunk| {
                let store = store.clone();
                let reader = reader.clone();
                async move { Ok(reader.keep(store.poll(chunk).await?.blocks)) }
            })
            .buffered(READ_AHEAD_CHUNKS),
    )
}

/// Who reads a feed's blocks, when the feed restricts some of them.
#[derive(Clone)]
struct BlockReader(Option<(FeedConfig, Identity)>);

impl BlockReader {
    fn new(feed: &FeedConfig, identity: &Identity) -> BlockReader {
        BlockReader((!feed.restrictions.is_empty()).then(|| (feed.clone(), identity.clone())))
    }

    fn keep(&self, blocks: Vec<crate::store::StoredBlock>) -> Vec<ContentBlock> {
        blocks
            .into_iter()
            .map(|stored| stored.block)
            .filter(|block| match &self.0 {
                Some((feed, identity)) => may_read_block(feed, identity, block),
                None => true,
            })
            .collect()
    }
}

/// Whether `identity`, who may read `feed`, may read this block of it: an
/// IODEF block's restriction decides where the feed lists it (CSIRT draft
/// 3.1.2), the same over TAXII as over ROLIE.
pub fn may_read_block(feed: &FeedConfig, identity: &Identity, block: &ContentBlock) -> bool {
    if feed.restrictions.is_empty() || !crate::bindings::rolie::is_iodef_binding(&block.binding.id)
    {
        return true;
    }
    let facts = crate::bindings::rolie::iodef_facts(block.content.as_str());
    feed.allows_restricted(
        facts
            .as_ref()
            .and_then(|facts| facts.restriction.as_deref()),
        identity,
    )
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(digits: &str) -> Option<String> {
    if !digits.len().is_multiple_of(2) || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bytes = (0..digits.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&digits[at..at + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

fn from_nanos(digits: &str) -> Option<Timestamp> {
    let nanos: i128 = digits.parse().ok()?;
    let seconds = i64::try_from(nanos.div_euclid(1_000_000_000)).ok()?;
    // Labels are years 1 to 9999; anything else is not one of ours.
    if !(-62_135_596_800..=253_402_300_799).contains(&seconds) {
        return None;
    }
    Some(Timestamp::from_unix(
        seconds,
        nanos.rem_euclid(1_000_000_000) as u32,
    ))
}

/// Part `part` of a multi-part result. Every part carries the whole result's
/// bounds, so that a client continues from its end label once it has them all.
fn result_part(
    request: &Message,
    dialect: Dialect,
    result: &ResultSet,
    part: u64,
    page: Page,
    subscription_id: Option<String>,
) -> Reply {
    let message = response(
        request,
        dialect,
        Body::PollResponse(PollResponse {
            feed_name: Some(result.feed.clone()),
            more: Some(page.more),
            result_id: Some(result.id()),
            result_part_number: Some(part),
            subscription_id,
            exclusive_begin: result.exclusive_begin,
            inclusive_end: Some(result.inclusive_end),
            record_count: Some(RecordCount {
                count: page.count,
                partial: Some(page.more),
            }),
            message: page.more.then(|| {
                format!(
                    "Part {part} of a multi-part result: ask for part {} with a Poll_Fulfillment.",
                    part + 1
                )
            }),
            content_blocks: page.first,
        }),
    );
    Reply {
        message,
        more_blocks: page.rest,
    }
}

fn service_type(kind: ServiceKind) -> ServiceType {
    match kind {
        ServiceKind::Discovery => ServiceType::Discovery,
        ServiceKind::FeedManagement => ServiceType::FeedManagement,
        ServiceKind::Poll => ServiceType::Poll,
        ServiceKind::Inbox => ServiceType::Inbox,
    }
}

fn unsupported_content(request: &Message, dialect: Dialect, feed: &FeedConfig) -> Message {
    detailed_status(
        request,
        dialect,
        StatusType::UnsupportedContent,
        format!(
            "{} offers none of the content bindings asked for",
            feed.name
        ),
        "SUPPORTED_CONTENT",
        feed.content_bindings.iter().cloned(),
    )
}

/// A status message with named details (1.1), all under one name.
fn detailed_status(
    request: &Message,
    dialect: Dialect,
    status_type: StatusType,
    text: String,
    name: &str,
    values: impl IntoIterator<Item = String>,
) -> Message {
    let mut message = StatusMessage::new(status_type, text);
    message.details = values
        .into_iter()
        .map(|value| StatusDetail {
            name: name.to_owned(),
            value: XmlContent::Text(value),
        })
        .collect();
    response(request, dialect, Body::Status(message))
}

/// A request the identity has no right to: UNAUTHORIZED when anonymous, so
/// that the client knows to authenticate; DENIED for an account.
fn refusal(request: &Message, dialect: Dialect, identity: &Identity, what: &str) -> Message {
    let (status_type, text) = match identity {
        Identity::Anonymous => (StatusType::Unauthorized, format!("authenticate to {what}")),
        Identity::Named(name) => (StatusType::Denied, format!("{name} may not {what}")),
    };
    tracing::info!(?identity, %status_type, %text, "request refused");
    status(request, dialect, status_type, text)
}

fn is_success(message: &Message) -> bool {
    matches!(&message.body, Body::Status(s) if s.status_type == StatusType::Success)
}

/// A response to `request`, with a fresh message id in the dialect's form.
pub fn response(request: &Message, dialect: Dialect, body: Body) -> Message {
    Message::new(new_message_id(dialect), body).in_response_to(request.id.clone())
}

/// A status message answering `request`.
pub fn status(
    request: &Message,
    dialect: Dialect,
    status_type: StatusType,
    text: impl Into<String>,
) -> Message {
    response(
        request,
        dialect,
        Body::Status(StatusMessage::new(status_type, text)),
    )
}

/// A fresh message id: 32 hex digits (draft), digits (1.0) or a UUID (1.1).
pub fn new_message_id(dialect: Dialect) -> String {
    let uuid = uuid::Uuid::new_v4();
    match dialect {
        Dialect::Draft => uuid.simple().to_string(),
        Dialect::V10 => uuid.as_u128().to_string(),
        Dialect::V11 => uuid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(n: i64) -> Timestamp {
        Timestamp::from_unix(1_700_000_000 + n, 0)
    }

    #[test]
    fn chunks_cover_a_page_once_within_both_bounds() {
        let sizes = [10, 600_000, 500_000, 2_000_000, 1, 1, 1_048_575, 1];
        let blocks: Vec<(Timestamp, u64)> = sizes
            .iter()
            .enumerate()
            .map(|(n, size)| (label(n as i64), *size))
            .collect();
        let chunks: Vec<_> = chunk_ranges(&blocks).collect();
        let expected = [
            (label(0), label(1), 2),
            (label(2), label(2), 1),
            // Larger than a chunk: alone.
            (label(3), label(3), 1),
            (label(4), label(5), 2),
            (label(6), label(7), 2),
        ];
        assert_eq!(chunks, expected);
        assert_eq!(chunk_ranges(&[]).count(), 0);

        let small: Vec<(Timestamp, u64)> = (0..2 * POLL_CHUNK_BLOCKS + 88)
            .map(|n| (label(n as i64), 100))
            .collect();
        let counts: Vec<usize> = chunk_ranges(&small).map(|(_, _, n)| n).collect();
        assert_eq!(counts, [POLL_CHUNK_BLOCKS, POLL_CHUNK_BLOCKS, 88]);
    }
}
