//! The gateway's configuration: one TOML file, read and checked once at start.

mod bridge;

pub use bridge::*;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::core::Identity;

/// The seed's Source, served when no configuration is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.toml");

/// Paths the gateway answers itself, for operators.
pub const RESERVED_PATHS: [&str; 2] = ["/healthz", "/metrics"];

const STIX_1_BINDINGS: [&str; 5] = [
    "urn:stix.mitre.org:xml:1.0",
    "urn:stix.mitre.org:xml:1.0.1",
    "urn:stix.mitre.org:xml:1.1",
    "urn:stix.mitre.org:xml:1.1.1",
    "urn:stix.mitre.org:xml:1.2",
];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub feeds: Vec<FeedConfig>,
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    #[serde(default)]
    pub identities: Vec<IdentityConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub router: RouterConfig,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub egress: Vec<EgressConfig>,
    #[serde(default)]
    pub amqp_ingress: Vec<AmqpIngressConfig>,
    #[serde(default)]
    pub pollers: Vec<PollerConfig>,
    #[serde(default)]
    pub rolie_pollers: Vec<RoliePollerConfig>,
    #[serde(default)]
    pub mappings: MappingsConfig,
    /// The ROLIE repository: every hosted feed as a ROLIE collection.
    #[serde(default)]
    pub rolie: Option<RolieConfig>,
}

/// Where the ROLIE repository lives and how it pages.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolieConfig {
    /// The service document is at `{path}/servicedocument`, each feed's
    /// collection at `{path}/feeds/{name}`.
    #[serde(default = "default_rolie_path")]
    pub path: String,
    /// Entries per feed page.
    #[serde(default = "default_rolie_page")]
    pub page_size: usize,
    /// The title of the workspace holding the collections.
    #[serde(default = "default_rolie_workspace")]
    pub workspace: String,
}

fn default_rolie_path() -> String {
    "/rolie".to_owned()
}

fn default_rolie_page() -> usize {
    100
}

fn default_rolie_workspace() -> String {
    "Threat information".to_owned()
}

/// Push delivery to subscribers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// URL prefixes a push subscription may name as its send-to address.
    /// Empty (the default) allows none: a subscriber must not be able to make
    /// the gateway POST to arbitrary (internal) addresses, so an operator
    /// names the destinations. A prefix matches only up to a boundary
    /// (`/`, `:`, `?`, `#` or its end), so `http://localhost` does not match
    /// `http://localhost.example.net`.
    #[serde(default)]
    pub allowed_destinations: Vec<String>,
    /// Attempts before an outbox row goes to the dead-letter state.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further one.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            allowed_destinations: Vec::new(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
        }
    }
}

fn default_max_attempts() -> u32 {
    8
}

fn default_initial_backoff_ms() -> u64 {
    1000
}

impl DeliveryConfig {
    /// Whether content may be pushed to `address`: an absolute http(s) URL
    /// without credentials, starting with an allowed prefix at a boundary.
    pub fn allows(&self, address: &str) -> bool {
        // Compared in normalised form, so that case or encoding tricks in the
        // host cannot slip past a prefix.
        let Ok(url) = reqwest::Url::parse(address.trim()) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
            || url.host().is_none()
        {
            return false;
        }
        let normalised = url.as_str();
        self.allowed_destinations.iter().any(|prefix| {
            let prefix = prefix.trim();
            !prefix.is_empty()
                && normalised.len() >= prefix.len()
                && normalised[..prefix.len()].eq_ignore_ascii_case(prefix)
                && (prefix.ends_with(['/', ':'])
                    || normalised[prefix.len()..].is_empty()
                    || normalised[prefix.len()..].starts_with(['/', ':', '?', '#']))
        })
    }
}

/// The identity name that needs no credentials.
pub const ANONYMOUS: &str = "anonymous";

