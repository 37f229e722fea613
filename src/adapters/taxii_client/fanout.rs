//! Fan-out to a peer-to-peer community (seed section 3): every inbox the
//! communal discovery service lists gets the message, in the dialect it
//! speaks. The list is read again as it ages, so that members who join or
//! leave are followed; a row's progress is kept, so that a retry after one
//! member failed does not resend to those that have it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::TaxiiClient;
use super::egress::{inbox_in, read_row};
use crate::config::{EgressConfig, FanOutConfig, resolve_password};
use crate::core::*;
use crate::services::delivery::{Deliver, drain};
use crate::services::new_message_id;
use crate::store::{EgressRow, Store};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest discovery response read.
const MAX_DISCOVERY: usize = 4 * 1024 * 1024;

/// An inbox of the community.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    address: String,
    dialect: Dialect,
}

/// Runs until `stop` turns true. `own_inboxes`: this gateway's inbox
/// addresses, which the list may hold and which never get the message.
pub async fn run<S: Store + Clone>(
    egress: EgressConfig,
    fan_out: FanOutConfig,
    own_inboxes: Vec<String>,
    store: S,
    stop: watch::Receiver<bool>,
) {
    let timeout = fan_out
        .timeout_ms
        .map_or(DEFAULT_TIMEOUT, Duration::from_millis);
    let client = match TaxiiClient::new(timeout, fan_out.tls.as_ref()) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(egress = %egress.name, %error, "cannot start a fan-out");
            return;
        }
    };
    let password = resolve_password(fan_out.password.as_ref(), fan_out.password_env.as_ref());
    let credentials = fan_out.username.clone().zip(password);
    let mut sender = ToMembers {
        client,
        fan_out,
        own_inboxes,
        credentials,
        store: store.clone(),
        members: Vec::new(),
        read_at: None,
    };
    drain(&egress, &store, stop, &mut sender).await;
}

struct ToMembers<S> {
    client: TaxiiClient,
    fan_out: FanOutConfig,
    own_inboxes: Vec<String>,
    credentials: Option<(String, String)>,
    store: S,
    members: Vec<Member>,
    read_at: Option<Instant>,
}

impl<S: Store> Deliver for ToMembers<S> {
    fn deliver(&mut self, row: &EgressRow) -> impl Future<Output = Result<(), String>> + Send {
        let row = row.clone();
        async move {
            let outgoing = read_row(&row)?;
            self.refresh().await?;
            let mut done: BTreeSet<String> = row
                .progress
                .as_deref()
                .and_then(|progress| serde_json::from_str(progress).ok())
                .unwrap_or_default();
            let credentials = self
                .credentials
                .as_ref()
                .map(|(user, password)| (user.as_str(), password.as_str()));
            let mut failures = Vec::new();
            for member in &self.members {
                if done.contains(&member.address) || self.is_own(&member.address) {
                    continue;
                }
                let sent = match inbox_in(&outgoing, member.dialect, None) {
                    Ok(message) => {
                        self.client
                            .send(&member.address, member.dialect, &message, credentials)
                            .await
                    }
                    Err(reason) => Err(reason),
                };
                match sent {
                    Ok(()) => {
                        done.insert(member.address.clone());
                    }
                    Err(reason) => failures.push(format!("{}: {reason}", member.address)),
                }
            }
            if failures.is_empty() {
                return Ok(());
            }
            let progress = serde_json::to_string(&done).map_err(|e| e.to_string())?;
            self.store
                .egress_progress(row.id, &progress)
                .await
                .map_err(|e| e.to_string())?;
            Err(failures.join("; "))
        }
    }
}

impl<S> ToMembers<S> {
    /// Reads the member list again once it is older than the refresh
    /// period; keeps the last one read if the discovery service is away.
    async fn refresh(&mut self) -> Result<(), String> {
        let fresh = self
            .read_at
            .is_some_and(|at| at.elapsed() < Duration::from_secs(self.fan_out.refresh_seconds));
        if fresh {
            return Ok(());
        }
        match self.read_members().await {
            Ok(members) => {
                if members != self.members {
                    tracing::info!(discovery = %self.fan_out.discovery, members = members.len(),
                        "the community's inboxes changed");
                }
                self.members = members;
                self.read_at = Some(Instant::now());
                Ok(())
            }
            Err(reason) if self.read_at.is_some() => {
                tracing::warn!(discovery = %self.fan_out.discovery, %reason,
                    "cannot read the community's inboxes again; using the last list");
                Ok(())
            }
            Err(reason) => Err(format!("cannot read the community's inboxes: {reason}")),
        }
    }

    async fn read_members(&self) -> Result<Vec<Member>, String> {
        let request = Message::new(new_message_id(self.fan_out.dialect), Body::DiscoveryRequest);
        let credentials = self
            .credentials
            .as_ref()
            .map(|(user, password)| (user.as_str(), password.as_str()));
        let reply = self
            .client
            .exchange(
                &self.fan_out.discovery,
                self.fan_out.dialect,
                &request,
                credentials,
                MAX_DISCOVERY,
            )
            .await?;
        let Body::DiscoveryResponse(discovery) = reply.body else {
            return Err(format!("answered a {}", reply.kind()));
        };
        Ok(discovery
            .services
            .into_iter()
            .filter(|service| service.service_type == ServiceType::Inbox)
            .filter(|service| service.available != Some(false))
            .filter(|service| {
                matches!(
                    service.protocol,
                    ProtocolBinding::Http | ProtocolBinding::Https
                )
            })
            .map(|service| {
                let dialect = service
                    .message_bindings
                    .iter()
                    .find_map(|binding| match binding {
                        MessageBinding::Xml(dialect) => Some(*dialect),
                        MessageBinding::Other(_) => None,
                    })
                    .or(match service.version {
                        ServicesVersion::Taxii(dialect) => Some(dialect),
                        ServicesVersion::Other(_) => None,
                    })
                    .unwrap_or(self.fan_out.dialect);
                Member {
                    address: service.address,
                    dialect,
                }
            })
            .collect())
    }

    fn is_own(&self, address: &str) -> bool {
        let address = address.trim_end_matches('/');
        self.own_inboxes
            .iter()
            .any(|own| own.trim_end_matches('/').eq_ignore_ascii_case(address))
    }
}
