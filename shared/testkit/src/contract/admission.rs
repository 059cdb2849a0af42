//! The contract every [`Admission`] adapter must pass, with the queue it feeds
//! (empty at the start) and the store it records in.

use crate::fixtures::event;
use std::time::Duration;
use webhooks_core::event::{Event, EventState};
use webhooks_core::ports::admission::{Admission, AdmissionBatch};
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::store::{ClaimOutcome, EventStore};

fn batch_of(events: &[(Event, EventState)], now: i64) -> AdmissionBatch {
    AdmissionBatch {
        events: events.into(),
        now,
        claim_lease_secs: 30,
        ttl_secs: 86_400,
    }
}

/// Runs every check. `prefix` keeps ids apart when the backing store is shared.
pub async fn run_all(admission: &dyn Admission, store: &dyn EventStore, queue: &dyn Queue, prefix: &str) {
    // Ingest stamps an event with the time it admits it.
    let at = |received_at: i64, id: &str, event_type: &str| Event {
        received_at,
        ..event(&format!("{prefix}-in"), id, event_type)
    };
    // A form event: its original body travels with it, through the record
    // when the queue message refers to it (SQLite) or in the envelope (SQS).
    let fresh = Event {
        original: Some(webhooks_core::payload::OriginalBody {
            content_type: "application/x-www-form-urlencoded".into(),
            body: bytes::Bytes::from_static(b"id=new-1&type=has.handlers&x=\xfe"),
        }),
        ..at(100, "new-1", "has.handlers")
    };
    let ignored = at(100, "new-2", "no.handlers");
    let delivery = vec![
        (fresh.clone(), EventState::Received),
        (ignored.clone(), EventState::Ignored),
    ];

    let outcomes = admission.admit(batch_of(&delivery, 100)).await.expect("admit");
    assert_eq!(outcomes, [ClaimOutcome::Claimed, ClaimOutcome::Claimed], "both are new");
    let queued = store.get(&fresh.key()).await.expect("get").expect("recorded");
    assert_eq!(
        queued.state,
        EventState::Queued,
        "an admitted event with handlers is QUEUED"
    );
    assert_eq!(
        queued.payload.as_ref().map(|p| p.as_str()),
        Some(fresh.payload.as_str()),
        "payload stored verbatim"
    );
    let recorded = store.get(&ignored.key()).await.expect("get").expect("recorded");
    assert_eq!(recorded.state, EventState::Ignored, "an unknown type is recorded only");

    let received = drain(queue, 1).await;
    assert_eq!(received.len(), 1, "only the event with handlers is queued");
    assert_eq!(
        received[0].event, fresh,
        "the envelope travels whole, its request id too"
    );
    assert!(received[0].event.original.is_some(), "with its original body");
    queue.ack(&received[0]).await.expect("ack");

    let again = admission.admit(batch_of(&delivery, 101)).await.expect("admit again");
    assert_eq!(
        again,
        [
            ClaimOutcome::Duplicate(EventState::Queued),
            ClaimOutcome::Duplicate(EventState::Ignored)
        ],
        "a second delivery is a duplicate"
    );
    let later = at(102, "new-3", "has.handlers");
    let mixed = vec![
        (fresh.clone(), EventState::Received),
        (later.clone(), EventState::Received),
    ];
    let outcomes = admission.admit(batch_of(&mixed, 102)).await.expect("admit mixed");
    assert_eq!(
        outcomes,
        [ClaimOutcome::Duplicate(EventState::Queued), ClaimOutcome::Claimed],
        "new events of a partly seen delivery are admitted"
    );
    // An adapter that sends before it records (SQS and DynamoDB) has sent
    // the copies' messages too, before it knew them for copies; one that
    // does both in one transaction (SQLite) has not. Either way the new
    // event is on the queue once, and no copy is recorded anew.
    let received = drain_until(queue, "new-3").await;
    let mut ids: Vec<&str> = received.iter().map(|d| &*d.event.id).collect();
    ids.sort_unstable();
    ids.dedup_by(|a, b| a == b && *a == "new-1");
    assert!(
        ids == ["new-3"] || ids == ["new-1", "new-3"],
        "the new event is queued once, beside at most copies of the duplicate: {ids:?}"
    );
    let recorded = store.get(&fresh.key()).await.expect("get").expect("recorded");
    assert_eq!(
        (recorded.state, recorded.received_at),
        (EventState::Queued, 100),
        "the first copy's record stands"
    );
}

/// Receives until a message of event `id` arrived (or two seconds passed),
/// and a moment longer for any sent with it.
async fn drain_until(queue: &dyn Queue, id: &str) -> Vec<webhooks_core::ports::queue::ReceivedMessage> {
    let mut received = Vec::new();
    for _ in 0..20 {
        received.extend(queue.receive(10, Duration::from_secs(30)).await.expect("receive"));
        if received.iter().any(|m| &*m.event.id == id) {
            received.extend(queue.receive(10, Duration::from_secs(30)).await.expect("receive"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    received
}

/// Receives until `want` messages arrived or two seconds passed (emulators
/// and SQS may need a moment).
async fn drain(queue: &dyn Queue, want: usize) -> Vec<webhooks_core::ports::queue::ReceivedMessage> {
    let mut received = Vec::new();
    for _ in 0..20 {
        received.extend(queue.receive(10, Duration::from_secs(30)).await.expect("receive"));
        if received.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    received
}
