//! Command-line definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Receive signed webhooks, claim each event once, queue it and run its
/// handlers with retries, backoff and a dead-letter state: all in one
/// process on an embedded SQLite database.
#[derive(Debug, Parser)]
#[command(name = "webhooks", version, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, env = "WEBHOOKS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the webhook endpoints and process events (the default command).
    Serve(ServeArgs),
    /// Print the headers (or query) that make a valid delivery of a body.
    Sign(SignArgs),
    /// Sign a body and post it to a running receiver.
    Send(SendArgs),
    /// Inspect received events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Put events back on the queue: one by id, everything dead-lettered, or
    /// every event some filters match.
    Replay(ReplayArgs),
    /// List the dead letters, or discard them for good.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
    /// List the provider presets with their scheme, or show one expanded.
    Presets(PresetsArgs),
    /// Serve the console (the events page) on its own, on the local database
    /// or a deployed stack (`--stack NAME`).
    Console(ConsoleArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PresetsArgs {
    #[command(subcommand)]
    pub command: Option<PresetsCommand>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum PresetsCommand {
    /// Print a preset's provider table, as `preset = NAME` expands to.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List dead-lettered events with why they failed.
    List(DeadLettersListArgs),
    /// Delete dead letters and their records for good (they are never purged
    /// by age); says how many it removed.
    Discard(DiscardArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DeadLettersListArgs {
    /// Only this provider.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only this event type (exact, e.g. invoice.created).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only events received at or after this time: Unix seconds, YYYY-MM-DD
    /// or YYYY-MM-DDTHH:MM:SSZ (UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many (after the filters).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// JSON lines (the shape of `events list --json`, plus `reason`)
    /// instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The configuration whose `retry.processing_lease_secs` and
    /// `ingest.retention_days` apply when a listed dead letter's record,
    /// left waiting by the queue's redrive policy, is marked FAILED.
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DiscardArgs {
    /// At most this many.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Required: the dead letters are gone for good.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// Which backend the operating commands read and change: the local SQLite
/// file, or a deployed stack's table and queues.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// `sqlite` (the file named by --db) or `aws` (a deployed stack). When
    /// unset: `aws` if --stack or --table is given, else `sqlite`.
    #[arg(long, env = "WEBHOOKS_BACKEND", value_enum)]
    pub backend: Option<BackendKind>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// AWS: the CloudFormation stack whose outputs name the table and the
    /// queues (EventsTableName, QueueUrl, DeadLetterQueueUrl).
    #[arg(long, env = "WEBHOOKS_STACK")]
    pub stack: Option<String>,
    /// AWS: the DynamoDB table of event records (overrides the stack's).
    #[arg(long)]
    pub table: Option<String>,
    /// AWS: the main SQS queue's URL (overrides the stack's).
    #[arg(long)]
    pub queue_url: Option<String>,
    /// AWS: the dead-letter queue's URL (overrides the stack's).
    #[arg(long)]
    pub dlq_url: Option<String>,
    /// AWS: send every AWS call here (an emulator) instead of the region's
    /// endpoints.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    Sqlite,
    Aws,
}

impl BackendArgs {
    /// The backend asked for, or the one the other flags imply.
    pub fn kind(&self) -> BackendKind {
        self.backend.unwrap_or(if self.stack.is_some() || self.table.is_some() {
            BackendKind::Aws
        } else {
            BackendKind::Sqlite
        })
    }
}

/// Where the database and configuration are.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// SQLite database file (created if missing).
    #[arg(long, env = "WEBHOOKS_DB", default_value = "./webhooks.db")]
    pub db: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// TOML file merged over the built-in configuration.
    #[arg(long, env = "WEBHOOKS_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum DurabilityArg {
    /// Survives a crash of the process (SQLite WAL, synchronous=NORMAL).
    #[default]
    Normal,
    /// Also survives power loss (synchronous=FULL: an fsync per commit).
    Full,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WEBHOOKS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Directory for artifacts handlers store (invoice PDFs).
    #[arg(long, env = "WEBHOOKS_ARTIFACTS_DIR", default_value = "./artifacts")]
    pub artifacts_dir: PathBuf,
    /// SQLite durability.
    #[arg(long, env = "WEBHOOKS_DURABILITY", value_enum, default_value = "normal")]
    pub durability: DurabilityArg,
    /// Messages processed at once by the worker.
    #[arg(long, env = "WEBHOOKS_WORKER_BATCH", default_value_t = 10)]
    pub worker_batch: usize,
    /// Accept and queue only; run no handlers (another `serve` or a later
    /// run processes the queue).
    #[arg(long)]
    pub no_process: bool,
    /// Serve no console at /console. (On an address other than loopback the
    /// console needs WEBHOOKS_CONSOLE_TOKEN, or stays off.)
    #[arg(long)]
    pub no_console: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Address to serve the console on.
    #[arg(long, env = "WEBHOOKS_CONSOLE_ADDR", default_value = "127.0.0.1:3001")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `serve`'s arguments parsed alone, so a bare `webhooks` honours the same
/// environment variables and defaults as `webhooks serve`.
#[derive(Debug, Parser)]
#[command(name = "webhooks")]
pub struct ServeOnly {
    #[command(flatten)]
    pub args: ServeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SignArgs {
    /// Provider name, as in the configuration.
    pub provider: String,
    /// Body file (default: standard input).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Delivery id, for schemes that sign one (default: random).
    #[arg(long)]
    pub id: Option<String>,
    /// Public URL the delivery goes to, for schemes that sign the URL.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub base_url: String,
    /// Print a ready curl command instead of header lines.
    #[arg(long)]
    pub curl: bool,
    /// Content type of the body in the curl command (default: what the
    /// provider reads: a form for form providers, else JSON).
    #[arg(long)]
    pub content_type: Option<String>,
    /// The sender's private key, for a public-key provider (Discord,
    /// SendGrid, rsa_sha256): `env:NAME` or `file:PATH` (PEM, or hex or
    /// base64), never the key itself.
    #[arg(long, value_name = "REF")]
    pub private_key: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Provider name, as in the configuration.
    pub provider: String,
    /// Receiver URL (default: http://127.0.0.1:3000/webhooks/PROVIDER).
    #[arg(long)]
    pub url: Option<String>,
    /// Body file (default: standard input).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// Delivery id, for schemes that sign one (default: random).
    #[arg(long)]
    pub id: Option<String>,
    /// Content type of the body (default: what the provider reads: a form
    /// for form providers or a non-JSON body to an `auto` one, else JSON).
    #[arg(long)]
    pub content_type: Option<String>,
    /// The sender's private key, for a public-key provider (Discord,
    /// SendGrid, rsa_sha256): `env:NAME` or `file:PATH` (PEM, or hex or
    /// base64), never the key itself.
    #[arg(long, value_name = "REF")]
    pub private_key: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List(ListArgs),
    /// Show one event: state, attempts, last error, handler results, payload.
    Show(ShowArgs),
    /// Write events as JSON lines (newest first), with progress on stderr.
    Export(ExportArgs),
}

/// The filters `events list` and `events export` share.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only this state (RECEIVED, QUEUED, PROCESSING, DONE, FAILED, IGNORED).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this provider.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only this event type (exact, e.g. invoice.created).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only events received at or after this time: Unix seconds, YYYY-MM-DD
    /// or YYYY-MM-DDTHH:MM:SSZ (UTC).
    #[arg(long)]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// With their payloads.
    #[arg(long)]
    pub payloads: bool,
    /// Write here instead of stdout.
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
    /// At most this many.
    #[arg(long, default_value_t = 1_000_000)]
    pub limit: usize,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    pub provider: String,
    pub id: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Provider of the one event to replay.
    #[arg(
        id = "event_provider",
        value_name = "PROVIDER",
        requires = "id",
        conflicts_with_all = ["dead_letter", "status", "provider", "event_type", "since"]
    )]
    pub event_provider: Option<String>,
    /// Id of the one event to replay.
    #[arg(requires = "event_provider")]
    pub id: Option<String>,
    /// Replay everything in the dead-letter queue.
    #[arg(long, conflicts_with_all = ["status", "provider", "event_type", "since"])]
    pub dead_letter: bool,
    /// Replay every event these filters match (the filters of `events
    /// list`), each under the rules of a single replay.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// With filters: replay them. Without it the command only says how many
    /// would be replayed, and changes nothing.
    #[arg(long)]
    pub yes: bool,
    /// With --dead-letter or filters: at most this many.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    #[command(flatten)]
    pub backend: BackendArgs,
}

impl FilterArgs {
    /// Whether any filter is given (a filtered replay needs at least one,
    /// so a bare `replay` never means "everything").
    pub fn any(&self) -> bool {
        self.status.is_some() || self.provider.is_some() || self.event_type.is_some() || self.since.is_some()
    }
}
