//! Every example message of ../shared/spec/examples parses, and written again
//! in its own dialect parses to an equal message; every invalid one is
//! rejected with the status type it deserves.

mod common;

use common::examples;

use taxiway::bindings::taxii_xml::{parse, serialize};
use taxiway::core::{Dialect, StatusType};

fn round_trips(folder: &str, dialect: Dialect) {
    for path in examples(folder) {
        let bytes = std::fs::read(&path).unwrap();
        let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(parsed.dialect, dialect, "{}", path.display());
        let written = serialize(&parsed.message, dialect).unwrap();
        let again = parse(written.as_bytes())
            .unwrap_or_else(|e| panic!("{} written again: {e}\n{written}", path.display()));
        assert_eq!(again.dialect, dialect);
        assert_eq!(
            again.message,
            parsed.message,
            "{}:\n{written}",
            path.display()
        );
    }
}

#[test]
fn seed_examples_round_trip_in_the_draft_dialect() {
    round_trips("seed", Dialect::Draft);
}

#[test]
fn taxii_10_examples_round_trip() {
    round_trips("taxii-1.0", Dialect::V10);
}

#[test]
fn taxii_11_examples_round_trip() {
    round_trips("taxii-1.1", Dialect::V11);
}

#[test]
fn invalid_examples_are_bad_messages() {
    for path in examples("invalid") {
        let bytes = std::fs::read(&path).unwrap();
        let error = parse(&bytes).expect_err(&path.display().to_string());
        assert_eq!(
            error.status,
            StatusType::BadMessage,
            "{}: {error}",
            path.display()
        );
        assert!(
            error.dialect.is_some(),
            "{}: the dialect was known",
            path.display()
        );
        assert!(
            error.message_id.is_some(),
            "{}: the message id was known",
            path.display()
        );
    }
}
