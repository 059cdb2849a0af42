//! The admission port: the exactly-once step of ingest. Every event of a
//! delivery is claimed by its key and the new ones that have handlers are
//! put on the queue, both before the sender gets its 200 (on AWS, every one
//! with handlers is sent first, copies too: see [`EnqueueThenClaim`]).
//!
//! Adapters: [`EnqueueThenClaim`], the protocol over any event store and
//! queue (DynamoDB + SQS, where the two cannot share a transaction: send,
//! then record; two round trips a new event), and
//! `webhooks_sqlite::SqliteAdmission`, which does claim and enqueue in one
//! SQLite transaction shared with other deliveries (group commit). Both pass
//! the contract in `webhooks_testkit::contract::admission`.

use crate::event::{Event, EventState};
use crate::ports::queue::{Queue, QueueError};
use crate::ports::store::{Claim, ClaimOutcome, EventStore, StoreError};
use async_trait::async_trait;
use smallvec::SmallVec;
use std::sync::Arc;

/// The events of one delivery, each with what ingest decided for it:
/// RECEIVED when handlers are registered for its type (it is queued, and
/// recorded QUEUED), IGNORED when none is (it is only recorded).
#[derive(Debug, Clone)]
pub struct AdmissionBatch {
    /// Shared, not copied: adapters that hand the work to another thread
    /// keep a reference.
    pub events: Arc<[(Event, EventState)]>,
    pub now: i64,
    /// How long a RECEIVED claim keeps others out (claims of an earlier
    /// version, which recorded before it sent).
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
    /// when RECEIVED, durably on the queue. On `Err`, nothing of this
    /// delivery is recorded without its message on the queue, so the
    /// sender's retry is admitted (what was recorded, as a duplicate).
    async fn admit(&self, batch: AdmissionBatch) -> Result<Vec<ClaimOutcome>, AdmissionError>;
}

/// Send first, then record: for stores and queues without a shared
/// transaction (SQS and DynamoDB), in two round trips a new event.
///
/// 1. The events with handlers are sent to the queue. If the send fails,
///    nothing is recorded: 503, and the sender's retry starts over.
/// 2. Each event is claimed (one conditional write), recorded QUEUED (or
///    IGNORED). If a claim fails, 503: the messages already sent stay, and
///    the processor records their events when it leases them.
///
/// A record that says QUEUED therefore always has its message on the queue
/// (or had it, and its fate is recorded), so a copy of the event arriving
/// at any moment, even while the first copy is still being admitted, is
/// answered 200 `duplicate` at once: no copy has to be refused with a 409
/// for fear the first one dies between its two writes. The price is a
/// message for every copy that arrives (sent before ingest knows it is a
/// copy): the processor's conditional lease runs an event's handlers once
/// whatever the number of its messages, and the others are acknowledged.
///
/// The protocol before (claim RECEIVED under a lease, send, mark QUEUED)
/// took three round trips and answered 409 to copies inside the lease. A
/// RECEIVED claim such a version left is still honoured: a copy inside its
/// lease is answered 409, and one after it takes the record over.
pub struct EnqueueThenClaim {
    store: Arc<dyn EventStore>,
    queue: Arc<dyn Queue>,
}

impl EnqueueThenClaim {
    pub fn new(store: Arc<dyn EventStore>, queue: Arc<dyn Queue>) -> Self {
        Self { store, queue }
    }
}

#[async_trait]
impl Admission for EnqueueThenClaim {
    async fn admit(&self, batch: AdmissionBatch) -> Result<Vec<ClaimOutcome>, AdmissionError> {
        // Inline for the usual delivery of a few events: no allocation.
        let to_queue: SmallVec<[&Event; 4]> = batch
            .events
            .iter()
            .filter(|(_, state)| *state == EventState::Received)
            .map(|(event, _)| event)
            .collect();
        if !to_queue.is_empty() {
            // Before anything is sent: an event the queue can never carry is
            // refused whole, not retried forever.
            for event in &to_queue {
                self.queue.fits(event)?;
            }
            self.queue.send(&to_queue).await?;
        }
        let mut outcomes = Vec::with_capacity(batch.events.len());
        for (event, state) in batch.events.iter() {
            // Its message is on the queue: recorded QUEUED, with no lease.
            let state = if *state == EventState::Received {
                EventState::Queued
            } else {
                *state
            };
            let claim = Claim {
                event,
                state,
                now: batch.now,
                lease_secs: batch.claim_lease_secs,
                ttl_secs: batch.ttl_secs,
            };
            outcomes.push(self.store.claim(claim).await?);
        }
        Ok(outcomes)
    }
}
