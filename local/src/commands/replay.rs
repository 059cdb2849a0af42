//! `webhooks replay`: put an event, or every dead-lettered one, back on the queue.

use crate::cli::{DurabilityArg, ReplayArgs};
use crate::context;
use anyhow::Context;
use std::process::ExitCode;
use webhooks_shared::event::EventKey;
use webhooks_shared::queue::Queue;
use webhooks_shared::store::EventStore;
use webhooks_shared::time::unix_now;

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let db = context::open_db(&args.store, DurabilityArg::Normal)?;
    let (store, queue) = context::embedded_ports(&db);
    if args.dead_letter {
        let dead = queue.dead_letters(args.limit).await?;
        if dead.is_empty() {
            println!("dead-letter queue is empty");
            return Ok(ExitCode::SUCCESS);
        }
        // Reset the records first, so the worker never sees a redriven
        // message whose record still says FAILED.
        for d in &dead {
            store.requeue(&d.event.key(), unix_now()).await?;
        }
        let moved = queue.redrive(args.limit).await?;
        for ev in &moved {
            println!("replayed {}", ev.key());
        }
        println!(
            "{} event(s) moved from the dead-letter queue back to the queue",
            moved.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(provider), Some(id)) = (args.provider, args.id) else {
        anyhow::bail!("give PROVIDER ID, or --dead-letter");
    };
    let key = EventKey::new(&provider, &id);
    let Some(record) = store.requeue(&key, unix_now()).await? else {
        eprintln!("no event {key}");
        return Ok(ExitCode::from(1));
    };
    let event = record
        .to_event()
        .with_context(|| format!("event {key} has no stored payload to replay"))?;
    queue.send(&[&event]).await?;
    println!("replayed {key}");
    Ok(ExitCode::SUCCESS)
}
