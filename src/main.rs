//! The `taxiway` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use taxiway::bindings::taxii_xml::{self, ParseError};
use taxiway::core::Dialect;

#[derive(Parser)]
#[command(
    name = "taxiway",
    version,
    about = "A protocol gateway for cyber-threat-intelligence sharing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks TAXII XML messages: prints each file's dialect and message type,
    /// or the status type it would be refused with and why.
    Validate {
        /// Print one JSON object per file instead of a line of text.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Prints a TAXII XML message in another dialect; what was remapped or
    /// lost goes to standard error.
    Convert {
        /// The dialect to write: draft, 1.0 or 1.1.
        #[arg(long)]
        to: Dialect,
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { json, files } => validate(&files, json),
        Command::Convert { to, file } => convert(&file, to),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("taxiway: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut all_valid = true;
    for file in files {
        let outcome = std::fs::read(file)
            .map_err(|e| ParseError::bad_message(format!("cannot read the file: {e}")))
            .and_then(|bytes| taxii_xml::parse(&bytes));
        all_valid &= outcome.is_ok();
        let name = file.display().to_string();
        match (&outcome, json) {
            (Ok(parsed), false) => {
                println!("{name}: {} {}", parsed.dialect, parsed.message.kind())
            }
            (Err(error), false) => {
                println!("{name}: invalid: {} {}", wire_status(error), error.reason)
            }
            (Ok(parsed), true) => println!(
                "{}",
                serde_json::json!({
                    "file": name,
                    "valid": true,
                    "dialect": parsed.dialect,
                    "message_type": parsed.message.kind().name(),
                    "message_id": parsed.message.id,
                })
            ),
            (Err(error), true) => println!(
                "{}",
                serde_json::json!({
                    "file": name,
                    "valid": false,
                    "dialect": error.dialect,
                    "status_type": wire_status(error),
                    "reason": error.reason,
                    "message_id": error.message_id,
                })
            ),
        }
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The status type as TAXII 1.1 spells it, the form operators know.
fn wire_status(error: &ParseError) -> String {
    taxii_xml::ids()
        .status_type_wire(Dialect::V11, &error.status)
        .map(str::to_owned)
        .unwrap_or_else(|| error.status.name().to_uppercase())
}

fn convert(file: &PathBuf, to: Dialect) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed = match taxii_xml::parse(&bytes) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!(
                "{}: invalid: {} {}",
                file.display(),
                wire_status(&error),
                error.reason
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let conversion = taxii_xml::convert(parsed.message, parsed.dialect, to)?;
    for note in &conversion.notes {
        eprintln!("{}: {note}", file.display());
    }
    print!("{}", taxii_xml::serialize(&conversion.message, to)?);
    Ok(ExitCode::SUCCESS)
}
