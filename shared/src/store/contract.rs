//! The contract every [`EventStore`] adapter must pass. The SQLite tests run
//! it on an in-memory database; the DynamoDB tests run it against a real AWS
//! API emulator. Each check panics with a message saying which rule broke.

use super::{Claim, ClaimOutcome, EventStore, LeaseOutcome, ListFilter, Requeue, Settlement};
use crate::event::{Event, EventState};

/// A sample event with a unique-enough id.
pub fn event(provider: &str, id: &str, event_type: &str) -> Event {
    Event {
        provider: provider.to_string(),
        id: id.to_string(),
        event_type: event_type.to_string(),
        received_at: 1_000,
        payload: crate::payload::Payload::from_text(format!(r#"{{"id":"{id}","type":"{event_type}"}}"#)),
    }
}

fn claim(ev: &Event, now: i64) -> Claim<'_> {
    claim_as(ev, EventState::Received, now, 7 * 86_400)
}

/// A claim of `ev` recorded in `state` at `now`, with a 30 s lease.
pub fn claim_as(ev: &Event, state: EventState, now: i64, ttl_secs: i64) -> Claim<'_> {
    Claim {
        event: ev,
        state,
        now,
        lease_secs: 30,
        ttl_secs,
    }
}

/// Runs every contract check. `prefix` keeps ids apart when the backing
/// table is shared between runs.
pub async fn run_all(store: &dyn EventStore) {
    run_all_with_prefix(store, "c").await
}

pub async fn run_all_with_prefix(store: &dyn EventStore, prefix: &str) {
    claim_is_exclusive(store, prefix).await;
    expired_claim_is_taken_over(store, prefix).await;
    release_allows_reclaim(store, prefix).await;
    lease_lifecycle(store, prefix).await;
    lease_creates_missing_record(store, prefix).await;
    ignored_records(store, prefix).await;
    requeue_resets_attempts(store, prefix).await;
    list_and_purge(store, prefix).await;
}

async fn claim_is_exclusive(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "claim-1", "a.b");
    assert_eq!(
        store.claim(claim(&ev, 100)).await.expect("claim"),
        ClaimOutcome::Claimed,
        "first claim wins"
    );
    assert_eq!(
        store.claim(claim(&ev, 101)).await.expect("claim"),
        ClaimOutcome::InFlight,
        "a live RECEIVED claim is in flight"
    );
    store.mark_queued(&ev.key(), 102).await.expect("mark queued");
    assert_eq!(
        store.claim(claim(&ev, 103)).await.expect("claim"),
        ClaimOutcome::Duplicate(EventState::Queued),
        "a queued event is a duplicate"
    );
    let rec = store.get(&ev.key()).await.expect("get").expect("record exists");
    assert_eq!(rec.state, EventState::Queued);
    assert_eq!(rec.event_type, "a.b");
    assert_eq!(
        rec.payload.as_ref().map(|p| p.as_str()),
        Some(ev.payload.as_str()),
        "payload stored for replay"
    );
    assert!(rec.expires_at >= 100 + 7 * 86_400 - 1, "TTL set from the claim");
}

async fn expired_claim_is_taken_over(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "claim-expired", "a.b");
    assert_eq!(
        store.claim(claim(&ev, 100)).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.claim(claim(&ev, 131)).await.expect("claim"),
        ClaimOutcome::Claimed,
        "a RECEIVED claim past its lease is taken over"
    );
    assert_eq!(
        store.claim(claim(&ev, 132)).await.expect("claim"),
        ClaimOutcome::InFlight
    );
}

async fn release_allows_reclaim(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "released", "a.b");
    assert_eq!(
        store.claim(claim(&ev, 100)).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    store.release(&ev.key()).await.expect("release");
    assert!(
        store.get(&ev.key()).await.expect("get").is_none(),
        "released claim is gone"
    );
    assert_eq!(
        store.claim(claim(&ev, 101)).await.expect("claim"),
        ClaimOutcome::Claimed
    );
    store.mark_queued(&ev.key(), 101).await.expect("mark queued");
    store.release(&ev.key()).await.expect("release");
    assert!(
        store.get(&ev.key()).await.expect("get").is_some(),
        "release never deletes a queued record"
    );
}

