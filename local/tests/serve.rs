//! `webhooks serve` end to end, as a user runs it: the real binary on a
//! temporary SQLite database, signed deliveries over HTTP, handlers calling a
//! local HTTP sink that counts their effects.

mod support;

use std::collections::HashSet;
use std::time::Duration;
use support::*;

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
        // A copy racing the first one is a duplicate (200) or, while the
        // first is still being claimed, 409 so its sender retries.
        assert!(
            (*status == 200 && (body["status"] == "accepted" || body["status"] == "duplicate"))
                || (*status == 409 && body["error"] == "in_progress"),
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
