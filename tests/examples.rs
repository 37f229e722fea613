//! Every example message of ../shared/spec/examples parses, and written again
//! in its own dialect parses to an equal message; every invalid one is
//! rejected with the status type it deserves.

use std::path::{Path, PathBuf};

use taxiway::bindings::taxii_xml::{parse, serialize};
use taxiway::core::{Dialect, StatusType};

fn examples(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/spec/examples")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples in {}", dir.display());
    files
}

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
