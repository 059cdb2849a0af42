//! The event store on the embedded SQLite database. Every check-and-write is
//! one `BEGIN IMMEDIATE` transaction, the local equivalent of a DynamoDB
//! conditional write.

use crate::writer::{Db, DbError};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use webhooks_core::event::{
    bound_history, history_from_json, history_to_json, Event, EventKey, EventRecord, EventState,
};
use webhooks_core::payload::{OriginalBody, Payload};
use webhooks_core::ports::store::{
    busy_until, counts_as_gone, Claim, ClaimOutcome, EventStore, LeaseOutcome, ListFilter, Requeue, Settlement,
    StoreError,
};

/// SQLite-backed [`EventStore`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: Db,
}

impl SqliteStore {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

const COLUMNS: &str = "provider, event_id, event_type, state, attempts, last_error, received_at, updated_at, lease_until, expires_at, payload, payload_omitted, results, history, next_attempt_at, original_type, original_body";

/// A text column as a shared string.
pub(crate) fn text(row: &Row<'_>, column: usize) -> rusqlite::Result<bytestring::ByteString> {
    row.get::<_, String>(column).map(Into::into)
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
    let state: String = row.get(3)?;
    let results: String = row.get(12)?;
    Ok(EventRecord {
        provider: text(row, 0)?,
        event_id: text(row, 1)?,
        event_type: text(row, 2)?,
        state: EventState::parse(&state).unwrap_or(EventState::Received),
        attempts: row.get(4)?,
        last_error: row.get(5)?,
        received_at: row.get(6)?,
        updated_at: row.get(7)?,
        lease_until: row.get(8)?,
        expires_at: row.get(9)?,
        payload: row.get::<_, Option<String>>(10)?.map(Payload::from_text),
        payload_omitted: row.get::<_, i64>(11)? != 0,
        original: original_from(row.get(15)?, row.get(16)?),
        results: serde_json::from_str(&results).unwrap_or_default(),
        history: history_from_json(&row.get::<_, String>(13)?),
        next_attempt_at: row.get(14)?,
    })
}

/// The original body of a row, from its two columns (both or neither).
pub(crate) fn original_from(content_type: Option<String>, body: Option<Vec<u8>>) -> Option<OriginalBody> {
    Some(OriginalBody {
        content_type: content_type?,
        body: body?.into(),
    })
}

fn fetch(conn: &Connection, pk: &str) -> rusqlite::Result<Option<EventRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM events WHERE pk = ?1"),
        [pk],
        record_from_row,
    )
    .optional()
}

/// How [`insert`] treats an existing record with the same key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnExisting {
    Replace,
    Keep,
}

/// The columns of a new record that do not come from its event.
#[derive(Clone, Copy)]
struct Fresh {
    state: EventState,
    attempts: u32,
    now: i64,
    lease_until: Option<i64>,
    ttl_secs: i64,
}

/// Writes a record; returns whether it was written (with `Keep`, an
/// existing record stays and nothing is written).
///
/// `inbox`: the record is admitted with its first queue message folded in
/// (see [`crate::queue`]): it is flagged, keeps the delivering request's id,
/// and gets a rowid past the queue's inbox cursor even when the rows at the
/// top of the table were deleted (SQLite would otherwise reuse their rowids,
/// and a reused rowid behind the cursor would never be read as a message).
fn insert(
    conn: &Connection,
    on_existing: OnExisting,
    event: &Event,
    fresh: Fresh,
    inbox: bool,
) -> rusqlite::Result<bool> {
    let Fresh {
        state,
        attempts,
        now,
        lease_until,
        ttl_secs,
    } = fresh;
    // One statement text per case, built at compile time.
    macro_rules! insert_sql {
        ($verb:literal, $rowid:literal, $tail:literal) => {
            concat!(
                $verb,
                " INTO events (pk, provider, event_id, event_type, state, attempts, received_at, updated_at,
                               lease_until, expires_at, payload, inbox, request_id, original_type, original_body, rowid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ",
                $rowid,
                ")",
                $tail
            )
        };
    }
    // The next rowid past both the table's top and the inbox cursor.
    macro_rules! past_cursor_sql {
        ($verb:literal, $tail:literal) => {
            insert_sql!(
                $verb,
                "MAX(IFNULL((SELECT MAX(rowid) FROM events), 0), (SELECT last_rowid FROM inbox_cursor)) + 1",
                $tail
            )
        };
    }
    let sql = match (on_existing, inbox) {
        (OnExisting::Replace, true) => past_cursor_sql!("INSERT OR REPLACE", ""),
        (OnExisting::Replace, false) => insert_sql!("INSERT OR REPLACE", "NULL", ""),
        (OnExisting::Keep, true) => past_cursor_sql!("INSERT", " ON CONFLICT(pk) DO NOTHING"),
        (OnExisting::Keep, false) => insert_sql!("INSERT", "NULL", " ON CONFLICT(pk) DO NOTHING"),
    };
    let written = conn.prepare_cached(sql)?.execute(params![
        event.pk(),
        &*event.provider,
        &*event.id,
        &*event.event_type,
        state.as_str(),
        attempts,
        now,
        lease_until,
        now + ttl_secs,
        event.payload.as_str(),
        inbox,
        if inbox { event.request_id.as_deref() } else { None },
        event.original.as_ref().map(|o| o.content_type.as_str()),
        event.original.as_ref().map(|o| &o.body[..]),
    ])?;
    Ok(written == 1)
}

