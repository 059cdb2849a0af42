//! `webhooks replay`: put an event, or every dead-lettered one, back on the
//! queue (the order that makes it safe is in `webhooks_shared::replay`).

use crate::cli::{DurabilityArg, ReplayArgs};
use crate::context;
use std::process::ExitCode;
use webhooks_shared::event::EventKey;
use webhooks_shared::replay::{self, ReplayError, Replayed};
use webhooks_shared::time::unix_now;

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let db = context::open_db(&args.store, DurabilityArg::Normal)?;
    let (store, queue) = context::embedded_ports(&db);
    if args.dead_letter {
        let moved = replay::redrive_dead_letters(store.as_ref(), queue.as_ref(), args.limit, unix_now()).await?;
        if moved.is_empty() {
            println!("dead-letter queue is empty");
            return Ok(ExitCode::SUCCESS);
        }
        for key in &moved {
            println!("replayed {key}");
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
    match replay::replay_event(store.as_ref(), queue.as_ref(), &key, unix_now()).await {
        Ok(Replayed::FromDeadLetters) => println!("replayed {key} (moved out of the dead-letter queue)"),
        Ok(Replayed::Sent) => println!("replayed {key}"),
        Err(e @ (ReplayError::Store(_) | ReplayError::Queue(_))) => return Err(e.into()),
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
