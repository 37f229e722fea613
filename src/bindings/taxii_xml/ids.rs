//! The identifiers of each dialect, loaded from `mappings/taxii.toml`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::core::{
    ContentBinding, Dialect, MessageBinding, ProtocolBinding, ServiceType, ServicesVersion,
    StatusType, SubscriptionAction,
};

const DEFAULT_TABLE: &str = include_str!("../../../mappings/taxii.toml");

/// One dialect's identifiers.
#[derive(Debug, Deserialize)]
pub struct DialectIds {
    pub namespace: String,
    pub services_version: String,
    pub message_binding: String,
    pub message_binding_aliases: Vec<String>,
    pub protocol_http: String,
    pub protocol_http_aliases: Vec<String>,
    pub protocol_https: String,
    pub protocol_https_aliases: Vec<String>,
    /// The value of `X-TAXII-Content-Type` for this dialect.
    pub content_type: String,
    pub content_type_aliases: Vec<String>,
    #[serde(default)]
    pub content_binding_prefix: Option<String>,
    #[serde(default)]
    poll_delivery_method: Option<String>,
    service_types: BTreeMap<ServiceType, String>,
    status_types: BTreeMap<String, String>,
    subscription_actions: BTreeMap<SubscriptionAction, String>,
    subscription_action_aliases: BTreeMap<String, SubscriptionAction>,
}

#[derive(Debug, Deserialize)]
struct ContentBindingIds {
    stix_xml_prefix: String,
}

/// The identifiers of all dialects.
#[derive(Debug, Deserialize)]
pub struct Ids {
    dialects: BTreeMap<Dialect, DialectIds>,
    content_bindings: ContentBindingIds,
}

/// The table shipped in `mappings/taxii.toml`, read once.
pub fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    IDS.get_or_init(|| Ids::from_toml(DEFAULT_TABLE).expect("mappings/taxii.toml is valid"))
}

impl Ids {
    pub fn from_toml(text: &str) -> Result<Ids, String> {
        let ids: Ids = toml::from_str(text).map_err(|e| e.to_string())?;
        for dialect in Dialect::ALL {
            let Some(table) = ids.dialects.get(&dialect) else {
                return Err(format!("no identifiers for the {dialect} dialect"));
            };
            let services = [
                ServiceType::Discovery,
                ServiceType::FeedManagement,
                ServiceType::Inbox,
                ServiceType::Poll,
            ];
            if let Some(missing) = services
                .iter()
                .find(|s| !table.service_types.contains_key(s))
            {
                return Err(format!(
                    "the {dialect} dialect has no name for the {missing:?} service"
                ));
            }
        }
        Ok(ids)
    }

    pub fn dialect(&self, dialect: Dialect) -> &DialectIds {
        &self.dialects[&dialect]
    }

    /// The dialect whose messages live in this XML namespace.
    pub fn dialect_of_namespace(&self, namespace: &str) -> Option<Dialect> {
        self.dialects
            .iter()
            .find(|(_, ids)| ids.namespace == namespace)
            .map(|(dialect, _)| *dialect)
    }

    /// The dialect named by an `X-TAXII-Content-Type` header value.
    pub fn dialect_of_content_type(&self, value: &str) -> Option<Dialect> {
        let value = value.trim();
        self.dialects
            .iter()
            .find(|(_, ids)| {
                ids.content_type == value || ids.content_type_aliases.iter().any(|a| a == value)
            })
            .map(|(dialect, _)| *dialect)
    }

    pub fn message_binding(&self, wire: &str) -> MessageBinding {
        let wire = wire.trim();
        self.dialects
            .iter()
            .find(|(_, ids)| {
                ids.message_binding == wire || ids.message_binding_aliases.iter().any(|a| a == wire)
            })
            .map(|(dialect, _)| MessageBinding::Xml(*dialect))
            .unwrap_or_else(|| MessageBinding::Other(wire.to_owned()))
    }

    pub fn message_binding_wire<'a>(&'a self, binding: &'a MessageBinding) -> &'a str {
        match binding {
            MessageBinding::Xml(dialect) => &self.dialect(*dialect).message_binding,
            MessageBinding::Other(wire) => wire,
        }
    }

    pub fn services_version(&self, wire: &str) -> ServicesVersion {
        let wire = wire.trim();
        self.dialects
            .iter()
            .find(|(_, ids)| ids.services_version == wire)
            .map(|(dialect, _)| ServicesVersion::Taxii(*dialect))
            .unwrap_or_else(|| ServicesVersion::Other(wire.to_owned()))
    }

    pub fn services_version_wire<'a>(&'a self, version: &'a ServicesVersion) -> &'a str {
        match version {
            ServicesVersion::Taxii(dialect) => &self.dialect(*dialect).services_version,
            ServicesVersion::Other(wire) => wire,
        }
    }

    /// Protocol binding ids of any dialect are understood in every dialect:
    /// a 1.1 discovery response may list a draft peer's services.
    pub fn protocol(&self, wire: &str) -> ProtocolBinding {
        let wire = wire.trim();
        let named = |name: &String| name == wire;
        for ids in self.dialects.values() {
            if named(&ids.protocol_http) || ids.protocol_http_aliases.iter().any(named) {
                return ProtocolBinding::Http;
            }
            if named(&ids.protocol_https) || ids.protocol_https_aliases.iter().any(named) {
                return ProtocolBinding::Https;
            }
        }
        ProtocolBinding::Other(wire.to_owned())
    }

