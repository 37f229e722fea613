-- Content blocks of hosted feeds. AUTOINCREMENT so that ids never go back,
-- even after the newest rows are deleted.
CREATE TABLE content_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    feed TEXT NOT NULL,
    -- Microseconds since the Unix epoch, UTC; strictly increasing per feed.
    label_us INTEGER NOT NULL,
    binding_id TEXT NOT NULL,
    subtype TEXT NULL,
    content_kind TEXT NOT NULL CHECK (content_kind IN ('text', 'xml')),
    content TEXT NOT NULL,
    source_message_id TEXT NOT NULL
);

-- Unique: a repeated label in a feed would be a bug in the writer.
CREATE UNIQUE INDEX content_blocks_feed_label ON content_blocks (feed, label_us);
