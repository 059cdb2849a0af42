//! `webhooks events list` and `webhooks events show`.

use crate::backend;
use crate::cli::{ExportArgs, FilterArgs, ListArgs, ShowArgs};
use crate::progress::{Interrupt, Progress};
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;
use webhooks_core::event::{AttemptEntry, EventKey, EventRecord, EventState, HISTORY_LIMIT};
use webhooks_core::ports::store::ListFilter;
use webhooks_core::time::{iso8601, parse_time};

pub(crate) fn summary(r: &EventRecord) -> serde_json::Value {
    serde_json::json!({
        "provider": r.provider,
        "id": r.event_id,
        "type": r.event_type,
        "state": r.state,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "received_at": r.received_at,
        "updated_at": r.updated_at,
        "received": iso8601(r.received_at),
        "updated": iso8601(r.updated_at),
    })
}

/// The store's filter from the command line, or an error that says what a
/// bad `--status` or `--since` should look like.
pub(crate) fn list_filter(args: &FilterArgs, limit: usize) -> anyhow::Result<ListFilter> {
    let state = args
        .status
        .as_deref()
        .map(|s| {
            EventState::parse(s).ok_or_else(|| {
                let all: Vec<&str> = EventState::ALL.iter().map(|s| s.as_str()).collect();
                anyhow::anyhow!("unknown status `{s}`; use one of {}", all.join(", "))
            })
        })
        .transpose()?;
    let since = args
        .since
        .as_deref()
        .map(|text| {
            parse_time(text).ok_or_else(|| {
                anyhow::anyhow!("--since `{text}` is not a time: use Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")
            })
        })
        .transpose()?;
    Ok(ListFilter {
        state,
        provider: args.provider.clone(),
        event_type: args.event_type.clone(),
        since,
        limit,
    })
}

/// Writes the records as JSON lines, counting them on stderr as they are
/// written. The store's `list` answers with every record at once (the
/// DynamoDB adapter pages internally), so there is no progress to show
/// while reading; the progress is of the writing, which is where a large
/// export with payloads spends its time, and where Ctrl-C stops it.
pub async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let filter = list_filter(&args.filter, args.limit)?;
    let backend = backend::open(&args.backend).await?;
    let records: Vec<EventRecord> = backend.store.list(&filter).await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let progress = Progress::new("events", records.len() as u64);
    let interrupt = Interrupt::listen();
    let mut written = 0usize;
    for r in &records {
        if interrupt.requested() {
            break;
        }
        let mut line = summary(r);
        if args.payloads {
            line["payload"] = match &r.payload {
                Some(p) => p
                    .json()
                    .unwrap_or_else(|_| serde_json::Value::String(p.as_str().to_string())),
                None => serde_json::Value::Null,
            };
        }
        writeln!(out, "{line}")?;
        written += 1;
        progress.inc();
    }
    out.flush()?;
    progress.finish();
    let stopped = written < records.len();
    eprintln!(
        "exported {written} event(s){}",
        if stopped { "; stopped by Ctrl-C" } else { "" }
    );
    Ok(if stopped { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Cuts a cell to `width` characters for the table.
pub(crate) fn cell(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let filter = list_filter(&args.filter, args.limit)?;
    let backend = backend::open(&args.backend).await?;
    let records = backend.store.list(&filter).await?;
    if args.json {
        for r in &records {
            println!("{}", summary(r));
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<12} {:<28} {:<20} {:<10} {:>3}  LAST ERROR",
        "RECEIVED (UTC)", "PROVIDER", "ID", "TYPE", "STATE", "TRY"
    );
    for r in &records {
        println!(
            "{:<20} {:<12} {:<28} {:<20} {:<10} {:>3}  {}",
            iso8601(r.received_at),
            cell(&r.provider, 12),
            cell(&r.event_id, 28),
            cell(&r.event_type, 20),
            r.state.as_str(),
            r.attempts,
            cell(r.last_error.as_deref().unwrap_or(""), 60)
        );
    }
    println!("{} event(s)", records.len());
    Ok(ExitCode::SUCCESS)
}

/// The attempt history, newest first, one line per handler run (or per
/// attempt that ran none).
fn print_history(history: &[AttemptEntry]) {
    if history.is_empty() {
        println!("history    -");
        return;
    }
    println!("history    newest first (the newest {HISTORY_LIMIT} entries are kept)");
    println!(
        "  {:<20} {:>3} {:<20} {:<10} {:>9}  ERROR",
        "TIME (UTC)", "TRY", "HANDLER", "OUTCOME", "MS"
    );
    for e in history.iter().rev() {
        println!(
            "  {:<20} {:>3} {:<20} {:<10} {:>9}  {}",
            iso8601(e.at),
            e.attempt,
            cell(e.handler.as_deref().unwrap_or("(none ran)"), 20),
            e.outcome.as_str(),
            e.duration_ms,
            e.error.as_deref().unwrap_or("")
        );
    }
}

pub async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let backend = backend::open(&args.backend).await?;
    let Some(r) = backend.store.get(&EventKey::new(&args.provider, &args.id)).await? else {
        eprintln!("no event {}#{}", args.provider, args.id);
        return Ok(ExitCode::from(1));
    };
    // A payload that is not JSON (its event failed for that) is shown as text.
    let payload = match &r.payload {
        None => serde_json::Value::Null,
        Some(p) => p
            .json()
            .unwrap_or_else(|_| serde_json::Value::String(p.as_str().to_string())),
    };
    let mut full = summary(&r);
    full["results"] = serde_json::Value::Object(r.results.clone());
    full["payload"] = payload;
    full["payload_omitted"] = serde_json::Value::Bool(r.payload_omitted);
    full["expires_at"] = serde_json::json!(r.expires_at);
    full["next_attempt_at"] = serde_json::json!(r.next_attempt_at);
    full["history"] = serde_json::to_value(&r.history)?;
    if args.json {
        println!("{full}");
    } else {
        println!("event      {}#{}", r.provider, r.event_id);
        println!("type       {}", r.event_type);
        println!("state      {}", r.state);
        println!("attempts   {}", r.attempts);
        println!("last error {}", r.last_error.as_deref().unwrap_or("-"));
        println!("received   {}", iso8601(r.received_at));
        println!("updated    {}", iso8601(r.updated_at));
        println!("expires    {}", iso8601(r.expires_at));
        if let Some(t) = r.next_attempt_at {
            println!("next try   {}", iso8601(t));
        }
        print_history(&r.history);
        println!("results    {}", serde_json::to_string_pretty(&r.results)?);
        println!("payload    {}", serde_json::to_string_pretty(&full["payload"])?);
    }
    Ok(ExitCode::SUCCESS)
}
