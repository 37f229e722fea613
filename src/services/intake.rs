//! Taking in content from any ingress: the router's plan for it, carried
//! out in one transaction (blocks, their pushes, the forwards, the dedup
//! key) before the ingress acknowledges.

use super::Services;
use crate::core::*;
use crate::router::Outgoing;
use crate::store::{
    Commit, Committed, Edit, EditConflict, NewBlock, NewEgress, PollCursor, Store, StoreError,
};

/// What an ingress hands over: an inbox message and the feeds it is for,
/// the ingress having checked the sender's right to send it.
#[derive(Clone, Debug)]
pub struct Intake {
    pub envelope: Envelope,
    pub feeds: Vec<String>,
    /// Set when the message may reach this gateway more than once (relayed,
    /// redelivered): taken in once while the key is remembered.
    pub dedup_key: Option<String>,
    /// Set when the message is new content for a block already stored (a
    /// ROLIE PUT): what the routes store in that block's feed replaces it.
    pub replacing: Option<Replacing>,
}

/// The block a message replaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacing {
    pub feed: String,
    pub id: i64,
    /// The label the block must still have; `None` replaces whatever is there.
    pub expected: Option<Timestamp>,
}

/// What became of an intake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Stored as these blocks (feed and id) and forwarded this many times.
    Stored {
        blocks: Vec<(String, i64)>,
        forwarded: usize,
    },
    /// Taken in before: nothing was done again.
    Duplicate,
    /// The routes keep nothing of it.
    Dropped,
    Refused(String),
    /// No feed it is stored in accepts this content binding.
    Unsupported(String),
    /// The block it replaces is gone or has changed: nothing was done.
    Conflict(EditConflict),
}

impl<S: Store + Clone> Services<S> {
    /// Routes a message and commits what the routes decide.
    pub async fn accept(&self, intake: Intake) -> Result<Accepted, StoreError> {
        self.accept_with(intake, None).await
    }

    /// [`Services::accept`], advancing a poller's cursor in the same commit.
    pub async fn accept_with(
        &self,
        intake: Intake,
        cursor: Option<PollCursor>,
    ) -> Result<Accepted, StoreError> {
        let mut plan = self.router.route(&intake.envelope, &intake.feeds);
        for line in &plan.trace {
            tracing::debug!(message_id = %intake.envelope.message.id, "{line}");
        }
        if let Some(reason) = plan.refused {
            return Ok(Accepted::Refused(reason));
        }
        let mut blocks = Vec::new();
        if let Some(Message {
            body: Body::Inbox(inbox),
            id,
            ..
        }) = plan.stored_message.take()
        {
            for block in inbox.content_blocks {
                let takers: Vec<&String> = plan
                    .store
                    .iter()
                    .filter(|name| {
                        self.config
                            .feed(name)
                            .is_some_and(|feed| feed.content_bindings.contains(&block.binding.id))
                    })
                    .collect();
                let Some((last, others)) = takers.split_last() else {
                    return Ok(Accepted::Unsupported(block.binding.id));
                };
                blocks.extend(others.iter().map(|feed| NewBlock {
                    feed: (*feed).clone(),
                    binding: block.binding.clone(),
                    content: block.content.clone(),
                    source_message_id: id.clone(),
                }));
                // The last feed takes the payload itself, uncopied.
                blocks.push(NewBlock {
                    feed: (*last).clone(),
                    binding: block.binding,
                    content: block.content,
                    source_message_id: id.clone(),
                });
            }
        }
        let mut edits = Vec::new();
        if let Some(replacing) = &intake.replacing {
            let Some(at) = blocks.iter().position(|block| block.feed == replacing.feed) else {
                return Ok(Accepted::Refused(format!(
                    "the routes do not keep this content in {}, so it replaces nothing there",
                    replacing.feed
                )));
            };
            edits.push(Edit::Replace {
                id: replacing.id,
                expected: replacing.expected,
                block: blocks.remove(at),
            });
        }
        let mut egress = Vec::with_capacity(plan.forward.len());
        for (destination, outgoing) in &plan.forward {
            egress.push(NewEgress {
                destination: destination.clone(),
                message_id: outgoing.message.id.clone(),
                payload: outgoing_payload(outgoing)?,
            });
        }
        if blocks.is_empty()
            && edits.is_empty()
            && egress.is_empty()
            && cursor.is_none()
            && intake.dedup_key.is_none()
        {
            return Ok(Accepted::Dropped);
        }
        let forwarded = egress.len();
        let committed = self
            .store
            .commit(Commit {
                blocks,
                egress,
                dedup_key: intake.dedup_key,
                cursor,
                edits,
            })
            .await?;
        let stored = match committed {
            Committed::Duplicate => {
                metrics::counter!("taxiway_duplicates_total").increment(1);
                return Ok(Accepted::Duplicate);
            }
            Committed::Conflict(conflict) => return Ok(Accepted::Conflict(conflict)),
            Committed::Stored(stored) => stored,
        };
        tracing::info!(message_id = %intake.envelope.message.id, blocks = stored.len(), forwarded,
            adapter = %intake.envelope.origin.adapter, "content committed");
        for block in &stored {
            metrics::counter!("taxiway_content_blocks_stored_total", "feed" => block.feed.clone())
                .increment(1);
        }
        for (destination, _) in &plan.forward {
            metrics::counter!("taxiway_forwards_queued_total", "egress" => destination.clone())
                .increment(1);
        }
        if stored.is_empty() && forwarded == 0 {
            return Ok(Accepted::Dropped);
        }
        Ok(Accepted::Stored {
            blocks: stored
                .iter()
                .map(|block| (block.feed.clone(), block.id))
                .collect(),
            forwarded,
        })
    }
}

impl<S: Store + Clone> Services<S> {
    /// Removes a block from its feed if its label is still `expected` (or
    /// whatever its label, when `None`); the conflict, if it cannot.
    pub async fn remove(
        &self,
        feed: &str,
        id: i64,
        expected: Option<Timestamp>,
    ) -> Result<Option<EditConflict>, StoreError> {
        let committed = self
            .store
            .commit(Commit {
                edits: vec![Edit::Remove {
                    feed: feed.to_owned(),
                    id,
                    expected,
                }],
                ..Commit::default()
            })
            .await?;
        match committed {
            Committed::Conflict(conflict) => Ok(Some(conflict)),
            Committed::Stored(_) | Committed::Duplicate => {
                tracing::info!(feed, block = id, "content block removed");
                metrics::counter!("taxiway_content_blocks_removed_total", "feed" => feed.to_owned())
                    .increment(1);
                Ok(None)
            }
        }
    }
}

fn outgoing_payload(outgoing: &Outgoing) -> Result<String, StoreError> {
    serde_json::to_string(outgoing)
        .map_err(|e| StoreError::Invalid(format!("cannot keep a forwarded message: {e}")))
}