/// An account that authenticates with HTTP Basic.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub name: String,
    /// An argon2 PHC string (`taxiway hash-password` makes one); never the password.
    pub password_hash: String,
    /// The subject common name (CN) of a client certificate, verified against
    /// `server.tls.client_ca`, that proves this identity.
    #[serde(default)]
    pub certificate_subject: Option<String>,
}

/// What an identity may do with a feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    Read,
    Write,
    Subscribe,
    /// Replacing and removing content already stored (ROLIE PUT, DELETE).
    Edit,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port the HTTP listener binds.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where the embedded store keeps its database.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The base URL peers reach this gateway at, used in the service
    /// addresses that discovery and feed information give out. Defaults to
    /// `http://` (`https://` with TLS) and the listen address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Content a poll response carries at most, in bytes (a single larger
    /// block excepted): a larger result comes in pages or 1.1 parts, so that
    /// clients that read a response whole can read it.
    #[serde(default = "default_max_poll_response")]
    pub max_poll_response_bytes: u64,
    /// When set, the listener serves HTTPS only.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// HTTPS: the server's certificate and key, and optionally a CA that client
/// certificates are verified against.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the certificate chain, the server's first.
    pub certificate: PathBuf,
    /// PEM file: the private key.
    pub key: PathBuf,
    /// PEM file: CA certificates. A client certificate stays optional, but
    /// one presented must chain to these.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            data_dir: default_data_dir(),
            public_url: None,
            max_body_bytes: default_max_body(),
            max_poll_response_bytes: default_max_poll_response(),
            tls: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9000))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./taxiway-data")
}

fn default_max_body() -> usize {
    16 * 1024 * 1024
}

fn default_max_poll_response() -> u64 {
    32 * 1024 * 1024
}

/// A hosted feed: at once a TAXII data feed (collection) and a ROLIE collection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    pub name: String,
    pub description: String,
    /// Content binding ids (1.x form) the feed accepts and serves.
    #[serde(default = "default_bindings")]
    pub content_bindings: Vec<String>,
    /// Whether subscribers may have content pushed to them.
    #[serde(default = "yes")]
    pub push: bool,
    /// Whether the feed can be polled.
    #[serde(default = "yes")]
    pub poll: bool,
    /// Identities that may poll it and see it in feed information.
    #[serde(default = "anyone")]
    pub readers: Vec<String>,
    /// Identities that may fill it through an inbox. Nobody unless granted.
    #[serde(default)]
    pub writers: Vec<String>,
    /// Identities that may subscribe; the readers when not given.
    #[serde(default)]
    pub subscribers: Option<Vec<String>>,
    /// The ROLIE information type of its collection (`indicator`,
    /// `incident`, ...); by default the one mappings/rolie.toml gives its
    /// first content binding.
    #[serde(default)]
    pub information_type: Option<String>,
    /// Identities that may replace or remove its content (ROLIE PUT and
    /// DELETE of an entry). Nobody unless granted: writing is not editing.
    #[serde(default)]
    pub editors: Vec<String>,
    /// Categories of its ROLIE collection besides the information type:
    /// the CSIRT IODEF purpose and restriction of an IODEF feed (`other`
    /// and `default` when not given), or a sharing group's own.
    #[serde(default)]
    pub categories: Vec<CategoryConfig>,
    /// Links every entry of its collection carries (`related`, `history`,
    /// `indicators`...), the href a template of `{feed}`, `{entry}` (the
    /// entry's number) and `{csirt_id}` (left out of entries without one).
    #[serde(default)]
    pub entry_links: Vec<LinkTemplate>,
    /// Who may read an IODEF entry by its restriction (CSIRT draft 3.1.2):
    /// restriction value to identities (`anonymous` for anyone who may read
    /// the feed). An entry whose restriction is not listed is read like the
    /// feed.
    #[serde(default)]
    pub restrictions: BTreeMap<String, Vec<String>>,
}

/// An `atom:category` a collection carries.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub scheme: String,
    pub term: String,
    #[serde(default)]
    pub label: Option<String>,
}

