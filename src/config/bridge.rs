//! The configuration of the bridge: this gateway's name among gateways, the
//! routes, the egress destinations and the ingress that are not TAXII
//! services (AMQP consumers).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Config;
use crate::core::{Dialect, MessageKind};

/// Placeholders an AMQP routing key may hold.
pub const ROUTING_KEY_FIELDS: [&str; 4] = ["feed", "message_type", "content_binding", "source"];

impl Config {
    pub fn egress_named(&self, name: &str) -> Option<&EgressConfig> {
        self.egress.iter().find(|egress| egress.name == name)
    }

    /// The bridge's part of [`Config::check`].
    pub(super) fn check_bridge(&self) -> Result<(), String> {
        if let Some(id) = &self.gateway.id
            && (id.is_empty() || id.contains(char::is_whitespace))
        {
            return Err(format!("gateway id {id:?} is empty or holds spaces"));
        }
        let mut names = std::collections::BTreeSet::new();
        for egress in &self.egress {
            if !names.insert(egress.name.as_str()) {
                return Err(format!("egress {} is defined twice", egress.name));
            }
            let kinds = [
                egress.amqp.is_some(),
                egress.taxii.is_some(),
                egress.fan_out.is_some(),
                egress.rolie.is_some(),
            ];
            if kinds.iter().filter(|kind| **kind).count() != 1 {
                return Err(format!(
                    "egress {} needs exactly one of [egress.amqp], [egress.taxii], \
                     [egress.fan_out] and [egress.rolie]",
                    egress.name
                ));
            }
            let owner = format!("egress {}", egress.name);
            if let Some(amqp) = &egress.amqp {
                check_routing_key(&egress.name, &amqp.routing_key)?;
            }
            if let Some(taxii) = &egress.taxii {
                check_url(&owner, &taxii.url)?;
            }
            if let Some(rolie) = &egress.rolie {
                check_url(&owner, &rolie.url)?;
                check_tls(&owner, rolie.tls.as_ref())?;
            }
            if let Some(fan_out) = &egress.fan_out {
                check_url(&owner, &fan_out.discovery)?;
                if fan_out.refresh_seconds == 0 {
                    return Err(format!("egress {}: refresh_seconds is 0", egress.name));
                }
            }
            let tls = egress
                .taxii
                .as_ref()
                .and_then(|taxii| taxii.tls.as_ref())
                .or(egress
                    .fan_out
                    .as_ref()
                    .and_then(|fan_out| fan_out.tls.as_ref()));
            check_tls(&format!("egress {}", egress.name), tls)?;
            if egress.max_attempts == 0 {
                return Err(format!("egress {}: max_attempts is 0", egress.name));
            }
        }
        let mut routes = std::collections::BTreeSet::new();
        for route in &self.routes {
            if !routes.insert(route.name.as_str()) {
                return Err(format!("route {} is defined twice", route.name));
            }
            if route.actions.is_empty() {
                return Err(format!("route {} has no actions", route.name));
            }
            for action in &route.actions {
                match action {
                    RouteAction::Forward(name) if self.egress_named(name).is_none() => {
                        return Err(format!(
                            "route {} forwards to {name}, which no [[egress]] defines",
                            route.name
                        ));
                    }
                    RouteAction::FanOut(name)
                        if self
                            .egress_named(name)
                            .is_none_or(|egress| egress.fan_out.is_none()) =>
                    {
                        return Err(format!(
                            "route {} fans out through {name}, which no [[egress]] with \
                             [egress.fan_out] defines",
                            route.name
                        ));
                    }
                    RouteAction::StoreIn(feed) if self.feed(feed).is_none() => {
                        return Err(format!(
                            "route {} stores in {feed}, which is not a hosted feed",
                            route.name
                        ));
                    }
                    _ => {}
                }
            }
        }
        let mut adapters = std::collections::BTreeSet::from(["taxii_http"]);
        for poller in &self.pollers {
            if !adapters.insert(poller.name.as_str()) {
                return Err(format!("poller name {} is taken", poller.name));
            }
            check_url(&format!("poller {}", poller.name), &poller.url)?;
            if poller.dialect == Dialect::Draft && poller.content_binding.is_none() {
                return Err(format!(
                    "poller {}: a draft poll names a content binding: set content_binding",
                    poller.name
                ));
            }
            if poller.interval_seconds == 0 {
                return Err(format!("poller {}: interval_seconds is 0", poller.name));
            }
            check_tls(&format!("poller {}", poller.name), poller.tls.as_ref())?;
            if let Some(begin) = &poller.begin
                && begin.parse::<crate::core::Timestamp>().is_err()
            {
                return Err(format!(
                    "poller {}: begin {begin:?} is not a timestamp",
                    poller.name
                ));
            }
        }
        for poller in &self.rolie_pollers {
            if !adapters.insert(poller.name.as_str()) {
                return Err(format!("ROLIE poller name {} is taken", poller.name));
            }
            check_url(&format!("ROLIE poller {}", poller.name), &poller.url)?;
            check_tls(
                &format!("ROLIE poller {}", poller.name),
                poller.tls.as_ref(),
            )?;
            if poller.interval_seconds == 0 || poller.into.is_empty() {
                return Err(format!(
                    "ROLIE poller {}: interval_seconds is 0 or into names no feed",
                    poller.name
                ));
            }
        }
        for ingress in &self.amqp_ingress {
            if !adapters.insert(ingress.name.as_str()) {
                return Err(format!("AMQP ingress name {} is taken", ingress.name));
            }
            if ingress.prefetch == 0 {
                return Err(format!("AMQP ingress {}: prefetch is 0", ingress.name));
            }
        }
        Ok(())
    }
}

