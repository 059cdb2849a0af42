//! The ingest function fed the API Gateway events of `events/` end to end:
//! `lambda_http`'s conversion, the shared router, DynamoDB and SQS in moto.
//!
//! Needs `WEBHOOKS_TEST_AWS_ENDPOINT` (`eval "$(scripts/aws-emulator start)"`;
//! `scripts/test` always sets it). Without it the emulator tests print why and pass.

use crate::support::*;
use webhooks_aws::Clients;
use webhooks_core::event::{EventKey, EventState};
use webhooks_core::ports::store::EventStore;

/// Every API Gateway event in `events/`, in the order the end-to-end test
/// sends them, with the answer it must get.
const INGEST_EVENTS: &[(&str, u16, &str)] = &[
    ("apigw-gigstack-invoice-created.json", 200, "accepted"),
    ("apigw-gigstack-duplicate.json", 200, "duplicate"),
    ("apigw-gigstack-bad-signature.json", 401, "invalid_signature"),
    ("apigw-tusfacturas-comprobante.json", 200, "accepted"),
    ("apigw-tusfacturas-duplicate.json", 200, "duplicate"),
    ("apigw-tusfacturas-form.json", 200, "accepted"),
    ("apigw-tusfacturas-bad-token.json", 403, "invalid_signature"),
    ("apigw-piriod-invoice-created.json", 200, "accepted"),
    ("apigw-piriod-duplicate.json", 200, "duplicate"),
    ("apigw-piriod-bad-token.json", 401, "invalid_signature"),
    ("apigw-unknown-provider.json", 404, "unknown_provider"),
    ("apigw-healthz.json", 200, "ok"),
];

/// The SQS batch events, read by the processor's tests.
const PROCESSOR_EVENTS: &[&str] = &["sqs-batch.json", "sqs-batch-poison.json"];

#[test]
fn every_file_in_events_is_read_by_a_test() {
    for name in event_files() {
        let known = name == "env.json"
            || INGEST_EVENTS.iter().any(|(f, _, _)| *f == name)
            || PROCESSOR_EVENTS.contains(&name.as_str());
        assert!(
            known,
            "events/{name} is read by no test: add it to INGEST_EVENTS (functions/ingest/tests/it/events.rs) \
             or to the processor's SQS_EVENTS, or remove it"
        );
        let text = read_event(&name);
        serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("events/{name} is not JSON: {e}"));
    }
    for (name, _, _) in INGEST_EVENTS {
        assert!(event_files().contains(&name.to_string()), "events/{name} is missing");
    }
}

/// Every route the router answers is a route of the HTTP API in the
/// template (`GET /healthz` was answered by the code but not routed).
#[test]
fn the_template_routes_every_path_of_the_router() {
    let template = std::fs::read_to_string(events_dir().join("../template.yaml")).expect("template.yaml");
    for (method, path) in [
        ("POST", "/webhooks/{provider}"),
        ("GET", "/webhooks/{provider}"),
        ("GET", "/healthz"),
    ] {
        let route = format!("Method: {method}\n            Path: {path}\n");
        assert!(
            template.contains(&route),
            "template.yaml does not route {method} {path}"
        );
    }
}

#[test]
fn env_json_carries_the_test_secrets_for_both_functions() {
    for function in ["IngestFunction", "ProcessorFunction"] {
        let vars = env_json(function);
        for name in [
            "GIGSTACK_WEBHOOK_SECRET",
            "TF_WEBHOOK_TOKEN",
            "PIRIOD_WEBHOOK_TOKEN",
            "EVENTS_TABLE",
            "QUEUE_URL",
            "DLQ_URL",
            "ARTIFACTS_BUCKET",
        ] {
            assert!(
                vars.get(name).is_some_and(|v| !v.is_empty()),
                "env.json {function} lacks {name}"
            );
        }
    }
}

