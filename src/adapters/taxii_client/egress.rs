//! Egress to a remote TAXII inbox service: drains one destination's rows of
//! the egress outbox, in order, as inbox messages in the destination's
//! dialect, carrying the relay record so that no gateway stores it twice.

use std::time::Duration;

use tokio::sync::watch;

use super::TaxiiClient;
use crate::bindings::taxii_xml;
use crate::config::{EgressConfig, TaxiiEgressConfig, resolve_password};
use crate::core::*;
use crate::router::Outgoing;
use crate::services::delivery::{Deliver, drain};
use crate::store::{EgressRow, Store};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until `stop` turns true.
pub async fn run<S: Store>(
    egress: EgressConfig,
    taxii: TaxiiEgressConfig,
    store: S,
    stop: watch::Receiver<bool>,
) {
    let timeout = taxii
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let client = match TaxiiClient::new(timeout, taxii.tls.as_ref()) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(egress = %egress.name, %error, "cannot start a TAXII egress");
            return;
        }
    };
    let password = resolve_password(taxii.password.as_ref(), taxii.password_env.as_ref());
    if taxii.username.is_some() && password.is_none() {
        tracing::error!(egress = %egress.name, "a username without a password: not sending");
        return;
    }
    let credentials = taxii.username.clone().zip(password);
    let mut sender = ToInbox {
        client,
        taxii,
        credentials,
    };
    drain(&egress, &store, stop, &mut sender).await;
}

struct ToInbox {
    client: TaxiiClient,
    taxii: TaxiiEgressConfig,
    credentials: Option<(String, String)>,
}

impl Deliver for ToInbox {
    fn deliver(&mut self, row: &EgressRow) -> impl Future<Output = Result<(), String>> + Send {
        let message = read_row(row).and_then(|outgoing| {
            inbox_in(
                &outgoing,
                self.taxii.dialect,
                self.taxii.collection.as_deref(),
            )
        });
        async move {
            let credentials = self
                .credentials
                .as_ref()
                .map(|(user, password)| (user.as_str(), password.as_str()));
            self.client
                .send(&self.taxii.url, self.taxii.dialect, &message?, credentials)
                .await
        }
    }
}

pub(super) fn read_row(row: &EgressRow) -> Result<Outgoing, String> {
    serde_json::from_str(&row.payload).map_err(|e| format!("the outbox row cannot be read: {e}"))
}

/// The message as a destination speaking `dialect` takes it: its relay
/// record on, and in 1.1 the destination collection named (`collection`,
/// or the feeds it is for).
pub(super) fn inbox_in(
    outgoing: &Outgoing,
    dialect: Dialect,
    collection: Option<&str>,
) -> Result<Message, String> {
    let source = match outgoing.source {
        WireBinding::TaxiiXml(dialect) => dialect,
        WireBinding::Amqp | WireBinding::Rolie => Dialect::V11,
    };
    let mut message = outgoing.message.clone();
    outgoing.relay.put_on(&mut message);
    if let Body::Inbox(inbox) = &mut message.body {
        inbox.destination_feeds = match collection {
            Some(collection) => vec![collection.to_owned()],
            None => outgoing.feeds.clone(),
        };
    }
    taxii_xml::convert(message, source, dialect)
        .map(|converted| converted.message)
        .map_err(|e| e.to_string())
}
