//! The router: which actions an incoming message leads to, by the routes of
//! the configuration. Pure: it decides, the services and the store carry out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{Config, RouteAction, RouteConfig, RouteMatch, Unrouted};
use crate::core::*;

/// A message on its way to an egress destination, as the outbox keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub message: Message,
    /// The feeds it is for, after the routes' renames.
    pub feeds: Vec<String>,
    pub source: WireBinding,
    /// Its relay record, this gateway included.
    pub relay: Relay,
}

/// What to do with one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Hosted feeds to store it in, in order, each once.
    pub store: Vec<String>,
    /// The message as the store actions saw it.
    pub stored_message: Option<Message>,
    /// Egress destinations (a fan-out is one), each once, with the message
    /// as it leaves.
    pub forward: Vec<(String, Outgoing)>,
    /// Why the message is refused; nothing else is done then.
    pub refused: Option<String>,
    /// Why each decision was made, for operators and `taxiway routes test`.
    pub trace: Vec<String>,
}

impl Plan {
    fn new() -> Plan {
        Plan {
            store: Vec::new(),
            stored_message: None,
            forward: Vec::new(),
            refused: None,
            trace: Vec::new(),
        }
    }

    /// Whether the message is taken in and nothing is done with it.
    pub fn is_dropped(&self) -> bool {
        self.refused.is_none() && self.store.is_empty() && self.forward.is_empty()
    }
}

pub struct Router {
    config: Arc<Config>,
    gateway_id: String,
}

impl Router {
    pub fn new(config: Arc<Config>, gateway_id: String) -> Router {
        Router { config, gateway_id }
    }

    pub fn gateway_id(&self) -> &str {
        &self.gateway_id
    }

    /// The plan for a message that is for `feeds`.
    pub fn route(&self, envelope: &Envelope, feeds: &[String]) -> Plan {
        let mut plan = Plan::new();
        if envelope.relay.hops.contains(&self.gateway_id) {
            plan.trace.push(format!(
                "dropped: it already went through this gateway ({}); hops {:?}",
                self.gateway_id, envelope.relay.hops
            ));
            return plan;
        }
        let mut message = envelope.message.clone();
        let mut feeds: Vec<String> = feeds.to_vec();
        let mut matched = false;
        for route in &self.config.routes {
            if let Err(why) = self.matches(route, envelope, &message, &feeds) {
                plan.trace
                    .push(format!("route {}: not taken ({why})", route.name));
                continue;
            }
            matched = true;
            plan.trace.push(format!("route {}: taken", route.name));
            let dropped = self.apply(route, envelope, &mut message, &mut feeds, &mut plan);
            if dropped || !route.and_then {
                break;
            }
        }
        if !matched {
            match self.config.router.unrouted {
                Unrouted::Store => {
                    plan.trace.push(
                        "no route took it: stored in the feeds it names (router.unrouted = store)"
                            .to_owned(),
                    );
                    self.store_in(&feeds, &message, &mut plan);
                }
                Unrouted::Refuse => {
                    plan.refused = Some("no route takes this message".to_owned());
                    plan.trace
                        .push("no route took it: refused (router.unrouted = refuse)".to_owned());
                }
                Unrouted::Drop => plan
                    .trace
                    .push("no route took it: dropped (router.unrouted = drop)".to_owned()),
            }
        }
        if plan.refused.is_some() {
            plan.store.clear();
            plan.stored_message = None;
            plan.forward.clear();
        }
        plan
    }

    fn matches(
        &self,
        route: &RouteConfig,
        envelope: &Envelope,
        message: &Message,
        feeds: &[String],
    ) -> Result<(), String> {
        let RouteMatch {
            adapter,
            binding,
            identity,
            message_type,
            feed,
            content_binding,
            headers,
            relayed,
        } = &route.matches;
        let was_relayed = !envelope.relay.hops.is_empty();
        if relayed.is_some_and(|wanted| wanted != was_relayed) {
            return Err(if was_relayed {
                format!("it was relayed through {:?}", envelope.relay.hops)
            } else {
                "it was not relayed".to_owned()
            });
        }
        let any =
            |wanted: &[String], value: &str| wanted.is_empty() || wanted.iter().any(|w| w == value);
        if !any(adapter, &envelope.origin.adapter) {
            return Err(format!("adapter is {}", envelope.origin.adapter));
        }
        if !any(binding, envelope.origin.binding.name()) {
            return Err(format!("binding is {}", envelope.origin.binding.name()));
        }
        let who = match &envelope.origin.identity {
            Identity::Anonymous => crate::config::ANONYMOUS,
            Identity::Named(name) => name,
        };
        if !any(identity, who) {
            return Err(format!("identity is {who}"));
        }
        if !message_type.is_empty() && !message_type.contains(&message.kind()) {
            return Err(format!("message type is {}", message.kind().name()));
        }
        if !feed.is_empty() && !feeds.iter().any(|f| feed.contains(f)) {
            return Err(format!("feeds are {feeds:?}"));
        }
        if !content_binding.is_empty() {
            let blocks = content_blocks(message);
            if !blocks
                .iter()
                .any(|b| content_binding.contains(&b.binding.id))
            {
                return Err("no block has a wanted content binding".to_owned());
            }
        }
        for (name, value) in headers {
            let found = message
                .extended_headers
                .iter()
                .find(|h| &h.name == name)
                .map(|h| h.value.as_str().trim());
            if found != Some(value.as_str()) {
                return Err(format!("header {name} is {found:?}"));
            }
        }
        Ok(())
    }

