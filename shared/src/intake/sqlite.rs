//! Intake on the embedded database: the claims and the queue messages of a
//! delivery are written in one savepoint of the database thread's group
//! transaction, so they are committed together or not at all, and a
//! delivery is never seen claimed but not queued. Many deliveries share one
//! commit (see [`crate::db`]).

use super::{Admission, Intake, IntakeError};
use crate::db::Db;
use crate::event::EventState;
use crate::queue::sqlite::enqueue_ref_in;
use crate::store::sqlite::claim_in;
use crate::store::{ClaimOutcome, StoreError};
use crate::time::unix_now_ms;
use async_trait::async_trait;

/// [`Intake`] over the SQLite store and queue tables.
#[derive(Debug, Clone)]
pub struct SqliteIntake {
    db: Db,
}

impl SqliteIntake {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

#[async_trait]
impl Intake for SqliteIntake {
    async fn admit(&self, admission: Admission) -> Result<Vec<ClaimOutcome>, IntakeError> {
        let events = admission.events;
        let (now, lease, ttl) = (admission.now, admission.claim_lease_secs, admission.ttl_secs);
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
                        enqueue_ref_in(conn, &event.pk(), now_ms)?;
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
    use crate::queue::sqlite::SqliteQueue;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn passes_the_intake_contract() {
        let db = Db::open_in_memory().expect("db");
        let intake = SqliteIntake::new(db.clone());
        let store = SqliteStore::new(db.clone());
        let queue = SqliteQueue::new(db);
        super::super::contract::run_all(&intake, &store, &queue, "sqlite").await;
    }

    #[tokio::test]
    async fn the_generic_protocol_passes_the_contract_on_sqlite_too() {
        let db = Db::open_in_memory().expect("db");
        let store = std::sync::Arc::new(SqliteStore::new(db.clone()));
        let queue = std::sync::Arc::new(SqliteQueue::new(db));
        let intake = super::super::ClaimThenEnqueue::new(store.clone(), queue.clone());
        super::super::contract::run_all(&intake, store.as_ref(), queue.as_ref(), "generic").await;
    }
}
