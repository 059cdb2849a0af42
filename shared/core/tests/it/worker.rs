//! The local worker loop.

use crate::processor_fixture::{fixture, Scripted};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use webhooks_core::event::EventState;
use webhooks_core::pipeline::worker::{run, WorkerSettings};
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::store::EventStore;
use webhooks_core::time::unix_now;
use webhooks_testkit::fixtures::claim_as;
use webhooks_testkit::fixtures::event;

fn fast() -> WorkerSettings {
    WorkerSettings {
        batch: 4,
        idle_poll: Duration::from_millis(10),
        purge_every: Duration::ZERO,
    }
}

#[tokio::test]
async fn processes_what_is_queued_purges_what_expired_and_stops_when_told() {
    let first = Scripted::new(vec![]);
    let f = fixture(first.clone(), Scripted::new(vec![]), 3);
    let events: Vec<_> = (0..10).map(|i| event("p", &format!("w{i}"), "t")).collect();
    for ev in &events {
        f.store
            .claim(claim_as(ev, EventState::Received, unix_now(), 3600))
            .await
            .expect("claim");
    }
    f.queue.send(&events.iter().collect::<Vec<_>>()).await.expect("send");
    // A record long past its TTL, which the worker's purge removes.
    let old = event("p", "expired", "t");
    f.store
        .claim(claim_as(&old, EventState::Ignored, 100, 10))
        .await
        .expect("claim");

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(run(f.processor.clone(), f.store.clone(), fast(), stop_rx));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while first.calls.load(Ordering::SeqCst) < 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker did not drain the queue"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for ev in &events {
        assert_eq!(f.record(ev).await.state, EventState::Done);
    }
    assert!(
        f.store.get(&old.key()).await.expect("get").is_none(),
        "expired record purged"
    );
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), worker)
        .await
        .expect("the worker stops when told")
        .expect("no panic");
    assert_eq!(f.queue.depth(), 0);
    assert_eq!(first.calls.load(Ordering::SeqCst), 10, "each ran once");
}
