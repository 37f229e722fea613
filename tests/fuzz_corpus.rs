//! Replays every input of the fuzz corpus (the example messages it was seeded
//! with and every crash the fuzzer found) through the fuzz target's own check,
//! so that `cargo test` guards what the fuzzer once found without nightly Rust.

use std::path::Path;

#[path = "../fuzz/check.rs"]
mod check;

#[test]
fn the_fuzz_corpus_passes_the_fuzz_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= 41,
        "the corpus lost its seeds: {} files",
        files.len()
    );
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check::check(&bytes));
        assert!(outcome.is_ok(), "{} fails the fuzz check", path.display());
    }
}