#[tokio::test]
async fn api_gateway_events_end_to_end_into_table_and_queue() {
    let Some(endpoint) = endpoint("api_gateway_events_end_to_end_into_table_and_queue") else {
        return;
    };
    let stack = Stack::create(&endpoint, "ingest-e2e", 5).await;
    let counter = Counter::default();
    let runtime = stack.runtime(COUNT_ALL, &counter);
    let router = ingest::router(&runtime);
    let mut accepted = Vec::new();
    for (file, status, outcome) in INGEST_EVENTS {
        let event = read_event(file);
        let answer = invoke_http(&router, &event).await;
        assert_eq!(answer.status, *status, "{file}: {answer:?}");
        let got = answer.body.get("status").or_else(|| answer.body.get("error"));
        assert_eq!(got.and_then(|v| v.as_str()), Some(*outcome), "{file}: {answer:?}");
        // API Gateway's request id is the request id of the delivery.
        let request_id: serde_json::Value = serde_json::from_str(&event).expect("json");
        assert_eq!(
            answer.headers.get("x-request-id").and_then(|v| v.as_str()),
            request_id["requestContext"]["requestId"].as_str(),
            "{file}"
        );
        if *outcome == "accepted" {
            let provider = request_id["pathParameters"]["provider"]
                .as_str()
                .expect("provider")
                .to_string();
            for id in answer.body["ids"].as_array().expect("ids") {
                accepted.push(EventKey::new(&provider, id.as_str().expect("id")));
            }
        }
    }
    assert_eq!(accepted.len(), 4, "{accepted:?}");
    // Each accepted event: a QUEUED record with its payload.
    for key in &accepted {
        let rec = runtime.store.get(key).await.expect("get").expect("record");
        assert_eq!(rec.state, EventState::Queued, "{key}");
        assert!(rec.payload.is_some() && !rec.payload_omitted, "{key}");
        assert!(rec.expires_at > rec.received_at + 6 * 86_400, "{key}: TTL of 7 days");
    }
    // Ingest sends before it records, so a copy's message went out too
    // (the processor acknowledges it): one message per accepted event and
    // one per copy, none for the rest.
    let copies = INGEST_EVENTS.iter().filter(|(_, _, o)| *o == "duplicate").count();
    let messages = stack.receive_raw(accepted.len() + copies, 30).await;
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| {
            let attrs = m.message_attributes().expect("attributes");
            let attr = |n: &str| {
                attrs
                    .get(n)
                    .and_then(|v| v.string_value())
                    .unwrap_or_default()
                    .to_string()
            };
            let body: serde_json::Value = serde_json::from_str(m.body().expect("body")).expect("envelope");
            assert_eq!(body["provider"].as_str(), Some(attr("provider").as_str()));
            assert_eq!(body["type"].as_str(), Some(attr("event_type").as_str()));
            format!("{}#{}", attr("provider"), attr("event_id"))
        })
        .collect();
    assert_eq!(ids.len(), accepted.len() + copies, "{ids:?}");
    ids.sort();
    ids.dedup();
    let mut expected: Vec<String> = accepted.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(ids, expected, "messages of the accepted events and their copies only");
    // The form body (base64 in the API Gateway event) became a JSON object.
    let form = EventKey::new("tusfacturas", "pedido-2026-0043:rechazado");
    let rec = runtime.store.get(&form).await.expect("get").expect("form record");
    assert_eq!(rec.event_type, "comprobante.rechazado");
    assert!(rec.payload.unwrap_or_default().as_str().contains("CUIT invalido"));
    assert_eq!(counter.total(), 0, "ingest runs no handler");
}

#[tokio::test]
async fn queue_unreachable_gives_503_and_no_claim_so_the_retry_is_accepted() {
    let Some(endpoint) = endpoint("queue_unreachable_gives_503_and_no_claim_so_the_retry_is_accepted") else {
        return;
    };
    let stack = Stack::create(&endpoint, "ingest-503", 5).await;
    // A port nothing listens on: bind one, then close it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let broken = Clients {
        sqs: clients(&format!("http://127.0.0.1:{closed}")).await.sqs,
        ..stack.clients.clone()
    };
    let counter = Counter::default();
    let event = read_event("apigw-gigstack-invoice-created.json");
    let key = EventKey::new("gigstack", "evt_gs_test_0001");

    let runtime = stack.runtime_with(broken, COUNT_ALL, &counter);
    let started = std::time::Instant::now();
    let answer = invoke_http(&ingest::router(&runtime), &event).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(
        answer.body,
        serde_json::json!({"error": "unavailable"}),
        "no internal detail leaks"
    );
    assert_eq!(answer.headers.get("retry-after").and_then(|v| v.as_str()), Some("5"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "fails fast: {:?}",
        started.elapsed()
    );
    assert!(
        runtime.store.get(&key).await.expect("get").is_none(),
        "nothing was recorded"
    );

    // The provider retries once the queue is back: accepted, not a duplicate.
    let runtime = stack.runtime(COUNT_ALL, &counter);
    let answer = invoke_http(&ingest::router(&runtime), &event).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "accepted");
    let rec = runtime.store.get(&key).await.expect("get").expect("record");
    assert_eq!(rec.state, EventState::Queued);
    assert_eq!(stack.receive_raw(1, 30).await.len(), 1);
}

