//! Ports that fail on demand, for fault tests: a decorator over any event
//! store or queue, with a [`Fault`] deciding which calls fail. A failed call
//! does nothing to the port behind it, except a queue send struck *after* it
//! went through (the answer lost, as when SQS took the message and the
//! answer timed out).

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use webhooks_core::event::{Event, EventKey, EventRecord};
use webhooks_core::ports::queue::{DeadLetter, Queue, QueueError, ReceivedMessage, RedriveGate};
use webhooks_core::ports::store::{
    Claim, ClaimOutcome, EventStore, LeaseOutcome, ListFilter, Requeue, Settlement, StoreError,
};

/// Decides whether one call fails, given the events it carries (none for
/// calls by key).
pub trait Fault: Send + Sync {
    fn strikes(&self, events: &[&Event]) -> bool;
}

/// Never fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct Never;

impl Fault for Never {
    fn strikes(&self, _events: &[&Event]) -> bool {
        false
    }
}

/// Fails every call while switched on.
#[derive(Debug, Default)]
pub struct Switch(AtomicBool);

impl Switch {
    pub fn set(&self, down: bool) {
        self.0.store(down, Ordering::SeqCst);
    }
}

impl Fault for Switch {
    fn strikes(&self, _events: &[&Event]) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Fails every `every`-th call (the first at `offset`) and keeps, per event
/// id, how many faults hit it, so each can be matched with a 503.
#[derive(Debug)]
pub struct EveryNth {
    every: u64,
    offset: u64,
    calls: AtomicU64,
    hits: Mutex<BTreeMap<String, u32>>,
}

impl EveryNth {
    pub fn new(every: u64, offset: u64) -> Self {
        Self {
            every,
            offset,
            calls: AtomicU64::new(0),
            hits: Mutex::new(BTreeMap::new()),
        }
    }

    /// How many calls failed in all.
    pub fn total(&self) -> u32 {
        self.locked().values().sum()
    }

    /// How many failed calls carried each event id.
    pub fn hits(&self) -> BTreeMap<String, u32> {
        self.locked().clone()
    }

    fn locked(&self) -> MutexGuard<'_, BTreeMap<String, u32>> {
        self.hits.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Fault for EveryNth {
    fn strikes(&self, events: &[&Event]) -> bool {
        let hit = self.calls.fetch_add(1, Ordering::SeqCst) % self.every == self.offset;
        if hit {
            let mut hits = self.locked();
            for event in events {
                *hits.entry(event.id.to_string()).or_default() += 1;
            }
        }
        hit
    }
}

/// An event store whose claims fail as `claims` decides and whose other
/// writes (lease, settle, requeue) fail as `writes`
/// decides; reads always pass.
pub struct FaultyStore {
    pub inner: Arc<dyn EventStore>,
    pub claims: Arc<dyn Fault>,
    pub writes: Arc<dyn Fault>,
}

impl FaultyStore {
    fn write(&self) -> Result<(), StoreError> {
        if self.writes.strikes(&[]) {
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for FaultyStore {
    async fn claim(&self, claim: Claim<'_>) -> Result<ClaimOutcome, StoreError> {
        if self.claims.strikes(&[claim.event]) {
            return Err(StoreError::Unavailable("injected: claim refused".into()));
        }
        self.inner.claim(claim).await
    }
    async fn lease(&self, event: &Event, now: i64, lease_secs: i64, ttl_secs: i64) -> Result<LeaseOutcome, StoreError> {
        self.write()?;
        self.inner.lease(event, now, lease_secs, ttl_secs).await
    }
    async fn settle(&self, key: &EventKey, settlement: Settlement) -> Result<(), StoreError> {
        self.write()?;
        self.inner.settle(key, settlement).await
    }
    async fn requeue(&self, key: &EventKey, now: i64) -> Result<Requeue, StoreError> {
        self.write()?;
        self.inner.requeue(key, now).await
    }
    async fn discard(&self, key: &EventKey) -> Result<bool, StoreError> {
        self.write()?;
        self.inner.discard(key).await
    }
    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        self.inner.get(key).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.list(filter).await
    }
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        self.inner.purge_expired(now).await
    }
}

/// A queue whose sends fail before anything is sent as `before` decides, or
/// after the message went through as `after` decides (the answer lost: the
/// admission records nothing and answers 503, so the event is queued again
/// by the sender's retry and the processor's lease must still run its
/// handlers once). Everything else passes.
pub struct FaultyQueue {
    pub inner: Arc<dyn Queue>,
    pub before: Arc<dyn Fault>,
    pub after: Arc<dyn Fault>,
}

#[async_trait]
impl Queue for FaultyQueue {
    async fn send(&self, events: &[&Event]) -> Result<(), QueueError> {
        if self.before.strikes(events) {
            return Err(QueueError::Unavailable("injected: send refused".into()));
        }
        self.inner.send(events).await?;
        if self.after.strikes(events) {
            return Err(QueueError::Unavailable("injected: sent, answer lost".into()));
        }
        Ok(())
    }
    fn fits(&self, event: &Event) -> Result<(), QueueError> {
        self.inner.fits(event)
    }
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(max, visibility).await
    }
    async fn ack(&self, message: &ReceivedMessage) -> Result<(), QueueError> {
        self.inner.ack(message).await
    }
    async fn retry_after(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        self.inner.retry_after(message, delay).await
    }
    async fn retry_fresh(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        self.inner.retry_fresh(message, delay).await
    }
    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), QueueError> {
        self.inner.dead_letter(message, reason).await
    }
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.dead_letters(max).await
    }
    async fn redrive(&self, max: usize, gate: &dyn RedriveGate) -> Result<Vec<Event>, QueueError> {
        self.inner.redrive(max, gate).await
    }
}