/// A link relation written into every entry of a collection.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkTemplate {
    pub rel: String,
    pub href: String,
    #[serde(default)]
    pub title: Option<String>,
}

impl LinkTemplate {
    /// The href for one entry; `None` when it names a CSIRT id the entry lacks.
    pub fn href_for(&self, feed: &str, entry: i64, csirt_id: Option<&str>) -> Option<String> {
        if self.href.contains("{csirt_id}") && csirt_id.is_none() {
            return None;
        }
        Some(
            self.href
                .replace("{feed}", feed)
                .replace("{entry}", &entry.to_string())
                .replace("{csirt_id}", csirt_id.unwrap_or_default()),
        )
    }
}

/// IODEF's restriction values (RFC 7970 3.3.1), the terms of the CSIRT
/// restriction category.
pub const IODEF_RESTRICTIONS: &[&str] = &[
    "public",
    "partner",
    "need-to-know",
    "private",
    "default",
    "white",
    "green",
    "amber",
    "red",
    "ext-value",
];

/// IODEF's incident purposes (RFC 7970 3.2), the terms of the CSIRT
/// purpose category.
pub const IODEF_PURPOSES: &[&str] = &[
    "traceback",
    "mitigation",
    "reporting",
    "watch",
    "other",
    "ext-value",
];

impl FeedConfig {
    /// Whether `identity` holds `right` on this feed.
    pub fn allows(&self, right: Right, identity: &Identity) -> bool {
        let names = match right {
            Right::Read => &self.readers,
            Right::Write => &self.writers,
            Right::Subscribe => self.subscribers.as_ref().unwrap_or(&self.readers),
            Right::Edit => &self.editors,
        };
        names.iter().any(|name| {
            name == ANONYMOUS || matches!(identity, Identity::Named(who) if who == name)
        })
    }

    /// Whether `identity` may read an entry of this feed with this IODEF
    /// restriction, the feed itself being readable to it.
    pub fn allows_restricted(&self, restriction: Option<&str>, identity: &Identity) -> bool {
        let Some(names) = restriction.and_then(|term| self.restrictions.get(term)) else {
            return true;
        };
        names.iter().any(|name| {
            name == ANONYMOUS || matches!(identity, Identity::Named(who) if who == name)
        })
    }

    /// Whether its content may be IODEF (a binding the mappings know as IODEF).
    pub fn holds_iodef(&self) -> bool {
        self.content_bindings
            .iter()
            .any(|binding| crate::bindings::rolie::is_iodef_binding(binding))
    }
}

fn anyone() -> Vec<String> {
    vec![ANONYMOUS.to_owned()]
}

fn default_bindings() -> Vec<String> {
    STIX_1_BINDINGS.iter().map(|b| (*b).to_owned()).collect()
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    Discovery,
    FeedManagement,
    Poll,
    Inbox,
}

/// A TAXII service instance at a path. Several kinds may share a path (the
/// seed's `/feeds/pay` is feed management and poll): requests are dispatched
/// by message type.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub kind: ServiceKind,
    pub path: String,
    /// The feeds it serves (feed management, poll) or fills (inbox).
    #[serde(default)]
    pub feeds: Vec<String>,
    /// Free text shown in discovery.
    #[serde(default)]
    pub message: Option<String>,
    /// Whether discovery lists it.
    #[serde(default = "yes")]
    pub discoverable: bool,
    /// Discovery only: services elsewhere that it lists too, such as the
    /// inboxes of a peer-to-peer community's members (seed section 3).
    #[serde(default)]
    pub members: Vec<MemberService>,
    /// Discovery only: whether it lists this gateway's own services.
    #[serde(default = "yes")]
    pub list_local: bool,
}

