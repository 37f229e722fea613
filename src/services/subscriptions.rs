//! Subscription management: SUBSCRIBE, UNSUBSCRIBE, STATUS, PAUSE and RESUME
//! on a hosted feed. Push subscriptions are fed by the store's outbox, which
//! `append` fills in the same transaction as the content.

use super::{Services, refusal, response, status, unsupported_content};
use crate::config::{FeedConfig, Right, ServiceConfig, ServiceKind};
use crate::core::*;
use crate::store::{Store, StoreError, Subscription};

impl<S: Store + Clone> Services<S> {
    pub(super) async fn subscription_management(
        &self,
        service: &ServiceConfig,
        dialect: Dialect,
        identity: &Identity,
        request: &Message,
        asked: &SubscriptionRequest,
    ) -> Result<Message, StoreError> {
        let Some(feed) = self.served_feed(service, &asked.feed_name) else {
            return Ok(not_found(
                request,
                dialect,
                format!("no feed {} is managed here", asked.feed_name),
            ));
        };
        if !feed.allows(Right::Subscribe, identity) {
            return Ok(refusal(
                request,
                dialect,
                identity,
                &format!("subscribe to {}", feed.name),
            ));
        }
        let action = asked.action;
        if action == SubscriptionAction::Subscribe {
            return self
                .subscribe(feed, dialect, identity, request, asked)
                .await;
        }
        if action == SubscriptionAction::Modify {
            return Ok(status(
                request,
                dialect,
                StatusType::Failure,
                "MODIFY is not supported: UNSUBSCRIBE, then SUBSCRIBE",
            ));
        }
        let found = match &asked.subscription_id {
            Some(id) => match self.subscription_for(&feed.name, id, identity).await? {
                Some(found) => vec![found],
                None => {
                    return Ok(not_found(
                        request,
                        dialect,
                        format!("no subscription {id} exists for {}", feed.name),
                    ));
                }
            },
            // Ids are capabilities: without one, only a named identity's own
            // subscriptions are listed, never anonymous ones.
            None if action == SubscriptionAction::Status => match identity {
                Identity::Named(name) => self
                    .store
                    .subscriptions_of(&feed.name)
                    .await?
                    .into_iter()
                    .filter(|s| s.created_by.as_deref() == Some(name.as_str()))
                    .collect(),
                Identity::Anonymous => Vec::new(),
            },
            None => {
                return Ok(status(
                    request,
                    dialect,
                    StatusType::BadMessage,
                    "this action must name the subscription",
                ));
            }
        };
        let new_status = match action {
            SubscriptionAction::Unsubscribe => Some(SubscriptionStatus::Unsubscribed),
            SubscriptionAction::Pause => Some(SubscriptionStatus::Paused),
            SubscriptionAction::Resume => Some(SubscriptionStatus::Active),
            _ => None,
        };
        let mut subscriptions = found;
        if let (Some(new_status), [subscription]) = (new_status, subscriptions.as_mut_slice()) {
            if subscription.status == SubscriptionStatus::Unsubscribed
                && new_status != SubscriptionStatus::Unsubscribed
            {
                return Ok(not_found(
                    request,
                    dialect,
                    format!("subscription {} was unsubscribed", subscription.id),
                ));
            }
            self.store
                .set_subscription_status(&subscription.id, new_status)
                .await?;
            subscription.status = new_status;
            tracing::info!(subscription = %subscription.id, feed = %feed.name, ?action, "subscription changed");
        }
        let records = subscriptions
            .iter()
            .map(|s| self.subscription_record(feed, s, dialect))
            .collect();
        Ok(response(
            request,
            dialect,
            Body::SubscriptionManagementResponse(SubscriptionResponse {
                feed_name: feed.name.clone(),
                message: None,
                subscriptions: records,
            }),
        ))
    }

