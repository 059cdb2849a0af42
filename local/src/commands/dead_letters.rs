//! `webhooks dead-letters`: what failed for good and why, and removing it.
//! Dead letters are never purged by age; `discard` is the only way they go
//! besides a replay.

use crate::backend;
use crate::cli::{DeadLettersListArgs, DiscardArgs};
use std::process::ExitCode;
use webhooks_core::pipeline::replay;

pub async fn list(args: DeadLettersListArgs) -> anyhow::Result<ExitCode> {
    let backend = backend::open(&args.backend).await?;
    let letters = backend.queue.dead_letters(args.limit).await?;
    if letters.is_empty() {
        println!("dead-letter queue is empty");
        return Ok(ExitCode::SUCCESS);
    }
    for letter in &letters {
        println!("{}  {}  {}", letter.event.key(), letter.event.event_type, letter.reason);
    }
    println!("{} dead letter(s)", letters.len());
    Ok(ExitCode::SUCCESS)
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
