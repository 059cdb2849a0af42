//! The admission port: the exactly-once step of ingest. Every event of a
//! delivery is claimed by its key, and the new ones that have handlers are
//! put on the queue, before the sender gets its 200.
//!
//! Adapters: [`ClaimThenEnqueue`], the protocol over any event store and
//! queue (DynamoDB + SQS, where the two cannot share a transaction: claim
//! first, enqueue, release the claims if the enqueue fails), and
//! `webhooks_sqlite::SqliteAdmission`, which does claim and enqueue in one
//! SQLite transaction shared with other deliveries (group commit). Both pass
//! the contract in `webhooks_testkit::contract::admission`.

use crate::event::{Event, EventState};
use crate::ports::queue::{Queue, QueueError};
use crate::ports::store::{Claim, ClaimOutcome, EventStore, StoreError};
use async_trait::async_trait;
use smallvec::SmallVec;
use std::sync::Arc;
use tracing::warn;

/// The events of one delivery, each with the state it is recorded in:
/// RECEIVED when handlers are registered for its type (it is queued), IGNORED
/// when none is (it is only recorded).
#[derive(Debug, Clone)]
pub struct AdmissionBatch {
    /// Shared, not copied: adapters that hand the work to another thread
    /// keep a reference.
    pub events: Arc<[(Event, EventState)]>,
    pub now: i64,
    /// How long a claim that is not yet queued keeps others out.
    pub claim_lease_secs: i64,
    /// Time to live of the records.
    pub ttl_secs: i64,
}

/// Why a delivery could not be admitted: the store or the queue failed.
/// Ingest answers 503 and the sender retries.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Claims and enqueues.
#[async_trait]
pub trait Admission: Send + Sync {
    /// Claims every event and queues the new ones that have handlers. On
    /// `Ok`, outcome `i` is event `i`'s: `Claimed` means newly recorded and,
    /// when RECEIVED, durably on the queue. On `Err`, no claim of this
    /// delivery is left behind (or it expires with its lease), so the
    /// sender's retry is accepted.
    async fn admit(&self, batch: AdmissionBatch) -> Result<Vec<ClaimOutcome>, AdmissionError>;
}

/// Claim first, then enqueue, then mark queued; release the claims when the
/// enqueue fails. For stores and queues without a shared transaction.
pub struct ClaimThenEnqueue {
    store: Arc<dyn EventStore>,
    queue: Arc<dyn Queue>,
}

impl ClaimThenEnqueue {
    pub fn new(store: Arc<dyn EventStore>, queue: Arc<dyn Queue>) -> Self {
        Self { store, queue }
    }

    async fn release_all(&self, events: &[&Event]) {
        for event in events {
            if let Err(e) = self.store.release(&event.key()).await {
                // The claim's lease expires on its own; the retry re-claims it then.
                warn!(event_id = %event.id, error = %e, "could not release claim");
            }
        }
    }
}

#[async_trait]
impl Admission for ClaimThenEnqueue {
    async fn admit(&self, batch: AdmissionBatch) -> Result<Vec<ClaimOutcome>, AdmissionError> {
        // Before any claim: an event the queue can never carry leaves nothing behind.
        for (event, state) in batch.events.iter() {
            if *state == EventState::Received {
                self.queue.fits(event)?;
            }
        }
        let mut outcomes = Vec::with_capacity(batch.events.len());
        // Inline for the usual delivery of a few events: no allocation.
        let mut to_queue: SmallVec<[&Event; 4]> = SmallVec::new();
        for (event, state) in batch.events.iter() {
            let claim = Claim {
                event,
                state: *state,
                now: batch.now,
                lease_secs: batch.claim_lease_secs,
                ttl_secs: batch.ttl_secs,
            };
            match self.store.claim(claim).await {
                Ok(outcome) => {
                    if outcome == ClaimOutcome::Claimed && *state == EventState::Received {
                        to_queue.push(event);
                    }
                    outcomes.push(outcome);
                }
                Err(e) => {
                    self.release_all(&to_queue).await;
                    return Err(e.into());
                }
            }
        }
        if to_queue.is_empty() {
            return Ok(outcomes);
        }
        if let Err(e) = self.queue.send(&to_queue).await {
            self.release_all(&to_queue).await;
            return Err(e.into());
        }
        for event in to_queue {
            // The message is on the queue: a failure here only leaves the
            // record RECEIVED, which the processor accepts as well.
            if let Err(e) = self.store.mark_queued(&event.key(), batch.now).await {
                warn!(event_id = %event.id, error = %e, "could not mark queued");
            }
        }
        Ok(outcomes)
    }
}
