//! `webhooks dead-letters`: what failed for good and why, and removing it.
//! Dead letters are never purged by age; `discard` is the only way they go
//! besides a replay.

use crate::backend;
use crate::cli::{DeadLettersListArgs, DiscardArgs, FilterArgs};
use crate::commands::events::{cell, list_filter, summary};
use crate::context;
use std::process::ExitCode;
use webhooks_core::event::EventRecord;
use webhooks_core::pipeline::replay;
use webhooks_core::ports::queue::DeadLetter;
use webhooks_core::ports::store::ListFilter;
use webhooks_core::time::{iso8601, unix_now};

/// Most dead letters looked at when filters are given: the queue can only
/// be read whole and filtered here, and this bounds that read.
const FILTERED_SCAN_CAP: usize = 100_000;

pub async fn list(args: DeadLettersListArgs) -> anyhow::Result<ExitCode> {
    // `events list`'s parsing, so --since reads the same in both.
    let filter = list_filter(
        &FilterArgs {
            status: None,
            provider: args.provider.clone(),
            event_type: args.event_type.clone(),
            since: args.since.clone(),
        },
        args.limit,
    )?;
    let filtered = filter.provider.is_some() || filter.event_type.is_some() || filter.since.is_some();
    let config = context::load_config(&args.config)?;
    let backend = backend::open(&args.backend).await?;
    let scan = if filtered { FILTERED_SCAN_CAP } else { args.limit };
    let letters: Vec<DeadLetter> = backend
        .queue
        .dead_letters(scan)
        .await?
        .into_iter()
        .filter(|l| matches(&filter, l))
        .take(args.limit)
        .collect();
    // Each letter with its record (attempts, last update); a record that
    // has expired or been discarded meanwhile is shown without them. A
    // record still waiting for its message (SQS's redrive policy moved it
    // when a processor died at the receive limit) is marked FAILED first,
    // as the processor Lambda's `dead_letters` command does: one rule.
    let now = unix_now();
    let mut rows = Vec::with_capacity(letters.len());
    for letter in letters {
        replay::fail_waiting_record(
            backend.store.as_ref(),
            &letter,
            now,
            config.retry.processing_lease_secs,
            config.ingest.retention_secs(),
        )
        .await;
        let record = backend.store.get(&letter.event.key()).await?;
        rows.push((letter, record));
    }
    if args.json {
        for (letter, record) in &rows {
            println!("{}", letter_json(letter, record.as_ref()));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!(
            "dead-letter queue is empty{}",
            if filtered { " (for these filters)" } else { "" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<20} {:<40} {:<20} {:>3}  REASON",
        "RECEIVED (UTC)", "UPDATED (UTC)", "EVENT", "TYPE", "TRY"
    );
    for (letter, record) in &rows {
        println!(
            "{:<20} {:<20} {:<40} {:<20} {:>3}  {}",
            iso8601(letter.event.received_at),
            record
                .as_ref()
                .map_or_else(|| "-".to_string(), |r| iso8601(r.updated_at)),
            cell(&letter.event.key().to_string(), 40),
            cell(&letter.event.event_type, 20),
            record
                .as_ref()
                .map_or_else(|| "-".to_string(), |r| r.attempts.to_string()),
            cell(&letter.reason, 80)
        );
    }
    println!("{} dead letter(s)", rows.len());
    Ok(ExitCode::SUCCESS)
}

/// The filters `dead-letters list` takes (no state: every dead letter is
/// one), applied to the parked message's envelope.
fn matches(filter: &ListFilter, letter: &DeadLetter) -> bool {
    let e = &letter.event;
    filter.provider.as_deref().is_none_or(|p| e.provider == p)
        && filter.event_type.as_deref().is_none_or(|t| e.event_type == t)
        && filter.since.is_none_or(|t| e.received_at >= t)
}

/// `events list --json`'s shape for the letter's record, plus why it was
/// dead-lettered; without a record, what the envelope says and nulls.
fn letter_json(letter: &DeadLetter, record: Option<&EventRecord>) -> serde_json::Value {
    let mut line = match record {
        Some(r) => summary(r),
        None => {
            let e = &letter.event;
            serde_json::json!({
                "provider": e.provider,
                "id": e.id,
                "type": e.event_type,
                "state": serde_json::Value::Null,
                "attempts": serde_json::Value::Null,
                "last_error": serde_json::Value::Null,
                "received_at": e.received_at,
                "updated_at": serde_json::Value::Null,
                "received": iso8601(e.received_at),
            })
        }
    };
    line["reason"] = serde_json::Value::String(letter.reason.clone());
    line
}

pub async fn discard(args: DiscardArgs) -> anyhow::Result<ExitCode> {
    if !args.yes {
        eprintln!("discarding deletes the dead letters and their records for good; run again with --yes");
        return Ok(ExitCode::from(2));
    }
    let backend = backend::open(&args.backend).await?;
    let removed = replay::discard_dead_letters(backend.store.as_ref(), backend.queue.as_ref(), args.limit).await?;
    for key in &removed {
        println!("discarded {key}");
    }
    println!("{} dead letter(s) discarded", removed.len());
    Ok(ExitCode::SUCCESS)
}
