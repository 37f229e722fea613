//! The `taxiway` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use taxiway::bindings::taxii_xml::{self, ParseError};
use taxiway::config::Config;
use taxiway::core::{Body, Dialect, Envelope, Identity, Origin, Relay, Timestamp, WireBinding};
use taxiway::gateway::Gateway;
use taxiway::router::Router;

/// glibc serves an allocation from its heap once one as large has been
/// freed (its mmap threshold rises to the largest freed), and keeps what is
/// freed there. Each argon2 verification takes 19 MiB: from the second on
/// (a wrong password, a cached check renewed after five minutes) those
/// stayed resident for good. With the thresholds fixed, an allocation over
/// 4 MiB gets a mapping of its own, returned when freed, while a poll's
/// chunks (a few MiB) are still reused from the heap rather than mapped
/// and faulted in again for every chunk.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_allocations() {
    // SAFETY: mallopt only sets the allocator's parameters, here before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_allocations() {}

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
enum RoutesAction {
    /// Shows which routes a message would take and why, and what would be
    /// stored and forwarded; nothing is stored or sent.
    Test {
        #[arg(long)]
        config: PathBuf,
        /// The ingress it arrives on: taxii_http, or an AMQP consumer's or
        /// a poller's name.
        #[arg(long, default_value = "taxii_http")]
        adapter: String,
        /// The identity that sends it (anonymous when not given).
        #[arg(long)]
        identity: Option<String>,
        /// The feeds it is for, when the message names none.
        #[arg(long = "feed")]
        feeds: Vec<String>,
        /// A TAXII XML message (any dialect).
        message: PathBuf,
    },
}

#[derive(Subcommand)]
enum OutboxAction {
    /// Lists pushes to subscribers and forwards to egress destinations not
    /// yet delivered (pending and dead), oldest first.
    List {
        /// Only the dead ones: those that failed too often and wait for a replay.
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value = "./taxiway-data")]
        data_dir: PathBuf,
    },
    /// Makes dead rows pending again: the given ids (`12` a push, `e12` a
    /// forward, as `list` shows them), or all dead ones.
    Replay {
        #[arg(long, default_value = "./taxiway-data")]
        data_dir: PathBuf,
        ids: Vec<OutboxId>,
    },
}

/// A row of one of the two outboxes.
#[derive(Clone, Copy, Debug)]
enum OutboxId {
    Push(i64),
    Forward(i64),
}

impl std::str::FromStr for OutboxId {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not an outbox id (12 for a push, e12 for a forward)");
        match text.strip_prefix('e') {
            Some(forward) => forward.parse().map(OutboxId::Forward).map_err(|_| bad()),
            None => text.parse().map(OutboxId::Push).map_err(|_| bad()),
        }
    }
}

/// Settings of the configuration that the command line overrides.
#[derive(clap::Args)]
struct ServeOverrides {
    /// Overrides the configuration's listen address.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Overrides the configuration's data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides the base URL that service addresses are given at (behind a
    /// proxy or in a container, the listen address is not it).
    #[arg(long)]
    public_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gateway. With no configuration it serves the seed's Source
    /// (discovery at /, feeds at /feeds/public and /feeds/pay, an inbox at
    /// /inbox) on 127.0.0.1:9000, with its data in ./taxiway-data.
    Serve {
        /// The configuration file (see taxiway.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: ServeOverrides,
    },
    /// Shows or replays the push outbox of a data directory.
    Outbox {
        #[command(subcommand)]
        action: OutboxAction,
    },
    /// Checks TAXII XML messages: prints each file's dialect and message type,
    /// or the status type it would be refused with and why.
    Validate {
        /// Print one JSON object per file instead of a line of text.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Reads a password from the first line of standard input and prints its
    /// argon2id hash, for an identity's password_hash.
    HashPassword,
    /// Works with the routes of a configuration.
    Routes {
        #[command(subcommand)]
        action: RoutesAction,
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
    return_large_allocations();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, overrides } => serve(config, overrides),
        Command::Validate { json, files } => validate(&files, json),
        Command::Convert { to, file } => convert(&file, to),
        Command::HashPassword => hash_password(),
        Command::Outbox { action } => outbox(action),
        Command::Routes {
            action:
                RoutesAction::Test {
                    config,
                    adapter,
                    identity,
                    feeds,
                    message,
                },
        } => routes_test(&config, adapter, identity, feeds, &message),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("taxiway: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Option<PathBuf>, overrides: ServeOverrides) -> anyhow::Result<ExitCode> {
    // Events are written by a thread of their own, in batches (see
    // taxiway::log_writer), never lossy: they are the audit trail of what
    // came in. What is pending is written when `_flushed` goes at the end.
    let (log, _flushed) = taxiway::log_writer::batched(std::io::stdout(), "log-writer")
        .context("cannot start the log writer")?;
    tracing_subscriber::fmt()
        .with_writer(log)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        // Colours for a person at a terminal only, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let mut config = match &config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Config::from_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => {
            // The fixed demo password of config/default.toml: it guards a
            // local demo only.
            println!("demo account: demo / {DEMO_PASSWORD}");
            Config::default_scenario()
        }
    };
    if let Some(listen) = overrides.listen {
        config.server.listen = listen;
    }
    if let Some(data_dir) = overrides.data_dir {
        config.server.data_dir = data_dir;
    }
    if let Some(public_url) = overrides.public_url {
        config.server.public_url = Some(public_url);
    }
    config.check().context("with the command line's settings")?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let gateway = Gateway::start(config).await?;
        let scheme = match gateway.config.server.tls {
            Some(_) => "https",
            None => "http",
        };
        println!("taxiway is serving on {scheme}://{}", gateway.local_addr);
        for service in &gateway.config.services {
            println!(
                "  {:<16} {scheme}://{}{}",
                format!("{:?}", service.kind),
                gateway.local_addr,
                service.path
            );
        }
        println!(
            "data in {}; Ctrl-C or SIGTERM stops",
            gateway.config.server.data_dir.display()
        );
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot watch for SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot wait for Ctrl-C")?,
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping: finishing requests in flight");
        gateway.stop().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The password of config/default.toml's demo account.
const DEMO_PASSWORD: &str = "taxiway-demo";

fn hash_password() -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let hash = taxiway::auth::hash_password(password)
        .map_err(|error| anyhow::anyhow!("cannot hash the password: {error}"))?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}