#[tokio::test]
async fn table_unreachable_gives_503_and_nothing_is_queued() {
    let Some(endpoint) = endpoint("table_unreachable_gives_503_and_nothing_is_queued") else {
        return;
    };
    let stack = Stack::create(&endpoint, "ingest-ddb", 5).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let broken = Clients {
        dynamodb: clients(&format!("http://127.0.0.1:{closed}")).await.dynamodb,
        ..stack.clients.clone()
    };
    let runtime = stack.runtime_with(broken, COUNT_ALL, &Counter::default());
    let answer = invoke_http(
        &ingest::router(&runtime),
        &read_event("apigw-piriod-invoice-created.json"),
    )
    .await;
    assert_eq!(answer.status, 503, "{answer:?}");
    let messages = stack
        .clients
        .sqs
        .receive_message()
        .queue_url(&stack.env.queue_url)
        .send()
        .await
        .expect("receive");
    assert!(messages.messages().is_empty(), "nothing is queued without a claim");
}

/// A signed body under `max_body_bytes` (1 MiB) whose envelope cannot fit
/// in one SQS message (1 MiB with its attributes) is answered 413 before
/// any claim: a 503 would make the provider retry a delivery that can never
/// be queued, for ever.
#[tokio::test]
async fn a_body_the_queue_cannot_carry_is_413_and_leaves_no_claim() {
    let Some(endpoint) = endpoint("a_body_the_queue_cannot_carry_is_413_and_leaves_no_claim") else {
        return;
    };
    let stack = Stack::create(&endpoint, "ingest-413", 5).await;
    let runtime = stack.runtime(COUNT_ALL, &Counter::default());
    let id = "evt_gs_big_0001";
    let filler = "x".repeat(1024 * 1024 - 200);
    let body = format!(r#"{{"id":"{id}","type":"invoice.created","data":{{"note":"{filler}"}}}}"#);
    assert!(body.len() < 1024 * 1024, "under the configured limit");
    let answer = invoke_http(&ingest::router(&runtime), &signed_gigstack_event(&runtime, body, id)).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.body, serde_json::json!({"error": "payload_too_large"}));
    let key = EventKey::new("gigstack", id);
    assert!(
        runtime.store.get(&key).await.expect("get").is_none(),
        "no claim is left"
    );
    assert!(stack.receive_raw(1, 30).await.is_empty(), "nothing is queued");
}

/// An event id over the 512-byte cap is 400 before any write: DynamoDB
/// would refuse the key, and every retry would be answered 503 for ever.
#[tokio::test]
async fn an_overlong_event_id_is_400_and_leaves_no_claim() {
    let Some(endpoint) = endpoint("an_overlong_event_id_is_400_and_leaves_no_claim") else {
        return;
    };
    let stack = Stack::create(&endpoint, "ingest-long-id", 5).await;
    let runtime = stack.runtime(COUNT_ALL, &Counter::default());
    let id = "i".repeat(2_100);
    let body = format!(r#"{{"id":"{id}","type":"invoice.created","data":{{}}}}"#);
    let answer = invoke_http(&ingest::router(&runtime), &signed_gigstack_event(&runtime, body, &id)).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.body["error"], "invalid_payload");
    assert!(
        answer.body["detail"].as_str().unwrap_or("").contains("at most 512"),
        "{answer:?}"
    );
    let filter = webhooks_core::ports::store::ListFilter {
        provider: Some("gigstack".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(runtime.store.list(&filter).await.expect("list").is_empty(), "no claim");
    assert!(stack.receive_raw(1, 30).await.is_empty(), "nothing is queued");
}

/// The sample gigstack API Gateway event carrying `body`, signed with the
/// runtime's gigstack secret.
fn signed_gigstack_event(runtime: &webhooks_aws::Runtime, body: String, id: &str) -> String {
    let provider = runtime.app.providers.get("gigstack").expect("gigstack");
    let signed = provider.verifier.sign(&webhooks_core::verify::SignInput {
        body: body.as_bytes(),
        now: webhooks_core::time::unix_now(),
        id,
        url: "",
    });
    let mut event: serde_json::Value =
        serde_json::from_str(&read_event("apigw-gigstack-invoice-created.json")).expect("json");
    event["body"] = serde_json::Value::String(body);
    event["isBase64Encoded"] = serde_json::Value::Bool(false);
    for (name, value) in signed.headers {
        event["headers"][name.to_ascii_lowercase()] = serde_json::Value::String(value);
    }
    event.to_string()
}
