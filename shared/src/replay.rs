//! Operator replays: one event, or the dead-letter queue, back on the queue.
//!
//! Shared by `webhooks replay` and the processor Lambda's `redrive` command,
//! so the order that keeps a replay from being lost lives in one place: the
//! record is reset to QUEUED *before* its message is back on the queue. The
//! other order loses the event: a processor that receives the message while
//! the record still says FAILED skips it as finished and deletes it.

use crate::event::{Event, EventKey, EventState};
use crate::queue::{Queue, QueueError, Redrive, RedriveGate};
use crate::store::{EventStore, Requeue, StoreError};
use async_trait::async_trait;
use tracing::{info, warn};

/// Why an event could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no event {0}")]
    NotFound(EventKey),
    #[error("event {0} is DONE: every handler succeeded, and none runs twice")]
    AlreadyDone(EventKey),
    #[error("event {key} is being processed (lease until {until}); try again after it")]
    Busy { key: EventKey, until: i64 },
    #[error("event {0} has no stored payload to replay (it was over the store's item limit)")]
    NoPayload(EventKey),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How a single replay reached the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    /// Its dead-lettered message was moved back (no second copy is left parked).
    FromDeadLetters,
    /// A new message was sent from the stored record.
    Sent,
}

/// Puts one event back on the queue. DONE events are refused (their
/// handlers all succeeded, and the processor never repeats a success);
/// FAILED, IGNORED (say, after a handler was added for its type) and
/// waiting ones are reset to QUEUED with their attempts at zero.
pub async fn replay_event(
    store: &dyn EventStore,
    queue: &dyn Queue,
    key: &EventKey,
    now: i64,
) -> Result<Replayed, ReplayError> {
    match store.get(key).await? {
        None => return Err(ReplayError::NotFound(key.clone())),
        Some(rec) if rec.state == EventState::Done => return Err(ReplayError::AlreadyDone(key.clone())),
        Some(_) => {}
    }
    let record = match store.requeue(key, now).await? {
        Requeue::Requeued(record) => record,
        Requeue::Missing => return Err(ReplayError::NotFound(key.clone())),
        Requeue::Busy { until } => {
            return Err(ReplayError::Busy {
                key: key.clone(),
                until,
            })
        }
    };
    let only = OnlyThis(key);
    if !queue.redrive(usize::MAX, &only).await?.is_empty() {
        return Ok(Replayed::FromDeadLetters);
    }
    let event = record.to_event().ok_or_else(|| ReplayError::NoPayload(key.clone()))?;
    queue.send(&[&event]).await?;
    Ok(Replayed::Sent)
}

/// Moves up to `max` dead-lettered events back to the queue, each record
/// reset to QUEUED first; dead letters of events that are DONE by now are
/// discarded, those of events being processed are left for later. Returns
/// the keys moved.
pub async fn redrive_dead_letters(
    store: &dyn EventStore,
    queue: &dyn Queue,
    max: usize,
    now: i64,
) -> Result<Vec<EventKey>, QueueError> {
    let gate = RequeueFirst { store, now };
    let moved = queue.redrive(max, &gate).await?;
    Ok(moved.iter().map(Event::key).collect())
}

/// Moves only the dead letters of one event (its record is already reset).
struct OnlyThis<'a>(&'a EventKey);

#[async_trait]
impl RedriveGate for OnlyThis<'_> {
    async fn decide(&self, event: &Event) -> Redrive {
        if event.provider == self.0.provider && event.id == self.0.id {
            Redrive::Send
        } else {
            Redrive::Keep
        }
    }
}

/// Resets each dead letter's record before its message moves.
struct RequeueFirst<'a> {
    store: &'a dyn EventStore,
    now: i64,
}

