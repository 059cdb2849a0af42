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

/// Every EMF document the binary printed.
fn emf_documents(logs: &str) -> Vec<serde_json::Value> {
    logs.lines()
        .filter(|l| l.starts_with('{') && l.contains("\"_aws\""))
        .map(|l| serde_json::from_str(l).expect("EMF line is JSON"))
        .collect()
}

/// The values of `metric` across the documents whose dimensions include
/// `labels` (one value per recording; a lone value is written bare).
fn emf_values(emf: &[serde_json::Value], metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    emf.iter()
        .filter(|d| labels.iter().all(|(k, v)| d[*k] == *v))
        .flat_map(|d| match &d[metric] {
            serde_json::Value::Array(values) => values.iter().filter_map(serde_json::Value::as_f64).collect(),
            serde_json::Value::Number(n) => n.as_f64().into_iter().collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// The binary's one invocation of `messages` as an SQS batch; its response.
async fn run_batch(api: &mut RuntimeApi, id: &str, messages: &[aws_sdk_sqs::types::Message]) -> serde_json::Value {
    api.invoke(id, &serde_json::to_string(&sqs_event(messages)).expect("json"));
    match api.outcome(Duration::from_secs(30)).await.1 {
        Outcome::Response(got, v) => {
            assert_eq!(got, id);
            v
        }
        other => panic!("{other:?}"),
    }
}

/// The handlers' credentials as the template passes them: one Secrets
/// Manager JSON secret (`HandlerCredentials`), one `#key` per variable. A key
/// the secret lacks does not stop the cold start; only the handler that
/// needs it fails, for good, naming the key.
#[tokio::test]
async fn a_handler_credentials_secret_lacking_a_key_fails_only_the_handler_that_needs_it() {
    let Some(endpoint) = endpoint("a_handler_credentials_secret_lacking_a_key_fails_only_the_handler_that_needs_it")
    else {
        return;
    };
    let stack = Stack::create(&endpoint, "proc-creds", 5).await;
    let secret = format!("{}/handlers", webhooks_testkit_aws::unique("creds"));
    stack
        .clients
        .secrets_manager
        .create_secret()
        .name(&secret)
        .secret_string(r#"{"piriod_api_token":"pi-api-token","piriod_workspace":"ws_1"}"#)
        .send()
        .await
        .expect("secret");
    let mut vars = stack.lambda_env("ProcessorFunction");
    for (var, key) in [
        ("GIGSTACK_API_KEY", "gigstack_api_key"),
        ("PIRIOD_API_TOKEN", "piriod_api_token"),
        ("PIRIOD_WORKSPACE", "piriod_workspace"),
    ] {
        vars.insert(var.into(), format!("secretsmanager:{secret}#{key}"));
    }
    let mut api = RuntimeApi::start().await;
    let f = Function::spawn(&bin(), api.addr, &vars);
    tokio::time::timeout(Duration::from_secs(30), api.polls.recv())
        .await
        .expect("the cold start succeeds without the key")
        .expect("poll");

    // A payment: the complement handler needs gigstack_api_key.
    let runtime = stack.runtime(&no_handlers_overlay(), &Counter::default());
    let payment = webhooks_core::event::Event {
        provider: "gigstack".into(),
        id: "evt_gs_payment_1".into(),
        event_type: "payment.received".into(),
        received_at: webhooks_core::time::unix_now(),
        payload: webhooks_core::payload::Payload::from_text(
            r#"{"id":"evt_gs_payment_1","type":"payment.received","data":{"id":"pay_1","invoice":"inv_1"}}"#,
        ),
        request_id: None,
        original: None,
    };
    webhooks_core::ports::queue::Queue::send(runtime.queue.as_ref(), &[&payment])
        .await
        .expect("send");
    let messages = stack.receive_raw(1, 180).await;
    let v = run_batch(&mut api, "payment", &messages).await;
    assert_eq!(v["batchItemFailures"], serde_json::json!([]), "settled: {v}");
    let rec = runtime
        .store
        .get(&EventKey::new("gigstack", "evt_gs_payment_1"))
        .await
        .expect("get")
        .expect("record");
    let error = rec.last_error.clone().unwrap_or_default();
    assert_eq!((rec.state, rec.attempts), (EventState::Failed, 1), "{rec:?}");
    assert!(
        error.contains("gigstack.payment_complement")
            && error.contains("handlers.gigstack_api_key could not be read")
            && error.contains("gigstack_api_key"),
        "{error}"
    );
    assert!(!error.contains("pi-api-token"), "no secret in the error: {error}");
    let dead = stack.dlq_messages().await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (_, logs) = {
        let mut f = f;
        let _ = f.child.start_kill();
        f.finish(Duration::from_secs(10)).await
    };
    assert!(!logs.contains("pi-api-token"), "secrets never logged");
}

/// The figures the binary writes for a known sequence: a notification
/// refused with 503 once then accepted (retried, then succeeded), another
/// refused with 400 (failed, dead-lettered), and poison messages parked
/// directly (dead-lettered under the provider their attributes name, or
/// "unknown" when they name none).
#[tokio::test]
async fn handler_metrics_count_a_known_sequence() {
    let Some(endpoint) = endpoint("handler_metrics_count_a_known_sequence") else {
        return;
    };
    let stack = Stack::create(&endpoint, "proc-emf", 5).await;
    let notify = webhooks_testkit::http_sink::TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let overlay = dir.path().join("overlay.toml");
    std::fs::write(
        &overlay,
        // The built-in handlers: gigstack's invoice.created notifies.
        format!(
            "[retry]\nbase_delay_ms = 100\nmax_delay_ms = 1000\n[handlers]\nnotify_url = \"{}\"\n",
            notify.url("/notify")
        ),
    )
    .expect("overlay");
    let mut vars = stack.lambda_env("ProcessorFunction");
    vars.insert("WEBHOOKS_CONFIG".into(), overlay.display().to_string());
    let mut api = RuntimeApi::start().await;
    let mut f = Function::spawn(&bin(), api.addr, &vars);
    tokio::time::timeout(Duration::from_secs(30), api.polls.recv())
        .await
        .expect("init finishes")
        .expect("poll");
    let runtime = stack.runtime(&no_handlers_overlay(), &Counter::default());
    let invoice = |id: &str| webhooks_core::event::Event {
        provider: "gigstack".into(),
        id: id.into(),
        event_type: "invoice.created".into(),
        received_at: webhooks_core::time::unix_now(),
        payload: webhooks_core::payload::Payload::from_text(format!(
            r#"{{"id":"{id}","type":"invoice.created","data":{{"id":"inv_{id}","total":100}}}}"#
        )),
        request_id: None,
        original: None,
    };
    let send = |event: webhooks_core::event::Event| {
        let queue = runtime.queue.clone();
        async move {
            webhooks_core::ports::queue::Queue::send(queue.as_ref(), &[&event])
                .await
                .expect("send")
        }
    };

    // A: 503 (retried), then 200 (succeeded).
    notify.reply(503, "text/plain", "busy");
    send(invoice("evt_emf_a")).await;
    let v = run_batch(&mut api, "a-1", &stack.receive_raw(1, 180).await).await;
    assert_eq!(v["batchItemFailures"].as_array().map(Vec::len), Some(1), "{v}");
    // B: 400 (failed, dead-lettered).
    notify.reply(400, "text/plain", "bad");
    send(invoice("evt_emf_b")).await;
    let v = run_batch(&mut api, "b-1", &stack.receive_raw(1, 180).await).await;
    assert_eq!(v["batchItemFailures"], serde_json::json!([]), "{v}");
    // A again, after its backoff: accepted.
    let deadline = Instant::now() + Duration::from_secs(20);
    let again = loop {
        let got = stack.receive_raw(1, 180).await;
        if !got.is_empty() {
            break got;
        }
        assert!(Instant::now() < deadline, "A never came back");
    };
    let v = run_batch(&mut api, "a-2", &again).await;
    assert_eq!(v["batchItemFailures"], serde_json::json!([]), "{v}");
    // Poison: one sent with the provider attribute, one bare.
    stack
        .clients
        .sqs
        .send_message()
        .queue_url(&stack.env.queue_url)
        .message_body("poison {")
        .message_attributes(
            "provider",
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("piriod")
                .build()
                .expect("attribute"),
        )
        .send()
        .await
        .expect("send");
    stack.send_raw("poison, bare {").await;
    let poison = stack.receive_raw(2, 180).await;
    assert_eq!(poison.len(), 2);
    let v = run_batch(&mut api, "poison", &poison).await;
    assert_eq!(v["batchItemFailures"], serde_json::json!([]), "{v}");
    for (id, state) in [("evt_emf_a", EventState::Done), ("evt_emf_b", EventState::Failed)] {
        let rec = runtime
            .store
            .get(&EventKey::new("gigstack", id))
            .await
            .expect("get")
            .expect("record");
        assert_eq!(rec.state, state, "{id}: {rec:?}");
    }
    assert_eq!(notify.requests().len(), 3, "three calls: 503, 400, 200");

    let _ = f.child.start_kill();
    let (_, logs) = f.finish(Duration::from_secs(10)).await;
    let emf = emf_documents(&logs);
    let handler = ("handler", "gigstack.notify_invoice_created");
    let count = |metric: &str, labels: &[(&str, &str)]| -> f64 { emf_values(&emf, metric, labels).iter().sum() };
    let gigstack = [("provider", "gigstack"), handler];
    assert_eq!(
        (
            count("HandlerRetried", &gigstack),
            count("HandlerFailed", &gigstack),
            count("HandlerSucceeded", &gigstack),
        ),
        (1.0, 1.0, 1.0),
        "{emf:#?}"
    );
    assert_eq!(count("DeadLettered", &[("provider", "gigstack")]), 1.0, "{emf:#?}");
    assert_eq!(count("DeadLettered", &[("provider", "piriod")]), 1.0, "{emf:#?}");
    assert_eq!(count("DeadLettered", &[("provider", "unknown")]), 1.0, "{emf:#?}");
    let latency = emf_values(&emf, "HandlerLatency", &[handler]);
    assert_eq!(latency.len(), 3, "one latency per call: {emf:#?}");
    assert!(latency.iter().all(|l| *l > 0.0), "{latency:?}");
}
