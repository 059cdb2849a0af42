//! Operator replays: one event, or the dead-letter queue, back on the queue.
//!
//! Shared by `webhooks replay` and the processor Lambda's `redrive` command,
//! so the order that keeps a replay from being lost lives in one place: the
//! record is reset to QUEUED *before* its message is back on the queue. The
//! other order loses the event: a processor that receives the message while
//! the record still says FAILED skips it as finished and deletes it.
//!
//! Also shared by both: [`fail_waiting_record`], which marks FAILED the
//! record of a dead letter the queue moved on its own, when it is listed.

use crate::event::{extend_history, AttemptEntry, AttemptOutcome, Event, EventKey, EventState};
use crate::ports::queue::DeadLetter;
use crate::ports::queue::{Queue, QueueError, Redrive, RedriveGate};
use crate::ports::store::{EventStore, LeaseOutcome, Requeue, Settlement, StoreError};
use async_trait::async_trait;
use tracing::{info, warn};

/// Why an event could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no event {0}")]
    NotFound(EventKey),
    #[error("event {0} is DONE: every handler succeeded, and none runs twice")]
    AlreadyDone(EventKey),
    #[error("event {key} is being processed (lease until {until}); try again after it")]
    Busy { key: EventKey, until: i64 },
    #[error("event {0} has no stored payload to replay (it was over the store's item limit)")]
    NoPayload(EventKey),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How a single replay reached the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// Its dead-lettered message was moved back (no second copy is left parked).
    FromDeadLetters,
    /// A new message was sent from the stored record.
    Sent,
}

/// Puts one event back on the queue. DONE events are refused (their
/// handlers all succeeded, and the processor never repeats a success);
/// FAILED, IGNORED (say, after a handler was added for its type) and
/// waiting ones are reset to QUEUED with their attempts at zero.
pub async fn replay_event(
    store: &dyn EventStore,
    queue: &dyn Queue,
    key: &EventKey,
    now: i64,
) -> Result<Replayed, ReplayError> {
    match store.get(key).await? {
        None => return Err(ReplayError::NotFound(key.clone())),
        Some(rec) if rec.state == EventState::Done => return Err(ReplayError::AlreadyDone(key.clone())),
        Some(_) => {}
    }
    let record = match store.requeue(key, now).await? {
        Requeue::Requeued(record) => record,
        Requeue::Missing => return Err(ReplayError::NotFound(key.clone())),
        Requeue::Busy { until } => {
            return Err(ReplayError::Busy {
                key: key.clone(),
                until,
            })
        }
    };
    let only = OnlyThis(key);
    if !queue.redrive(usize::MAX, &only).await?.is_empty() {
        return Ok(Replayed::FromDeadLetters);
    }
    let event = record.to_event().ok_or_else(|| ReplayError::NoPayload(key.clone()))?;
    queue.send(&[&event]).await?;
    Ok(Replayed::Sent)
}

/// Moves up to `max` dead-lettered events back to the queue, each record
/// reset to QUEUED first; dead letters of events that are DONE by now are
/// discarded, those of events being processed are left for later. Returns
/// the keys moved.
pub async fn redrive_dead_letters(
    store: &dyn EventStore,
    queue: &dyn Queue,
    max: usize,
    now: i64,
) -> Result<Vec<EventKey>, QueueError> {
    Ok(redrive_dead_letters_observed(store, queue, max, now, &Unobserved)
        .await
        .map_err(|failed| failed.source)?
        .moved)
}

/// What happened to one dead letter during a redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveStep {
    /// Back on the queue, its record reset.
    Moved(EventKey),
    /// Dropped: its event is DONE by now.
    DiscardedDone(EventKey),
    /// Left parked: a processor holds its record's lease.
    KeptBusy(EventKey),
    /// Left parked: the store could not be read or written.
    KeptUnavailable(EventKey),
}

/// Watches a long redrive: told of each step, and asked before each dead
/// letter whether to stop (an operator's Ctrl-C).
pub trait RedriveObserver: Send + Sync {
    fn step(&self, step: &RedriveStep);
    fn should_stop(&self) -> bool {
        false
    }
}

struct Unobserved;

impl RedriveObserver for Unobserved {
    fn step(&self, _: &RedriveStep) {}
}

/// The counts of a redrive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveSummary {
    pub moved: Vec<EventKey>,
    pub discarded_done: usize,
    pub kept_busy: usize,
    pub kept_unavailable: usize,
    /// Dead letters the queue failed on: the redrive stopped at that error
    /// (see [`RedriveFailed`]). The record may already be QUEUED; its dead
    /// letter, if still parked, moves at the next redrive.
    pub failed: Vec<EventKey>,
    /// The observer asked to stop before every dead letter was seen.
    pub stopped: bool,
}

