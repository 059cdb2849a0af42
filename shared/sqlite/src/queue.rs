//! The queue on the embedded SQLite database: a table of messages with a
//! visibility time, a receive count and a dead-letter flag, mirroring what
//! SQS and its redrive policy do.
//!
//! The inbox: an admitted event's first message is not a `queue` row. The
//! admission flags its record (`events.inbox = 1`) in the same row write
//! that claims it, so ingest answers after one table write per event, not
//! three (record, message, message index). The records after
//! `inbox_cursor.last_rowid` that carry the flag are the messages nobody has
//! received yet: a receive first turns up to `max` of them into ordinary
//! `queue` rows (visible now, referring to their record) and moves the
//! cursor past them (past the table's end when fewer were waiting), in one
//! transaction, then receives as usual. Rowids
//! only grow past the cursor (see the store's insert), so no flagged record
//! is skipped; and a crash on either side of that transaction leaves each
//! message either in the inbox or in the table, never in neither.

use crate::writer::{Db, DbError};
use async_trait::async_trait;
use rusqlite::params;
use std::time::Duration;
use webhooks_core::event::Event;
use webhooks_core::payload::Payload;
use webhooks_core::ports::queue::{DeadLetter, Queue, QueueError, ReceivedMessage, Redrive, RedriveGate};
use webhooks_core::time::unix_now_ms;

/// SQLite-backed [`Queue`].
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    db: Db,
}

impl SqliteQueue {
    pub(crate) fn new(db: Db) -> Self {
        Self { db }
    }

