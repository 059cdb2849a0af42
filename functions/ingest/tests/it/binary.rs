//! The real `ingest` binary (the thin main) under a minimal Lambda Runtime
//! API on 127.0.0.1, against moto: what `cargo lambda watch` + `cargo lambda
//! invoke --data-file events/...` do, without needing cargo-lambda. Prints
//! the cold start and latency it sees (run with `--nocapture`); nothing here
//! asserts a speed.

use crate::support::runtime_api::{Outcome, RuntimeApi};
use crate::support::*;
use std::time::{Duration, Instant};

/// The binary under test; `WEBHOOKS_TEST_INGEST_BIN` measures another
/// build (e.g. `target/release/ingest`).
fn bin() -> String {
    std::env::var("WEBHOOKS_TEST_INGEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ingest").to_string())
}

#[tokio::test]
async fn fails_fast_naming_the_missing_variable() {
    let api = RuntimeApi::start().await;
    let mut vars = env_json("IngestFunction");
    vars.remove("QUEUE_URL");
    let started = Instant::now();
    let f = Function::spawn(&bin(), api.addr, &vars);
    let (code, output) = f.finish(Duration::from_secs(20)).await;
    assert_ne!(code, Some(0), "{output}");
    assert!(output.contains("QUEUE_URL"), "the error names the variable: {output}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A Piriod delivery for a new object id (Piriod authenticates with the
/// query token, so the body can change freely).
fn piriod_event(object_id: &str, request_id: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&read_event("apigw-piriod-invoice-created.json")).expect("json");
    let body = format!(r#"{{"event":"invoice.created","object_id":"{object_id}"}}"#);
    event["headers"]["content-length"] = body.len().to_string().into();
    event["body"] = body.into();
    event["requestContext"]["requestId"] = request_id.into();
    event.to_string()
}

fn peak_rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn serves_the_event_files_under_the_lambda_runtime_api() {
    let Some(endpoint) = endpoint("serves_the_event_files_under_the_lambda_runtime_api") else {
        return;
    };
    let stack = Stack::create(&endpoint, "ingest-bin", 5).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let overlay = dir.path().join("overlay.toml");
    std::fs::write(&overlay, no_handlers_overlay()).expect("overlay");
    let mut vars = stack.lambda_env("IngestFunction");
    // The providers' secrets in Secrets Manager, referenced as the template
    // does by default, so the cold start measured includes fetching them.
    let secret = vars.get("GIGSTACK_WEBHOOK_SECRET").cloned().expect("test secret");
    for name in ["GIGSTACK_WEBHOOK_SECRET", "TF_WEBHOOK_TOKEN", "PIRIOD_WEBHOOK_TOKEN"] {
        let value = vars.get(name).cloned().expect("a provider secret in events/env.json");
        let id = unique(&name.to_lowercase().replace('_', "-"));
        stack
            .clients
            .secrets_manager
            .create_secret()
            .name(&id)
            .secret_string(value)
            .send()
            .await
            .expect("create secret");
        vars.insert(name.into(), format!("secretsmanager:{id}"));
    }
    vars.insert("WEBHOOKS_CONFIG".into(), overlay.display().to_string());
    vars.insert("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into());
    let mut api = RuntimeApi::start().await;
    let mut f = Function::spawn(&bin(), api.addr, &vars);
    let first_poll = tokio::time::timeout(Duration::from_secs(30), api.polls.recv())
        .await
        .expect("init finishes")
        .expect("poll");
    let init = first_poll - f.started;

    // The first request after init, then the sample events.
    let sent = api.invoke("inv-1", &read_event("apigw-gigstack-invoice-created.json"));
    let (at, outcome) = api.outcome(Duration::from_secs(30)).await;
    let first_request = at - sent;
    match outcome {
        Outcome::Response(id, v) => {
            assert_eq!(id, "inv-1");
            let answer = parse_answer(&v);
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(answer.body["status"], "accepted");
        }
        other => panic!("{other:?}"),
    }
    for (i, (file, status)) in [
        ("apigw-gigstack-duplicate.json", 200),
        ("apigw-gigstack-bad-signature.json", 401),
        ("apigw-tusfacturas-bad-token.json", 403),
        ("apigw-tusfacturas-form.json", 200),
    ]
    .iter()
    .enumerate()
    {
        api.invoke(&format!("file-{i}"), &read_event(file));
        match api.outcome(Duration::from_secs(30)).await.1 {
            Outcome::Response(_, v) => assert_eq!(parse_answer(&v).status, *status, "{file}: {v}"),
            other => panic!("{file}: {other:?}"),
        }
    }

    // Warm: new events, each a claim + a send + a state update.
    let mut warm = Vec::new();
    for i in 0..20 {
        let sent = api.invoke(
            &format!("warm-{i}"),
            &piriod_event(&format!("obj-{i}"), &format!("rq-{i}")),
        );
        let (at, outcome) = api.outcome(Duration::from_secs(30)).await;
        match outcome {
            Outcome::Response(_, v) => assert_eq!(parse_answer(&v).status, 200, "{v}"),
            other => panic!("{other:?}"),
        }
        warm.push(at - sent);
    }
    warm.sort();
    let rss = peak_rss_kib(f.child.id());
    let _ = f.child.start_kill();
    let (_, logs) = f.finish(Duration::from_secs(10)).await;
    // AWS_LAMBDA_LOG_FORMAT=JSON: every line is a JSON object CloudWatch can
    // index, each delivery logged with its request id and event id, no secret.
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    let handled = lines
        .iter()
        .find(|l| l["fields"]["message"] == "delivery handled" && l["fields"]["request_id"] == "req-gs-0001")
        .unwrap_or_else(|| panic!("no JSON line for the first delivery: {logs}"));
    assert_eq!(handled["fields"]["event_id"], "evt_gs_test_0001", "{handled}");
    assert_eq!(handled["fields"]["outcome"], "accepted", "{handled}");
    assert!(!logs.contains(&secret), "a secret reached the log");
    // CloudWatch metrics in the Embedded Metric Format: one document per
    // request, carrying its request id, counting what was answered.
    let emf: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert_eq!(emf.len(), 25, "one EMF document per request: {emf:?}");
    assert!(emf
        .iter()
        .all(|d| d["request_id"].as_str().is_some_and(|r| !r.is_empty())));
    assert!(emf
        .iter()
        .all(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Webhooks"));
    let sum = |metric: &str, provider: &str, reason: Option<&str>| -> f64 {
        emf.iter()
            .filter(|d| d["provider"] == provider && reason.is_none_or(|r| d["reason"] == r))
            .filter_map(|d| d[metric].as_f64())
            .sum()
    };
    assert_eq!(sum("Accepted", "gigstack", None), 1.0);
    assert_eq!(sum("Accepted", "tusfacturas", None), 1.0);
    assert_eq!(sum("Accepted", "piriod", None), 20.0);
    assert_eq!(sum("Duplicate", "gigstack", None), 1.0);
    assert_eq!(sum("Rejected", "gigstack", Some("invalid_signature")), 1.0);
    assert_eq!(sum("Rejected", "tusfacturas", Some("invalid_signature")), 1.0);
    let first = emf
        .iter()
        .find(|d| d["request_id"] == "req-gs-0001")
        .expect("the first request's document");
    assert!(first["IngestLatency"].as_f64().is_some_and(|s| s > 0.0), "{first}");
    let messages = stack.receive_raw(22, 30).await;
    assert!(
        messages.len() >= 10,
        "the events reached the queue ({})",
        messages.len()
    );
    println!(
        "MEASURE ingest ({}, moto on 127.0.0.1): init {:?}, first request {:?}, warm p50 {:?} p90 {:?} max {:?}, peak RSS {} KiB",
        bin(),
        init,
        first_request,
        warm[warm.len() / 2],
        warm[warm.len() * 9 / 10],
        warm[warm.len() - 1],
        rss.map(|r| r.to_string()).unwrap_or_else(|| "?".into())
    );
}