/// The claim, inside the caller's transaction: creates the record in
/// `state` unless one exists; takes over a RECEIVED record whose lease has
/// expired (its claimant died before enqueueing) and one that
/// [`counts_as_gone`]. Shared by the store's
/// claim and the admission that claims and enqueues in one transaction
/// (`inbox`: the record carries its first queue message, see [`insert`]).
pub(crate) fn claim_in(
    conn: &Connection,
    event: &Event,
    state: EventState,
    inbox: bool,
    (now, lease_secs, ttl_secs): (i64, i64, i64),
) -> rusqlite::Result<ClaimOutcome> {
    let fresh = Fresh {
        state,
        attempts: 0,
        now,
        lease_until: (state == EventState::Received).then_some(now + lease_secs),
        ttl_secs,
    };
    // The common case, a new event, in one statement.
    if insert(conn, OnExisting::Keep, event, fresh, inbox)? {
        return Ok(ClaimOutcome::Claimed);
    }
    let found = fetch_claim_state(conn, &event.pk())?.filter(|f| !counts_as_gone(f.state, f.expires_at, now));
    Ok(match found {
        None => {
            insert(conn, OnExisting::Replace, event, fresh, inbox)?;
            ClaimOutcome::Claimed
        }
        Some(found) if found.state == EventState::Received && found.lease_until.unwrap_or(0) <= now => {
            let attempts = found.attempts;
            insert(conn, OnExisting::Replace, event, Fresh { attempts, ..fresh }, inbox)?;
            ClaimOutcome::Claimed
        }
        Some(found) if found.state == EventState::Received => ClaimOutcome::InFlight,
        Some(found) => ClaimOutcome::Duplicate(found.state),
    })
}

/// Only what the claim decides on, without reading the payload back.
struct ClaimState {
    state: EventState,
    attempts: u32,
    lease_until: Option<i64>,
    expires_at: i64,
}