    pub fn protocol_wire<'a>(&'a self, dialect: Dialect, protocol: &'a ProtocolBinding) -> &'a str {
        match protocol {
            ProtocolBinding::Http => &self.dialect(dialect).protocol_http,
            ProtocolBinding::Https => &self.dialect(dialect).protocol_https,
            ProtocolBinding::Other(wire) => wire,
        }
    }

    /// A service type as a dialect spells it (1.0 FEED_MANAGEMENT, 1.1
    /// COLLECTION_MANAGEMENT, draft FEED-MANAGEMENT): each schema lists its own.
    pub fn service_type(&self, dialect: Dialect, wire: &str) -> Option<ServiceType> {
        let wire = wire.trim();
        self.dialect(dialect)
            .service_types
            .iter()
            .find(|(_, name)| *name == wire)
            .map(|(service_type, _)| service_type.clone())
    }

    pub fn service_type_wire(&self, dialect: Dialect, service_type: &ServiceType) -> &str {
        &self.dialect(dialect).service_types[service_type]
    }

    pub fn status_type(&self, dialect: Dialect, wire: &str) -> StatusType {
        let wire = wire.trim();
        self.dialect(dialect)
            .status_types
            .iter()
            .find(|(_, name)| *name == wire)
            .and_then(|(key, _)| status_from_key(key))
            .unwrap_or_else(|| StatusType::Other(wire.to_owned()))
    }

    /// The spelling of a status type in a dialect, if the dialect has it.
    pub fn status_type_wire<'a>(
        &'a self,
        dialect: Dialect,
        status: &'a StatusType,
    ) -> Option<&'a str> {
        match status {
            StatusType::Other(wire) => Some(wire),
            known => self
                .dialect(dialect)
                .status_types
                .get(known.name())
                .map(String::as_str),
        }
    }

    pub fn subscription_action(&self, dialect: Dialect, wire: &str) -> Option<SubscriptionAction> {
        let ids = self.dialect(dialect);
        let wire = wire.trim();
        ids.subscription_actions
            .iter()
            .find(|(_, name)| *name == wire)
            .map(|(action, _)| *action)
            .or_else(|| ids.subscription_action_aliases.get(wire).copied())
    }

    pub fn subscription_action_wire(
        &self,
        dialect: Dialect,
        action: SubscriptionAction,
    ) -> Option<&str> {
        self.dialect(dialect)
            .subscription_actions
            .get(&action)
            .map(String::as_str)
    }

    /// A content binding as read in a dialect, in its 1.x form.
    pub fn content_binding(&self, dialect: Dialect, wire: &str) -> ContentBinding {
        let wire = wire.trim();
        if let Some(prefix) = &self.dialect(dialect).content_binding_prefix
            && let Some(version) = wire.strip_prefix(prefix.as_str())
        {
            return ContentBinding::new(format!(
                "{}{version}",
                self.content_bindings.stix_xml_prefix
            ));
        }
        ContentBinding::new(wire)
    }

    /// A content binding id as written in a dialect.
    pub fn content_binding_wire(&self, dialect: Dialect, binding: &ContentBinding) -> String {
        if let Some(prefix) = &self.dialect(dialect).content_binding_prefix
            && let Some(version) = binding
                .id
                .strip_prefix(&self.content_bindings.stix_xml_prefix)
        {
            return format!("{prefix}{version}");
        }
        binding.id.clone()
    }

    /// The draft's delivery method that means "the subscriber polls".
    pub fn poll_delivery_method(&self) -> &str {
        self.dialect(Dialect::Draft)
            .poll_delivery_method
            .as_deref()
            .unwrap_or("POLL")
    }
}

fn status_from_key(key: &str) -> Option<StatusType> {
    serde_json::from_value(serde_json::Value::String(key.to_owned())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_covers_every_dialect() {
        let ids = ids();
        for dialect in Dialect::ALL {
            let table = ids.dialect(dialect);
            assert_eq!(ids.dialect_of_namespace(&table.namespace), Some(dialect));
            assert_eq!(
                ids.dialect_of_content_type(&table.content_type),
                Some(dialect)
            );
            assert!(table.status_types.len() >= 10);
            for key in table.status_types.keys() {
                assert!(status_from_key(key).is_some(), "unknown status key {key}");
            }
            for service in [
                ServiceType::Discovery,
                ServiceType::FeedManagement,
                ServiceType::Inbox,
                ServiceType::Poll,
            ] {
                let wire = ids.service_type_wire(dialect, &service);
                assert_eq!(ids.service_type(dialect, wire), Some(service));
            }
        }
    }

    #[test]
    fn seed_spellings_are_understood() {
        let ids = ids();
        assert_eq!(
            ids.protocol("TAXI_HTTPS_BINDING_1.0"),
            ProtocolBinding::Https
        );
        assert_eq!(ids.protocol("TAXII_HTTP_1.0"), ProtocolBinding::Http);
        assert_eq!(
            ids.status_type(Dialect::Draft, "NOT-FOUND"),
            StatusType::NotFound
        );
        assert_eq!(
            ids.subscription_action(Dialect::Draft, "QUERY"),
            Some(SubscriptionAction::Status)
        );
        assert_eq!(
            ids.content_binding(Dialect::Draft, "STIX_XML_1.0").id,
            "urn:stix.mitre.org:xml:1.0"
        );
        assert_eq!(
            ids.content_binding_wire(
                Dialect::Draft,
                &ContentBinding::new("urn:stix.mitre.org:xml:1.1.1")
            ),
            "STIX_XML_1.1.1"
        );
    }
}
