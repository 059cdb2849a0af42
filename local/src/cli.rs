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
    /// Put events back on the queue: one by id, or everything dead-lettered.
    Replay(ReplayArgs),
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
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first.
    List(ListArgs),
    /// Show one event: state, attempts, last error, handler results, payload.
    Show(ShowArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only this state (RECEIVED, QUEUED, PROCESSING, DONE, FAILED, IGNORED).
    #[arg(long)]
    pub status: Option<String>,
    /// Only this provider.
    #[arg(long)]
    pub provider: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    pub provider: String,
    pub id: String,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Provider of the event to replay.
    #[arg(required_unless_present = "dead_letter", conflicts_with = "dead_letter")]
    pub provider: Option<String>,
    /// Id of the event to replay.
    #[arg(required_unless_present = "dead_letter")]
    pub id: Option<String>,
    /// Replay everything in the dead-letter state.
    #[arg(long)]
    pub dead_letter: bool,
    /// With --dead-letter: at most this many.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    #[command(flatten)]
    pub store: StoreArgs,
}
