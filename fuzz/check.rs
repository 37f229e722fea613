//! The property the `parse` fuzz target checks, shared word for word with
//! `tests/fuzz_corpus.rs`, which replays the corpus through it (both include
//! this file with `#[path]`).

use taxiway::bindings::taxii_xml::{convert, parse, serialize};
use taxiway::core::Dialect;

/// Parses arbitrary bytes. Anything may be refused; what is accepted must be
/// written again in its own dialect and read back as an equal message, and
/// must convert to every other dialect that has its kind of message and be
/// written and read back in it.
pub fn check(data: &[u8]) {
    let Ok(parsed) = parse(data) else {
        return;
    };
    let written = serialize(&parsed.message, parsed.dialect)
        .unwrap_or_else(|e| panic!("a {} message cannot be written back: {e}", parsed.dialect));
    let again = parse(written.as_bytes())
        .unwrap_or_else(|e| panic!("written again, it is refused: {e}\n{written}"));
    assert_eq!(again.dialect, parsed.dialect, "{written}");
    assert_eq!(again.message, parsed.message, "{written}");

    for to in Dialect::ALL {
        if to == parsed.dialect {
            continue;
        }
        // Refusing is allowed: some dialects lack the message or its intent.
        let Ok(conversion) = convert(parsed.message.clone(), parsed.dialect, to) else {
            continue;
        };
        let written = serialize(&conversion.message, to)
            .unwrap_or_else(|e| panic!("converted to {to}, it cannot be written: {e}"));
        let again = parse(written.as_bytes()).unwrap_or_else(|e| {
            panic!("converted to {to} and written, it is refused: {e}\n{written}")
        });
        assert_eq!(again.dialect, to, "{written}");
    }
}
