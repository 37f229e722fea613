-- Messages the router forwards to egress destinations (AMQP exchanges,
-- remote TAXII inboxes), written in the same transaction as what the
-- message stored. `payload` is the routed message as JSON of core types:
-- each egress writes its own wire form when it delivers.
CREATE TABLE egress_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    message_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    last_error TEXT NULL,
    -- What a row going to several receivers (a fan-out) has delivered so far.
    progress TEXT NULL,
    created_us INTEGER NOT NULL
);

-- Each destination drains its pending rows in order; a row waiting for a
-- retry holds back the later ones, found by the second index without
-- walking the rows that are due.
CREATE INDEX egress_outbox_pending ON egress_outbox (destination, state, id);
CREATE INDEX egress_outbox_waiting ON egress_outbox (destination, state, next_attempt_us);
CREATE INDEX egress_outbox_state ON egress_outbox (state, id);

-- Message ids already taken in, so that a message reaching this gateway
-- again (a redelivery, a second path through a mesh) is not stored twice.
CREATE TABLE seen_messages (
    key TEXT PRIMARY KEY,
    seen_us INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX seen_messages_age ON seen_messages (seen_us);

-- Where each poller stopped in each remote feed: the end label of the last
-- content committed, as the remote wrote it (full precision).
CREATE TABLE poll_cursors (
    poller TEXT NOT NULL,
    feed TEXT NOT NULL,
    end_label TEXT NOT NULL,
    result_id TEXT NULL,
    next_part INTEGER NULL,
    PRIMARY KEY (poller, feed)
) WITHOUT ROWID;
