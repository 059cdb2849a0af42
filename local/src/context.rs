//! What every subcommand shares: logging, configuration, the database.

use crate::cli::{ConfigArgs, DurabilityArg, LogFormat, StoreArgs};
use anyhow::Context;
use std::io::IsTerminal;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use webhooks_core::config::AppConfig;
use webhooks_core::provider::{Provider, Providers};
use webhooks_core::secret::EnvResolver;
use webhooks_sqlite::{Durability, SqliteBackend};

/// Logs go to stderr, so command output on stdout stays clean for pipes.
/// Lines are written by a thread of their own, in batches, so a request
/// never waits on the terminal or a pipe; none is dropped (a full buffer
/// slows the logger down instead). Colours only on a terminal. Keep the
/// guard until exit: dropping it flushes what is buffered.
pub fn init_tracing(format: &LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("webhooks-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    guard
}

pub fn load_config(args: &ConfigArgs) -> anyhow::Result<AppConfig> {
    Ok(AppConfig::load(args.config.as_deref())?)
}

/// The embedded database named by `--db`, with its store, queue and admission.
pub fn open_db(args: &StoreArgs, durability: DurabilityArg) -> anyhow::Result<SqliteBackend> {
    let durability = match durability {
        DurabilityArg::Normal => Durability::Normal,
        DurabilityArg::Full => Durability::Full,
    };
    SqliteBackend::open(&args.db, durability).with_context(|| format!("opening database {}", args.db.display()))
}

/// One provider with its secrets from the environment, or an error that
/// says which variable to set.
pub fn provider(config: &AppConfig, name: &str) -> anyhow::Result<Provider> {
    let providers = config.enabled_providers();
    let Some(cfg) = providers.get(name) else {
        let known: Vec<&String> = providers.keys().collect();
        anyhow::bail!("unknown provider `{name}`; configured: {known:?}");
    };
    Ok(Provider::build(name, cfg, &EnvResolver)?)
}

/// Lists the providers in force and why others are not, for start-up output.
pub fn describe_providers(providers: &Providers) -> String {
    let mut out = format!("active providers: {}", providers.names().join(", "));
    for (name, why) in &providers.disabled {
        out.push_str(&format!("\n  disabled: {name} ({why})"));
    }
    out
}