#[async_trait]
impl RedriveGate for RequeueFirst<'_> {
    async fn decide(&self, event: &Event) -> Redrive {
        let key = event.key();
        match self.store.get(&key).await {
            Ok(Some(rec)) if rec.state == EventState::Done => {
                info!(event = %key, "dead letter of an event that is DONE: discarded");
                return Redrive::Discard;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(event = %key, error = %e, "store unavailable; dead letter left for the next redrive");
                return Redrive::Keep;
            }
        }
        match self.store.requeue(&key, self.now).await {
            // Missing: the record expired; the processor recreates it from the envelope.
            Ok(Requeue::Requeued(_)) | Ok(Requeue::Missing) => Redrive::Send,
            Ok(Requeue::Busy { until }) => {
                info!(event = %key, until, "being processed; dead letter left for the next redrive");
                Redrive::Keep
            }
            Err(e) => {
                warn!(event = %key, error = %e, "store unavailable; dead letter left for the next redrive");
                Redrive::Keep
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::memory::MemoryQueue;
    use crate::store::contract::claim_as;
    use crate::store::contract::event;
    use crate::store::memory::MemoryStore;
    use crate::store::{LeaseOutcome, Settlement};
    use std::time::Duration;

    /// Claims, queues, receives and settles `ev` in `state`, dead-lettering
    /// its message when FAILED.
    async fn settled(store: &MemoryStore, queue: &MemoryQueue, ev: &Event, state: EventState) {
        store
            .claim(claim_as(ev, EventState::Received, 100, 1000))
            .await
            .expect("claim");
        queue.send(&[ev]).await.expect("send");
        let delivery = queue
            .receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .into_iter()
            .find(|d| d.event.id == ev.id)
            .expect("delivery");
        assert!(matches!(
            store.lease(ev, 100, 60, 1000).await.expect("lease"),
            LeaseOutcome::Leased(_)
        ));
        let settlement = Settlement {
            state,
            error: None,
            results: serde_json::Map::new(),
            now: 101,
        };
        store.settle(&ev.key(), settlement).await.expect("settle");
        match state {
            EventState::Failed => queue.dead_letter(&delivery, "permanent").await.expect("dead letter"),
            _ => queue.ack(&delivery).await.expect("ack"),
        }
    }

    #[tokio::test]
    async fn redrive_resets_records_before_messages_move_and_drops_stale_ones() {
        let (store, queue) = (MemoryStore::new(), MemoryQueue::new());
        let failed = event("p", "failed", "t");
        let done = event("p", "done", "t");
        settled(&store, &queue, &failed, EventState::Failed).await;
        settled(&store, &queue, &done, EventState::Failed).await;
        // The second one was processed after all (another copy): DONE now.
        store.requeue(&done.key(), 102).await.expect("requeue");
        store.lease(&done, 102, 60, 1000).await.expect("lease");
        let settlement = Settlement {
            state: EventState::Done,
            error: None,
            results: serde_json::Map::new(),
            now: 103,
        };
        store.settle(&done.key(), settlement).await.expect("settle");

        let moved = redrive_dead_letters(&store, &queue, 10, 200).await.expect("redrive");
        assert_eq!(moved, vec![failed.key()]);
        let rec = store.get(&failed.key()).await.expect("get").expect("record");
        assert_eq!((rec.state, rec.attempts), (EventState::Queued, 0));
        assert!(
            queue.dead_letters(10).await.expect("list").is_empty(),
            "the DONE one was discarded"
        );
        assert_eq!(queue.depth(), 1);
    }

    #[tokio::test]
    async fn replaying_a_dead_lettered_event_moves_its_message_instead_of_copying_it() {
        let (store, queue) = (MemoryStore::new(), MemoryQueue::new());
        let ev = event("p", "e1", "t");
        settled(&store, &queue, &ev, EventState::Failed).await;
        assert_eq!(
            replay_event(&store, &queue, &ev.key(), 200).await.expect("replay"),
            Replayed::FromDeadLetters
        );
        assert!(queue.dead_letters(10).await.expect("list").is_empty());
        assert_eq!(queue.depth(), 1, "one message, not two");
        assert_eq!(
            store.get(&ev.key()).await.expect("get").expect("record").state,
            EventState::Queued
        );
    }

    #[tokio::test]
    async fn replay_refuses_done_missing_and_busy_events() {
        let (store, queue) = (MemoryStore::new(), MemoryQueue::new());
        let done = event("p", "done", "t");
        settled(&store, &queue, &done, EventState::Done).await;
        assert!(matches!(
            replay_event(&store, &queue, &done.key(), 200).await,
            Err(ReplayError::AlreadyDone(_))
        ));
        let missing = EventKey::new("p", "nope");
        assert!(matches!(
            replay_event(&store, &queue, &missing, 200).await,
            Err(ReplayError::NotFound(_))
        ));
        let busy = event("p", "busy", "t");
        store
            .claim(claim_as(&busy, EventState::Received, 100, 1000))
            .await
            .expect("claim");
        store.lease(&busy, 100, 60, 1000).await.expect("lease");
        assert!(matches!(
            replay_event(&store, &queue, &busy.key(), 120).await,
            Err(ReplayError::Busy { until: 160, .. })
        ));
        assert_eq!(queue.depth(), 0, "nothing was sent for any of them");
    }

    #[tokio::test]
    async fn replaying_an_ignored_event_sends_it_from_its_record() {
        let (store, queue) = (MemoryStore::new(), MemoryQueue::new());
        let ev = event("p", "ignored", "t");
        store
            .claim(claim_as(&ev, EventState::Ignored, 100, 1000))
            .await
            .expect("claim");
        assert_eq!(
            replay_event(&store, &queue, &ev.key(), 200).await.expect("replay"),
            Replayed::Sent
        );
        let got = queue.receive(10, Duration::from_secs(30)).await.expect("receive");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event.payload.as_str(), ev.payload.as_str());
    }
}
