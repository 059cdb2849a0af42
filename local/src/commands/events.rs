//! `webhooks events list` and `webhooks events show`.

use crate::cli::{DurabilityArg, ListArgs, ShowArgs};
use crate::context;
use std::process::ExitCode;
use webhooks_shared::event::{EventKey, EventRecord, EventState};
use webhooks_shared::store::{EventStore, ListFilter};

fn summary(r: &EventRecord) -> serde_json::Value {
    serde_json::json!({
        "provider": r.provider,
        "id": r.event_id,
        "type": r.event_type,
        "state": r.state,
        "attempts": r.attempts,
        "last_error": r.last_error,
        "received_at": r.received_at,
        "updated_at": r.updated_at,
    })
}

/// Cuts a cell to `width` characters for the table.
fn cell(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let cut: String = s.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let state = match &args.status {
        None => None,
        Some(s) => Some(EventState::parse(s).ok_or_else(|| {
            let all: Vec<&str> = EventState::ALL.iter().map(|s| s.as_str()).collect();
            anyhow::anyhow!("unknown status `{s}`; use one of {}", all.join(", "))
        })?),
    };
    let db = context::open_db(&args.store, DurabilityArg::Normal)?;
    let (store, _) = context::embedded_ports(&db);
    let records = store
        .list(&ListFilter {
            state,
            provider: args.provider.clone(),
            limit: args.limit,
        })
        .await?;
    if args.json {
        for r in &records {
            println!("{}", summary(r));
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<12} {:<28} {:<20} {:<10} {:>3}  LAST ERROR",
        "RECEIVED (UTC s)", "PROVIDER", "ID", "TYPE", "STATE", "TRY"
    );
    for r in &records {
        println!(
            "{:<20} {:<12} {:<28} {:<20} {:<10} {:>3}  {}",
            r.received_at,
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

pub async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let db = context::open_db(&args.store, DurabilityArg::Normal)?;
    let (store, _) = context::embedded_ports(&db);
    let Some(r) = store.get(&EventKey::new(&args.provider, &args.id)).await? else {
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
    if args.json {
        println!("{full}");
    } else {
        println!("event      {}#{}", r.provider, r.event_id);
        println!("type       {}", r.event_type);
        println!("state      {}", r.state);
        println!("attempts   {}", r.attempts);
        println!("last error {}", r.last_error.as_deref().unwrap_or("-"));
        println!("received   {} (unix s)", r.received_at);
        println!("updated    {} (unix s)", r.updated_at);
        println!("expires    {} (unix s)", r.expires_at);
        println!("results    {}", serde_json::to_string_pretty(&r.results)?);
        println!("payload    {}", serde_json::to_string_pretty(&full["payload"])?);
    }
    Ok(ExitCode::SUCCESS)
}