/// A redrive the queue stopped part-way: what was done up to the error, so
/// an operator is told of the moves that did happen.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct RedriveFailed {
    /// The counts up to the error; the dead letter the queue failed on is in
    /// `failed`, not in `moved` or `discarded_done`.
    pub summary: RedriveSummary,
    #[source]
    pub source: QueueError,
}

/// [`redrive_dead_letters`], telling `observer` of each dead letter and
/// stopping between two when it asks; the dead letters not reached stay
/// parked, untouched.
pub async fn redrive_dead_letters_observed(
    store: &dyn EventStore,
    queue: &dyn Queue,
    max: usize,
    now: i64,
    observer: &dyn RedriveObserver,
) -> Result<RedriveSummary, RedriveFailed> {
    let gate = RequeueFirst {
        store,
        now,
        observer,
        summary: std::sync::Mutex::new(RedriveSummary::default()),
        unconfirmed: std::sync::Mutex::new(None),
    };
    let outcome = queue.redrive(max, &gate).await;
    let mut summary = std::mem::take(&mut *gate.summary());
    match outcome {
        Ok(_) => Ok(summary),
        Err(source) => {
            // The queue acts on a decision before it asks for the next one,
            // so only the last Send or Discard can be the one it failed on
            // (or the read after it: then it is counted failed though it
            // moved, the safe side of not knowing).
            let unconfirmed = gate
                .unconfirmed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            match unconfirmed {
                Some(RedriveStep::Moved(key)) => {
                    summary.moved.retain(|k| *k != key);
                    summary.failed.push(key);
                }
                Some(RedriveStep::DiscardedDone(key)) => {
                    summary.discarded_done = summary.discarded_done.saturating_sub(1);
                    summary.failed.push(key);
                }
                _ => {}
            }
            Err(RedriveFailed { summary, source })
        }
    }
}

/// Removes up to `max` dead letters for good: each FAILED record is deleted,
/// then its message. A dead letter whose record has left FAILED meanwhile
/// (replayed, or being processed) is kept. Returns the keys removed.
pub async fn discard_dead_letters(
    store: &dyn EventStore,
    queue: &dyn Queue,
    max: usize,
) -> Result<Vec<EventKey>, QueueError> {
    let gate = DiscardFailed {
        store,
        discarded: std::sync::Mutex::new(Vec::new()),
        max,
    };
    queue.redrive(usize::MAX, &gate).await?;
    Ok(gate
        .discarded
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Deletes each dead letter's FAILED record, then lets its message go.
struct DiscardFailed<'a> {
    store: &'a dyn EventStore,
    discarded: std::sync::Mutex<Vec<EventKey>>,
    max: usize,
}

#[async_trait]
impl RedriveGate for DiscardFailed<'_> {
    async fn decide(&self, event: &Event) -> Redrive {
        let key = event.key();
        let full = self.discarded.lock().map(|d| d.len() >= self.max).unwrap_or(true);
        if full {
            return Redrive::Keep;
        }
        match self.store.discard(&key).await {
            Ok(_) => {
                info!(event = %key, "dead letter discarded");
                if let Ok(mut d) = self.discarded.lock() {
                    d.push(key);
                }
                Redrive::Discard
            }
            Err(e) => {
                warn!(event = %key, error = %e, "dead letter kept: its record could not be discarded");
                Redrive::Keep
            }
        }
    }
}

/// Moves only the dead letters of one event (its record is already reset).
struct OnlyThis<'a>(&'a EventKey);

#[async_trait]
impl RedriveGate for OnlyThis<'_> {
    async fn decide(&self, event: &Event) -> Redrive {
        if event.provider == self.0.provider && event.id == self.0.id {
            Redrive::Send
        } else {
            Redrive::Keep
        }
    }
}

/// Resets each dead letter's record before its message moves, and keeps
/// the counts.
struct RequeueFirst<'a> {
    store: &'a dyn EventStore,
    now: i64,
    observer: &'a dyn RedriveObserver,
    summary: std::sync::Mutex<RedriveSummary>,
    /// The last Send or Discard the queue has not yet confirmed by asking
    /// about the next dead letter (or by returning).
    unconfirmed: std::sync::Mutex<Option<RedriveStep>>,
}

