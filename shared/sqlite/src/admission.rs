//! Admission on the embedded database: each event of a delivery is claimed
//! and queued by one row write, its record flagged as carrying its first
//! queue message (see [`crate::queue`], "the inbox"), inside the database
//! thread's group transaction: a delivery is never seen claimed but not
//! queued, and many deliveries share one commit (see [`crate::writer`]).

use crate::store::claim_in;
use crate::writer::Db;
use async_trait::async_trait;
use webhooks_core::event::EventState;
use webhooks_core::ports::admission::{Admission, AdmissionBatch, AdmissionError};
use webhooks_core::ports::store::{ClaimOutcome, StoreError};

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
        let outcomes = self
            .db
            .call(move |conn| {
                let mut outcomes = Vec::with_capacity(events.len());
                for (event, state) in events.iter() {
                    let queued = *state == EventState::Received;
                    // Claimed and queued in one row write: recorded as QUEUED,
                    // its first queue message folded into the record.
                    let write_state = if queued { EventState::Queued } else { *state };
                    outcomes.push(claim_in(conn, event, write_state, queued, (now, lease, ttl))?);
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

    fn admit_one(id: &str, now: i64) -> AdmissionBatch {
        let event = webhooks_core::event::Event {
            provider: "inbox".into(),
            id: id.into(),
            event_type: "a.b".into(),
            received_at: now,
            payload: webhooks_core::payload::Payload::from_text(format!(r#"{{"id":"{id}"}}"#)),
            request_id: Some(format!("req-{id}").into()),
            original: None,
        };
        AdmissionBatch {
            events: vec![(event, EventState::Received)].into(),
            now,
            claim_lease_secs: 30,
            ttl_secs: 60,
        }
    }

    async fn count(db: &Db, sql: &'static str) -> i64 {
        db.call(move |c| c.query_row(sql, [], |r| r.get(0)))
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn an_admitted_event_is_one_row_until_a_receive_takes_its_message() {
        use webhooks_core::ports::queue::Queue;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("inbox.db");
        {
            let db = Db::open(&path, crate::Durability::Normal).expect("db");
            SqliteAdmission::new(db.clone())
                .admit(admit_one("e1", 1_000))
                .await
                .expect("admit");
            assert_eq!(
                count(&db, "SELECT COUNT(*) FROM queue").await,
                0,
                "no queue row at ingest"
            );
            assert_eq!(
                SqliteQueue::new(db).depth().await.expect("depth"),
                1,
                "yet one message waits"
            );
        }
        // Reopened (as after a crash): the message is still there, once.
        let db = Db::open(&path, crate::Durability::Normal).expect("reopen");
        let queue = SqliteQueue::new(db.clone());
        let got = queue
            .receive(10, std::time::Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1);
        assert_eq!((&*got[0].event.id, got[0].receive_count), ("e1", 1));
        assert_eq!(
            got[0].event.request_id.as_deref(),
            Some("req-e1"),
            "the request id travels"
        );
        assert!(queue
            .receive(10, std::time::Duration::from_secs(30))
            .await
            .expect("again")
            .is_empty());
        queue.ack(&got[0]).await.expect("ack");
        assert_eq!(queue.depth().await.expect("depth"), 0);
    }

    #[tokio::test]
    async fn a_record_admitted_after_the_top_rows_were_deleted_is_still_received() {
        use webhooks_core::ports::queue::Queue;
        let db = Db::open_in_memory().expect("db");
        let (admission, queue) = (SqliteAdmission::new(db.clone()), SqliteQueue::new(db.clone()));
        admission.admit(admit_one("first", 1_000)).await.expect("admit");
        let got = queue
            .receive(10, std::time::Duration::from_secs(30))
            .await
            .expect("receive");
        queue.ack(&got[0]).await.expect("ack");
        // The record at the top goes (purged, discarded, released): SQLite
        // would hand its rowid, which the cursor has passed, to the next row.
        db.call(|c| c.execute("DELETE FROM events", [])).await.expect("delete");
        admission.admit(admit_one("second", 1_001)).await.expect("admit");
        let got = queue
            .receive(10, std::time::Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.iter().map(|m| &*m.event.id).collect::<Vec<_>>(), ["second"]);
    }

    #[tokio::test]
    async fn a_receive_moves_the_cursor_past_records_without_a_message_too() {
        use webhooks_core::ports::queue::Queue;
        let db = Db::open_in_memory().expect("db");
        let (admission, queue) = (SqliteAdmission::new(db.clone()), SqliteQueue::new(db.clone()));
        admission.admit(admit_one("queued", 1_000)).await.expect("admit");
        // Recorded without a message (no handler for its type): read once, never again.
        let mut ignored = admit_one("ignored", 1_001);
        ignored.events = vec![(ignored.events[0].0.clone(), EventState::Ignored)].into();
        admission.admit(ignored).await.expect("admit");
        let got = queue
            .receive(10, std::time::Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.iter().map(|m| &*m.event.id).collect::<Vec<_>>(), ["queued"]);
        let (cursor, top) = db
            .call(|c| {
                c.query_row(
                    "SELECT (SELECT last_rowid FROM inbox_cursor), (SELECT MAX(rowid) FROM events)",
                    [],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
                )
            })
            .await
            .expect("cursor");
        assert_eq!(cursor, top, "the ignored record is behind the cursor");
        assert_eq!(queue.depth().await.expect("depth"), 1, "only the received message");
    }

    #[tokio::test]
    async fn after_the_upgrade_old_records_do_not_hold_up_new_messages() {
        use webhooks_core::ports::queue::Queue;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v4.db");
        {
            // A database of version 4: many finished records, and one QUEUED
            // event whose message is a `queue` row.
            let old = rusqlite::Connection::open(&path).expect("open");
            old.execute_batch(
                "CREATE TABLE events (pk TEXT PRIMARY KEY, provider TEXT NOT NULL, event_id TEXT NOT NULL,
                     event_type TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                     last_error TEXT, received_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
                     lease_until INTEGER, expires_at INTEGER NOT NULL, payload TEXT,
                     payload_omitted INTEGER NOT NULL DEFAULT 0, results TEXT NOT NULL DEFAULT '{}',
                     history TEXT NOT NULL DEFAULT '[]', next_attempt_at INTEGER);
                 CREATE INDEX events_by_expiry ON events(expires_at);
                 CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, event_pk TEXT,
                     request_id TEXT, visible_at_ms INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0,
                     dead INTEGER NOT NULL DEFAULT 0, dead_reason TEXT, enqueued_at INTEGER NOT NULL);
                 CREATE INDEX queue_ready ON queue(dead, visible_at_ms);
                 INSERT INTO events (pk, provider, event_id, event_type, state, received_at, updated_at, expires_at, payload)
                     VALUES ('inbox#old', 'inbox', 'old', 'a.b', 'QUEUED', 1, 1, 9999999999, '{\"id\":\"old\"}');
                 INSERT INTO queue (body, event_pk, visible_at_ms, enqueued_at) VALUES ('', 'inbox#old', 0, 0);
                 PRAGMA user_version = 4;",
            )
            .expect("v4 schema");
            for i in 0..200 {
                old.execute(
                    "INSERT INTO events (pk, provider, event_id, event_type, state, received_at, updated_at, expires_at, payload)
                     VALUES (?1, 'inbox', ?2, 'a.b', 'DONE', 1, 1, 9999999999, '{}')",
                    [format!("inbox#done{i}"), format!("done{i}")],
                )
                .expect("old record");
            }
        }
        let db = Db::open(&path, crate::Durability::Normal).expect("migrates");
        SqliteAdmission::new(db.clone())
            .admit(admit_one("new", 2_000))
            .await
            .expect("admit");
        let queue = SqliteQueue::new(db);
        let mut got = Vec::new();
        for _ in 0..2 {
            for m in queue
                .receive(1, std::time::Duration::from_secs(30))
                .await
                .expect("receive")
            {
                got.push(m.event.id.clone());
            }
        }
        assert_eq!(
            got,
            ["old", "new"],
            "the old message once, the new one at the next receive"
        );
    }

    #[tokio::test]
    async fn admitting_an_event_writes_the_record_and_its_key_index_only() {
        // Ingest's cost is the B-trees it writes. The statement opens the
        // table and its indexes (OpenWrite); of those, the partial expiry
        // index must get no entry for a QUEUED record, and no other table
        // (the queue) may be opened at all.
        let db = Db::open_in_memory().expect("db");
        SqliteAdmission::new(db.clone())
            .admit(admit_one("e1", 1_000))
            .await
            .expect("admit");
        let opened: Vec<String> = db
            .call(|c| {
                let mut explain = c.prepare(
                    "EXPLAIN INSERT INTO events (pk, provider, event_id, event_type, state, attempts, received_at,
                         updated_at, lease_until, expires_at, payload, inbox, request_id, rowid)
                     VALUES ('p#e', 'p', 'e', 't', 'QUEUED', 0, 1, 1, NULL, 2, '{}', 1, NULL, 7)
                     ON CONFLICT(pk) DO NOTHING",
                )?;
                let ops = explain.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(3)?)))?;
                let mut roots = Vec::new();
                for op in ops {
                    let (name, root) = op?;
                    if name == "OpenWrite" {
                        roots.push(root);
                    }
                }
                roots
                    .into_iter()
                    .map(|root| {
                        c.query_row("SELECT name FROM sqlite_master WHERE rootpage = ?1", [root], |r| {
                            r.get(0)
                        })
                    })
                    .collect()
            })
            .await
            .expect("explain");
        assert_eq!(opened, ["events", "events_expiring", "sqlite_autoindex_events_1"]);
        let expiring = count(
            &db,
            "SELECT COUNT(*) FROM events INDEXED BY events_expiring
             WHERE state IN ('DONE', 'IGNORED') AND expires_at < 9000000000000",
        )
        .await;
        assert_eq!(expiring, 0, "a QUEUED record has no expiry entry");
        let purge_plan: String = db
            .call(|c| {
                c.query_row(
                    "EXPLAIN QUERY PLAN DELETE FROM events WHERE expires_at <= 5 AND state IN ('DONE', 'IGNORED')",
                    [],
                    |r| r.get(3),
                )
            })
            .await
            .expect("plan");
        assert!(
            purge_plan.contains("events_expiring"),
            "the purge reads the index: {purge_plan}"
        );
    }

    #[tokio::test]
    async fn the_generic_protocol_passes_the_contract_on_sqlite_too() {
        let db = Db::open_in_memory().expect("db");
        let store = std::sync::Arc::new(SqliteStore::new(db.clone()));
        let queue = std::sync::Arc::new(SqliteQueue::new(db));
        let admission = webhooks_core::ports::admission::EnqueueThenClaim::new(store.clone(), queue.clone());
        webhooks_testkit::contract::admission::run_all(&admission, store.as_ref(), queue.as_ref(), "generic").await;
    }
}
