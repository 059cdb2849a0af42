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

/// Log lines waiting for the log thread, at most. The buffer is a ring
/// allocated, and touched, in full at start: the library's default of
/// 128,000 lines held 4 MiB of the server's memory from its first second
/// (a quarter of its peak under load). 8,192 lines are 0.4 s of one line
/// per delivery at 20,000 deliveries a second, while the log thread writes
/// them at a few per cent of a core.
const LOG_BUFFER_LINES: usize = 8_192;

/// Logs go to stderr, so command output on stdout stays clean for pipes.
/// Lines are written by a thread of their own, in batches, so a request
/// never waits on the terminal or a pipe; none is dropped (a full buffer
/// slows the logger down instead). Colours only on a terminal. Keep the
/// guard until exit: dropping it flushes what is buffered.
pub fn init_tracing(format: &LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = log_writer(std::io::BufWriter::new(std::io::stderr()));
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

/// Writes to `out` from the log thread, through a buffer of
/// [`LOG_BUFFER_LINES`]; a writer that finds it full waits.
fn log_writer<W: std::io::Write + Send + 'static>(
    out: W,
) -> (tracing_appender::non_blocking::NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .thread_name("webhooks-log")
        .finish(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A slow destination: every 256th write waits a millisecond, so a
    /// writer in a loop fills the buffer.
    #[derive(Clone, Default)]
    struct Slow {
        out: Arc<Mutex<Vec<u8>>>,
        writes: usize,
    }

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes += 1;
            if self.writes.is_multiple_of(256) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            self.out.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn no_line_is_lost_when_the_log_buffer_is_full() {
        let out = Slow::default();
        let (mut writer, guard) = log_writer(out.clone());
        let lines = 3 * LOG_BUFFER_LINES;
        for i in 0..lines {
            writeln!(writer, "line {i}").expect("write");
        }
        drop(guard); // flushes what is buffered
        let written = String::from_utf8(out.out.lock().expect("lock").clone()).expect("utf-8");
        let got: Vec<&str> = written.lines().collect();
        assert_eq!(got.len(), lines, "every line, none dropped");
        assert_eq!(got.first(), Some(&"line 0"));
        assert_eq!(
            got.last().copied(),
            Some(format!("line {}", lines - 1)).as_deref(),
            "in order"
        );
    }
}