#[async_trait]
impl RedriveGate for RequeueFirst<'_> {
    async fn decide(&self, event: &Event) -> Redrive {
        // Asked again: the queue carried out the previous decision.
        self.unconfirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        {
            let mut summary = self.summary();
            if summary.stopped || self.observer.should_stop() {
                summary.stopped = true;
                return Redrive::Keep;
            }
        }
        let step = self.requeue_first(event).await;
        let mut summary = self.summary();
        let decision = match &step {
            RedriveStep::Moved(k) => {
                summary.moved.push(k.clone());
                Redrive::Send
            }
            RedriveStep::DiscardedDone(_) => {
                summary.discarded_done += 1;
                Redrive::Discard
            }
            RedriveStep::KeptBusy(_) => {
                summary.kept_busy += 1;
                Redrive::Keep
            }
            RedriveStep::KeptUnavailable(_) => {
                summary.kept_unavailable += 1;
                Redrive::Keep
            }
        };
        drop(summary);
        self.observer.step(&step);
        if decision != Redrive::Keep {
            *self
                .unconfirmed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(step);
        }
        decision
    }
}

impl RequeueFirst<'_> {
    fn summary(&self) -> std::sync::MutexGuard<'_, RedriveSummary> {
        self.summary.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The step for one dead letter, its record reset first when it moves.
    async fn requeue_first(&self, event: &Event) -> RedriveStep {
        let key = event.key();
        match self.store.get(&key).await {
            Ok(Some(rec)) if rec.state == EventState::Done => {
                info!(event = %key, "dead letter of an event that is DONE: discarded");
                return RedriveStep::DiscardedDone(key);
            }
            Ok(_) => {}
            Err(e) => {
                warn!(event = %key, error = %e, "store unavailable; dead letter left for the next redrive");
                return RedriveStep::KeptUnavailable(key);
            }
        }
        match self.store.requeue(&key, self.now).await {
            // Missing: the record expired; the processor recreates it from the envelope.
            Ok(Requeue::Requeued(_)) | Ok(Requeue::Missing) => RedriveStep::Moved(key),
            Ok(Requeue::Busy { until }) => {
                info!(event = %key, until, "being processed; dead letter left for the next redrive");
                RedriveStep::KeptBusy(key)
            }
            Err(e) => {
                warn!(event = %key, error = %e, "store unavailable; dead letter left for the next redrive");
                RedriveStep::KeptUnavailable(key)
            }
        }
    }
}

/// Marks FAILED (with the dead letter's reason) the record of a dead letter
/// that still waits for its message: the queue moved that message on its
/// own (SQS's redrive policy, when a processor died between receiving it at
/// the receive limit and settling it), and the record would otherwise say
/// QUEUED or PROCESSING for good, shown as waiting while nothing will ever
/// run it. A record under a live lease, or updated within the last
/// `lease_secs` (a replay that reset it and is moving its message back right
/// now), is left. Called on every listed dead letter by the processor
/// Lambda's `dead_letters` command and by `webhooks dead-letters list`, so
/// both show the same state. Returns whether the record was marked.
pub async fn fail_waiting_record(
    store: &dyn EventStore,
    dead: &DeadLetter,
    now: i64,
    lease_secs: i64,
    ttl_secs: i64,
) -> bool {
    let event = &dead.event;
    let key = event.key();
    match store.get(&key).await {
        Ok(Some(rec))
            if matches!(
                rec.state,
                EventState::Received | EventState::Queued | EventState::Processing
            ) && now - rec.updated_at >= lease_secs => {}
        Ok(_) => return false,
        Err(e) => {
            warn!(event_id = %event.id, error = %e, "could not read a dead letter's record");
            return false;
        }
    }
    // Leased first, so no processor runs it meanwhile; settled at once.
    let record = match store.lease(event, now, lease_secs, ttl_secs).await {
        Ok(LeaseOutcome::Leased(record)) => record,
        Ok(_) => return false,
        Err(e) => {
            warn!(event_id = %event.id, error = %e, "could not lease a dead letter's record");
            return false;
        }
    };
    // No handler ran: the history's entry says the queue gave the message up.
    let entry = AttemptEntry::new(
        now,
        record.attempts,
        None,
        AttemptOutcome::Permanent,
        0,
        Some(&format!("moved to the dead letters by the queue: {}", dead.reason)),
    );
    let settlement = Settlement {
        state: EventState::Failed,
        error: Some(dead.reason.clone()),
        results: record.results,
        history: extend_history(record.history, [entry]),
        next_attempt_at: None,
        now,
    };
    match store.settle(&key, settlement).await {
        Ok(()) => {
            warn!(provider = %event.provider, event_id = %event.id, reason = %dead.reason, "dead letter's record was still waiting; marked FAILED");
            crate::telemetry::dead_lettered(&event.provider);
            true
        }
        Err(e) => {
            warn!(event_id = %event.id, error = %e, "could not mark a dead letter's record FAILED");
            false
        }
    }
}
