-- A feed's label moves on with every change, removals included: a removed
-- block takes a label of the sequence like an added one, kept here, so that
-- whatever is keyed by a feed's latest label (ROLIE ETags, cached pages)
-- changes when a block goes.
CREATE TABLE feed_changes (
    feed TEXT PRIMARY KEY,
    changed_us INTEGER NOT NULL
) WITHOUT ROWID;

-- Removing a block removes its pushes, found by block.
CREATE INDEX outbox_block ON outbox (block_id, subscription_id, state);
