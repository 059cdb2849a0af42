//! `webhooks serve` end to end, as a user runs it: the real binary on a
//! temporary SQLite database, signed deliveries over HTTP, handlers calling a
//! local HTTP sink that counts their effects.

use crate::support::*;
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn fifty_concurrent_copies_run_the_handler_once() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 3, 100), &[]);
    let client = reqwest::Client::new();
    let body = gigstack_body("evt_concurrent_1", "invoice.created");

    let posts = (0..50).map(|_| post_gigstack(&client, &serve, &body));
    let answers = futures::future::join_all(posts).await;
    let accepted = answers
        .iter()
        .filter(|(s, b)| *s == 200 && b["status"] == "accepted")
        .count();
    for (status, body) in &answers {
        // A copy racing the first one is a duplicate (200) at once: claim
        // and enqueue are one transaction, so no copy ever sees the first
        // half-admitted (no 409).
        assert!(
            *status == 200 && (body["status"] == "accepted" || body["status"] == "duplicate"),
            "unexpected answer {status} {body}"
        );
    }
    assert_eq!(accepted, 1, "exactly one copy is accepted: {answers:?}");

    wait_for_state(&wd, "gigstack", "evt_concurrent_1", "DONE", WAIT).await;
    // Later copies are duplicates, and nothing runs again.
    let (status, answer) = post_gigstack(&client, &serve, &body).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("duplicate")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let effects = sink.effects();
    assert_eq!(effects.len(), 1, "one notification, got {effects:?}");
    assert!(effects[0].body.contains("inv_evt_concurrent_1"), "{:?}", effects[0]);
}

#[tokio::test]
async fn a_handler_that_fails_twice_then_succeeds_backs_off_and_has_one_effect() {
    let sink = Sink::start().await;
    sink.plan(&[503, 503], 200);
    let wd = Workdir::new();
    let base_ms = 400;
    let serve = Serve::start(&wd, &wd.config(&sink, 5, base_ms), &[]);
    let client = reqwest::Client::new();
    let (status, _) = post_gigstack(&client, &serve, &gigstack_body("evt_flaky_1", "invoice.created")).await;
    assert_eq!(status, 200);

    let record = wait_for_state(&wd, "gigstack", "evt_flaky_1", "DONE", WAIT).await;
    assert_eq!(record["attempts"], 3, "{record}");
    let hits = sink.hits();
    assert_eq!(hits.iter().map(|h| h.status).collect::<Vec<_>>(), [503, 503, 200]);
    assert_eq!(sink.effects().len(), 1);
    // Backoff: base * 2^(attempt-1) with jitter in [50 %, 100 %].
    let first_gap = hits[1].at - hits[0].at;
    let second_gap = hits[2].at - hits[1].at;
    assert!(
        first_gap >= Duration::from_millis(base_ms / 2),
        "first retry after {first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_millis(base_ms),
        "second retry after {second_gap:?}"
    );
    assert!(
        record["results"]["gigstack.notify_invoice_created"].is_object(),
        "{record}"
    );
}