/// A password given in the file or, better, in an environment variable
/// (which wins when both are given).
pub fn resolve_password(inline: Option<&String>, variable: Option<&String>) -> Option<String> {
    match variable {
        Some(variable) => std::env::var(variable).ok(),
        None => inline.cloned(),
    }
}

fn check_tls(owner: &str, tls: Option<&ClientTlsConfig>) -> Result<(), String> {
    match tls {
        Some(tls) if tls.certificate.is_some() != tls.key.is_some() => Err(format!(
            "{owner}: a client certificate needs both certificate and key"
        )),
        _ => Ok(()),
    }
}

fn check_url(owner: &str, url: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "{owner}: {url:?} is not an http:// or https:// URL"
        ))
    }
}

fn check_routing_key(egress: &str, template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!(
                "egress {egress}: routing key {template:?} has an unclosed {{"
            ));
        };
        let field = &rest[open + 1..open + close];
        if !ROUTING_KEY_FIELDS.contains(&field) {
            return Err(format!(
                "egress {egress}: routing key field {{{field}}} is not one of {ROUTING_KEY_FIELDS:?}"
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// Tables between bindings that replace the ones shipped in `mappings/`,
/// without recompiling.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingsConfig {
    /// TAXII fields to AMQP properties and headers, content bindings to
    /// media types: a file shaped like `mappings/amqp.toml`.
    #[serde(default)]
    pub amqp: Option<std::path::PathBuf>,
}

/// This gateway among the gateways of a community.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Its name in relay hop records; it must be unique among the gateways a
    /// message can pass through. When not set, a random one is made on the
    /// first start and kept in the data directory.
    #[serde(default)]
    pub id: Option<String>,
}

/// What the router does besides the routes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// What happens to a message that no route takes.
    #[serde(default)]
    pub unrouted: Unrouted,
    /// How long the ids of relayed and queued messages are remembered, so
    /// that one reaching the gateway again is not stored twice.
    #[serde(default = "default_seen_ttl")]
    pub seen_ttl_seconds: u64,
    /// Identities (over TAXII) whose relay records are believed. A relay
    /// record decides whether a message is dropped as a loop or as already
    /// taken in, so an open gateway should believe only its peers'; when
    /// not set, every sender's is believed (a closed community).
    #[serde(default)]
    pub relay_senders: Option<Vec<String>>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            unrouted: Unrouted::default(),
            seen_ttl_seconds: default_seen_ttl(),
            relay_senders: None,
        }
    }
}

