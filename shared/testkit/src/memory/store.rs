//! An event store in process memory: nothing survives a restart. For
//! benchmarks of the pipelines without I/O, and for tests that need a store
//! but not its durability. Passes the same contract as the real adapters.

use async_trait::async_trait;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use webhooks_core::event::{bound_history, Event, EventKey, EventRecord, EventState};
use webhooks_core::ports::store::{
    busy_until, counts_as_gone, Claim, ClaimOutcome, EventStore, LeaseOutcome, ListFilter, Requeue, Settlement,
    StoreError,
};

/// The records by key. Keyed by [`EventKey`], whose strings the events
/// share, so a lookup or a new record copies no key; hashed with foldhash
/// rather than SipHash, which took 800 instructions a delivery in the
/// pipeline benchmark for two lookups. The keys are the caller's own, in a
/// store no sender can reach, so the flooding SipHash guards against does
/// not arise.
type Records = HashMap<EventKey, (u64, EventRecord), foldhash::fast::RandomState>;

/// [`EventStore`] over a map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<Records>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store with room for `n` records before it grows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            records: Mutex::new(HashMap::with_capacity_and_hasher(n, Default::default())),
        }
    }

    /// Forgets every record but keeps the map's memory, so a benchmark's
    /// next round writes into warm memory as a long-running store does.
    pub fn clear(&self) {
        self.records().clear();
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn new_record(event: &Event, state: EventState, attempts: u32, now: i64, lease: Option<i64>, ttl: i64) -> EventRecord {
    EventRecord {
        provider: event.provider.clone(),
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
        state,
        attempts,
        last_error: None,
        received_at: now,
        updated_at: now,
        lease_until: lease,
        expires_at: now + ttl,
        payload: Some(event.payload.clone()),
        payload_omitted: false,
        original: event.original.clone(),
        results: serde_json::Map::new(),
        history: Vec::new(),
        next_attempt_at: None,
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn claim(&self, claim: Claim<'_>) -> Result<ClaimOutcome, StoreError> {
        let key = claim.event.key();
        let lease = (claim.state == EventState::Received).then_some(claim.now + claim.lease_secs);
        let mut records = self.records();
        let order = records.len() as u64;
        let record = |attempts| {
            let record = new_record(claim.event, claim.state, attempts, claim.now, lease, claim.ttl_secs);
            (order, record)
        };
        // One hash of the key, whether the record is new or taken over.
        match records.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(record(0));
            }
            Entry::Occupied(mut slot) => {
                let (_, r) = slot.get();
                if counts_as_gone(r.state, r.expires_at, claim.now) {
                    slot.insert(record(0));
                    return Ok(ClaimOutcome::Claimed);
                }
                if r.state != EventState::Received {
                    return Ok(ClaimOutcome::Duplicate(r.state));
                }
                if r.lease_until.unwrap_or(0) > claim.now {
                    return Ok(ClaimOutcome::InFlight);
                }
                // An expired claim that never reached the queue: take it over.
                let attempts = r.attempts;
                slot.insert(record(attempts));
            }
        }
        Ok(ClaimOutcome::Claimed)
    }

    async fn discard(&self, key: &EventKey) -> Result<bool, StoreError> {
        let mut records = self.records();
        if records.get(key).is_some_and(|(_, r)| r.state == EventState::Failed) {
            records.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn lease(&self, event: &Event, now: i64, lease_secs: i64, ttl_secs: i64) -> Result<LeaseOutcome, StoreError> {
        let mut records = self.records();
        let order = records.len() as u64;
        let fresh = || (order, new_record(event, EventState::Queued, 0, now, None, ttl_secs));
        let (_, r) = match records.entry(event.key()) {
            Entry::Occupied(slot) if counts_as_gone(slot.get().1.state, slot.get().1.expires_at, now) => {
                let slot = slot.into_mut();
                *slot = fresh();
                slot
            }
            entry => entry.or_insert_with(fresh),
        };
        if let Some(until) = busy_until(r, now) {
            return Ok(LeaseOutcome::Busy { until });
        }
        match r.state {
            EventState::Done | EventState::Failed | EventState::Ignored => Ok(LeaseOutcome::Finished(r.state)),
            _ => {
                r.state = EventState::Processing;
                r.attempts += 1;
                r.lease_until = Some(now + lease_secs);
                r.next_attempt_at = None;
                r.updated_at = now;
                r.expires_at = now + ttl_secs;
                Ok(LeaseOutcome::Leased(r.clone()))
            }
        }
    }

    async fn settle(&self, key: &EventKey, s: Settlement) -> Result<(), StoreError> {
        if let Some((_, r)) = self.records().get_mut(key) {
            if r.state == EventState::Processing {
                r.next_attempt_at = s.stored_next_attempt_at();
                r.state = s.state;
                r.last_error = s.error.or(r.last_error.take());
                r.results = s.results;
                r.history = bound_history(s.history);
                r.lease_until = None;
                r.updated_at = s.now;
            }
        }
        Ok(())
    }

    async fn requeue(&self, key: &EventKey, now: i64) -> Result<Requeue, StoreError> {
        Ok(match self.records().get_mut(key) {
            None => Requeue::Missing,
            Some((_, r)) if r.state == EventState::Processing && r.lease_until.is_some_and(|t| t > now) => {
                Requeue::Busy {
                    until: r.lease_until.unwrap_or(now),
                }
            }
            Some((_, r)) => {
                r.state = EventState::Queued;
                r.attempts = 0;
                r.lease_until = None;
                r.next_attempt_at = None;
                r.updated_at = now;
                Requeue::Requeued(r.clone())
            }
        })
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        Ok(self.records().get(key).map(|(_, r)| r.clone()))
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        let records = self.records();
        let mut found: Vec<&(u64, EventRecord)> = records.values().filter(|(_, r)| filter.matches(r)).collect();
        found.sort_by(|(a_order, a), (b_order, b)| (b.received_at, b_order).cmp(&(a.received_at, a_order)));
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        Ok(found.into_iter().take(limit).map(|(_, r)| r.clone()).collect())
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut records = self.records();
        let before = records.len();
        records.retain(|_, (_, r)| r.expires_at > now || !r.state.expires());
        Ok((before - records.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_store_contract() {
        crate::contract::store::run_all(&MemoryStore::new()).await;
    }
}
