//! The contract every [`EventStore`] adapter must pass. The SQLite tests run
//! it on an in-memory database; the DynamoDB tests run it against a real AWS
//! API emulator. Each check panics with a message saying which rule broke.

use crate::fixtures::{claim, claim_as, event};
use webhooks_core::event::{
    AttemptEntry, AttemptOutcome, Event, EventRecord, EventState, HISTORY_ERROR_CHARS, HISTORY_LIMIT,
};
use webhooks_core::payload::OriginalBody;
use webhooks_core::ports::store::{Claim, ClaimOutcome, EventStore, LeaseOutcome, ListFilter, Requeue, Settlement};

/// Runs every contract check. `prefix` keeps ids apart when the backing
/// table is shared between runs.
pub async fn run_all(store: &dyn EventStore) {
    run_all_with_prefix(store, "c").await
}

pub async fn run_all_with_prefix(store: &dyn EventStore, prefix: &str) {
    claim_is_exclusive(store, prefix).await;
    expired_claim_is_taken_over(store, prefix).await;
    lease_lifecycle(store, prefix).await;
    lease_creates_missing_record(store, prefix).await;
    ignored_records(store, prefix).await;
    requeue_resets_attempts(store, prefix).await;
    list_and_purge(store, prefix).await;
    purge_keeps_dead_letters_and_queued(store, prefix).await;
    attempt_history_and_next_attempt(store, prefix).await;
    a_retry_not_due_is_busy_until_it_is(store, prefix).await;
    a_finished_record_past_its_expiry_counts_as_gone(store, prefix).await;
    original_body_survives_to_a_replay(store, prefix).await;
}

/// A form event's original body (not UTF-8 here, to test bytes, not text)
/// is kept on the record and rebuilt into the event a replay queues, so
/// a replayed forward still sends what the sender signed. An event
/// without one reads back without one.
/// Settles `ev` FAILED (permanently, at 101) and requeues it at 102, as a
/// replay does: the requeued record.
async fn fail_and_requeue(store: &dyn EventStore, ev: &Event) -> EventRecord {
    store
        .settle(
            &ev.key(),
            Settlement {
                state: EventState::Failed,
                error: Some("permanent".into()),
                results: serde_json::Map::new(),
                history: Vec::new(),
                next_attempt_at: None,
                now: 101,
            },
        )
        .await
        .expect("settle");
    let Requeue::Requeued(rec) = store.requeue(&ev.key(), 102).await.expect("requeue") else {
        panic!("a FAILED record is requeued");
    };
    rec
}