    /// Carries out a route's actions; true when it dropped the message.
    fn apply(
        &self,
        route: &RouteConfig,
        envelope: &Envelope,
        message: &mut Message,
        feeds: &mut Vec<String>,
        plan: &mut Plan,
    ) -> bool {
        for action in &route.actions {
            match action {
                RouteAction::Store => self.store_in(feeds, message, plan),
                RouteAction::StoreIn(feed) => {
                    self.store_in(std::slice::from_ref(feed), message, plan)
                }
                RouteAction::Forward(egress) | RouteAction::FanOut(egress) => {
                    self.forward(egress, envelope, message, feeds, plan);
                }
                RouteAction::Drop => {
                    plan.trace
                        .push("  drop: nothing more is done with it".to_owned());
                    return true;
                }
                RouteAction::SetHeader { name, value } => {
                    message.extended_headers.retain(|h| &h.name != name);
                    message.extended_headers.push(ExtendedHeader {
                        name: name.clone(),
                        value: XmlContent::Text(value.clone()),
                    });
                    plan.trace.push(format!("  set header {name} = {value}"));
                }
                RouteAction::StripHeader(name) => {
                    message.extended_headers.retain(|h| &h.name != name);
                    plan.trace.push(format!("  strip header {name}"));
                }
                RouteAction::RenameFeed(to) => {
                    plan.trace.push(format!("  rename feeds {feeds:?} to {to}"));
                    *feeds = vec![to.clone()];
                    if let Body::Inbox(inbox) = &mut message.body
                        && !inbox.destination_feeds.is_empty()
                    {
                        inbox.destination_feeds = vec![to.clone()];
                    }
                }
            }
        }
        false
    }

    fn store_in(&self, feeds: &[String], message: &Message, plan: &mut Plan) {
        if feeds.is_empty() {
            plan.refused = Some("the message names no feed to store it in".to_owned());
            plan.trace
                .push("  store: it names no feed: refused".to_owned());
            return;
        }
        for feed in feeds {
            if self.config.feed(feed).is_none() {
                plan.refused = Some(format!("{feed} is not a feed hosted here"));
                plan.trace
                    .push(format!("  store in {feed}: not hosted here: refused"));
                return;
            }
            if !plan.store.contains(feed) {
                plan.trace.push(format!("  store in {feed}"));
                plan.store.push(feed.clone());
            }
        }
        plan.stored_message = Some(message.clone());
    }

    fn forward(
        &self,
        egress: &str,
        envelope: &Envelope,
        message: &Message,
        feeds: &[String],
        plan: &mut Plan,
    ) {
        let Some(config) = self.config.egress_named(egress) else {
            plan.trace
                .push(format!("  forward to {egress}: no such egress, skipped"));
            return;
        };
        let from = match &envelope.origin.identity {
            Identity::Named(name) => Some(name),
            Identity::Anonymous => None,
        };
        if let Some(peer) = config
            .peers
            .iter()
            .find(|peer| Some(*peer) == from || envelope.relay.hops.contains(peer))
        {
            plan.trace.push(format!(
                "  forward to {egress}: skipped, the message came from or through {peer}"
            ));
            return;
        }
        if plan.forward.iter().any(|(name, _)| name == egress) {
            return;
        }
        plan.trace.push(format!("  forward to {egress}"));
        plan.forward
            .push((egress.to_owned(), self.outgoing(envelope, message, feeds)));
    }

    fn outgoing(&self, envelope: &Envelope, message: &Message, feeds: &[String]) -> Outgoing {
        let mut relay = envelope.relay.clone();
        relay.hops.push(self.gateway_id.clone());
        relay
            .origin_id
            .get_or_insert_with(|| envelope.message.id.clone());
        Outgoing {
            message: message.clone(),
            feeds: feeds.to_vec(),
            source: envelope.origin.binding,
            relay,
        }
    }
}

fn content_blocks(message: &Message) -> &[ContentBlock] {
    match &message.body {
        Body::Inbox(inbox) => &inbox.content_blocks,
        Body::PollResponse(response) => &response.content_blocks,
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