impl RouterConfig {
    /// Whether a relay record that `identity` sent is believed.
    pub fn believes_relays_of(&self, identity: &crate::core::Identity) -> bool {
        let Some(senders) = &self.relay_senders else {
            return true;
        };
        match identity {
            crate::core::Identity::Named(name) => senders.iter().any(|sender| sender == name),
            crate::core::Identity::Anonymous => {
                senders.iter().any(|sender| sender == super::ANONYMOUS)
            }
        }
    }
}

fn default_seen_ttl() -> u64 {
    7 * 24 * 3600
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unrouted {
    /// Stored in the hosted feeds it names; refused when it names none.
    #[default]
    Store,
    /// Refused with a clear status.
    Refuse,
    /// Acknowledged and forgotten.
    Drop,
}

/// A rule: when an incoming message matches, what to do with it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    /// Every criterion given must hold; a list holds when any of its values does.
    #[serde(default, rename = "match")]
    pub matches: RouteMatch,
    pub actions: Vec<RouteAction>,
    /// Whether later routes are tried after this one matched.
    #[serde(default, rename = "continue")]
    pub and_then: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Ingress names: `taxii_http`, an AMQP consumer's or a poller's name.
    #[serde(default)]
    pub adapter: Vec<String>,
    /// Wire forms: `draft`, `1.0`, `1.1`, `amqp`, `rolie`.
    #[serde(default)]
    pub binding: Vec<String>,
    /// Identity names (`anonymous` for none).
    #[serde(default)]
    pub identity: Vec<String>,
    #[serde(default)]
    pub message_type: Vec<MessageKind>,
    /// Feed or collection names the message is for.
    #[serde(default)]
    pub feed: Vec<String>,
    /// Content binding ids, matched by any block of the message.
    #[serde(default)]
    pub content_binding: Vec<String>,
    /// Extended header values, by header name (as the message names it,
    /// e.g. `http://example.org/share#label`); all must be equal.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whether it came through another gateway (carries a relay record):
    /// `false` takes what this gateway's own users send.
    #[serde(default)]
    pub relayed: Option<bool>,
}

/// One thing a route does, in order.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    /// Store in the hosted feeds the message is for (which pushes to their
    /// subscribers).
    Store,
    /// Store in this hosted feed.
    StoreIn(String),
    /// Send to an egress destination.
    Forward(String),
    /// Send to every inbox that a discovery service lists (the seed's
    /// peer-to-peer community), through an egress with `[egress.fan_out]`.
    FanOut(String),
    /// Do nothing more with it.
    Drop,
    SetHeader {
        name: String,
        value: String,
    },
    StripHeader(String),
    /// Make the message for this feed instead of the ones it named.
    RenameFeed(String),
}

/// Where forwarded messages go.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    pub name: String,
    #[serde(default)]
    pub amqp: Option<AmqpEgressConfig>,
    #[serde(default)]
    pub taxii: Option<TaxiiEgressConfig>,
    #[serde(default)]
    pub fan_out: Option<FanOutConfig>,
    #[serde(default)]
    pub rolie: Option<RolieEgressConfig>,
    /// Who is at the other end: identity names and gateway ids. A message
    /// that came from one of them, or passed through one, is never sent
    /// there (no echo, no loop).
    #[serde(default)]
    pub peers: Vec<String>,
    /// Attempts before a message goes to the dead-letter state.
    #[serde(default = "default_egress_attempts")]
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further one.
    #[serde(default = "default_egress_backoff_ms")]
    pub initial_backoff_ms: u64,
}

fn default_egress_attempts() -> u32 {
    12
}

fn default_egress_backoff_ms() -> u64 {
    500
}

/// Publishing to an AMQP exchange.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpEgressConfig {
    /// `amqp://user:password@host:port/vhost`.
    pub uri: String,
    pub exchange: String,
    /// Declared (durable) at start when set: `topic`, `direct`, `fanout`, `headers`.
    #[serde(default)]
    pub declare: Option<String>,
    /// Built per message: `{feed}`, `{message_type}`, `{content_binding}` and
    /// `{source}` are replaced by the message's values.
    #[serde(default = "default_routing_key")]
    pub routing_key: String,
    /// The TAXII dialect of the bodies.
    #[serde(default = "default_amqp_dialect")]
    pub dialect: Dialect,
    /// Publisher confirms awaited at once.
    #[serde(default = "default_in_flight")]
    pub in_flight: usize,
}

