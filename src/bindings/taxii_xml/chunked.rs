//! Writing a message whose content blocks arrive in chunks, such as a large
//! poll response read from the store while it is sent, without ever holding
//! all of its blocks.

use super::convert::{convert, convert_more_blocks};
use super::encode::{DRAFT_DEFAULT_BINDING, serialize_blocks, serialize_split};
use super::error::SerializeError;
use crate::core::*;

/// Writes one message in three steps: [`ChunkedWriter::begin`] with the
/// message and the blocks it already holds, [`ChunkedWriter::blocks`] for
/// each chunk that follows, [`ChunkedWriter::finish`] to close it. The
/// concatenated output is what [`super::serialize`] would write for the
/// message with all of its blocks, converted as [`convert`] would; in the
/// draft, which names one binding per message, only if `begin` had a block.
#[derive(Debug)]
pub struct ChunkedWriter {
    from: Dialect,
    to: Dialect,
    /// The draft writes one content binding for all of a message's blocks:
    /// the first block's.
    draft_binding: Option<String>,
    tail: String,
}

impl ChunkedWriter {
    /// Converts `message`, read or built in `from`, into `to`, and writes it
    /// up to the end of the content blocks it holds.
    pub fn begin(
        message: Message,
        from: Dialect,
        to: Dialect,
    ) -> Result<(ChunkedWriter, String), SerializeError> {
        let message = convert(message, from, to)?.message;
        let first = match &message.body {
            Body::PollResponse(response) => response.content_blocks.first(),
            Body::Inbox(inbox) => inbox.content_blocks.first(),
            _ => None,
        };
        // With no block yet, the draft has already named its default binding.
        let draft_binding = first
            .map(|block| block.binding.id.clone())
            .or_else(|| (to == Dialect::Draft).then(|| DRAFT_DEFAULT_BINDING.to_owned()));
        let (head, tail) = serialize_split(&message, to)?;
        let writer = ChunkedWriter {
            from,
            to,
            draft_binding,
            tail,
        };
        Ok((writer, head))
    }

    /// Writes blocks that follow those written so far.
    pub fn blocks(&mut self, blocks: Vec<ContentBlock>) -> String {
        let blocks = convert_more_blocks(blocks, self.from, self.to, self.draft_binding.clone());
        serialize_blocks(&blocks, self.to)
    }

    /// What closes the message.
    pub fn finish(self) -> String {
        self.tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::taxii_xml::{parse, serialize};

    fn block(n: usize, binding: &str) -> ContentBlock {
        ContentBlock {
            binding: ContentBinding::new(binding),
            content: XmlContent::Xml(format!(
                "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" id=\"example:p-{n}\"/>"
            )),
            timestamp_label: Some(Timestamp::from_unix(1_700_000_000 + n as i64, 0)),
            message: None,
            padding: None,
            signature: None,
        }
    }

    fn poll_response(blocks: Vec<ContentBlock>) -> Message {
        Message {
            id: "urn:uuid:7f6b3a50-2b1c-4f6e-9a51-0c4a3b2e1d00".to_owned(),
            in_response_to: Some("urn:uuid:7f6b3a50-2b1c-4f6e-9a51-0c4a3b2e1d01".to_owned()),
            extended_headers: Vec::new(),
            signature: None,
            body: Body::PollResponse(PollResponse {
                feed_name: Some("Public".to_owned()),
                more: Some(false),
                result_id: None,
                result_part_number: None,
                subscription_id: None,
                exclusive_begin: None,
                inclusive_end: Some(Timestamp::from_unix(1_800_000_000, 0)),
                record_count: Some(RecordCount {
                    count: 7,
                    partial: Some(false),
                }),
                message: None,
                content_blocks: blocks,
            }),
        }
    }

    /// Chunked output equals the one-piece output of the whole message, in
    /// every dialect, whichever way the blocks are split.
    #[test]
    fn chunks_concatenate_to_the_whole_message() {
        let stix = "urn:stix.mitre.org:xml:1.1.1";
        let all: Vec<ContentBlock> = (0..7).map(|n| block(n, stix)).collect();
        for to in [Dialect::Draft, Dialect::V10, Dialect::V11] {
            let whole = convert(poll_response(all.clone()), Dialect::V11, to).unwrap();
            let expected = serialize(&whole.message, to).unwrap();
            let heads: &[usize] = if to == Dialect::Draft {
                &[1, 3, 7]
            } else {
                &[0, 1, 3, 7]
            };
            for &first in heads {
                let (mut writer, mut written) =
                    ChunkedWriter::begin(poll_response(all[..first].to_vec()), Dialect::V11, to)
                        .unwrap();
                for chunk in all[first..].chunks(2) {
                    written.push_str(&writer.blocks(chunk.to_vec()));
                }
                written.push_str(&writer.finish());
                assert_eq!(written, expected, "{to}, {first} blocks in the head");
                parse(written.as_bytes()).unwrap();
            }
        }
    }

    /// The draft keeps one binding per message, across chunks too: the
    /// first block's, or with none in the head, the default it named.
    #[test]
    fn the_draft_keeps_the_first_blocks_binding_across_chunks() {
        let (mut writer, head) =
            ChunkedWriter::begin(poll_response(Vec::new()), Dialect::V11, Dialect::Draft).unwrap();
        let later = writer.blocks(vec![
            block(1, "urn:stix.mitre.org:xml:1.1.1"),
            block(2, "urn:stix.mitre.org:xml:1.0"),
        ]);
        assert!(!later.contains("example:p-1"), "{later}");
        assert!(later.contains("example:p-2"), "{later}");
        let whole = format!("{head}{later}{}", writer.finish());
        let read = parse(whole.as_bytes()).unwrap().message;
        match read.body {
            Body::PollResponse(response) => {
                assert_eq!(response.content_blocks.len(), 1);
                assert_eq!(
                    response.content_blocks[0].binding.id,
                    "urn:stix.mitre.org:xml:1.0"
                );
            }
            other => panic!("a poll response, not {other:?}"),
        }

        let (mut writer, _) = ChunkedWriter::begin(
            poll_response(vec![block(0, "urn:stix.mitre.org:xml:1.1.1")]),
            Dialect::V11,
            Dialect::Draft,
        )
        .unwrap();
        let later = writer.blocks(vec![
            block(1, "urn:stix.mitre.org:xml:1.1.1"),
            block(2, "urn:stix.mitre.org:xml:1.0"),
        ]);
        assert!(later.contains("example:p-1"), "{later}");
        assert!(!later.contains("example:p-2"), "{later}");
    }
}
