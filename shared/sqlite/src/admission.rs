//! Admission on the embedded database: the claims and the queue messages of a
//! delivery are written in one savepoint of the database thread's group
//! transaction, so they are committed together or not at all, and a
//! delivery is never seen claimed but not queued. Many deliveries share one
//! commit (see [`crate::writer`]).

use crate::queue::enqueue_ref_in;
use crate::store::claim_in;
use crate::writer::Db;
use async_trait::async_trait;
use webhooks_core::event::EventState;
use webhooks_core::ports::admission::{Admission, AdmissionBatch, AdmissionError};
use webhooks_core::ports::store::{ClaimOutcome, StoreError};
use webhooks_core::time::unix_now_ms;

/// [`Admission`] over the SQLite store and queue tables.
#[derive(Debug, Clone)]
pub struct SqliteAdmission {
    db: Db,
}

impl SqliteAdmission {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl Admission for SqliteAdmission {
    async fn admit(&self, batch: AdmissionBatch) -> Result<Vec<ClaimOutcome>, AdmissionError> {
        let events = batch.events;
        let (now, lease, ttl) = (batch.now, batch.claim_lease_secs, batch.ttl_secs);
        let now_ms = unix_now_ms();
        let outcomes = self
            .db
            .call(move |conn| {
                let mut outcomes = Vec::with_capacity(events.len());
                for (event, state) in events.iter() {
                    let queued = *state == EventState::Received;
                    // Claimed and queued in the same savepoint: recorded as QUEUED.
                    let write_state = if queued { EventState::Queued } else { *state };
                    let outcome = claim_in(conn, event, write_state, now, lease, ttl)?;
                    if queued && outcome == ClaimOutcome::Claimed {
                        // The message refers to the record, which holds the payload.
                        enqueue_ref_in(conn, event, now_ms)?;
                    }
                    outcomes.push(outcome);
                }
                Ok(outcomes)
            })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::SqliteQueue;
    use crate::store::SqliteStore;

    #[tokio::test]
    async fn passes_the_admission_contract() {
        let db = Db::open_in_memory().expect("db");
        let admission = SqliteAdmission::new(db.clone());
        let store = SqliteStore::new(db.clone());
        let queue = SqliteQueue::new(db);
        webhooks_testkit::contract::admission::run_all(&admission, &store, &queue, "sqlite").await;
    }

    #[tokio::test]
    async fn the_generic_protocol_passes_the_contract_on_sqlite_too() {
        let db = Db::open_in_memory().expect("db");
        let store = std::sync::Arc::new(SqliteStore::new(db.clone()));
        let queue = std::sync::Arc::new(SqliteQueue::new(db));
        let admission = webhooks_core::ports::admission::ClaimThenEnqueue::new(store.clone(), queue.clone());
        webhooks_testkit::contract::admission::run_all(&admission, store.as_ref(), queue.as_ref(), "generic").await;
    }
}
