//! The gateway's configuration: one TOML file, read and checked once at start.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The seed's Source, served when no configuration is given.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

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
    /// `http://` and the listen address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// The largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            data_dir: default_data_dir(),
            public_url: None,
            max_body_bytes: default_max_body(),
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

/// A hosted feed: at once a TAXII data feed (collection) and, later, a ROLIE collection.
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
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration: {0}")]
    Syntax(#[from] toml::de::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    pub fn default_scenario() -> Config {
        Config::from_toml(DEFAULT_CONFIG).expect("config/default.toml is valid")
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
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

    /// The base URL service addresses are built on, without a trailing slash.
    pub fn public_url(&self) -> String {
        let url = self
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen));
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
    fn the_example_file_is_a_valid_configuration() {
        let example = include_str!("../taxiway.example.toml");
        let config = Config::from_toml(example).unwrap();
        assert_eq!(config.services.len(), 4);
        assert!(!config.feed("Silver").unwrap().poll);
    }

    #[test]
    fn mistakes_are_refused_with_a_reason() {
        let unknown_feed = "[[services]]\nkind = \"poll\"\npath = \"/p\"\nfeeds = [\"Nope\"]\n";
        let error = Config::from_toml(unknown_feed).unwrap_err().to_string();
        assert!(error.contains("unknown feed Nope"), "{error}");
        let unknown_key = "[server]\nlisten = \"127.0.0.1:1\"\nport = 3\n";
        assert!(Config::from_toml(unknown_key).is_err());
    }
}
