//! One test per row of the HTTP answers table (README.md), through the real
//! router, pipelines and SQLite adapters.

use crate::harness::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::sync::atomic::Ordering;
use std::time::Duration;
use webhooks_core::event::EventState;
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::store::Claim;

#[tokio::test]
async fn accepted_new_event_is_claimed_and_queued() {
    let h = Harness::new();
    let (status, json, _) = h
        .call(gigstack_request(&gigstack_body("evt_a", "invoice.created")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, serde_json::json!({"status": "accepted", "ids": ["evt_a"]}));
    assert_eq!(h.state("gigstack", "evt_a").await, Some(EventState::Queued));
    assert_eq!(h.sqlite_queue.depth().await.unwrap(), 1);
}

#[tokio::test]
async fn acceptances_are_written_byte_for_byte_as_the_readme_shows_them() {
    let h = Harness::new();
    let request = || gigstack_request(&gigstack_body("evt_bytes", "invoice.created"));
    let (status, _, text) = h.call(request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, r#"{"ids":["evt_bytes"],"status":"accepted"}"#);
    let (_, _, text) = h.call(request()).await;
    assert_eq!(text, r#"{"ids":["evt_bytes"],"status":"duplicate"}"#);
    let (_, _, text) = h
        .call(gigstack_request(&gigstack_body("evt_other", "invoice.exploded")))
        .await;
    assert_eq!(text, r#"{"ids":["evt_other"],"status":"ignored"}"#);
}

#[tokio::test]
async fn accepted_status_can_be_202() {
    let h = Harness::with_overlay("[ingest]\naccepted_status = 202");
    let (status, json, _) = h
        .call(gigstack_request(&gigstack_body("evt_202", "invoice.created")))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(json["status"], "accepted");
}

#[tokio::test]
async fn duplicate_of_queued_or_processed_event_is_200_duplicate() {
    let h = Harness::new();
    let body = gigstack_body("evt_dup", "invoice.created");
    assert_eq!(h.call(gigstack_request(&body)).await.0, StatusCode::OK);
    let (status, json, _) = h.call(gigstack_request(&body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, serde_json::json!({"status": "duplicate", "ids": ["evt_dup"]}));
    h.drain(std::time::Duration::from_secs(5)).await;
    assert_eq!(h.state("gigstack", "evt_dup").await, Some(EventState::Done));
    let (status, json, _) = h.call(gigstack_request(&body)).await;
    assert_eq!((status, json["status"].as_str()), (StatusCode::OK, Some("duplicate")));
    // The copies' messages, sent before ingest knew them for copies, run
    // nothing.
    h.drain(std::time::Duration::from_secs(5)).await;
    assert_eq!(h.sqlite_queue.depth().await.unwrap(), 0);
    assert_eq!(h.effect.effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn duplicate_still_in_flight_is_409() {
    let h = Harness::new();
    let body = gigstack_body("evt_inflight", "invoice.created");
    // A first copy, admitted by a version that claimed before it sent, has
    // claimed the event and not yet enqueued it.
    let ev = webhooks_core::event::Event {
        provider: "gigstack".into(),
        id: "evt_inflight".into(),
        event_type: "invoice.created".into(),
        received_at: webhooks_core::time::unix_now(),
        payload: webhooks_core::payload::Payload::from_text(body.clone()),
        request_id: None,
        original: None,
    };
    h.store
        .inner
        .claim(Claim {
            event: &ev,
            state: EventState::Received,
            now: webhooks_core::time::unix_now(),
            lease_secs: 30,
            ttl_secs: 3600,
        })
        .await
        .unwrap();
    let (status, json, _) = h.call(gigstack_request(&body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json, serde_json::json!({"error": "in_progress"}));
}

#[tokio::test]
async fn unknown_event_type_is_stored_and_ignored() {
    let h = Harness::new();
    let (status, json, _) = h
        .call(gigstack_request(&gigstack_body("evt_unk", "invoice.exploded")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "ignored");
    let rec = h.record("gigstack", "evt_unk").await.expect("stored");
    assert_eq!(rec.state, EventState::Ignored);
    assert_eq!(h.sqlite_queue.depth().await.unwrap(), 0, "nothing queued");
}

#[tokio::test]
async fn unknown_provider_is_404() {
    let h = Harness::new();
    let req = Request::post("/webhooks/nobody").body(Body::from("{}")).unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json, serde_json::json!({"error": "unknown_provider"}));
}

#[tokio::test]
async fn missing_signature_is_401_and_missing_token_403_for_tusfacturas() {
    let h = Harness::new();
    let req = Request::post("/webhooks/gigstack")
        .body(Body::from(gigstack_body("e", "invoice.created")))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json, serde_json::json!({"error": "missing_signature"}));
    let req = Request::post("/webhooks/tusfacturas")
        .body(Body::from(r#"{"external_reference":"x"}"#))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json, serde_json::json!({"error": "missing_signature"}));
}

#[tokio::test]
async fn bad_signature_is_401_and_bad_token_403() {
    let h = Harness::new();
    let body = gigstack_body("evt_bad", "invoice.created");
    let req = Request::post("/webhooks/gigstack")
        .header("X-Gigstack-Signature", gigstack_signature(b"another body"))
        .body(Body::from(body))
        .unwrap();
    let (status, json, text) = h.call(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json, serde_json::json!({"error": "invalid_signature"}));
    assert!(!text.contains(GIGSTACK_SECRET));
    assert!(h.record("gigstack", "evt_bad").await.is_none(), "nothing stored");
    let req = Request::post("/webhooks/tusfacturas")
        .header("TF-WebhookToken", "wrong")
        .body(Body::from(r#"{"external_reference":"x"}"#))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json, serde_json::json!({"error": "invalid_signature"}));
    let req = Request::post("/webhooks/piriod?token=wrong")
        .body(Body::from(r#"{"event":"payment.created","object_id":"1"}"#))
        .unwrap();
    assert_eq!(h.call(req).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tusfacturas_and_piriod_accept_their_credentials() {
    let h = Harness::new();
    let req = Request::post("/webhooks/tusfacturas")
        .header("TF-WebhookToken", TF_TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("external_reference=ORD-1&estado=AUTORIZADO"))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["ids"], serde_json::json!(["ORD-1:AUTORIZADO"]));
    let req = Request::post(format!("/webhooks/piriod?token={PIRIOD_TOKEN}"))
        .body(Body::from(r#"{"event":"payment.created","object_id":"pay_1"}"#))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // Piriod's id names the object; within its dedup window it is this occurrence.
    let id = json["ids"][0].as_str().unwrap();
    assert!(id.starts_with("payment.created:pay_1@"), "{json}");
}

#[tokio::test]
async fn timestamp_outside_tolerance_is_401() {
    let h = Harness::new();
    let ts = webhooks_core::time::unix_now() - 3600;
    let body = r#"{"id":"s1","type":"t"}"#;
    let sig = {
        use hmac::Mac;
        let mut mac =
            <hmac::SimpleHmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(b"stamped-secret").unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let req = Request::post("/webhooks/stamped")
        .header("X-Sig", &sig)
        .header("X-Ts", ts.to_string())
        .body(Body::from(body))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json, serde_json::json!({"error": "timestamp_out_of_tolerance"}));
}

#[tokio::test]
async fn body_that_is_not_json_or_lacks_the_id_is_400_with_detail() {
    let h = Harness::new();
    let (status, json, _) = h.call(gigstack_request("this is not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_payload");
    assert_eq!(json["detail"], "body is not valid JSON");
    // gigstack falls back to the body's hash; Piriod has no fallback.
    let req = Request::post(format!("/webhooks/piriod?token={PIRIOD_TOKEN}"))
        .body(Body::from(r#"{"event":"payment.created"}"#))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["detail"], "body field /object_id is missing");
}

/// Ingest reads a body only as far as its id and type: a signed body that
/// breaks after them is accepted, kept byte for byte, and fails before any
/// handler runs, with the parse error as the reason.
#[tokio::test]
async fn body_that_breaks_after_the_id_and_type_is_accepted_then_dead_lettered() {
    let h = Harness::new();
    let body = r#"{"id":"evt_broken_1","type":"invoice.created","data":{"total": 1160.0,"#;
    let (status, json, _) = h.call(gigstack_request(body)).await;
    assert_eq!((status, json["status"].as_str()), (StatusCode::OK, Some("accepted")));
    h.drain(std::time::Duration::from_secs(5)).await;
    let record = h.record("gigstack", "evt_broken_1").await.expect("record");
    assert_eq!(record.state, EventState::Failed);
    assert!(
        record
            .last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("payload is not valid JSON"),
        "{record:?}"
    );
    assert_eq!(
        record.payload.as_ref().map(|p| p.as_str()),
        Some(body),
        "kept as received"
    );
    assert_eq!(h.effect.calls.load(Ordering::SeqCst), 0, "no handler ran");
}

#[tokio::test]
async fn body_over_the_limit_is_413_before_anything_is_written() {
    let h = Harness::with_overlay("[ingest]\nmax_body_bytes = 64");
    let body = gigstack_body(&"x".repeat(100), "invoice.created");
    let (status, json, _) = h.call(gigstack_request(&body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json, serde_json::json!({"error": "payload_too_large"}));
    // Without a Content-Length (streamed), the limit still holds.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(body.clone()))]);
    let req = Request::post("/webhooks/gigstack")
        .header("X-Gigstack-Signature", gigstack_signature(body.as_bytes()))
        .body(Body::from_stream(stream))
        .unwrap();
    assert_eq!(h.call(req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.sqlite_queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn store_unavailable_is_503() {
    let h = Harness::new();
    h.faults.store_down.set(true);
    let body = gigstack_body("evt_store", "invoice.created");
    let (status, json, _) = h.call(gigstack_request(&body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json,
        serde_json::json!({"error": "unavailable"}),
        "no internal text leaks"
    );
    h.faults.store_down.set(false);
    assert_eq!(
        h.call(gigstack_request(&body)).await.1["status"],
        "accepted",
        "the retry is accepted"
    );
}

/// Ingest sends before it records: a record that fails leaves the message
/// it followed on the queue. Whether the provider's retry comes before the
/// processor or after, the event's handler runs once.
#[tokio::test]
async fn a_message_sent_before_a_failed_record_runs_its_event_once() {
    let h = Harness::new();
    let calls = || h.effect.calls.load(Ordering::SeqCst);

    // The retry comes first: it records the event, and sends a second message.
    let early = gigstack_body("evt_rec_early", "invoice.created");
    h.faults.store_down.set(true);
    assert_eq!(
        h.call(gigstack_request(&early)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        h.record("gigstack", "evt_rec_early").await.is_none(),
        "nothing recorded"
    );
    assert_eq!(h.sqlite_queue.depth().await.unwrap(), 1, "its message went out first");
    h.faults.store_down.set(false);
    assert_eq!(h.call(gigstack_request(&early)).await.1["status"], "accepted");
    assert_eq!(h.sqlite_queue.depth().await.unwrap(), 2, "one message a delivery");
    h.drain(Duration::from_secs(10)).await;
    assert_eq!(h.state("gigstack", "evt_rec_early").await, Some(EventState::Done));
    assert_eq!(calls(), 1, "two messages, one run");

    // The processor comes first: it records the event from its message, and
    // the retry is a duplicate.
    let late = gigstack_body("evt_rec_late", "invoice.created");
    h.faults.store_down.set(true);
    assert_eq!(h.call(gigstack_request(&late)).await.0, StatusCode::SERVICE_UNAVAILABLE);
    h.faults.store_down.set(false);
    h.drain(Duration::from_secs(10)).await;
    assert_eq!(h.state("gigstack", "evt_rec_late").await, Some(EventState::Done));
    assert_eq!(calls(), 2);
    assert_eq!(h.call(gigstack_request(&late)).await.1["status"], "duplicate");
    h.drain(Duration::from_secs(10)).await;
    assert_eq!(calls(), 2, "the retry's message runs nothing");
    assert_eq!(h.sqlite_queue.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn queue_unavailable_is_503_and_records_nothing_so_the_retry_is_accepted() {
    let h = Harness::new();
    h.faults.queue_down.set(true);
    let body = gigstack_body("evt_queue", "invoice.created");
    let (status, json, _) = h.call(gigstack_request(&body)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json, serde_json::json!({"error": "unavailable"}));
    assert!(h.record("gigstack", "evt_queue").await.is_none(), "nothing recorded");
    h.faults.queue_down.set(false);
    let (status, json, _) = h.call(gigstack_request(&body)).await;
    assert_eq!((status, json["status"].as_str()), (StatusCode::OK, Some("accepted")));
}

#[tokio::test]
async fn get_without_handshake_is_405_and_health_is_200() {
    let h = Harness::new();
    let (status, json, _) = h
        .call(Request::get("/webhooks/gigstack").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json["error"], "method_not_allowed");
    let (status, json, _) = h
        .call(Request::put("/webhooks/gigstack").body(Body::from("{}")).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(json["error"], "method_not_allowed", "every method gets the JSON answer");
    let (status, json, _) = h.call(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["status"], "ok");
    assert!(json["providers"].as_array().unwrap().iter().any(|p| p == "gigstack"));
    let (status, _, _) = h.call(Request::get("/elsewhere").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn batch_delivery_becomes_one_event_per_element() {
    let h = Harness::with_overlay(
        r#"
        [providers.batcher]
        verifier = { scheme = "token", name = "X-Token", secrets = ["env:BATCH_TOKEN"] }
        batch_path = "/events"
        event_id = "body:/id"
        handlers = { "t" = ["test.effect"] }
        "#,
    );
    let body = r#"{"events":[{"id":"b1","type":"t"},{"id":"b2","type":"t"},{"id":"b3","type":"other"}]}"#;
    let req = Request::post("/webhooks/batcher")
        .header("X-Token", "batch-token")
        .body(Body::from(body))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["ids"], serde_json::json!(["b1", "b2", "b3"]));
    assert_eq!(h.state("batcher", "b3").await, Some(EventState::Ignored));
    h.drain(std::time::Duration::from_secs(5)).await;
    assert_eq!(h.state("batcher", "b1").await, Some(EventState::Done));
    assert_eq!(h.state("batcher", "b2").await, Some(EventState::Done));
    assert_eq!(h.effect.effects.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn every_answer_carries_the_request_id_the_caller_sent_or_a_new_one() {
    use tower::ServiceExt;
    let h = Harness::new();
    for path in ["/healthz", "/elsewhere", "/webhooks/nosuch", "/webhooks/gigstack"] {
        let req = Request::get(path)
            .header("x-request-id", "req-from-caller")
            .body(Body::empty())
            .unwrap();
        let resp = h.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.headers()["x-request-id"], "req-from-caller", "{path}");
        let req = Request::get(path).body(Body::empty()).unwrap();
        let resp = h.router.clone().oneshot(req).await.unwrap();
        let fresh = resp.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(fresh.len(), 16, "{path}: a fresh id: {fresh}");
        assert!(
            fresh.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{fresh}"
        );
    }
}

#[tokio::test]
async fn a_fresh_request_id_is_the_one_the_queued_event_carries() {
    use tower::ServiceExt;
    let h = Harness::new();
    let mut ids = Vec::new();
    for id in ["evt_rid_1", "evt_rid_2"] {
        let req = gigstack_request(&gigstack_body(id, "invoice.created"));
        let resp = h.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    assert_ne!(ids[0], ids[1], "each request has its own id");
    let messages = h.sqlite_queue.receive(10, Duration::from_secs(30)).await.unwrap();
    let mut carried: Vec<_> = messages
        .iter()
        .map(|m| m.event.request_id.as_deref().unwrap_or_default().to_string())
        .collect();
    carried.sort();
    ids.sort();
    assert_eq!(carried, ids);
}