/// A service of another party that a discovery service lists.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberService {
    pub kind: ServiceKind,
    pub address: String,
    /// The TAXII dialect it speaks.
    pub dialect: crate::core::Dialect,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads a configuration. One that says `extends = "default"` adds to
    /// the default scenario: its lists (feeds, services, routes, ...) are
    /// appended to the scenario's, and its tables' settings override the
    /// scenario's one by one.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text)?;
        if let Some(base) = table.remove("extends") {
            if base.as_str() != Some("default") {
                return Err(ConfigError::Invalid(format!(
                    "extends = {base}: only \"default\" (the default scenario) can be extended"
                )));
            }
            let mut merged: toml::Table = toml::from_str(DEFAULT_CONFIG)?;
            for (key, value) in table {
                match (merged.get_mut(&key), value) {
                    (Some(toml::Value::Array(base)), toml::Value::Array(more)) => base.extend(more),
                    (Some(toml::Value::Table(base)), toml::Value::Table(more)) => base.extend(more),
                    (_, value) => {
                        merged.insert(key, value);
                    }
                }
            }
            table = merged;
        }
        let config: Config = table.try_into()?;
        config.check()?;
        Ok(config)
    }

    pub fn default_scenario() -> Config {
        Config::from_toml(DEFAULT_CONFIG).expect("config/default.toml is valid")
    }

    /// Refuses a configuration that cannot work; run again after changing
    /// a loaded one.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_bridge().map_err(ConfigError::Invalid)?;
        self.check_rolie().map_err(ConfigError::Invalid)?;
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        if let Some(url) = &self.server.public_url {
            let host = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"))
                .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
            if host.is_none_or(|host| host.is_empty() || host.contains(char::is_whitespace)) {
                return invalid(format!(
                    "public_url {url:?} is not an http:// or https:// URL with a host"
                ));
            }
        }
        let mut accounts = BTreeSet::new();
        let mut subjects = BTreeSet::new();
        for identity in &self.identities {
            if identity.name.trim().is_empty() || identity.name.trim() != identity.name {
                return invalid(format!(
                    "identity name {:?} is empty or padded",
                    identity.name
                ));
            }
            if identity.name == ANONYMOUS || identity.name.contains(':') {
                return invalid(format!("{:?} cannot name an account", identity.name));
            }
            if !accounts.insert(identity.name.as_str()) {
                return invalid(format!("identity {} is defined twice", identity.name));
            }
            if let Some(subject) = &identity.certificate_subject {
                if subject.trim().is_empty() {
                    return invalid(format!(
                        "the certificate_subject of {} is empty",
                        identity.name
                    ));
                }
                if !subjects.insert(subject.as_str()) {
                    return invalid(format!(
                        "two identities have the certificate subject {subject:?}"
                    ));
                }
            }
            // Parsed as argon2 verification will: algorithm, parameters, salt, output.
            let parsed = argon2::PasswordHash::new(&identity.password_hash)
                .map_err(|error| error.to_string())
                .and_then(|hash| {
                    argon2::Algorithm::try_from(hash.algorithm.as_str())
                        .and_then(|_| argon2::Params::try_from(&hash))
                        .map_err(|error| error.to_string())?;
                    match (hash.salt, hash.hash) {
                        (Some(_), Some(_)) => Ok(()),
                        _ => Err("no salt or no hash".to_owned()),
                    }
                });
            if let Err(error) = parsed {
                return invalid(format!(
                    "the password_hash of {} is not an argon2 PHC string ({error}): make one with taxiway hash-password",
                    identity.name
                ));
            }
        }
        let mut names = BTreeSet::new();
        for feed in &self.feeds {
            if feed.name.trim().is_empty() || feed.name.trim() != feed.name {
                return invalid(format!("feed name {:?} is empty or padded", feed.name));
            }
            if !names.insert(feed.name.as_str()) {
                return invalid(format!("feed {} is defined twice", feed.name));
            }
            if feed.content_bindings.is_empty() {
                return invalid(format!("feed {} accepts no content binding", feed.name));
            }
            let granted = feed
                .readers
                .iter()
                .chain(&feed.writers)
                .chain(&feed.editors)
                .chain(feed.restrictions.values().flatten())
                .chain(feed.subscribers.iter().flatten());
            for name in granted {
                if name != ANONYMOUS && !accounts.contains(name.as_str()) {
                    return invalid(format!(
                        "feed {} grants a right to the unknown identity {name}",
                        feed.name
                    ));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for service in &self.services {
            if !service.path.starts_with('/') {
                return invalid(format!("service path {:?} must start with /", service.path));
            }
            if RESERVED_PATHS.contains(&service.path.as_str()) {
                return invalid(format!("{} is the gateway's own endpoint", service.path));
            }
            if !seen.insert((service.path.as_str(), service.kind)) {
                return invalid(format!(
                    "two {:?} services at {}",
                    service.kind, service.path
                ));
            }
            if let Some(unknown) = service.feeds.iter().find(|f| !names.contains(f.as_str())) {
                return invalid(format!(
                    "service at {} names the unknown feed {unknown}",
                    service.path
                ));
            }
            if service.kind != ServiceKind::Discovery
                && (!service.members.is_empty() || !service.list_local)
            {
                return invalid(format!(
                    "the service at {} lists members or hides local services, which only \
                     discovery does",
                    service.path
                ));
            }
            if let Some(member) = service
                .members
                .iter()
                .find(|m| !(m.address.starts_with("http://") || m.address.starts_with("https://")))
            {
                return invalid(format!(
                    "the discovery service at {} lists {:?}, which is not an http(s) URL",
                    service.path, member.address
                ));
            }
            let needs_feeds = !matches!(service.kind, ServiceKind::Discovery);
            if needs_feeds && service.feeds.is_empty() {
                return invalid(format!(
                    "the {:?} service at {} serves no feed",
                    service.kind, service.path
                ));
            }
        }
        Ok(())
    }

    fn check_rolie(&self) -> Result<(), String> {
        let mappings = crate::bindings::rolie::rolie_mappings();
        for feed in &self.feeds {
            if let Some(term) = &feed.information_type
                && mappings.information_type(term).is_none()
            {
                return Err(format!(
                    "feed {}: {term:?} is not a ROLIE information type of mappings/rolie.toml",
                    feed.name
                ));
            }
        }
        for feed in &self.feeds {
            check_feed_rolie(feed)?;
        }
        let Some(rolie) = &self.rolie else {
            return Ok(());
        };
        if !rolie.path.starts_with('/') || rolie.path.len() < 2 || rolie.path.ends_with('/') {
            return Err(format!(
                "rolie.path {:?} must start with / and not end with one",
                rolie.path
            ));
        }
        let under =
            |path: &str| path == rolie.path || path.starts_with(&format!("{}/", rolie.path));
        if let Some(service) = self.services.iter().find(|s| under(&s.path)) {
            return Err(format!(
                "the TAXII service at {} is inside the ROLIE repository's path {}",
                service.path, rolie.path
            ));
        }
        if RESERVED_PATHS.iter().any(|path| under(path)) {
            return Err(format!("rolie.path {} is reserved", rolie.path));
        }
        if !(1..=1000).contains(&rolie.page_size) {
            return Err(format!(
                "rolie.page_size {} is not 1 to 1000",
                rolie.page_size
            ));
        }
        Ok(())
    }

    /// The ROLIE information type of a feed's collection.
    pub fn information_type(&self, feed: &FeedConfig) -> String {
        let mappings = crate::bindings::rolie::rolie_mappings();
        feed.information_type
            .as_deref()
            .and_then(|term| mappings.information_type(term))
            .or_else(|| {
                feed.content_bindings
                    .iter()
                    .find_map(|binding| mappings.binding(binding))
                    .map(|mapping| mapping.information_type.as_str())
            })
            .unwrap_or("indicator")
            .to_owned()
    }

    /// The base URL service addresses are built on, without a trailing slash.
    pub fn public_url(&self) -> String {
        let url = self.server.public_url.clone().unwrap_or_else(|| {
            let scheme = if self.server.tls.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{}", self.server.listen)
        });
        url.trim_end_matches('/').to_owned()
    }

    pub fn feed(&self, name: &str) -> Option<&FeedConfig> {
        self.feeds.iter().find(|feed| feed.name == name)
    }

    pub fn services_at<'c>(
        &'c self,
        path: &'c str,
    ) -> impl Iterator<Item = &'c ServiceConfig> + 'c {
        self.services
            .iter()
            .filter(move |service| service.path == path)
    }
}