/// Most outbox rows `outbox list` prints.
const OUTBOX_LIST_LIMIT: usize = 10_000;

fn outbox(action: OutboxAction) -> anyhow::Result<ExitCode> {
    use taxiway::store::{SqliteStore, Store};
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let data_dir = match &action {
            OutboxAction::List { data_dir, .. } | OutboxAction::Replay { data_dir, .. } => data_dir,
        };
        // Refuse to create an empty store where the operator meant an existing one.
        anyhow::ensure!(
            data_dir.is_dir(),
            "{} is not a data directory",
            data_dir.display()
        );
        let store = SqliteStore::open(data_dir).await?;
        match &action {
            OutboxAction::List { dead, .. } => {
                let rows = store.outbox(*dead, OUTBOX_LIST_LIMIT).await?;
                println!("id\tstate\tattempts\tnext_attempt\tsubscription\tblock\tlast_error");
                for row in &rows {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        row.id,
                        row.state.name(),
                        row.attempts,
                        row.next_attempt,
                        row.subscription_id,
                        row.block_id,
                        row.last_error.as_deref().unwrap_or("-")
                    );
                }
                let forwards = store.egress_outbox(*dead, OUTBOX_LIST_LIMIT).await?;
                println!();
                println!("id\tstate\tattempts\tdestination\tmessage\tlast_error");
                for row in &forwards {
                    println!(
                        "e{}\t{}\t{}\t{}\t{}\t{}",
                        row.id,
                        row.state.name(),
                        row.attempts,
                        row.destination,
                        row.message_id,
                        row.last_error.as_deref().unwrap_or("-")
                    );
                }
            }
            OutboxAction::Replay { ids, .. } => {
                let pushes: Vec<i64> = ids
                    .iter()
                    .filter_map(|id| match id {
                        OutboxId::Push(id) => Some(*id),
                        OutboxId::Forward(_) => None,
                    })
                    .collect();
                let forwards: Vec<i64> = ids
                    .iter()
                    .filter_map(|id| match id {
                        OutboxId::Forward(id) => Some(*id),
                        OutboxId::Push(_) => None,
                    })
                    .collect();
                // With ids of one kind only, the other kind is left alone.
                let replayed_pushes = match (ids.is_empty(), pushes.is_empty()) {
                    (false, true) => 0,
                    _ => store.replay(&pushes).await?,
                };
                let replayed_forwards = match (ids.is_empty(), forwards.is_empty()) {
                    (false, true) => 0,
                    _ => store.egress_replay(&forwards).await?,
                };
                println!(
                    "{replayed_pushes} dead push(es) and {replayed_forwards} dead forward(s) made pending again"
                );
            }
        }
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
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

fn routes_test(
    config: &PathBuf,
    adapter: String,
    identity: Option<String>,
    feeds: Vec<String>,
    file: &PathBuf,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let config = Config::from_toml(&text).with_context(|| format!("in {}", config.display()))?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed = match taxii_xml::parse(&bytes) {
        Ok(parsed) => parsed,
        Err(error) => {
            println!(
                "{}: invalid: {} {}",
                file.display(),
                wire_status(&error),
                error.reason
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut message = parsed.message;
    let relay = Relay::take_from(&mut message);
    let feeds = match (&message.body, feeds.is_empty()) {
        (Body::Inbox(inbox), true) => inbox.destination_feeds.clone(),
        _ => feeds,
    };
    let gateway_id = config
        .gateway
        .id
        .clone()
        .unwrap_or_else(|| "(this gateway)".to_owned());
    let envelope = Envelope {
        message,
        origin: Origin {
            adapter,
            identity: identity.map_or(Identity::Anonymous, Identity::Named),
            binding: WireBinding::TaxiiXml(parsed.dialect),
        },
        received: Timestamp::now(),
        relay,
    };
    let router = Router::new(std::sync::Arc::new(config), gateway_id);
    let plan = router.route(&envelope, &feeds);
    println!(
        "{} {} {} for {feeds:?}",
        file.display(),
        parsed.dialect,
        envelope.message.kind()
    );
    for line in &plan.trace {
        println!("  {line}");
    }
    match &plan.refused {
        Some(reason) => println!("=> refused: {reason}"),
        None if plan.is_dropped() => println!("=> dropped: nothing is stored or sent"),
        None => {
            if !plan.store.is_empty() {
                println!("=> store in {}", plan.store.join(", "));
            }
            for (egress, outgoing) in &plan.forward {
                println!("=> forward to {egress} for {:?}", outgoing.feeds);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