fn fetch_claim_state(conn: &Connection, pk: &str) -> rusqlite::Result<Option<ClaimState>> {
    conn.prepare_cached("SELECT state, attempts, lease_until, expires_at FROM events WHERE pk = ?1")?
        .query_row([pk], |row| {
            let state: String = row.get(0)?;
            Ok(ClaimState {
                state: EventState::parse(&state).unwrap_or(EventState::Received),
                attempts: row.get(1)?,
                lease_until: row.get(2)?,
                expires_at: row.get(3)?,
            })
        })
        .optional()
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn claim(&self, claim: Claim<'_>) -> Result<ClaimOutcome, StoreError> {
        let event = claim.event.clone();
        let (state, now, lease, ttl) = (claim.state, claim.now, claim.lease_secs, claim.ttl_secs);
        Ok(self
            .db
            .call(move |conn| claim_in(conn, &event, state, false, (now, lease, ttl)))
            .await?)
    }

    async fn discard(&self, key: &EventKey) -> Result<bool, StoreError> {
        let pk = key.as_string();
        let deleted = self
            .db
            .call(move |conn| conn.execute("DELETE FROM events WHERE pk = ?1 AND state = 'FAILED'", [&pk]))
            .await?;
        Ok(deleted > 0)
    }

    async fn lease(&self, event: &Event, now: i64, lease_secs: i64, ttl_secs: i64) -> Result<LeaseOutcome, StoreError> {
        let event = event.clone();
        Ok(self
            .db
            .call(move |conn| {
                let pk = event.pk();
                let found = fetch(conn, &pk)?.filter(|r| !counts_as_gone(r.state, r.expires_at, now));
                let outcome = match found {
                    None => {
                        let fresh = Fresh {
                            state: EventState::Processing,
                            attempts: 1,
                            now,
                            lease_until: Some(now + lease_secs),
                            ttl_secs,
                        };
                        insert(conn, OnExisting::Replace, &event, fresh, false)?;
                        LeaseOutcome::Leased(fetch(conn, &pk)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?)
                    }
                    Some(r) if matches!(r.state, EventState::Done | EventState::Failed | EventState::Ignored) => {
                        LeaseOutcome::Finished(r.state)
                    }
                    Some(r) => match busy_until(&r, now) {
                        Some(until) => LeaseOutcome::Busy { until },
                        None => {
                            conn.execute(
                                "UPDATE events SET state = 'PROCESSING', attempts = attempts + 1, lease_until = ?2, updated_at = ?3, next_attempt_at = NULL, expires_at = ?4 WHERE pk = ?1",
                                params![pk, now + lease_secs, now, now + ttl_secs],
                            )?;
                            LeaseOutcome::Leased(fetch(conn, &pk)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?)
                        }
                    },
                };
                Ok(outcome)
            })
            .await?)
    }

    async fn settle(&self, key: &EventKey, s: Settlement) -> Result<(), StoreError> {
        let pk = key.as_string();
        let next_attempt_at = s.stored_next_attempt_at();
        let results = serde_json::Value::Object(s.results).to_string();
        let history = history_to_json(&bound_history(s.history));
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE events SET state = ?2, last_error = COALESCE(?3, last_error), results = ?4, lease_until = NULL, updated_at = ?5,
                            history = ?6, next_attempt_at = ?7
                     WHERE pk = ?1 AND state = 'PROCESSING'",
                    params![pk, s.state.as_str(), s.error, results, s.now, history, next_attempt_at],
                )
            })
            .await?;
        Ok(())
    }

    async fn requeue(&self, key: &EventKey, now: i64) -> Result<Requeue, StoreError> {
        let pk = key.as_string();
        Ok(self
            .db
            .call(move |conn| {
                conn.execute(
                    "UPDATE events SET state = 'QUEUED', attempts = 0, lease_until = NULL, next_attempt_at = NULL, updated_at = ?2
                     WHERE pk = ?1 AND NOT (state = 'PROCESSING' AND lease_until > ?2)",
                    params![pk, now],
                )?;
                Ok(match fetch(conn, &pk)? {
                    None => Requeue::Missing,
                    Some(rec) if rec.state == EventState::Processing => Requeue::Busy {
                        until: rec.lease_until.unwrap_or(now),
                    },
                    Some(rec) => Requeue::Requeued(rec),
                })
            })
            .await?)
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        let pk = key.as_string();
        Ok(self.db.call(move |conn| fetch(conn, &pk)).await?)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        let state = filter.state.map(|s| s.as_str().to_string());
        let provider = filter.provider.clone();
        let (event_type, since) = (filter.event_type.clone(), filter.since);
        let limit = if filter.limit == 0 { 100 } else { filter.limit } as i64;
        Ok(self
            .db
            .call(move |conn| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT {COLUMNS} FROM events
                     WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR provider = ?2)
                       AND (?3 IS NULL OR event_type = ?3) AND (?4 IS NULL OR received_at >= ?4)
                     ORDER BY rowid DESC LIMIT ?5"
                ))?;
                let rows = stmt.query_map(params![state, provider, event_type, since, limit], record_from_row)?;
                rows.collect()
            })
            .await?)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        Ok(self
            .db
            // Only finished records expire: a dead letter (FAILED) stays until it
            // is replayed or discarded, a queued event until it is processed.
            //
            // The expiry index holds finished records only (a partial index):
            // ingest writes QUEUED records and does not touch it; the
            // processor's settle, already rewriting the row, adds the entry.
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM events WHERE expires_at <= ?1 AND state IN ('DONE', 'IGNORED')",
                    [now],
                )
            })
            .await? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_store_contract() {
        let store = SqliteStore::new(Db::open_in_memory().unwrap());
        webhooks_testkit::contract::store::run_all(&store).await;
    }

    #[tokio::test]
    async fn records_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let ev = webhooks_testkit::fixtures::event("p", "e1", "t");
        {
            let store = SqliteStore::new(Db::open(&path, crate::writer::Durability::Normal).unwrap());
            let claim = Claim {
                event: &ev,
                state: EventState::Received,
                now: 100,
                lease_secs: 30,
                ttl_secs: 1000,
            };
            assert_eq!(store.claim(claim).await.unwrap(), ClaimOutcome::Claimed);
        }
        let store = SqliteStore::new(Db::open(&path, crate::writer::Durability::Full).unwrap());
        let rec = store.get(&ev.key()).await.unwrap().unwrap();
        assert_eq!(rec.state, EventState::Received);
        assert_eq!(rec.payload.as_ref().map(|p| p.as_str()), Some(ev.payload.as_str()));
    }
}