    async fn subscribe(
        &self,
        feed: &FeedConfig,
        dialect: Dialect,
        identity: &Identity,
        request: &Message,
        asked: &SubscriptionRequest,
    ) -> Result<Message, StoreError> {
        let delivery = asked.delivery.clone().unwrap_or(Delivery::Poll {
            message_binding: None,
        });
        match &delivery {
            Delivery::Push(push) => {
                if !feed.push {
                    return Ok(status(
                        request,
                        dialect,
                        StatusType::UnsupportedProtocol,
                        format!("{} is not delivered by push", feed.name),
                    ));
                }
                if !matches!(
                    push.protocol,
                    ProtocolBinding::Http | ProtocolBinding::Https
                ) {
                    return Ok(status(
                        request,
                        dialect,
                        StatusType::UnsupportedProtocol,
                        "content is pushed over HTTP or HTTPS only",
                    ));
                }
                if !matches!(push.message_binding, MessageBinding::Xml(_)) {
                    return Ok(status(
                        request,
                        dialect,
                        StatusType::UnsupportedMessage,
                        "content is pushed as TAXII XML only",
                    ));
                }
                if !self.config.delivery.allows(&push.address) {
                    tracing::warn!(address = %push.address, ?identity, "push destination refused");
                    return Ok(status(
                        request,
                        dialect,
                        StatusType::Denied,
                        format!("{} is not an allowed push destination", push.address.trim()),
                    ));
                }
            }
            Delivery::Poll { .. } if !feed.poll => {
                return Ok(status(
                    request,
                    dialect,
                    StatusType::PollingUnsupported,
                    format!("{} is delivered by push only", feed.name),
                ));
            }
            Delivery::Poll { .. } => {}
        }
        let wanted: Vec<String> = asked
            .parameters
            .iter()
            .flat_map(|p| &p.content_bindings)
            .map(|b| b.id.clone())
            .collect();
        let served: Vec<String> = wanted
            .iter()
            .filter(|id| feed.content_bindings.contains(id))
            .cloned()
            .collect();
        if !wanted.is_empty() && served.is_empty() {
            return Ok(unsupported_content(request, dialect, feed));
        }
        let delivery = match delivery {
            Delivery::Push(mut push) => {
                push.address = push.address.trim().to_owned();
                Delivery::Push(push)
            }
            poll => poll,
        };
        let subscription = Subscription {
            id: uuid::Uuid::new_v4().to_string(),
            feed: feed.name.clone(),
            status: SubscriptionStatus::Active,
            delivery,
            content_bindings: served,
            created: Timestamp::now(),
            created_by: match identity {
                Identity::Named(name) => Some(name.clone()),
                Identity::Anonymous => None,
            },
        };
        self.store.create_subscription(subscription.clone()).await?;
        tracing::info!(subscription = %subscription.id, feed = %feed.name, ?identity, "subscribed");
        Ok(response(
            request,
            dialect,
            Body::SubscriptionManagementResponse(SubscriptionResponse {
                feed_name: feed.name.clone(),
                message: None,
                subscriptions: vec![self.subscription_record(feed, &subscription, dialect)],
            }),
        ))
    }

    /// The subscription `id` of `feed`, if `identity` may use it: one made
    /// anonymously is used by whoever holds its (unguessable) id; one made
    /// by a named identity only by that identity.
    pub(super) async fn subscription_for(
        &self,
        feed: &str,
        id: &str,
        identity: &Identity,
    ) -> Result<Option<Subscription>, StoreError> {
        let Some(subscription) = self.store.subscription(id.trim()).await? else {
            return Ok(None);
        };
        let owner_ok = match (&subscription.created_by, identity) {
            (None, _) => true,
            (Some(owner), Identity::Named(name)) => owner == name,
            (Some(_), Identity::Anonymous) => false,
        };
        Ok((subscription.feed == feed && owner_ok).then_some(subscription))
    }

    fn subscription_record(
        &self,
        feed: &FeedConfig,
        subscription: &Subscription,
        dialect: Dialect,
    ) -> SubscriptionRecord {
        let polled = matches!(subscription.delivery, Delivery::Poll { .. })
            && subscription.status != SubscriptionStatus::Unsubscribed;
        let poll_instances = if polled {
            self.config
                .services
                .iter()
                .filter(|s| s.kind == ServiceKind::Poll && s.feeds.contains(&feed.name))
                .map(|s| Endpoint {
                    protocol: Some(self.protocol()),
                    address: Some(self.address(&s.path)),
                    message_bindings: vec![match &subscription.delivery {
                        Delivery::Poll {
                            message_binding: Some(binding),
                        } => binding.clone(),
                        _ => MessageBinding::Xml(dialect),
                    }],
                })
                .collect()
        } else {
            Vec::new()
        };
        SubscriptionRecord {
            id: subscription.id.clone(),
            status: Some(subscription.status),
            parameters: Some(SubscriptionParameters {
                response_type: None,
                content_bindings: subscription
                    .content_bindings
                    .iter()
                    .map(ContentBinding::new)
                    .collect(),
                query: None,
            }),
            delivery: Some(subscription.delivery.clone()),
            poll_instances,
        }
    }
}

fn not_found(request: &Message, dialect: Dialect, text: String) -> Message {
    status(request, dialect, StatusType::NotFound, text)
}
