//! `webhooks replay`: put an event, every dead-lettered one, or every one
//! some filters match back on the queue (the order that makes it safe is in
//! `webhooks_core::pipeline::replay`).

use crate::backend;
use crate::cli::ReplayArgs;
use crate::commands::events::list_filter;
use crate::progress::{Interrupt, Progress};
use std::process::ExitCode;
use webhooks_core::event::{EventKey, EventRecord, EventState};
use webhooks_core::pipeline::replay::{
    self, RedriveFailed, RedriveObserver, RedriveStep, RedriveSummary, ReplayError, Replayed,
};
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::store::{EventStore, ListFilter};
use webhooks_core::time::unix_now;

pub async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    // Parsed before anything is opened, so a bad --status or --since is
    // refused without touching the backend.
    let filter = args
        .filter
        .any()
        .then(|| list_filter(&args.filter, args.limit))
        .transpose()?;
    let backend = backend::open(&args.backend).await?;
    let (store, queue) = (backend.store.as_ref(), backend.queue.as_ref());
    if args.dead_letter {
        return redrive(store, queue, args.limit).await;
    }
    if let Some(filter) = filter {
        return replay_matching(store, queue, &filter, args.yes).await;
    }
    let (Some(provider), Some(id)) = (args.event_provider, args.id) else {
        anyhow::bail!("give PROVIDER ID, --dead-letter, or filters (--status, --provider, --type, --since)");
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

/// What a filtered replay did, for its closing line.
#[derive(Debug, Default)]
struct Counts {
    moved: usize,
    done: usize,
    busy: usize,
    gone: usize,
    failed: usize,
    stopped: bool,
}

impl Counts {
    fn line(&self) -> String {
        format!(
            "moved {}; skipped {} ({} DONE, {} being processed, {} gone); failed {}{}",
            self.moved,
            self.done + self.busy + self.gone,
            self.done,
            self.busy,
            self.gone,
            self.failed,
            if self.stopped {
                "; stopped by Ctrl-C, the rest were not replayed"
            } else {
                ""
            }
        )
    }
}

/// Every event `filter` matches back on the queue, one at a time through
/// [`replay::replay_event`], so each follows the rules of a single replay
/// (record reset before its message moves, DONE refused, a live lease left
/// alone). Without `yes` it only counts what would happen. Each replay
/// looks through the dead-letter queue for the event's parked message (so
/// it moves instead of being copied): on a long dead-letter queue, prefer
/// `--dead-letter` for the dead letters themselves.
async fn replay_matching(
    store: &dyn EventStore,
    queue: &dyn Queue,
    filter: &ListFilter,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    let records = store.list(filter).await?;
    if !yes {
        println!("{}", preview(&records, unix_now()));
        println!("nothing changed: run again with --yes to replay them");
        return Ok(ExitCode::SUCCESS);
    }
    let progress = Progress::new("events", records.len() as u64);
    let interrupt = Interrupt::listen();
    let mut counts = Counts::default();
    for record in &records {
        if interrupt.requested() {
            counts.stopped = true;
            break;
        }
        let key = record.key();
        match replay::replay_event(store, queue, &key, unix_now()).await {
            Ok(_) => {
                counts.moved += 1;
                println!("replayed {key}");
            }
            Err(ReplayError::AlreadyDone(_)) => {
                counts.done += 1;
                println!("skipped {key}: DONE");
            }
            Err(ReplayError::Busy { until, .. }) => {
                counts.busy += 1;
                println!("skipped {key}: being processed (lease until {until})");
            }
            Err(ReplayError::NotFound(_)) => {
                counts.gone += 1;
                println!("skipped {key}: gone since it was listed");
            }
            Err(e @ ReplayError::NoPayload(_)) => {
                counts.failed += 1;
                eprintln!("{e}");
            }
            // The store or the queue is down: the next events would fail the
            // same way. Say what was done, then why it stopped.
            Err(e @ (ReplayError::Store(_) | ReplayError::Queue(_))) => {
                counts.failed += 1;
                progress.finish();
                println!("{}", counts.line());
                return Err(anyhow::Error::new(e).context(format!("replaying {key}")));
            }
        }
        progress.inc();
    }
    progress.finish();
    println!("{}", counts.line());
    Ok(if counts.stopped || counts.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How many of `records` a replay would move and skip, judged from the
/// records as listed (a replay re-reads each one, so the real run may
/// differ if they change meanwhile).
fn preview(records: &[EventRecord], now: i64) -> String {
    let done = records.iter().filter(|r| r.state == EventState::Done).count();
    let busy = records
        .iter()
        .filter(|r| r.state == EventState::Processing && r.lease_until.is_some_and(|until| until > now))
        .count();
    format!(
        "{} event(s) match: {} would be replayed; {} would be skipped (DONE), {} (being processed)",
        records.len(),
        records.len() - done - busy,
        done,
        busy
    )
}

/// Every dead letter back on the queue, with progress on stderr, a line per
/// event moved on stdout, and the counts at the end; Ctrl-C stops between
/// two dead letters (those not reached stay parked). A queue error part-way
/// still prints what was done before it, then the error (exit 2).
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
    let outcome = replay::redrive_dead_letters_observed(store, queue, limit, unix_now(), &watch).await;
    watch.progress.finish();
    let (summary, error) = match outcome {
        Ok(summary) => (summary, None),
        Err(RedriveFailed { summary, source }) => (summary, Some(source)),
    };
    for key in &summary.moved {
        println!("replayed {key}");
    }
    for key in &summary.failed {
        println!("failed {key}: the queue failed on it; its record may be QUEUED already, a later redrive moves it");
    }
    println!(
        "{} event(s) moved from the dead-letter queue back to the queue",
        summary.moved.len()
    );
    println!("{}", redrive_line(&summary));
    if let Some(error) = error {
        return Err(anyhow::Error::new(error).context("the redrive stopped part-way"));
    }
    Ok(if summary.stopped || summary.kept_unavailable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The closing counts of a redrive. "failed" is every dead letter left
/// parked by an error: the store unreadable (the redrive goes on) or the
/// queue failing (it stops there).
fn redrive_line(s: &RedriveSummary) -> String {
    format!(
        "moved {}; skipped {} ({} DONE meanwhile, discarded; {} being processed); failed {} ({} store unavailable, {} queue error){}",
        s.moved.len(),
        s.discarded_done + s.kept_busy,
        s.discarded_done,
        s.kept_busy,
        s.kept_unavailable + s.failed.len(),
        s.kept_unavailable,
        s.failed.len(),
        if s.stopped {
            "; stopped by Ctrl-C, the rest stay parked"
        } else {
            ""
        }
    )
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
