-- Subscriptions to hosted feeds. Ids are random UUIDs: knowing one is what
-- lets an anonymous subscriber manage it.
CREATE TABLE subscriptions (
    id TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ACTIVE', 'PAUSED', 'UNSUBSCRIBED')),
    delivery TEXT NOT NULL CHECK (delivery IN ('push', 'poll')),
    -- Push only: the send-to address, protocol ('http', 'https' or a URI) and
    -- message binding ('draft', '1.0', '1.1' or a URI).
    push_address TEXT NULL,
    push_protocol TEXT NULL,
    message_binding TEXT NULL,
    -- A JSON array of content binding ids; empty means any.
    content_bindings TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    -- The identity that subscribed; NULL for anonymous.
    created_by TEXT NULL,
    CHECK (delivery = 'poll' OR (push_address IS NOT NULL AND push_protocol IS NOT NULL))
);

CREATE INDEX subscriptions_feed ON subscriptions (feed, status);

-- One row per content block to push to one subscription, written in the same
-- transaction as the block.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id TEXT NOT NULL REFERENCES subscriptions (id),
    block_id INTEGER NOT NULL REFERENCES content_blocks (id),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    last_error TEXT NULL
);

-- Claiming walks pending rows in order; a subscription's head row gates the rest.
CREATE INDEX outbox_pending ON outbox (state, id);
CREATE INDEX outbox_subscription ON outbox (subscription_id, state, id);