#[tokio::test]
async fn a_handler_that_always_fails_is_dead_lettered_and_replay_brings_it_back() {
    let sink = Sink::start().await;
    sink.plan(&[], 500);
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 3, 100), &[]);
    let client = reqwest::Client::new();
    let (status, _) = post_gigstack(&client, &serve, &gigstack_body("evt_doomed_1", "invoice.created")).await;
    assert_eq!(status, 200);

    let record = wait_for_state(&wd, "gigstack", "evt_doomed_1", "FAILED", WAIT).await;
    assert_eq!(record["attempts"], 3, "{record}");
    assert!(
        record["last_error"].as_str().unwrap_or("").contains("500"),
        "the reason says what failed: {record}"
    );
    assert_eq!(sink.hits().len(), 3, "one call per attempt, none after the dead letter");
    let listed = run(&wd, &["events", "list", "--status", "FAILED", "--json"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("evt_doomed_1"));

    // The upstream recovers; the operator replays the dead letters.
    sink.plan(&[], 200);
    let replay = run(&wd, &["replay", "--dead-letter"]);
    assert!(replay.status.success(), "{replay:?}");
    let printed = String::from_utf8_lossy(&replay.stdout);
    assert!(printed.contains("gigstack#evt_doomed_1"), "{printed}");
    let record = wait_for_state(&wd, "gigstack", "evt_doomed_1", "DONE", WAIT).await;
    assert_eq!(sink.effects().len(), 1, "{record}");

    // Nothing is left to replay.
    let again = run(&wd, &["replay", "--dead-letter"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("empty"));
}

/// A 4xx from the upstream is permanent: dead-lettered on the first
/// attempt, no retry. Replaying that one event moves its dead letter back,
/// so nothing is left parked for a later `replay --dead-letter` to run again.
#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_at_once_and_one_replay_leaves_no_copy_parked() {
    let sink = Sink::start().await;
    sink.plan(&[400], 200);
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let client = reqwest::Client::new();
    let (status, _) = post_gigstack(&client, &serve, &gigstack_body("evt_rejected_1", "invoice.created")).await;
    assert_eq!(status, 200);

    let record = wait_for_state(&wd, "gigstack", "evt_rejected_1", "FAILED", WAIT).await;
    assert_eq!(record["attempts"], 1, "a permanent error is not retried: {record}");
    assert!(record["last_error"].as_str().unwrap_or("").contains("400"), "{record}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.hits().len(), 1, "one call, no retry");

    let replay = run(&wd, &["replay", "gigstack", "evt_rejected_1"]);
    assert!(replay.status.success(), "{replay:?}");
    assert!(
        String::from_utf8_lossy(&replay.stdout).contains("moved out of the dead-letter queue"),
        "{replay:?}"
    );
    wait_for_state(&wd, "gigstack", "evt_rejected_1", "DONE", WAIT).await;
    let again = run(&wd, &["replay", "--dead-letter"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("empty"), "{again:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.effects().len(), 1, "one effect in all");
}

/// A dead letter is never purged by age: only `dead-letters discard --yes`
/// removes it, saying how many, and the listing shows why it failed.
#[tokio::test]
async fn dead_letters_are_listed_and_discarded_only_on_request() {
    let sink = Sink::start().await;
    sink.plan(&[400], 200);
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let client = reqwest::Client::new();
    let (status, _) = post_gigstack(&client, &serve, &gigstack_body("evt_discard_1", "invoice.created")).await;
    assert_eq!(status, 200);
    wait_for_state(&wd, "gigstack", "evt_discard_1", "FAILED", WAIT).await;
    let listed = run(&wd, &["dead-letters", "list"]);
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        text.contains("gigstack#evt_discard_1") && text.contains("400") && text.contains("1 dead letter(s)"),
        "{text}"
    );
    let refused = run(&wd, &["dead-letters", "discard"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        show(&wd, "gigstack", "evt_discard_1").is_some(),
        "nothing discarded without --yes"
    );
    let discarded = run(&wd, &["dead-letters", "discard", "--yes"]);
    let text = String::from_utf8_lossy(&discarded.stdout).into_owned();
    assert!(text.contains("1 dead letter(s) discarded"), "{text}");
    assert!(show(&wd, "gigstack", "evt_discard_1").is_none(), "the record is gone");
    let empty = run(&wd, &["dead-letters", "list"]);
    assert!(String::from_utf8_lossy(&empty.stdout).contains("empty"), "{empty:?}");
}

#[tokio::test]
async fn kill_9_between_accept_and_processing_loses_nothing_and_runs_each_once() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let config = wd.config(&sink, 3, 100);
    // Accept only: everything acknowledged is waiting on the queue.
    let serve = Serve::start(&wd, &config, &["--no-process"]);
    let client = reqwest::Client::new();
    let ids: Vec<String> = (0..20).map(|i| format!("evt_crash_{i}")).collect();
    for id in &ids {
        let (status, body) = post_gigstack(&client, &serve, &gigstack_body(id, "invoice.created")).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("accepted")));
    }
    serve.kill_9();
    assert!(sink.hits().is_empty());

    let serve = Serve::start(&wd, &config, &[]);
    for id in &ids {
        wait_for_state(&wd, "gigstack", id, "DONE", WAIT).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let effects = sink.effects();
    assert_eq!(effects.len(), ids.len(), "one effect per event");
    let notified: HashSet<&str> = ids
        .iter()
        .filter(|id| effects.iter().any(|e| e.body.contains(&format!("inv_{id} "))))
        .map(String::as_str)
        .collect();
    assert_eq!(notified.len(), ids.len(), "every event notified once: {effects:?}");
    drop(serve);
}

#[tokio::test]
async fn sigterm_stops_accepting_finishes_and_keeps_everything_acknowledged() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let config = wd.config(&sink, 3, 100);
    let serve = Serve::start(&wd, &config, &[]);
    let client = reqwest::Client::new();
    // Deliveries in flight while the signal arrives.
    let sender = {
        let client = client.clone();
        let url = serve.url("gigstack");
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..400 {
                let id = format!("evt_term_{i}");
                let body = gigstack_body(&id, "invoice.created");
                let sent = client
                    .post(&url)
                    .header("x-gigstack-signature", gigstack_signature(&body))
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acknowledged.push(id),
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => break, // the server stopped accepting
                }
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (code, output) = tokio::task::spawn_blocking(move || serve.terminate(Duration::from_secs(20)))
        .await
        .expect("join");
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("webhooks stopped"), "{output}");
    let acknowledged = sender.await.expect("sender");
    assert!(!acknowledged.is_empty());
    // Every acknowledged delivery is on record; a restart processes the rest.
    let serve = Serve::start(&wd, &config, &[]);
    for id in &acknowledged {
        wait_for_state(&wd, "gigstack", id, "DONE", WAIT).await;
    }
    let effects = sink.effects();
    assert_eq!(effects.len(), acknowledged.len(), "one effect per acknowledged event");
    drop(serve);
}

