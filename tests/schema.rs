//! Everything we write validates against the dialect's XML schema (xmllint):
//! every 1.0, 1.1 and seed example written again in its own dialect and
//! converted to 1.0 and 1.1. The draft schema is checked on the seed files it
//! accepts as printed (three seed figures are schema-invalid by themselves).

mod common;

use common::examples;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use taxiway::bindings::taxii_xml::{SerializeError, convert, parse, serialize};
use taxiway::core::{Body, Dialect, SubscriptionAction};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

fn schema(dialect: Dialect) -> PathBuf {
    let xsd = shared().join("spec/xsd");
    match dialect {
        Dialect::Draft => xsd.join("draft/TAXII_XMLSchema_1.0_Draft.xsd"),
        Dialect::V10 => xsd.join("TAXII_XMLMessageBinding_Schema.xsd"),
        Dialect::V11 => xsd.join("TAXII_XMLMessageBinding_Schema_11.xsd"),
    }
}

/// Validates `files` against `xsd` with one xmllint run; returns, for each
/// file, `Ok` or xmllint's complaints about it.
fn xmllint(xsd: &Path, files: &[PathBuf]) -> BTreeMap<PathBuf, Result<(), String>> {
    assert!(!files.is_empty());
    let output = Command::new("xmllint")
        .args(["--nonet", "--noout", "--schema"])
        .arg(xsd)
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run xmllint ({e}): run scripts/setup to install it (libxml2-utils)")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("failed to compile") && !stderr.contains("WXS schema"),
        "xmllint could not load {}:\n{stderr}",
        xsd.display()
    );
    files
        .iter()
        .map(|file| {
            let name = file.to_string_lossy();
            let lines: Vec<&str> = stderr
                .lines()
                .filter(|line| line.starts_with(name.as_ref()))
                .collect();
            let verdict = if lines.contains(&format!("{name} validates").as_str()) {
                Ok(())
            } else {
                assert!(
                    lines.iter().any(|l| l.ends_with("fails to validate")),
                    "xmllint gave no verdict on {name}:\n{stderr}"
                );
                Err(lines.join("\n"))
            };
            (file.clone(), verdict)
        })
        .collect()
}

fn assert_all_validate(dialect: Dialect, files: &[PathBuf]) {
    let failures: Vec<String> = xmllint(&schema(dialect), files)
        .into_iter()
        .filter_map(|(file, verdict)| {
            let errors = verdict.err()?;
            let xml = std::fs::read_to_string(&file).unwrap();
            Some(format!("{errors}\n--- {}:\n{xml}", file.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} TAXII {dialect} messages we wrote fail the schema:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

fn tag(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Draft => "draft",
        Dialect::V10 => "10",
        Dialect::V11 => "11",
    }
}

/// Writes every example of the three folders in `target`: in its own dialect
/// when it is `target`'s, converted otherwise. Returns the files written.
fn write_all(target: Dialect, dir: &Path) -> Vec<PathBuf> {
    let mut written = Vec::new();
    for (folder, dialect) in [
        ("taxii-1.0", Dialect::V10),
        ("taxii-1.1", Dialect::V11),
        ("seed", Dialect::Draft),
    ] {
        for path in examples(folder) {
            let bytes = std::fs::read(&path).unwrap();
            let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(parsed.dialect, dialect, "{}", path.display());
            let message = if dialect == target {
                parsed.message
            } else {
                let kind = parsed.message.kind();
                let pause_in_10 = target == Dialect::V10
                    && matches!(
                        &parsed.message.body,
                        Body::SubscriptionManagementRequest(r)
                            if matches!(r.action, SubscriptionAction::Pause | SubscriptionAction::Resume)
                    );
                match convert(parsed.message, dialect, target) {
                    Ok(conversion) => conversion.message,
                    Err(SerializeError::NoSuchMessage { .. }) if !kind.exists_in(target) => {
                        continue;
                    }
                    // 1.0 has no PAUSE or RESUME: refusing is the right answer.
                    Err(SerializeError::Inexpressible { .. }) if pause_in_10 => continue,
                    Err(e) => panic!("{} to {target}: {e}", path.display()),
                }
            };
            let xml = serialize(&message, target)
                .unwrap_or_else(|e| panic!("{} in {target}: {e}", path.display()));
            let stem = path.file_stem().unwrap().to_string_lossy();
            let out = dir.join(format!("{}-{stem}.xml", tag(dialect)));
            std::fs::write(&out, xml).unwrap();
            written.push(out);
        }
    }
    written
}

#[test]
fn what_we_write_in_taxii_10_validates() {
    let dir = common::temp_dir("schema-10");
    let files = write_all(Dialect::V10, &dir);
    // 12 own + 15 of 17 from 1.1 (no poll fulfillment, 1.0 has no PAUSE) + 9 seed.
    assert_eq!(files.len(), 12 + 15 + 9);
    assert_all_validate(Dialect::V10, &files);
}

#[test]
fn what_we_write_in_taxii_11_validates() {
    let dir = common::temp_dir("schema-11");
    let files = write_all(Dialect::V11, &dir);
    assert_eq!(files.len(), 12 + 17 + 9);
    assert_all_validate(Dialect::V11, &files);
}

#[test]
fn what_we_write_in_the_draft_validates_where_the_seed_does() {
    let seeds = examples("seed");
    let verdicts = xmllint(&schema(Dialect::Draft), &seeds);
    let valid: Vec<PathBuf> = verdicts
        .into_iter()
        .filter_map(|(path, verdict)| verdict.ok().map(|()| path))
        .collect();
    let names: Vec<String> = valid
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy()[..5].to_owned())
        .collect();
    // Pinned so that this test cannot pass by checking nothing.
    assert_eq!(
        names,
        ["fig05", "fig07", "fig10", "fig11", "fig12", "fig17"],
        "the seed files the draft schema accepts (see examples/seed/README.md)"
    );
    let dir = common::temp_dir("schema-draft");
    let files: Vec<PathBuf> = valid
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap();
            let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let xml = serialize(&parsed.message, Dialect::Draft).unwrap();
            let out = dir.join(path.file_name().unwrap());
            std::fs::write(&out, xml).unwrap();
            out
        })
        .collect();
    assert_all_validate(Dialect::Draft, &files);
}