/// A feed's ROLIE categories, links and restrictions are ones a peer can read.
fn check_feed_rolie(feed: &FeedConfig) -> Result<(), String> {
    use crate::bindings::rolie::{
        INFORMATION_TYPE_SCHEME, IODEF_PURPOSE_SCHEME, IODEF_RESTRICTION_SCHEME,
    };
    let name = &feed.name;
    for category in &feed.categories {
        let (scheme, term) = (category.scheme.as_str(), category.term.as_str());
        if scheme.trim().is_empty() || term.trim().is_empty() {
            return Err(format!("feed {name}: a category needs a scheme and a term"));
        }
        if scheme == INFORMATION_TYPE_SCHEME {
            return Err(format!(
                "feed {name}: give the information type as information_type, not as a category"
            ));
        }
        let allowed = match scheme {
            IODEF_PURPOSE_SCHEME => IODEF_PURPOSES,
            IODEF_RESTRICTION_SCHEME => IODEF_RESTRICTIONS,
            _ => continue,
        };
        if !allowed.contains(&term) {
            return Err(format!(
                "feed {name}: {term:?} is not one of {allowed:?} ({scheme})"
            ));
        }
        if feed
            .categories
            .iter()
            .filter(|c| c.scheme == scheme)
            .count()
            > 1
        {
            return Err(format!("feed {name}: one {scheme} category at most"));
        }
    }
    if let Some(term) = feed
        .restrictions
        .keys()
        .find(|term| !IODEF_RESTRICTIONS.contains(&term.as_str()))
    {
        return Err(format!(
            "feed {name}: restrictions.{term} is not an IODEF restriction ({IODEF_RESTRICTIONS:?})"
        ));
    }
    for link in &feed.entry_links {
        let unknown = link
            .href
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(field, _)| field))
            .find(|field| !matches!(*field, "feed" | "entry" | "csirt_id"));
        if link.rel.trim().is_empty() || link.href.trim().is_empty() {
            return Err(format!(
                "feed {name}: an entry link needs a rel and an href"
            ));
        }
        if let Some(field) = unknown {
            return Err(format!(
                "feed {name}: entry link {}: {{{field}}} is not {{feed}}, {{entry}} or {{csirt_id}}",
                link.rel
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario_is_the_seeds_source() {
        let config = Config::default_scenario();
        assert_eq!(config.services_at("/feeds/pay").count(), 2);
        assert!(!config.feed("Silver").unwrap().poll);
        assert_eq!(config.public_url(), "http://127.0.0.1:9000");
    }

    #[test]
    fn a_configuration_can_extend_the_default_scenario() {
        let config = Config::from_toml(
            r#"
extends = "default"
[server]
listen = "0.0.0.0:9000"
[[feeds]]
name = "Extra"
description = "One more"
[[services]]
kind = "poll"
path = "/feeds/extra"
feeds = ["Extra"]
"#,
        )
        .unwrap();
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(
            config.server.data_dir,
            Config::default_scenario().server.data_dir,
            "settings not given stay the scenario's"
        );
        assert!(config.feed("Gold").is_some() && config.feed("Extra").is_some());
        assert_eq!(
            config.services.len(),
            Config::default_scenario().services.len() + 1
        );
        let duplicate =
            "extends = \"default\"\n[[feeds]]\nname = \"Gold\"\ndescription = \"again\"";
        assert!(
            Config::from_toml(duplicate).is_err(),
            "a feed defined twice is refused"
        );
        assert!(Config::from_toml("extends = \"elsewhere\"").is_err());
    }

    #[test]
    fn a_public_url_needs_a_scheme_and_a_host() {
        let mut config = Config::default_scenario();
        for good in ["http://taxii.example.org", "https://h:8443/taxii/"] {
            config.server.public_url = Some(good.to_owned());
            assert!(config.check().is_ok(), "{good}");
        }
        for bad in [
            "taxii.example.org",
            "ftp://h",
            "http://",
            "https:///x",
            "http://a b",
        ] {
            config.server.public_url = Some(bad.to_owned());
            assert!(config.check().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_example_file_is_a_valid_configuration() {
        let example = include_str!("../../taxiway.example.toml");
        let config = Config::from_toml(example).unwrap();
        assert_eq!(config.services.len(), 4);
        assert!(!config.feed("Silver").unwrap().poll);
        assert_eq!(
            config.identities[0].certificate_subject.as_deref(),
            Some("analyst.example.org")
        );
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.egress.len(), 4);
        assert_eq!((config.amqp_ingress.len(), config.pollers.len()), (1, 1));
        assert_eq!(config.services[0].members.len(), 1);
        assert_eq!(config.gateway.id.as_deref(), Some("taxiway-hq"));
    }

    #[test]
    fn tls_makes_the_default_public_url_https() {
        let config = Config::from_toml(
            "[server]\nlisten = \"127.0.0.1:9443\"\n[server.tls]\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .unwrap();
        assert_eq!(config.public_url(), "https://127.0.0.1:9443");
        assert!(config.server.tls.unwrap().client_ca.is_none());
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        let unknown_feed = "[[services]]\nkind = \"poll\"\npath = \"/p\"\nfeeds = [\"Nope\"]\n";
        let error = Config::from_toml(unknown_feed).unwrap_err().to_string();
        assert!(error.contains("unknown feed Nope"), "{error}");
        let unknown_key = "[server]\nlisten = \"127.0.0.1:1\"\nport = 3\n";
        assert!(Config::from_toml(unknown_key).is_err());
    }

    #[test]
    fn rights_name_known_identities_and_hashes_are_phc_strings() {
        let feed = |readers: &str| {
            format!("[[feeds]]\nname = \"F\"\ndescription = \"d\"\nreaders = [{readers}]\n")
        };
        let error = Config::from_toml(&feed("\"bob\"")).unwrap_err().to_string();
        assert!(error.contains("unknown identity bob"), "{error}");
        assert!(Config::from_toml(&feed("\"anonymous\"")).is_ok());
        for hash in [
            "hunter2",
            "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA",
            "$argon2id$v=19$m=19456,t=2,p=1",
        ] {
            let text = format!("[[identities]]\nname = \"bob\"\npassword_hash = \"{hash}\"\n");
            let error = Config::from_toml(&text).unwrap_err().to_string();
            assert!(
                error.contains("not an argon2 PHC string"),
                "{hash}: {error}"
            );
        }
        let plaintext = "[[identities]]\nname = \"bob\"\npassword = \"x\"\npassword_hash = \"x\"\n";
        assert!(Config::from_toml(plaintext).is_err());
    }

    #[test]
    fn the_default_scenario_splits_free_and_for_pay_feeds() {
        let config = Config::default_scenario();
        let demo = Identity::Named("demo".into());
        let public = config.feed("Public").unwrap();
        assert!(public.allows(Right::Read, &Identity::Anonymous));
        for name in ["Platinum", "Gold", "Silver"] {
            let feed = config.feed(name).unwrap();
            assert!(!feed.allows(Right::Read, &Identity::Anonymous), "{name}");
            assert!(feed.allows(Right::Read, &demo), "{name}");
            assert!(feed.allows(Right::Subscribe, &demo), "{name}");
        }
        // The password main.rs prints at start-up.
        let hash = &config.identities[0].password_hash;
        use argon2::PasswordVerifier;
        assert!(
            argon2::Argon2::default()
                .verify_password(b"taxiway-demo", hash.as_str())
                .is_ok()
        );
    }
}