#[tokio::test]
async fn secrets_never_appear_in_logs_responses_or_records() {
    let sink = Sink::start().await;
    sink.echo_authorization();
    sink.plan(&[503], 200);
    let wd = Workdir::new();
    let serve = Serve::start_with(&wd, &wd.config(&sink, 2, 100), &[], &[("RUST_LOG", "debug")]);
    let client = reqwest::Client::new();
    let mut answers = Vec::new();

    // A valid payment (its handler calls the API with the key, which the
    // sink rejects once and echoes back), bad and missing signatures, a
    // wrong token, and a delivery that carries a secret in the wrong place.
    let payment = gigstack_body("evt_pay_1", "payment.received");
    answers.push(post_gigstack(&client, &serve, &payment).await);
    for (provider, headers) in [
        ("gigstack", vec![("x-gigstack-signature", "00ff".to_string())]),
        ("gigstack", vec![]),
        ("gigstack", vec![("x-gigstack-signature", GIGSTACK_SECRET.to_string())]),
        ("tusfacturas", vec![("tf-webhooktoken", format!("{TF_TOKEN}x"))]),
        ("tusfacturas", vec![("tf-webhooktoken", String::new())]),
    ] {
        let mut req = client.post(serve.url(provider)).body(r#"{"id":"x","type":"y"}"#);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("post");
        let status = resp.status().as_u16();
        assert!(status == 401 || status == 403, "{provider}: {status}");
        answers.push((
            status,
            serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or_default(),
        ));
    }
    let resp = client
        .post(format!("{}?token={}x", serve.url("piriod"), PIRIOD_TOKEN))
        .body(r#"{"event":"payment.created","object_id":"p1"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 401);

    let record = wait_for_state(&wd, "gigstack", "evt_pay_1", "DONE", WAIT).await;
    assert_eq!(
        record["attempts"], 2,
        "the rejected key failed the first attempt: {record}"
    );
    let auth = sink.hits()[0].authorization.clone().unwrap_or_default();
    assert_eq!(
        auth,
        format!("Bearer {GIGSTACK_API_KEY}"),
        "the handler did send the key"
    );

    let (_, output) = tokio::task::spawn_blocking(move || serve.terminate(Duration::from_secs(20)))
        .await
        .expect("join");
    assert!(output.contains("evt_pay_1"), "the log is captured: {output}");
    let shown = run(&wd, &["events", "show", "gigstack", "evt_pay_1"]);
    let listed = run(&wd, &["events", "list", "--json"]);
    let everything = format!(
        "{output}\n{answers:?}\n{}\n{}\n{record}",
        String::from_utf8_lossy(&shown.stdout),
        String::from_utf8_lossy(&listed.stdout)
    );
    for secret in SECRETS {
        assert!(!everything.contains(secret), "secret {secret} leaked:\n{everything}");
    }
}

/// `GET /metrics` after a known sequence: one accepted, one duplicate, one
/// bad signature, one unknown provider, one handler that fails for good, one
/// that fails retryably (a 503) and then succeeds.
///
/// `in_flight_total` (a 409 to a copy of an event an earlier version
/// claimed on AWS and had not queued) is not asserted: it cannot happen on
/// the embedded database, whose claim and enqueue are one transaction.
#[tokio::test]
async fn metrics_count_a_known_sequence_of_deliveries() {
    let sink = Sink::start().await;
    sink.plan(&[200, 400], 200);
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let client = reqwest::Client::new();
    let ok = gigstack_body("evt_metrics_1", "invoice.created");
    assert_eq!(post_gigstack(&client, &serve, &ok).await.0, 200);
    assert_eq!(post_gigstack(&client, &serve, &ok).await.1["status"], "duplicate");
    // The sink answers its first call 200 and its second 400: the first
    // event must have had its call before the second is sent.
    wait_for_state(&wd, "gigstack", "evt_metrics_1", "DONE", WAIT).await;
    let doomed = gigstack_body("evt_metrics_2", "invoice.created");
    assert_eq!(post_gigstack(&client, &serve, &doomed).await.0, 200);
    let forged = client
        .post(serve.url("gigstack"))
        .header("x-gigstack-signature", "00".repeat(32))
        .body(gigstack_body("evt_metrics_3", "invoice.created"))
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status().as_u16(), 401);
    let unknown = client.post(serve.url("made-up")).body("{}").send().await.expect("post");
    assert_eq!(unknown.status().as_u16(), 404);
    wait_for_state(&wd, "gigstack", "evt_metrics_2", "FAILED", WAIT).await;
    // Only after the others are settled, so the 503 is this event's.
    sink.plan(&[503], 200);
    let retried = gigstack_body("evt_metrics_4", "invoice.created");
    assert_eq!(post_gigstack(&client, &serve, &retried).await.0, 200);
    wait_for_state(&wd, "gigstack", "evt_metrics_4", "DONE", WAIT).await;

    let base = serve.url("x");
    let metrics_url = format!("{}/metrics", base.split("/webhooks/").next().expect("base"));
    let text = client
        .get(&metrics_url)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    };
    assert_eq!(value(r#"accepted_total{provider="gigstack"}"#), 3.0);
    assert_eq!(value(r#"duplicate_total{provider="gigstack"}"#), 1.0);
    assert_eq!(
        value(r#"rejected_total{provider="gigstack",reason="invalid_signature"}"#),
        1.0
    );
    assert_eq!(
        value(r#"rejected_total{provider="unknown",reason="unknown_provider"}"#),
        1.0
    );
    assert_eq!(
        value(r#"handler_succeeded_total{provider="gigstack",handler="gigstack.notify_invoice_created"}"#),
        2.0
    );
    assert_eq!(
        value(r#"handler_retried_total{provider="gigstack",handler="gigstack.notify_invoice_created"}"#),
        1.0
    );
    assert_eq!(
        value(r#"handler_latency_seconds_count{handler="gigstack.notify_invoice_created"}"#),
        4.0,
        "one timing per run: succeeded, failed, retried, succeeded"
    );
    assert_eq!(
        value(r#"handler_failed_total{provider="gigstack",handler="gigstack.notify_invoice_created"}"#),
        1.0
    );
    assert_eq!(value(r#"dead_lettered_total{provider="gigstack"}"#), 1.0);
    assert_eq!(value("dead_letters"), 1.0);
    assert_eq!(value("queue_depth"), 0.0);
    assert!(value(r#"ingest_latency_seconds_count{provider="gigstack"}"#) >= 5.0);
    assert_eq!(value(r#"event_age_seconds_count{provider="gigstack"}"#), 2.0);
    assert!(!text.contains("made-up"), "a made-up path never becomes a label");
}

/// `events export` writes JSON lines filtered by state and time, and
/// `replay --dead-letter` ends with its counts.
#[tokio::test]
async fn export_writes_json_lines_and_a_redrive_ends_with_its_counts() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let client = reqwest::Client::new();
    // The first fails for good whatever the sink answers (a payment with no
    // id: its handler cannot request a complement), the second succeeds.
    // Neither outcome depends on the order in which the sink sees calls.
    let paymentless = serde_json::json!({
        "id": "evt_export_1", "type": "payment.received", "data": {"invoice": "inv_1", "amount": 100}
    })
    .to_string();
    let deliveries = [
        ("evt_export_1", paymentless, "FAILED"),
        ("evt_export_2", gigstack_body("evt_export_2", "invoice.created"), "DONE"),
    ];
    for (id, body, state) in deliveries {
        let (status, _) = post_gigstack(&client, &serve, &body).await;
        assert_eq!(status, 200);
        wait_for_state(&wd, "gigstack", id, state, WAIT).await;
    }
    let all = run(&wd, &["events", "export"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&all.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0]["received"].as_str().unwrap().ends_with('Z'),
        "UTC ISO-8601: {}",
        lines[0]
    );
    assert!(
        String::from_utf8_lossy(&all.stderr).contains("exported 2 event(s)"),
        "{all:?}"
    );
    let failed = run(&wd, &["events", "export", "--status", "FAILED", "--payloads"]);
    let text = String::from_utf8_lossy(&failed.stdout).into_owned();
    assert_eq!(text.lines().count(), 1, "{text}");
    let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(
        (line["id"].as_str(), line["payload"]["id"].as_str()),
        (Some("evt_export_1"), Some("evt_export_1"))
    );
    let future = run(&wd, &["events", "export", "--since", "2999-01-01"]);
    assert!(future.stdout.is_empty(), "{future:?}");
    let bad = run(&wd, &["events", "export", "--since", "yesterday"]);
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("is not a time"),
        "{bad:?}"
    );
    let listed = run(&wd, &["events", "list"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains("RECEIVED (UTC)"),
        "{listed:?}"
    );

    let redrive = run(&wd, &["replay", "--dead-letter"]);
    let text = String::from_utf8_lossy(&redrive.stdout).into_owned();
    assert!(redrive.status.success(), "{redrive:?}");
    assert!(text.contains("replayed gigstack#evt_export_1"), "{text}");
    assert!(
        text.contains(
            "moved 1; skipped 0 (0 DONE meanwhile, discarded; 0 being processed); failed 0 (0 store unavailable, 0 queue error)"
        ),
        "{text}"
    );
}
