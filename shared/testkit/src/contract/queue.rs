//! The contract every [`Queue`] adapter must pass, on an empty queue. The
//! SQLite tests run it in memory; the SQS tests run it against a real AWS
//! API emulator.

use crate::fixtures::event;
use std::time::Duration;
use webhooks_core::ports::queue::Queue;

async fn receive_one(q: &dyn Queue, visibility: Duration) -> Option<webhooks_core::ports::queue::ReceivedMessage> {
    // Emulators and SQS may need a moment: poll briefly.
    for _ in 0..20 {
        let got = q.receive(10, visibility).await.expect("receive");
        if let Some(d) = got.into_iter().next() {
            return Some(d);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// The dead letters, once there are some (emulators may need a moment).
async fn some_dead_letters(q: &dyn Queue) -> Vec<webhooks_core::ports::queue::DeadLetter> {
    let mut dead = Vec::new();
    for _ in 0..20 {
        dead = q.dead_letters(10).await.expect("dead_letters");
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dead
}

/// Runs every contract check. The queue and its dead-letter queue must be empty.
pub async fn run_all(q: &dyn Queue) {
    send_receive_ack(q).await;
    visibility_and_receive_count(q).await;
    retry_after_delays(q).await;
    retry_fresh_resets_the_receive_count(q).await;
    dead_letter_and_redrive(q).await;
    redrive_follows_the_gate(q).await;
    batches_over_ten(q).await;
}

async fn send_receive_ack(q: &dyn Queue) {
    let ev = event("qc", "m1", "a.b");
    q.send(&[&ev]).await.expect("send");
    let d = receive_one(q, Duration::from_secs(30)).await.expect("message arrives");
    assert_eq!(d.event.id, "m1");
    assert_eq!(
        d.event.payload.as_str(),
        ev.payload.as_str(),
        "payload travels verbatim"
    );
    assert_eq!(d.receive_count, 1);
    q.ack(&d).await.expect("ack");
    assert!(
        q.receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty(),
        "acked message is gone"
    );
}

async fn visibility_and_receive_count(q: &dyn Queue) {
    q.send(&[&event("qc", "m2", "a.b")]).await.expect("send");
    let first = receive_one(q, Duration::from_secs(1)).await.expect("message arrives");
    assert!(
        q.receive(10, Duration::from_secs(1)).await.expect("receive").is_empty(),
        "hidden while in flight"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let second = receive_one(q, Duration::from_secs(30))
        .await
        .expect("visible again after the timeout");
    assert_eq!(second.event.id, "m2");
    assert_eq!(second.receive_count, first.receive_count + 1, "receive count grows");
    q.ack(&second).await.expect("ack");
}

async fn retry_after_delays(q: &dyn Queue) {
    q.send(&[&event("qc", "m3", "a.b")]).await.expect("send");
    let d = receive_one(q, Duration::from_secs(30)).await.expect("message arrives");
    q.retry_after(&d, Duration::from_secs(1)).await.expect("retry_after");
    assert!(
        q.receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty(),
        "delayed"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let again = receive_one(q, Duration::from_secs(30))
        .await
        .expect("back after the delay");
    assert_eq!(again.receive_count, 2);
    q.ack(&again).await.expect("ack");
}

/// A retry that was no attempt comes back after its delay as if never
/// received, so the queue's own receive limit cannot dead-letter it.
async fn retry_fresh_resets_the_receive_count(q: &dyn Queue) {
    q.send(&[&event("qc", "m3f", "a.b")]).await.expect("send");
    let mut d = receive_one(q, Duration::from_secs(30)).await.expect("message arrives");
    for _ in 0..2 {
        q.retry_after(&d, Duration::ZERO).await.expect("retry_after");
        d = receive_one(q, Duration::from_secs(30)).await.expect("back");
    }
    assert_eq!(d.receive_count, 3);
    q.retry_fresh(&d, Duration::from_secs(1)).await.expect("retry_fresh");
    assert!(
        q.receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty(),
        "delayed"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let again = receive_one(q, Duration::from_secs(30))
        .await
        .expect("back after the delay");
    assert_eq!((&*again.event.id, again.receive_count), ("m3f", 1), "counted afresh");
    q.ack(&again).await.expect("ack");
    assert!(
        q.receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty(),
        "one copy only"
    );
}

async fn dead_letter_and_redrive(q: &dyn Queue) {
    q.send(&[&event("qc", "m4", "a.b")]).await.expect("send");
    let d = receive_one(q, Duration::from_secs(30)).await.expect("message arrives");
    q.dead_letter(&d, "permanent: bad data").await.expect("dead_letter");
    assert!(
        q.receive(10, Duration::from_secs(30))
            .await
            .expect("receive")
            .is_empty(),
        "not on the main queue"
    );
    let dead = some_dead_letters(q).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event.id, "m4");
    assert!(dead[0].reason.contains("bad data"), "reason kept: {}", dead[0].reason);
    let moved = q
        .redrive(10, &webhooks_core::ports::queue::RedriveAll)
        .await
        .expect("redrive");
    assert_eq!(moved.iter().map(|e| &*e.id).collect::<Vec<_>>(), ["m4"]);
    let back = receive_one(q, Duration::from_secs(30))
        .await
        .expect("redriven message arrives");
    assert_eq!(back.event.id, "m4");
    assert_eq!(back.receive_count, 1, "redrive starts a fresh count");
    q.ack(&back).await.expect("ack");
    assert!(q.dead_letters(10).await.expect("dead_letters").is_empty());
}

/// Decides by event id: `keep-*` stays, `drop-*` is discarded, the rest moves.
struct ByIdGate;

#[async_trait::async_trait]
impl webhooks_core::ports::queue::RedriveGate for ByIdGate {
    async fn decide(&self, event: &webhooks_core::event::Event) -> webhooks_core::ports::queue::Redrive {
        if event.id.starts_with("keep") {
            webhooks_core::ports::queue::Redrive::Keep
        } else if event.id.starts_with("drop") {
            webhooks_core::ports::queue::Redrive::Discard
        } else {
            webhooks_core::ports::queue::Redrive::Send
        }
    }
}

async fn redrive_follows_the_gate(q: &dyn Queue) {
    for id in ["keep-g1", "drop-g2", "send-g3"] {
        q.send(&[&event("qg", id, "a.b")]).await.expect("send");
        let d = receive_one(q, Duration::from_secs(30)).await.expect("message arrives");
        q.dead_letter(&d, "permanent").await.expect("dead_letter");
    }
    let moved = q.redrive(10, &ByIdGate).await.expect("redrive");
    assert_eq!(moved.iter().map(|e| &*e.id).collect::<Vec<_>>(), ["send-g3"]);
    let back = receive_one(q, Duration::from_secs(30))
        .await
        .expect("moved message arrives");
    assert_eq!(back.event.id, "send-g3");
    q.ack(&back).await.expect("ack");
    let dead = some_dead_letters(q).await;
    let ids: Vec<&str> = dead.iter().map(|d| &*d.event.id).collect();
    assert_eq!(ids, ["keep-g1"], "kept stays parked, discarded is gone");
    // Leave the dead letters empty for the contract's other steps.
    struct DropAll;
    #[async_trait::async_trait]
    impl webhooks_core::ports::queue::RedriveGate for DropAll {
        async fn decide(&self, _: &webhooks_core::event::Event) -> webhooks_core::ports::queue::Redrive {
            webhooks_core::ports::queue::Redrive::Discard
        }
    }
    assert!(q.redrive(10, &DropAll).await.expect("redrive").is_empty());
    assert!(q.dead_letters(10).await.expect("dead_letters").is_empty());
}

async fn batches_over_ten(q: &dyn Queue) {
    let events: Vec<_> = (0..23).map(|i| event("qc", &format!("b{i}"), "a.b")).collect();
    q.send(&events.iter().collect::<Vec<_>>()).await.expect("send 23");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        for d in q.receive(10, Duration::from_secs(30)).await.expect("receive") {
            seen.insert(d.event.id.clone());
            q.ack(&d).await.expect("ack");
        }
        if seen.len() == 23 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.len(), 23, "every message of a large batch arrives");
}