fn default_routing_key() -> String {
    "taxii.{feed}.{message_type}".to_owned()
}

fn default_amqp_dialect() -> Dialect {
    Dialect::V11
}

fn default_in_flight() -> usize {
    1000
}

/// Pushing inbox messages to a remote TAXII inbox service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxiiEgressConfig {
    pub url: String,
    pub dialect: Dialect,
    /// 1.1: the destination collection; otherwise the remote inbox decides.
    #[serde(default)]
    pub collection: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// Keep the file private if it holds a password; `password_env` names
    /// an environment variable to read it from instead.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

/// POSTing each content block as an entry to a remote ROLIE (AtomPub)
/// collection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolieEgressConfig {
    /// The collection's URL (its feed), where entries are POSTed.
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

/// Pushing to every inbox a discovery service lists: the members of a
/// peer-to-peer community (seed section 3).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanOutConfig {
    /// The communal discovery service.
    pub discovery: String,
    /// The dialect to ask it in.
    #[serde(default = "default_amqp_dialect")]
    pub dialect: Dialect,
    /// How often the member list is read again.
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

fn default_refresh() -> u64 {
    60
}

/// HTTPS as a client: a certificate to prove who this gateway is, and the
/// authorities to trust for the server's (the system's when not given).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM file: the client certificate chain, this gateway's first.
    #[serde(default)]
    pub certificate: Option<std::path::PathBuf>,
    /// PEM file: its private key.
    #[serde(default)]
    pub key: Option<std::path::PathBuf>,
    /// PEM file: the only authorities trusted for the server's certificate.
    #[serde(default)]
    pub ca: Option<std::path::PathBuf>,
}

impl ClientTlsConfig {
    /// A client builder that presents the certificate and trusts only the
    /// authorities given here.
    pub fn configure(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        if let (Some(certificate), Some(key)) = (&self.certificate, &self.key) {
            let mut pem = read(certificate)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("the client certificate and key: {e}"))?;
            builder = builder.identity(identity);
        }
        if let Some(ca) = &self.ca {
            let authorities = reqwest::Certificate::from_pem_bundle(&read(ca)?)
                .map_err(|e| format!("the authorities in {}: {e}", ca.display()))?;
            builder = builder.tls_certs_only(authorities);
        }
        Ok(builder)
    }
}

/// Pulling content from a remote TAXII poll service on a schedule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerConfig {
    /// The adapter name routes match on; also names its cursor.
    pub name: String,
    /// The remote poll service.
    pub url: String,
    pub dialect: Dialect,
    /// The remote feed (collection) to poll.
    pub feed: String,
    /// The local feeds what it brings is for (the remote feed's name when
    /// not given); the routes decide what is done with it.
    #[serde(default)]
    pub into: Vec<String>,
    #[serde(default = "default_poll_interval")]
    pub interval_seconds: u64,
    /// Only content of this binding (1.x id); the draft needs one.
    #[serde(default)]
    pub content_binding: Option<String>,
    /// Where to start the first time (exclusive); from the beginning when
    /// not given.
    #[serde(default)]
    pub begin: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

fn default_poll_interval() -> u64 {
    60
}

/// Reading a remote ROLIE collection on a schedule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoliePollerConfig {
    /// The adapter name routes match on; also names its cursor.
    pub name: String,
    /// The remote collection's feed.
    pub url: String,
    /// The local feeds what it brings is for.
    pub into: Vec<String>,
    #[serde(default = "default_poll_interval")]
    pub interval_seconds: u64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
}

/// Consuming TAXII content from an AMQP queue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpIngressConfig {
    /// The adapter name routes match on.
    pub name: String,
    pub uri: String,
    pub queue: String,
    /// Declares the queue (durable, dead-lettering to `dead_letter_exchange`)
    /// and the exchange at start.
    #[serde(default)]
    pub declare: bool,
    /// Where deliveries that cannot be understood go, with the reason in an
    /// `x-taxiway-reason` header.
    pub dead_letter_exchange: String,
    /// Whose rights apply to what the queue brings.
    pub identity: String,
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
}

fn default_prefetch() -> u16 {
    256
}