    /// Messages waiting or in flight (not dead-lettered), the inbox's included.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        Ok(self
            .db
            .call(|conn| {
                conn.query_row(
                    "SELECT (SELECT COUNT(*) FROM queue WHERE dead = 0)
                          + (SELECT COUNT(*) FROM events
                             WHERE rowid > (SELECT last_rowid FROM inbox_cursor) AND inbox = 1)",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .await? as u64)
    }
}

impl From<DbError> for QueueError {
    fn from(e: DbError) -> Self {
        QueueError::Unavailable(e.to_string())
    }
}

/// A receipt names the message and the receive it belongs to, so a stale
/// receipt (the message timed out and was received again) changes nothing.
fn receipt(id: i64, count: u32) -> String {
    format!("{id}:{count}")
}

fn parse_receipt(r: &str) -> Result<(i64, u32), QueueError> {
    let bad = || QueueError::BadMessage(format!("receipt {r} is not ours"));
    let (id, count) = r.split_once(':').ok_or_else(bad)?;
    Ok((id.parse().map_err(|_| bad())?, count.parse().map_err(|_| bad())?))
}

/// The queue messages (envelopes) of these events.
fn envelopes(events: &[&Event]) -> Result<Vec<String>, QueueError> {
    events
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QueueError::BadMessage(e.to_string()))
}

/// A message row: id, receive count, dead reason, then either an envelope
/// (`body`) or, for messages that refer to their event record instead of
/// copying its payload, the record's columns.
const MESSAGE_SELECT: &str = "SELECT q.id, q.receive_count, q.dead_reason, q.body, q.event_pk,
        e.provider, e.event_id, e.event_type, e.received_at, e.payload, q.request_id,
        e.original_type, e.original_body
    FROM queue q LEFT JOIN events e ON q.event_pk IS NOT NULL AND e.pk = q.event_pk";

/// The event a message row carries, or why it carries none.
fn message_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Event, String>> {
    let event_pk: Option<String> = r.get(4)?;
    let Some(pk) = event_pk else {
        let body: String = r.get(3)?;
        return Ok(serde_json::from_str::<Event>(&body).map_err(|e| format!("not an event envelope: {e}")));
    };
    let provider: Option<String> = r.get(5)?;
    let payload: Option<String> = r.get(9)?;
    Ok(match (provider, payload) {
        (Some(provider), Some(payload)) => Ok(Event {
            provider: provider.into(),
            id: crate::store::text(r, 6)?,
            event_type: crate::store::text(r, 7)?,
            received_at: r.get(8)?,
            payload: Payload::from_text(payload),
            request_id: r.get::<_, Option<String>>(10)?.map(Into::into),
            original: crate::store::original_from(r.get(11)?, r.get(12)?),
        }),
        _ => Err(format!("event record {pk} is gone (expired or deleted)")),
    })
}

/// Turns up to `max` inbox messages (see the module docs) into `queue` rows
/// that refer to their records, visible now, and moves the cursor past
/// them; past the whole table when fewer were waiting, so the records
/// without a message (IGNORED, claimed by the generic protocol) are read
/// once at most. Inside the caller's transaction.
fn take_inbox(conn: &rusqlite::Connection, max: usize, now_ms: i64) -> rusqlite::Result<()> {
    let cursor: i64 = conn
        .prepare_cached("SELECT last_rowid FROM inbox_cursor")?
        .query_row([], |r| r.get(0))?;
    let taken: Vec<(i64, String, Option<String>, i64)> = conn
        .prepare_cached(
            "SELECT rowid, pk, request_id, received_at FROM events
             WHERE rowid > ?1 AND inbox = 1 ORDER BY rowid LIMIT ?2",
        )?
        .query_map(params![cursor, max as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO queue (body, event_pk, request_id, visible_at_ms, enqueued_at) VALUES ('', ?1, ?2, ?3, ?4)",
    )?;
    for (_, pk, request_id, received_at) in &taken {
        insert.execute(params![pk, request_id, now_ms, received_at.saturating_mul(1000)])?;
    }
    if taken.len() < max {
        // The query read to the end of the table: nothing past it waits.
        // (Written only when it moves: an idle poll writes nothing.)
        conn.prepare_cached(
            "UPDATE inbox_cursor SET last_rowid = (SELECT MAX(rowid) FROM events)
             WHERE last_rowid < (SELECT IFNULL(MAX(rowid), 0) FROM events)",
        )?
        .execute([])?;
    } else if let Some(&(last, ..)) = taken.last() {
        conn.prepare_cached("UPDATE inbox_cursor SET last_rowid = ?1")?
            .execute([last])?;
    }
    Ok(())
}

/// Appends messages, visible now, inside the caller's transaction.
fn enqueue_in(conn: &rusqlite::Connection, bodies: &[String], now_ms: i64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("INSERT INTO queue (body, visible_at_ms, enqueued_at) VALUES (?1, ?2, ?2)")?;
    for body in bodies {
        stmt.execute(params![body, now_ms])?;
    }
    Ok(())
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, events: &[&Event]) -> Result<(), QueueError> {
        let bodies = envelopes(events)?;
        let now = unix_now_ms();
        self.db.call(move |conn| enqueue_in(conn, &bodies, now)).await?;
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let now = unix_now_ms();
        let hidden_until = now + visibility.as_millis() as i64;
        let rows: Vec<(i64, u32, Result<Event, String>)> = self
            .db
            .call(move |conn| {
                take_inbox(conn, max, now)?;
                let rows: Vec<(i64, u32, Result<Event, String>)> = {
                    let mut stmt = conn.prepare_cached(&format!(
                        "{MESSAGE_SELECT} WHERE q.dead = 0 AND q.visible_at_ms <= ?1 ORDER BY q.visible_at_ms, q.id LIMIT ?2"
                    ))?;
                    let mapped = stmt.query_map(params![now, max as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, message_event(r)?))
                    })?;
                    mapped.collect::<Result<_, _>>()?
                };
                let mut hide =
                    conn.prepare_cached("UPDATE queue SET visible_at_ms = ?2, receive_count = receive_count + 1 WHERE id = ?1")?;
                let mut park = conn.prepare_cached("UPDATE queue SET dead = 1, dead_reason = ?2 WHERE id = ?1")?;
                for (id, _, event) in &rows {
                    match event {
                        Ok(_) => hide.execute(params![id, hidden_until])?,
                        // Nothing can ever process it: park it in the dead letters.
                        Err(reason) => park.execute(params![id, reason])?,
                    };
                }
                Ok(rows)
            })
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, count, event)| {
                let count = count + 1;
                Some(ReceivedMessage {
                    event: event.ok()?,
                    receipt: receipt(id, count),
                    message_id: id.to_string(),
                    receive_count: count,
                })
            })
            .collect())
    }

    async fn ack(&self, message: &ReceivedMessage) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(&message.receipt)?;
        self.db
            .call(move |conn| {
                conn.execute(
                    "DELETE FROM queue WHERE id = ?1 AND receive_count = ?2",
                    params![id, count],
                )
            })
            .await?;
        Ok(())
    }

    async fn retry_after(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(&message.receipt)?;
        let visible = unix_now_ms() + delay.as_millis() as i64;
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE queue SET visible_at_ms = ?3 WHERE id = ?1 AND receive_count = ?2",
                    params![id, count, visible],
                )
            })
            .await?;
        Ok(())
    }

    async fn retry_fresh(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(&message.receipt)?;
        let visible = unix_now_ms() + delay.as_millis() as i64;
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE queue SET visible_at_ms = ?3, receive_count = 0 WHERE id = ?1 AND receive_count = ?2",
                    params![id, count, visible],
                )
            })
            .await?;
        Ok(())
    }

    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(&message.receipt)?;
        let reason = reason.to_string();
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE queue SET dead = 1, dead_reason = ?3 WHERE id = ?1 AND receive_count = ?2",
                    params![id, count, reason],
                )
            })
            .await?;
        Ok(())
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let rows: Vec<(Result<Event, String>, Option<String>)> = self
            .db
            .call(move |conn| {
                let mut stmt =
                    conn.prepare_cached(&format!("{MESSAGE_SELECT} WHERE q.dead = 1 ORDER BY q.id LIMIT ?1"))?;
                let rows = stmt.query_map([max as i64], |r| Ok((message_event(r)?, r.get(2)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(event, reason)| {
                Ok(DeadLetter {
                    event: event.map_err(QueueError::BadMessage)?,
                    reason: reason.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn redrive(&self, max: usize, gate: &dyn RedriveGate) -> Result<Vec<Event>, QueueError> {
        let dead: Vec<(i64, Result<Event, String>)> = self
            .db
            .call(|conn| {
                let mut stmt = conn.prepare_cached(&format!("{MESSAGE_SELECT} WHERE q.dead = 1 ORDER BY q.id"))?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, message_event(r)?)))?;
                rows.collect()
            })
            .await?;
        let mut moved = Vec::new();
        // Messages that are not events stay parked, for a person to look at.
        for (id, event) in dead.into_iter().filter_map(|(id, e)| Some((id, e.ok()?))) {
            if moved.len() >= max {
                break;
            }
            match gate.decide(&event).await {
                Redrive::Keep => {}
                Redrive::Send => {
                    let now = unix_now_ms();
                    let revived = self
                        .db
                        .call(move |conn| {
                            conn.execute(
                                "UPDATE queue SET dead = 0, dead_reason = NULL, receive_count = 0, visible_at_ms = ?2
                                 WHERE id = ?1 AND dead = 1",
                                params![id, now],
                            )
                        })
                        .await?;
                    if revived == 1 {
                        moved.push(event);
                    }
                }
                Redrive::Discard => {
                    self.db
                        .call(move |conn| conn.execute("DELETE FROM queue WHERE id = ?1 AND dead = 1", [id]))
                        .await?;
                }
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_queue_contract() {
        let q = SqliteQueue::new(Db::open_in_memory().unwrap());
        webhooks_testkit::contract::queue::run_all(&q).await;
    }
}
