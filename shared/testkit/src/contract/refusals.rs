//! The contract every [`RefusalLog`] adapter must pass, on an empty log
//! built with [`BOUNDS`].

use webhooks_core::ports::refusals::{Refusal, RefusalBounds, RefusalLog};

/// The bounds the log under test must be built with: small, so the
/// per-provider bound is reached in a few writes.
pub const BOUNDS: RefusalBounds = RefusalBounds {
    per_provider: 3,
    keep_secs: 3_600,
};

fn refusal(provider: &str, reason: &str, at: i64) -> Refusal {
    Refusal {
        at,
        provider: provider.into(),
        status: 401,
        reason: reason.into(),
        request_id: format!("req-{provider}-{at}"),
        source_ip: Some("203.0.113.7".into()),
        body_bytes: 42,
        present: vec!["X-Signature".into()],
        absent: vec!["X-Timestamp".into(), "?token".into()],
    }
}

/// Runs every check.
pub async fn run_all(log: &dyn RefusalLog) {
    let now = webhooks_core::time::unix_now();
    assert!(log.list(None, 10).await.expect("list").is_empty(), "starts empty");
    assert!(log.counts(None).await.expect("counts").is_empty(), "no counts at first");

    let a1 = refusal("p-a", "invalid_signature", now - 100);
    let a2 = refusal("p-a", "missing_signature", now - 90);
    let b1 = Refusal {
        status: 404,
        source_ip: None,
        present: vec![],
        absent: vec![],
        ..refusal("unknown", "unknown_provider", now - 80)
    };
    for r in [&a1, &a2, &b1] {
        log.record(r.clone()).await.expect("record");
    }
    assert_eq!(
        log.list(None, 10).await.expect("list"),
        [b1.clone(), a2.clone(), a1.clone()],
        "newest first, every field as recorded"
    );
    assert_eq!(
        log.list(None, 2).await.expect("list"),
        [b1.clone(), a2.clone()],
        "the limit"
    );
    assert_eq!(
        log.list(Some("p-a"), 10).await.expect("list"),
        [a2.clone(), a1.clone()],
        "one provider's"
    );
    assert!(
        log.list(Some("p-z"), 10).await.expect("list").is_empty(),
        "a provider with none"
    );

    let counts = log.counts(None).await.expect("counts");
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [
            ("invalid_signature".to_string(), 1),
            ("missing_signature".to_string(), 1),
            ("unknown_provider".to_string(), 1)
        ],
        "counts by reason"
    );
    let counts = log.counts(Some("p-a")).await.expect("counts");
    assert_eq!(counts.values().sum::<u64>(), 2, "one provider's counts");
    assert!(!counts.contains_key("unknown_provider"));

    // Past the per-provider bound only the newest are kept, and other
    // providers' are untouched.
    let newer: Vec<Refusal> = (0..4)
        .map(|i| refusal("p-a", "timestamp_out_of_tolerance", now - 50 + i))
        .collect();
    for r in &newer {
        log.record(r.clone()).await.expect("record");
    }
    let kept = log.list(Some("p-a"), 100).await.expect("list");
    assert_eq!(
        kept,
        [newer[3].clone(), newer[2].clone(), newer[1].clone()],
        "at most the bound per provider, the newest"
    );
    assert_eq!(
        log.list(None, 100).await.expect("list").len(),
        4,
        "the bound of p-a plus b1"
    );
    assert_eq!(
        log.counts(Some("p-a"))
            .await
            .expect("counts")
            .get("timestamp_out_of_tolerance"),
        Some(&3),
        "counts cover what is kept"
    );
    assert_eq!(
        log.counts(Some("p-a")).await.expect("counts").len(),
        1,
        "older reasons are gone"
    );
    assert_eq!(
        log.list(Some("unknown"), 10).await.expect("list"),
        [b1],
        "other providers untouched"
    );

    // Nothing older than the retention is listed or counted.
    log.record(refusal("p-c", "invalid_payload", now - BOUNDS.keep_secs - 10))
        .await
        .expect("record");
    assert!(
        log.list(Some("p-c"), 10).await.expect("list").is_empty(),
        "past the retention"
    );
    assert!(
        log.counts(Some("p-c")).await.expect("counts").is_empty(),
        "past the retention"
    );
}
