//! The providers' real payload shapes and the loss fixes, through the real
//! router and pipelines on SQLite.

use crate::harness::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use webhooks_core::event::EventState;
use webhooks_core::pipeline::ingest::{Accepted, Inbound};
use webhooks_core::ports::store::{EventStore, ListFilter};

/// gigstack's tutorial `test_webhook.py` posts `{type, data, timestamp}`
/// with no id: keyed by the body's hash, accepted, and a resend of the same
/// body is a duplicate.
#[tokio::test]
async fn gigstack_tutorial_test_script_is_accepted_then_duplicate() {
    let h = Harness::new();
    let body = r#"{"type": "invoice.created", "data": {"_id": "inv_tutorial_1", "total": 1160}, "timestamp": "2026-12-03T10:00:00Z"}"#;
    let (status, json, _) = h.call(gigstack_request(body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["status"], "accepted");
    let id = json["ids"][0].as_str().unwrap().to_string();
    assert_eq!(id.len(), 64, "the body's SHA-256: {id}");
    let (status, json, _) = h.call(gigstack_request(body)).await;
    assert_eq!((status, json["status"].as_str()), (StatusCode::OK, Some("duplicate")));
    assert_eq!(json["ids"][0], id.as_str());
}

/// The type may come as `event` instead of `type`.
#[tokio::test]
async fn gigstack_event_field_names_the_type() {
    let h = Harness::new();
    let body = r#"{"id": "evt_ev_1", "event": "invoice.created", "data": {"_id": "inv_2"}}"#;
    let (status, json, _) = h.call(gigstack_request(body)).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (StatusCode::OK, Some("accepted")),
        "{json}"
    );
    let rec = h.record("gigstack", "evt_ev_1").await.unwrap();
    assert_eq!(rec.event_type, "invoice.created");
}

/// An id past the key cap is refused before anything is written.
#[tokio::test]
async fn an_overlong_event_id_is_400_and_nothing_is_written() {
    let h = Harness::new();
    let body = gigstack_body(&"i".repeat(600), "invoice.created");
    let (status, json, _) = h.call(gigstack_request(&body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_payload");
    assert!(json["detail"].as_str().unwrap().contains("at most 512"), "{json}");
    let all = h
        .store
        .list(&ListFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.is_empty(), "nothing recorded: {all:?}");
    assert_eq!(h.sqlite_queue.depth().await.unwrap(), 0);
}

/// A client that goes away while sending the body gets a 400, not a 413
/// (a 413 tells the sender never to retry a body that would fit).
#[tokio::test]
async fn a_body_cut_short_is_400_not_413() {
    let h = Harness::new();
    let chunks = vec![
        Ok::<_, std::io::Error>(Bytes::from_static(b"{\"id\":\"evt_cut\",")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let req = Request::post("/webhooks/gigstack")
        .header("X-Gigstack-Signature", "00")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let (status, json, _) = h.call(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_payload");
    assert!(h.record("gigstack", "evt_cut").await.is_none());
}

fn piriod_at(body: &str, now: i64) -> Inbound {
    Inbound {
        provider: "piriod".into(),
        method: http::Method::POST,
        headers: Default::default(),
        query: Some(format!("token={PIRIOD_TOKEN}")),
        path: "/webhooks/piriod".into(),
        body: Bytes::from(body.to_string()),
        now,
        request_id: "test".into(),
    }
}

fn strings(ids: Vec<bytestring::ByteString>) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn status_of(outcome: Accepted) -> (&'static str, Vec<String>) {
    match outcome {
        Accepted::New { ids } => ("accepted", strings(ids)),
        Accepted::Duplicate { ids } => ("duplicate", strings(ids)),
        Accepted::Ignored { ids } => ("ignored", strings(ids)),
        Accepted::Handshake(_) => ("handshake", vec![]),
    }
}

/// Piriod's id (`event` + `object_id`) names the invoice, not the change: a
/// copy within the window is a duplicate, the same id after it is a new
/// occurrence, recorded and processed, and both are listed.
#[tokio::test]
async fn piriod_same_object_after_the_window_is_a_new_occurrence() {
    let h = Harness::new();
    let body = r#"{"event": "invoice.updated", "object_id": "inv_cl_9"}"#;
    let t0 = 1_800_000_123;
    let first = status_of(h.app.ingest.handle(&piriod_at(body, t0)).await.unwrap());
    assert_eq!(first.0, "accepted");
    // Piriod resending the same delivery a minute later, across a slot edge or not.
    for later in [t0 + 1, t0 + 60, t0 + 299] {
        let again = status_of(h.app.ingest.handle(&piriod_at(body, later)).await.unwrap());
        assert_eq!(again, ("duplicate", first.1.clone()), "at +{}", later - t0);
    }
    // The invoice updated again ten minutes later: a new occurrence.
    let second = status_of(h.app.ingest.handle(&piriod_at(body, t0 + 600)).await.unwrap());
    assert_eq!(second.0, "accepted");
    assert_ne!(second.1, first.1);
    let copy = status_of(h.app.ingest.handle(&piriod_at(body, t0 + 650)).await.unwrap());
    assert_eq!(copy, ("duplicate", second.1.clone()));
    h.drain(std::time::Duration::from_secs(10)).await;
    let listed = h
        .store
        .list(&ListFilter {
            provider: Some("piriod".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "both occurrences are listed: {listed:?}");
    assert!(listed
        .iter()
        .all(|r| r.state == EventState::Done && r.event_id.starts_with("invoice.updated:inv_cl_9@")));
    assert_eq!(
        h.effect.effects.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "each occurrence processed once"
    );
}

/// A Mercado Pago notification signed for `data.id` in the query.
fn mercado_pago_request(query_id: &str, body: &str) -> Request<Body> {
    let ts = webhooks_core::time::unix_now().to_string();
    let manifest = format!("id:{query_id};request-id:req-mp-1;ts:{ts};");
    let mut mac = <hmac::SimpleHmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(b"mp-secret").expect("key");
    hmac::Mac::update(&mut mac, manifest.as_bytes());
    let v1 = hex::encode(hmac::Mac::finalize(mac).into_bytes());
    Request::post(format!("/webhooks/mp?data.id={query_id}&type=payment"))
        .header("content-type", "application/json")
        .header("x-request-id", "req-mp-1")
        .header("x-signature", format!("ts={ts},v1={v1}"))
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// Mercado Pago signs the query's `data.id`, not the body: a valid
/// signature for resource A cannot carry a body about resource B.
#[tokio::test]
async fn mercado_pago_refuses_a_body_about_another_resource_than_the_signed_one() {
    let h = Harness::with_overlay(
        r#"
        [providers.mp]
        verifier = { scheme = "mercado_pago", secrets = ["env:MP_SECRET"] }
        event_id = "body:/id"
        handlers = { "payment" = ["test.effect"] }
        "#,
    );
    // The same signature scheme with the matching body is accepted (so the
    // refusal below is the mismatch, not a bad signature).
    let body = r#"{"id": "n-1", "type": "payment", "data": {"id": "123456"}}"#;
    let (status, json, _) = h.call(mercado_pago_request("123456", body)).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let body = r#"{"id": "n-2", "type": "payment", "data": {"id": "999999"}}"#;
    let (status, json, _) = h.call(mercado_pago_request("123456", body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    assert_eq!(json["error"], "invalid_signature", "{json}");
    assert_eq!(h.record("mp", "n-2").await, None, "nothing was claimed");
}
