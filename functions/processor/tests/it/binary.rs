//! The real `processor` binary (the thin main) under a minimal Lambda
//! Runtime API on 127.0.0.1, fed SQS events made of real messages from moto.
//! Prints the cold start and latency it sees (run with `--nocapture`);
//! nothing here asserts a speed.

use crate::support::runtime_api::{Outcome, RuntimeApi};
use crate::support::*;
use std::time::{Duration, Instant};
use webhooks_core::event::{EventKey, EventState};
use webhooks_core::ports::store::EventStore;
use webhooks_testkit_aws::sqs_event;

/// The binary under test; `WEBHOOKS_TEST_PROCESSOR_BIN` measures another build.
fn bin() -> String {
    std::env::var("WEBHOOKS_TEST_PROCESSOR_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_processor").to_string())
}

#[tokio::test]
async fn fails_fast_naming_the_missing_variable() {
    let api = RuntimeApi::start().await;
    let mut vars = env_json("ProcessorFunction");
    vars.remove("EVENTS_TABLE");
    let started = Instant::now();
    let f = Function::spawn(&bin(), api.addr, &vars);
    let (code, output) = f.finish(Duration::from_secs(20)).await;
    assert_ne!(code, Some(0), "{output}");
    assert!(
        output.contains("EVENTS_TABLE"),
        "the error names the variable: {output}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn processes_sqs_events_under_the_lambda_runtime_api() {
    let Some(endpoint) = endpoint("processes_sqs_events_under_the_lambda_runtime_api") else {
        return;
    };
    let stack = Stack::create(&endpoint, "proc-bin", 5).await;
    let overlay_text = no_handlers_overlay();
    let runtime = stack.runtime(&overlay_text, &Counter::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let overlay = dir.path().join("overlay.toml");
    std::fs::write(&overlay, &overlay_text).expect("overlay");
    let mut vars = stack.lambda_env("ProcessorFunction");
    vars.insert("WEBHOOKS_CONFIG".into(), overlay.display().to_string());
    let mut api = RuntimeApi::start().await;
    let mut f = Function::spawn(&bin(), api.addr, &vars);
    let first_poll = tokio::time::timeout(Duration::from_secs(30), api.polls.recv())
        .await
        .expect("init finishes")
        .expect("poll");
    let init = first_poll - f.started;

    // Real messages: three deliveries through the ingest router, plus a poison one.
    let router = ingest::router(&runtime);
    for file in [
        "apigw-gigstack-invoice-created.json",
        "apigw-tusfacturas-comprobante.json",
        "apigw-piriod-invoice-created.json",
    ] {
        assert_eq!(invoke_http(&router, &read_event(file)).await.status, 200, "{file}");
    }
    stack.send_raw("poison {").await;
    let messages = stack.receive_raw(4, 180).await;
    assert_eq!(messages.len(), 4);
    let event = serde_json::to_string(&sqs_event(&messages)).expect("json");
    let sent = api.invoke("batch-1", &event);
    let (at, outcome) = api.outcome(Duration::from_secs(30)).await;
    let first_batch = at - sent;
    match outcome {
        Outcome::Response(id, v) => {
            assert_eq!(id, "batch-1");
            assert_eq!(v["batchItemFailures"], serde_json::json!([]), "{v}");
        }
        other => panic!("{other:?}"),
    }
    for key in [
        EventKey::new("gigstack", "evt_gs_test_0001"),
        stored_key(&runtime, "piriod", "invoice.created:inv_cl_test_7781").await,
    ] {
        let rec = runtime.store.get(&key).await.expect("get").expect("record");
        assert_eq!(rec.state, EventState::Done, "{key}");
    }
    assert_eq!(stack.dlq_messages().await.len(), 1, "the poison message is parked");

    // Warm: one-record batches of new events.
    let mut warm = Vec::new();
    for i in 0..10 {
        let mut event: serde_json::Value =
            serde_json::from_str(&read_event("apigw-piriod-invoice-created.json")).expect("json");
        let body = format!(r#"{{"event":"invoice.created","object_id":"warm-{i}"}}"#);
        event["headers"]["content-length"] = body.len().to_string().into();
        event["body"] = body.into();
        assert_eq!(invoke_http(&router, &event.to_string()).await.status, 200);
        let messages = stack.receive_raw(1, 180).await;
        let sent = api.invoke(
            &format!("warm-{i}"),
            &serde_json::to_string(&sqs_event(&messages)).expect("json"),
        );
        let (at, outcome) = api.outcome(Duration::from_secs(30)).await;
        match outcome {
            Outcome::Response(_, v) => assert_eq!(v["batchItemFailures"], serde_json::json!([]), "{v}"),
            other => panic!("{other:?}"),
        }
        warm.push(at - sent);
    }
    warm.sort();
    let _ = f.child.start_kill();
    let (_, logs) = f.finish(Duration::from_secs(10)).await;
    // CloudWatch metrics (EMF) in the log, one document per batch and
    // provider: every event that became DONE counted with its age.
    let emf: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).expect("EMF line is JSON"))
        .collect();
    let done = |provider: &str| -> usize {
        emf.iter()
            .filter(|d| d["provider"] == provider)
            .map(|d| match &d["EventAge"] {
                serde_json::Value::Array(values) => values.len(),
                serde_json::Value::Number(_) => 1,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(
        (done("gigstack"), done("tusfacturas"), done("piriod")),
        (1, 1, 11),
        "{emf:?}"
    );
    assert!(
        emf.iter()
            .all(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Webhooks"),
        "{emf:?}"
    );
    // Tracing across the hop: API Gateway's request id of the gigstack
    // delivery came with its message, onto the processor's log line for
    // that event and its batch's EMF document.
    assert!(
        emf.iter().any(|d| d["request_ids"]
            .as_array()
            .is_some_and(|ids| ids.iter().any(|id| id == "req-gs-0001"))),
        "{emf:?}"
    );
    let processed = logs
        .lines()
        .find(|l| l.contains("processed") && l.contains("evt_gs_test_0001"))
        .unwrap_or_else(|| panic!("no processed line for the gigstack event: {logs}"));
    assert!(processed.contains(r#""request_id":"req-gs-0001""#), "{processed}");
    println!(
        "MEASURE processor ({}, moto on 127.0.0.1): init {:?}, first batch of 4 {:?}, warm 1-record batch p50 {:?} max {:?}",
        bin(),
        init,
        first_batch,
        warm[warm.len() / 2],
        warm[warm.len() - 1]
    );
}
