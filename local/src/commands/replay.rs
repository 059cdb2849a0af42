//! `webhooks replay`: put an event, or every dead-lettered one, back on the
//! queue (the order that makes it safe is in `webhooks_core::pipeline::replay`).

use crate::backend;
use crate::cli::ReplayArgs;
use crate::progress::{Interrupt, Progress};
use std::process::ExitCode;
use webhooks_core::event::EventKey;
use webhooks_core::pipeline::replay::{self, RedriveObserver, RedriveStep, ReplayError, Replayed};
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::store::EventStore;
use webhooks_core::time::unix_now;

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let backend = backend::open(&args.backend).await?;
    let (store, queue) = (backend.store.as_ref(), backend.queue.as_ref());
    if args.dead_letter {
        return redrive(store, queue, args.limit).await;
    }
    let (Some(provider), Some(id)) = (args.provider, args.id) else {
        anyhow::bail!("give PROVIDER ID, or --dead-letter");
    };
    let key = EventKey::new(&provider, &id);
    match replay::replay_event(store, queue, &key, unix_now()).await {
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

/// Every dead letter back on the queue, with progress on stderr, a line per
/// event moved on stdout, and the counts at the end; Ctrl-C stops between
/// two dead letters (those not reached stay parked).
async fn redrive(store: &dyn EventStore, queue: &dyn Queue, limit: usize) -> anyhow::Result<ExitCode> {
    let total = queue.dead_letters(limit).await?.len();
    if total == 0 {
        println!("dead-letter queue is empty");
        return Ok(ExitCode::SUCCESS);
    }
    let watch = Watch {
        progress: Progress::new("dead letters", total as u64),
        interrupt: Interrupt::listen(),
    };
    let summary = replay::redrive_dead_letters_observed(store, queue, limit, unix_now(), &watch).await?;
    watch.progress.finish();
    for key in &summary.moved {
        println!("replayed {key}");
    }
    println!(
        "{} event(s) moved from the dead-letter queue back to the queue",
        summary.moved.len()
    );
    println!(
        "moved {}; skipped {} (DONE meanwhile, discarded), {} (being processed), {} (store unavailable){}",
        summary.moved.len(),
        summary.discarded_done,
        summary.kept_busy,
        summary.kept_unavailable,
        if summary.stopped {
            "; stopped by Ctrl-C, the rest stay parked"
        } else {
            ""
        }
    );
    Ok(if summary.stopped || summary.kept_unavailable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Shows each dead letter's step and carries the operator's Ctrl-C.
struct Watch {
    progress: Progress,
    interrupt: Interrupt,
}

impl RedriveObserver for Watch {
    fn step(&self, _: &RedriveStep) {
        self.progress.inc();
    }

    fn should_stop(&self) -> bool {
        self.interrupt.requested()
    }
}