async fn lease_lifecycle(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "lease-1", "a.b");
    store.claim(claim(&ev, 100)).await.expect("claim");
    store.mark_queued(&ev.key(), 100).await.expect("mark");
    let rec = match store.lease(&ev, 200, 60, 1000).await.expect("lease") {
        LeaseOutcome::Leased(r) => r,
        other => panic!("first lease should succeed, got {other:?}"),
    };
    assert_eq!(rec.state, EventState::Processing);
    assert_eq!(rec.attempts, 1);
    assert_eq!(
        store.lease(&ev, 230, 60, 1000).await.expect("lease"),
        LeaseOutcome::Busy { until: 260 },
        "a live lease is exclusive"
    );
    let mut results = serde_json::Map::new();
    results.insert("h1".into(), serde_json::json!({"ok": true}));
    store
        .settle(
            &ev.key(),
            Settlement {
                state: EventState::Queued,
                error: Some("boom".into()),
                results: results.clone(),
                now: 240,
            },
        )
        .await
        .expect("settle");
    let rec = match store.lease(&ev, 250, 60, 1000).await.expect("lease") {
        LeaseOutcome::Leased(r) => r,
        other => panic!("a QUEUED record can be leased again, got {other:?}"),
    };
    assert_eq!(rec.attempts, 2, "attempts count every lease");
    assert_eq!(rec.last_error.as_deref(), Some("boom"));
    assert_eq!(rec.results, results, "partial results are kept between attempts");
    // An expired processing lease (a crashed processor) can be taken over.
    let rec = match store.lease(&ev, 311, 60, 1000).await.expect("lease") {
        LeaseOutcome::Leased(r) => r,
        other => panic!("an expired lease is taken over, got {other:?}"),
    };
    assert_eq!(rec.attempts, 3);
    store
        .settle(
            &ev.key(),
            Settlement {
                state: EventState::Done,
                error: None,
                results,
                now: 320,
            },
        )
        .await
        .expect("settle");
    assert_eq!(
        store.lease(&ev, 330, 60, 1000).await.expect("lease"),
        LeaseOutcome::Finished(EventState::Done),
        "DONE is skipped"
    );
    assert_eq!(
        store.claim(claim(&ev, 340)).await.expect("claim"),
        ClaimOutcome::Duplicate(EventState::Done)
    );
}

async fn lease_creates_missing_record(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "orphan", "a.b");
    match store.lease(&ev, 100, 60, 1000).await.expect("lease") {
        LeaseOutcome::Leased(r) => {
            assert_eq!(r.attempts, 1);
            assert_eq!(r.payload.as_ref().map(|p| p.as_str()), Some(ev.payload.as_str()));
        }
        other => panic!("an orphan message creates its record, got {other:?}"),
    }
    assert_eq!(
        store.claim(claim(&ev, 101)).await.expect("claim"),
        ClaimOutcome::Duplicate(EventState::Processing),
        "a later delivery of the orphan is a duplicate"
    );
}

async fn ignored_records(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "ignored", "unknown.type");
    let c = Claim {
        state: EventState::Ignored,
        ..claim(&ev, 100)
    };
    assert_eq!(store.claim(c).await.expect("claim"), ClaimOutcome::Claimed);
    assert_eq!(
        store.claim(claim(&ev, 101)).await.expect("claim"),
        ClaimOutcome::Duplicate(EventState::Ignored)
    );
    assert_eq!(
        store.lease(&ev, 102, 60, 1000).await.expect("lease"),
        LeaseOutcome::Finished(EventState::Ignored)
    );
}

async fn requeue_resets_attempts(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "requeue", "a.b");
    assert_eq!(
        store.requeue(&ev.key(), 100).await.expect("requeue"),
        Requeue::Missing,
        "nothing to requeue"
    );
    store.claim(claim(&ev, 100)).await.expect("claim");
    store.lease(&ev, 100, 60, 1000).await.expect("lease");
    assert_eq!(
        store.requeue(&ev.key(), 101).await.expect("requeue"),
        Requeue::Busy { until: 160 },
        "a live processing lease is never reset under its holder"
    );
    store
        .settle(
            &ev.key(),
            Settlement {
                state: EventState::Failed,
                error: Some("permanent".into()),
                results: serde_json::Map::new(),
                now: 101,
            },
        )
        .await
        .expect("settle");
    let Requeue::Requeued(rec) = store.requeue(&ev.key(), 102).await.expect("requeue") else {
        panic!("a FAILED record is requeued");
    };
    assert_eq!(rec.state, EventState::Queued);
    assert_eq!(rec.attempts, 0);
    assert!(rec.to_event().is_some(), "a requeued record rebuilds its envelope");
    // A processing lease that ran out (its processor died) may be reset.
    store.lease(&ev, 103, 60, 1000).await.expect("lease");
    assert!(matches!(
        store.requeue(&ev.key(), 164).await.expect("requeue"),
        Requeue::Requeued(_)
    ));
}

async fn list_and_purge(store: &dyn EventStore, p: &str) {
    let provider = format!("{p}-list");
    for (i, id) in ["l1", "l2", "l3"].iter().enumerate() {
        let ev = Event {
            received_at: 1_000 + i as i64,
            ..event(&provider, id, "a.b")
        };
        let c = Claim {
            ttl_secs: 10 * (i as i64 + 1),
            ..claim(&ev, 1_000 + i as i64)
        };
        store.claim(c).await.expect("claim");
    }
    let all = store
        .list(&ListFilter {
            provider: Some(provider.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(
        all.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(),
        ["l3", "l2", "l1"],
        "newest first"
    );
    let received = store
        .list(&ListFilter {
            provider: Some(provider.clone()),
            state: Some(EventState::Received),
            limit: 10,
        })
        .await
        .expect("list");
    assert_eq!(received.len(), 3);
    let none = store
        .list(&ListFilter {
            provider: Some(provider.clone()),
            state: Some(EventState::Done),
            limit: 10,
        })
        .await
        .expect("list");
    assert!(none.is_empty());
    // l1 expires at 1010, l2 at 1021, l3 at 1032.
    let purged = store.purge_expired(1_025).await.expect("purge");
    assert!(purged >= 2, "expired records are purged (got {purged})");
    let left = store
        .list(&ListFilter {
            provider: Some(provider),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(left.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(), ["l3"]);
}
