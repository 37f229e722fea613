-- Each block's content size, in an index with the feed, label and binding:
-- measuring a poll (which blocks fit in a response, how many parts a
-- result has) then reads this index alone instead of visiting every block
-- of the range, which made each further part of a large result cost more.
ALTER TABLE content_blocks ADD COLUMN content_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE content_blocks SET content_bytes = octet_length(content);
CREATE INDEX content_blocks_extent ON content_blocks (feed, label_us, binding_id, content_bytes);
