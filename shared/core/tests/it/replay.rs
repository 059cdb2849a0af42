//! Replays: the record reset before the message moves.

use std::time::Duration;
use webhooks_core::event::{Event, EventKey, EventState};
use webhooks_core::pipeline::replay::*;
use webhooks_core::ports::queue::{DeadLetter, Queue, QueueError, ReceivedMessage, Redrive, RedriveGate};
use webhooks_core::ports::store::EventStore;
use webhooks_core::ports::store::{LeaseOutcome, Settlement};
use webhooks_testkit::fixtures::claim_as;
use webhooks_testkit::fixtures::event;
use webhooks_testkit::memory::queue::MemoryQueue;
use webhooks_testkit::memory::store::MemoryStore;

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
        history: Vec::new(),
        next_attempt_at: None,
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
        history: Vec::new(),
        next_attempt_at: None,
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

/// A queue whose redrive fails on its `fail_on`-th move (after the gate has
/// reset that record), as SQS does when it goes away part-way.
struct FailsOnMove {
    inner: MemoryQueue,
    fail_on: usize,
}

#[async_trait::async_trait]
impl Queue for FailsOnMove {
    async fn send(&self, events: &[&Event]) -> Result<(), QueueError> {
        self.inner.send(events).await
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
    async fn redrive(&self, _max: usize, gate: &dyn RedriveGate) -> Result<Vec<Event>, QueueError> {
        let mut moved = Vec::new();
        for letter in self.inner.dead_letters(usize::MAX).await? {
            if gate.decide(&letter.event).await == Redrive::Send {
                if moved.len() + 1 == self.fail_on {
                    return Err(QueueError::Unavailable("queue went away".into()));
                }
                moved.push(letter.event);
            }
        }
        Ok(moved)
    }
}

struct Quiet;

impl RedriveObserver for Quiet {
    fn step(&self, _: &RedriveStep) {}
}

#[tokio::test]
async fn a_redrive_the_queue_stops_part_way_keeps_its_counts_and_names_the_failed_one() {
    let (store, inner) = (MemoryStore::new(), MemoryQueue::new());
    for id in ["e1", "e2", "e3"] {
        settled(&store, &inner, &event("p", id, "t"), EventState::Failed).await;
    }
    let order: Vec<EventKey> = inner
        .dead_letters(10)
        .await
        .expect("list")
        .iter()
        .map(|l| l.event.key())
        .collect();
    let queue = FailsOnMove { inner, fail_on: 2 };
    let failed = redrive_dead_letters_observed(&store, &queue, 10, 200, &Quiet)
        .await
        .expect_err("the queue failed");
    assert_eq!(failed.summary.moved, vec![order[0].clone()]);
    assert_eq!(failed.summary.failed, vec![order[1].clone()]);
    assert_eq!(failed.source.to_string(), "queue unavailable: queue went away");
    let state = |k: &EventKey| {
        let k = k.clone();
        let store = &store;
        async move { store.get(&k).await.expect("get").expect("record").state }
    };
    assert_eq!(state(&order[2]).await, EventState::Failed, "not reached: untouched");
    assert_eq!(
        redrive_dead_letters(&store, &queue.inner, 10, 201)
            .await
            .expect("redrive"),
        order,
        "the next redrive moves every one still parked"
    );
}
