//! The queue on the embedded SQLite database: a table of messages with a
//! visibility time, a receive count and a dead-letter flag, mirroring what
//! SQS and its redrive policy do.

use super::{DeadLetter, Delivery, Queue, QueueError};
use crate::db::{Db, DbError};
use crate::event::Event;
use crate::time::unix_now_ms;
use async_trait::async_trait;
use rusqlite::params;
use std::time::Duration;

/// SQLite-backed [`Queue`].
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    db: Db,
}

impl SqliteQueue {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Messages waiting or in flight (not dead-lettered).
    pub async fn depth(&self) -> Result<u64, QueueError> {
        Ok(self
            .db
            .call(|conn| conn.query_row("SELECT COUNT(*) FROM queue WHERE dead = 0", [], |r| r.get::<_, i64>(0)))
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
pub(crate) fn envelopes(events: &[Event]) -> Result<Vec<String>, QueueError> {
    events
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| QueueError::BadMessage(e.to_string()))
}

/// Appends messages, visible now, inside the caller's transaction.
pub(crate) fn enqueue_in(conn: &rusqlite::Connection, bodies: &[String], now_ms: i64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("INSERT INTO queue (body, visible_at_ms, enqueued_at) VALUES (?1, ?2, ?2)")?;
    for body in bodies {
        stmt.execute(params![body, now_ms])?;
    }
    Ok(())
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, events: &[Event]) -> Result<(), QueueError> {
        let bodies = envelopes(events)?;
        let now = unix_now_ms();
        self.db.call(move |conn| enqueue_in(conn, &bodies, now)).await?;
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError> {
        let now = unix_now_ms();
        let hidden_until = now + visibility.as_millis() as i64;
        let rows: Vec<(i64, String, u32)> = self
            .db
            .call(move |conn| {
                let rows: Vec<(i64, String, u32)> = {
                    let mut stmt = conn.prepare_cached(
                        "SELECT id, body, receive_count FROM queue WHERE dead = 0 AND visible_at_ms <= ?1
                         ORDER BY visible_at_ms, id LIMIT ?2",
                    )?;
                    let mapped = stmt.query_map(params![now, max as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                    mapped.collect::<Result<_, _>>()?
                };
                {
                    let mut upd = conn.prepare_cached(
                        "UPDATE queue SET visible_at_ms = ?2, receive_count = receive_count + 1 WHERE id = ?1",
                    )?;
                    for (id, _, _) in &rows {
                        upd.execute(params![id, hidden_until])?;
                    }
                }
                Ok(rows)
            })
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, body, count) in rows {
            let count = count + 1;
            match serde_json::from_str::<Event>(&body) {
                Ok(event) => out.push(Delivery {
                    event,
                    receipt: receipt(id, count),
                    message_id: id.to_string(),
                    receive_count: count,
                }),
                Err(e) => {
                    // Not an envelope: nothing can process it, so park it.
                    let reason = format!("not an event envelope: {e}");
                    self.db
                        .call(move |conn| {
                            conn.execute(
                                "UPDATE queue SET dead = 1, dead_reason = ?2 WHERE id = ?1",
                                params![id, reason],
                            )
                        })
                        .await?;
                }
            }
        }
        Ok(out)
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(&delivery.receipt)?;
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

    async fn retry_after(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(&delivery.receipt)?;
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

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError> {
        let (id, count) = parse_receipt(&delivery.receipt)?;
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
        let rows: Vec<(String, Option<String>)> = self
            .db
            .call(move |conn| {
                let mut stmt =
                    conn.prepare_cached("SELECT body, dead_reason FROM queue WHERE dead = 1 ORDER BY id LIMIT ?1")?;
                let rows = stmt.query_map([max as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await?;
        rows.into_iter()
            .map(|(body, reason)| {
                let event = serde_json::from_str(&body).map_err(|e| QueueError::BadMessage(e.to_string()))?;
                Ok(DeadLetter {
                    event,
                    reason: reason.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn redrive(&self, max: usize) -> Result<Vec<Event>, QueueError> {
        let now = unix_now_ms();
        let bodies: Vec<String> = self
            .db
            .call(move |conn| {
                let rows: Vec<(i64, String)> = {
                    let mut stmt = conn.prepare_cached("SELECT id, body FROM queue WHERE dead = 1 ORDER BY id LIMIT ?1")?;
                    let mapped = stmt.query_map([max as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    mapped.collect::<Result<_, _>>()?
                };
                for (id, _) in &rows {
                    conn.execute(
                        "UPDATE queue SET dead = 0, dead_reason = NULL, receive_count = 0, visible_at_ms = ?2 WHERE id = ?1",
                        params![id, now],
                    )?;
                }
                Ok(rows.into_iter().map(|(_, b)| b).collect())
            })
            .await?;
        Ok(bodies.iter().filter_map(|b| serde_json::from_str(b).ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_queue_contract() {
        let q = SqliteQueue::new(Db::open_in_memory().unwrap());
        crate::queue::contract::run_all(&q).await;
    }
}