async fn original_body_survives_to_a_replay(store: &dyn EventStore, p: &str) {
    let original = OriginalBody {
        content_type: "application/x-www-form-urlencoded; charset=utf-8".into(),
        body: bytes::Bytes::from_static(b"MessageSid=SM1&Body=caf%C3%A9&raw=\xff\x00"),
    };
    let ev = Event {
        original: Some(original.clone()),
        ..event(&format!("{p}-prov"), "form-1", "a.b")
    };
    store.claim(claim(&ev, 100)).await.expect("claim");
    let rec = store.get(&ev.key()).await.expect("get").expect("recorded");
    assert_eq!(rec.original.as_ref(), Some(&original), "the original body is stored");
    store.lease(&ev, 100, 60, 1000).await.expect("lease");
    let rec = fail_and_requeue(store, &ev).await;
    let replayed = rec.to_event().expect("rebuilt");
    assert_eq!(replayed.original, Some(original), "a replay rebuilds it");
    assert_eq!(replayed.payload, ev.payload);
    let plain = event(&format!("{p}-prov"), "json-1", "a.b");
    store.claim(claim(&plain, 100)).await.expect("claim");
    let rec = store.get(&plain.key()).await.expect("get").expect("recorded");
    assert_eq!(rec.original, None, "a JSON event stores no second copy");
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
    let rec = store.get(&ev.key()).await.expect("get").expect("record exists");
    assert_eq!(rec.state, EventState::Received);
    assert_eq!(rec.lease_until, Some(130), "the claim's lease");
    assert_eq!(rec.event_type, "a.b");
    assert_eq!(
        rec.payload.as_ref().map(|p| p.as_str()),
        Some(ev.payload.as_str()),
        "payload stored for replay"
    );
    assert!(rec.expires_at >= 100 + 7 * 86_400 - 1, "TTL set from the claim");
    // Recorded QUEUED at once (claim and enqueue in one transaction), or
    // leased by a processor: a duplicate from then on.
    let queued = event(&format!("{p}-prov"), "claim-queued", "a.b");
    store
        .claim(claim_as(&queued, EventState::Queued, 100, 1_000))
        .await
        .expect("claim");
    assert_eq!(
        store.claim(claim(&queued, 101)).await.expect("claim"),
        ClaimOutcome::Duplicate(EventState::Queued),
        "a queued event is a duplicate"
    );
    assert!(matches!(
        store.lease(&ev, 102, 60, 1_000).await.expect("lease"),
        LeaseOutcome::Leased(_)
    ));
    assert_eq!(
        store.claim(claim(&ev, 103)).await.expect("claim"),
        ClaimOutcome::Duplicate(EventState::Processing),
        "a leased event is a duplicate"
    );
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

async fn lease_lifecycle(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "lease-1", "a.b");
    // Leased straight from a RECEIVED claim, as an earlier version's
    // claim-first admission left it.
    store.claim(claim(&ev, 100)).await.expect("claim");
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
                history: Vec::new(),
                next_attempt_at: None,
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
                history: Vec::new(),
                next_attempt_at: None,
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
    let rec = fail_and_requeue(store, &ev).await;
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
            ..event(&provider, id, if i == 2 { "x.y" } else { "a.b" })
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
        all.iter().map(|r| &*r.event_id).collect::<Vec<_>>(),
        ["l3", "l2", "l1"],
        "newest first"
    );
    let received = store
        .list(&ListFilter {
            provider: Some(provider.clone()),
            state: Some(EventState::Received),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(received.len(), 3);
    let ids =
        |records: Vec<webhooks_core::event::EventRecord>| records.into_iter().map(|r| r.event_id).collect::<Vec<_>>();
    let of_type = store
        .list(&ListFilter {
            provider: Some(provider.clone()),
            event_type: Some("x.y".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(of_type), ["l3"], "only the type asked for");
    let recent = store
        .list(&ListFilter {
            provider: Some(provider.clone()),
            state: Some(EventState::Received),
            since: Some(1_001),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(recent), ["l3", "l2"], "received at or after `since`, newest first");
    let capped = store
        .list(&ListFilter {
            provider: Some(provider.clone()),
            limit: 2,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(ids(capped), ["l3", "l2"], "the limit keeps the newest");
    let none = store
        .list(&ListFilter {
            provider: Some(provider.clone()),
            state: Some(EventState::Done),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(none.is_empty());
    // l1 expires at 1010, l2 at 1021, l3 at 1032; all three are RECEIVED,
    // which never expires (only DONE and IGNORED records do).
    assert_eq!(
        store.purge_expired(1_025).await.expect("purge"),
        0,
        "nothing finished has expired"
    );
    let left = store
        .list(&ListFilter {
            provider: Some(provider),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(left.len(), 3, "unfinished records are kept past their expiry");
}

/// Only finished records expire: a dead letter (FAILED) stays until it is
/// replayed or discarded, a QUEUED event until it is processed.
async fn purge_keeps_dead_letters_and_queued(store: &dyn EventStore, p: &str) {
    let provider = format!("{p}-purge");
    let settle_as = |state: EventState| Settlement {
        state,
        error: (state == EventState::Failed).then(|| "boom".to_string()),
        results: Default::default(),
        history: Vec::new(),
        next_attempt_at: None,
        now: 1_002,
    };
    let mut keys = Vec::new();
    for (id, end) in [
        ("done", Some(EventState::Done)),
        ("failed", Some(EventState::Failed)),
        ("queued", None),
        ("ignored", None),
        ("received", None),
    ] {
        let ev = event(&provider, id, "a.b");
        let state = match id {
            "ignored" => EventState::Ignored,
            "queued" => EventState::Queued,
            _ => EventState::Received,
        };
        store.claim(claim_as(&ev, state, 1_000, 10)).await.expect("claim");
        if let Some(end) = end {
            assert!(matches!(
                store.lease(&ev, 1_001, 30, 10).await.expect("lease"),
                LeaseOutcome::Leased(_)
            ));
            store.settle(&ev.key(), settle_as(end)).await.expect("settle");
        }
        keys.push((id, ev.key()));
    }
    // Every record expired at 1010.
    let purged = store.purge_expired(2_000).await.expect("purge");
    assert!(purged >= 2, "the DONE and IGNORED records are purged (got {purged})");
    for (id, key) in &keys {
        let kept = store.get(key).await.expect("get").is_some();
        assert_eq!(
            kept,
            matches!(*id, "failed" | "queued" | "received"),
            "{id} kept: {kept}"
        );
    }
    // Discarding takes a dead letter's record only.
    for (id, key) in &keys {
        let discarded = store.discard(key).await.expect("discard");
        assert_eq!(discarded, *id == "failed", "{id} discarded: {discarded}");
    }
    assert!(
        store.get(&keys[1].1).await.expect("get").is_none(),
        "the dead letter is gone"
    );
    assert!(
        store.get(&keys[2].1).await.expect("get").is_some(),
        "the queued event stays"
    );
}

/// The attempt history is written by `settle` in the same write as the
/// state, kept by lease and requeue (a replay keeps the audit trail), stored
/// bounded (the newest `HISTORY_LIMIT`, oldest first, errors cut) whatever
/// it is given; `next_attempt_at` is stored with QUEUED only and cleared by
/// a lease, a requeue and any other state.
async fn attempt_history_and_next_attempt(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-prov"), "history", "a.b");
    let entry = |at: i64, handler: &str, outcome, error: Option<&str>| {
        AttemptEntry::new(at, 1, Some(handler), outcome, 7, error)
    };
    let settle = |state, history, next_attempt_at, now| Settlement {
        state,
        error: None,
        results: Default::default(),
        history,
        next_attempt_at,
        now,
    };
    store.claim(claim(&ev, 100)).await.expect("claim");
    let rec = leased(store.lease(&ev, 200, 60, 1000).await.expect("lease"));
    assert!(rec.history.is_empty(), "a new record has no history");
    let first = vec![
        entry(200, "h1", AttemptOutcome::Succeeded, None),
        entry(200, "h2", AttemptOutcome::Retryable, Some("h2: 503")),
        AttemptEntry::new(200, 1, None, AttemptOutcome::Permanent, 0, Some("no handler ran")),
    ];
    store
        .settle(&ev.key(), settle(EventState::Queued, first.clone(), Some(260), 201))
        .await
        .expect("settle");
    let rec = store.get(&ev.key()).await.expect("get").expect("record");
    assert_eq!(rec.history, first, "settle stores the history as given, in order");
    assert_eq!(rec.next_attempt_at, Some(260), "a retry records when it is due");

    let Requeue::Requeued(rec) = store.requeue(&ev.key(), 202).await.expect("requeue") else {
        panic!("a QUEUED record is requeued");
    };
    assert_eq!(rec.history, first, "a replay keeps the history");
    assert_eq!(rec.next_attempt_at, None, "a replayed event is due at once");
    store
        .settle(&ev.key(), settle(EventState::Queued, first.clone(), Some(260), 203))
        .await
        .expect("settle while not PROCESSING");
    let rec = store.get(&ev.key()).await.expect("get").expect("record");
    assert_eq!(rec.next_attempt_at, None, "settle writes nothing unless PROCESSING");

    let rec = leased(store.lease(&ev, 210, 60, 1000).await.expect("lease"));
    assert_eq!(rec.history, first, "a lease keeps the history");
    // More entries than the bound, one with a long error: the store keeps
    // the newest, oldest first, the error cut.
    let long = "x".repeat(HISTORY_ERROR_CHARS * 4);
    let mut many = rec.history.clone();
    many.extend((0..25).map(|i| entry(300 + i, "h2", AttemptOutcome::Retryable, Some(&long))));
    store
        .settle(&ev.key(), settle(EventState::Queued, many.clone(), Some(400), 330))
        .await
        .expect("settle");
    let rec = store.get(&ev.key()).await.expect("get").expect("record");
    assert_eq!(rec.history.len(), HISTORY_LIMIT, "the history is bounded");
    let ats: Vec<i64> = rec.history.iter().map(|e| e.at).collect();
    let newest: Vec<i64> = many[many.len() - HISTORY_LIMIT..].iter().map(|e| e.at).collect();
    assert_eq!(ats, newest, "the oldest entries are dropped, the order kept");
    let error = rec.history[0].error.as_deref().expect("the error is kept");
    assert!(
        error.chars().count() <= HISTORY_ERROR_CHARS + 1 && error.starts_with("xxx"),
        "a long error is cut ({} chars)",
        error.chars().count()
    );
    assert_eq!(rec.next_attempt_at, Some(400));

    let rec = leased(store.lease(&ev, 410, 60, 1000).await.expect("lease"));
    assert_eq!(rec.next_attempt_at, None, "the lease takes the announced attempt");
    let mut last = rec.history.clone();
    last.push(entry(410, "h2", AttemptOutcome::Succeeded, None));
    store
        .settle(&ev.key(), settle(EventState::Done, last, Some(999), 411))
        .await
        .expect("settle");
    let rec = store.get(&ev.key()).await.expect("get").expect("record");
    assert_eq!(rec.state, EventState::Done);
    assert_eq!(rec.next_attempt_at, None, "only a QUEUED record has a next attempt");
    assert_eq!(rec.history.len(), HISTORY_LIMIT);
    assert_eq!(
        rec.history.last().map(|e| (e.at, e.outcome)),
        Some((410, AttemptOutcome::Succeeded)),
        "the newest entry is last"
    );
    let listed = store
        .list(&ListFilter {
            provider: Some(format!("{p}-prov")),
            state: Some(EventState::Done),
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("list");
    let found = listed.iter().find(|r| r.event_id == "history").expect("listed");
    assert_eq!(found.history, rec.history, "list reads the history too");
}

/// A second message of an event (a copy's) must not run an attempt before
/// the backoff the first one settled is over; the message that scheduled
/// the retry may come back up to the slack early (whole seconds, rounded up).
async fn a_retry_not_due_is_busy_until_it_is(store: &dyn EventStore, p: &str) {
    let ev = event(&format!("{p}-due"), "retry-due", "a.b");
    in_first_attempt(store, &ev, 100, 1_000).await;
    let retry = Settlement {
        error: Some("h: 503".into()),
        next_attempt_at: Some(160),
        ..ended(EventState::Queued, 101)
    };
    store.settle(&ev.key(), retry).await.expect("settle");
    assert_eq!(
        store.lease(&ev, 120, 60, 1_000).await.expect("lease"),
        LeaseOutcome::Busy { until: 160 },
        "not due: busy until the retry's time"
    );
    assert_eq!(
        store.lease(&ev, 158, 60, 1_000).await.expect("lease"),
        LeaseOutcome::Busy { until: 160 },
        "the slack is one second, no more"
    );
    let rec = store.get(&ev.key()).await.expect("get").expect("record");
    assert_eq!(
        (rec.state, rec.attempts, rec.next_attempt_at),
        (EventState::Queued, 1, Some(160)),
        "the refused leases changed nothing"
    );
    let rec = leased(store.lease(&ev, 159, 60, 1_000).await.expect("due within the slack"));
    assert_eq!((rec.attempts, rec.next_attempt_at), (2, None));
}

/// A DONE or IGNORED record past its expiry counts as gone before it is
/// deleted: a claim takes it over as a new event, and so does a lease (the
/// message of a copy sent before its record, finding the old one).
async fn a_finished_record_past_its_expiry_counts_as_gone(store: &dyn EventStore, p: &str) {
    let provider = format!("{p}-gone");
    let done = |id: &'static str| {
        let ev = event(&provider, id, "a.b");
        async move {
            let mut rec = in_first_attempt(store, &ev, 100, 10).await;
            rec.results.insert("h".into(), serde_json::json!({"ok": true}));
            let settled = Settlement {
                results: rec.results,
                ..ended(EventState::Done, 102)
            };
            store.settle(&ev.key(), settled).await.expect("settle");
            ev
        }
    };
    // Expires at 111 (leased at 101 with a TTL of 10).
    let claimed = done("gone-claim").await;
    assert_eq!(
        store
            .claim(claim_as(&claimed, EventState::Queued, 110, 10))
            .await
            .expect("claim"),
        ClaimOutcome::Duplicate(EventState::Done),
        "before its expiry: a duplicate"
    );
    assert_eq!(
        store
            .claim(claim_as(&claimed, EventState::Queued, 111, 10))
            .await
            .expect("claim"),
        ClaimOutcome::Claimed,
        "past it: a new event"
    );
    let rec = store.get(&claimed.key()).await.expect("get").expect("record");
    assert_eq!((rec.state, rec.attempts, rec.expires_at), (EventState::Queued, 0, 121));
    assert!(rec.results.is_empty(), "nothing of the old record is kept");

    let leased_twice = done("gone-lease").await;
    assert_eq!(
        store.lease(&leased_twice, 110, 60, 10).await.expect("lease"),
        LeaseOutcome::Finished(EventState::Done),
        "before its expiry: finished"
    );
    let rec = leased(
        store
            .lease(&leased_twice, 111, 60, 10)
            .await
            .expect("past its expiry: leased as new"),
    );
    assert_eq!((rec.state, rec.attempts), (EventState::Processing, 1));
    assert!(rec.results.is_empty(), "the handlers run again, as for a new event");

    // IGNORED expires the same way.
    let ignored = event(&provider, "gone-ignored", "a.b");
    store
        .claim(claim_as(&ignored, EventState::Ignored, 100, 10))
        .await
        .expect("claim");
    assert_eq!(
        store
            .claim(claim_as(&ignored, EventState::Ignored, 110, 10))
            .await
            .expect("claim"),
        ClaimOutcome::Claimed,
        "an IGNORED record past its expiry is gone too"
    );

    // Only finished records: a dead letter and a waiting event stay, expiry or not.
    let failed = event(&provider, "kept-failed", "a.b");
    in_first_attempt(store, &failed, 100, 10).await;
    let failing = Settlement {
        error: Some("h: 400".into()),
        ..ended(EventState::Failed, 102)
    };
    store.settle(&failed.key(), failing).await.expect("settle");
    let queued = event(&provider, "kept-queued", "a.b");
    store
        .claim(claim_as(&queued, EventState::Queued, 100, 10))
        .await
        .expect("claim");
    assert_eq!(
        store
            .claim(claim_as(&failed, EventState::Queued, 500, 10))
            .await
            .expect("claim"),
        ClaimOutcome::Duplicate(EventState::Failed)
    );
    assert_eq!(
        store
            .claim(claim_as(&queued, EventState::Queued, 500, 10))
            .await
            .expect("claim"),
        ClaimOutcome::Duplicate(EventState::Queued)
    );
    assert_eq!(
        store.lease(&failed, 500, 60, 10).await.expect("lease"),
        LeaseOutcome::Finished(EventState::Failed),
        "a dead letter past its expiry is still one"
    );

    // A dead letter replayed and finished after its first expiry: the
    // retention runs from its last attempt, so it is not gone at once.
    assert!(matches!(
        store.requeue(&failed.key(), 500).await.expect("requeue"),
        Requeue::Requeued(_)
    ));
    let rec = leased(
        store
            .lease(&failed, 500, 60, 10)
            .await
            .expect("a replayed record is leased"),
    );
    assert_eq!(rec.expires_at, 510, "a lease restarts the retention");
    store
        .settle(&failed.key(), ended(EventState::Done, 501))
        .await
        .expect("settle");
    assert_eq!(
        store.lease(&failed, 502, 60, 10).await.expect("lease"),
        LeaseOutcome::Finished(EventState::Done),
        "another message of it is acknowledged, not run again"
    );
}

/// An attempt's end in `state` at `now`, with nothing else to say.
fn ended(state: EventState, now: i64) -> Settlement {
    Settlement {
        state,
        error: None,
        results: Default::default(),
        history: Vec::new(),
        next_attempt_at: None,
        now,
    }
}

/// The record a lease took. Panics on any other outcome.
fn leased(outcome: LeaseOutcome) -> EventRecord {
    match outcome {
        LeaseOutcome::Leased(r) => r,
        other => panic!("the record should be leased, got {other:?}"),
    }
}

/// `ev` claimed QUEUED at `now` and leased a second later: its first
/// attempt under way, the record as the lease left it.
async fn in_first_attempt(store: &dyn EventStore, ev: &Event, now: i64, ttl_secs: i64) -> EventRecord {
    store
        .claim(claim_as(ev, EventState::Queued, now, ttl_secs))
        .await
        .expect("claim");
    leased(store.lease(ev, now + 1, 60, ttl_secs).await.expect("lease"))
}
