//! The refusal log as the router feeds it: what a refused delivery leaves
//! (names, never values), that accepted ones leave nothing, where the source
//! IP comes from, and that a failing log changes no answer.

use crate::harness::*;
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use std::collections::BTreeMap;
use std::sync::Arc;
use tower::ServiceExt;
use webhooks_core::app::{App, Ports};
use webhooks_core::config::AppConfig;
use webhooks_core::http::SourceIp;
use webhooks_core::ports::artifacts::LocalDir;
use webhooks_core::ports::refusals::{Refusal, RefusalBounds, RefusalError, RefusalLog};
use webhooks_testkit::memory::{MemoryQueue, MemoryRefusals, MemoryStore};

/// A log that always fails.
struct Broken;

#[async_trait]
impl RefusalLog for Broken {
    async fn record(&self, _refusal: Refusal) -> Result<(), RefusalError> {
        Err(RefusalError::Unavailable("down".into()))
    }
    async fn list(&self, _provider: Option<&str>, _limit: usize) -> Result<Vec<Refusal>, RefusalError> {
        Err(RefusalError::Unavailable("down".into()))
    }
    async fn counts(&self, _provider: Option<&str>) -> Result<BTreeMap<String, u64>, RefusalError> {
        Err(RefusalError::Unavailable("down".into()))
    }
}

fn router_with(log: Arc<dyn RefusalLog>) -> axum::Router {
    let config = AppConfig::from_overlay(Some(("test", OVERLAY))).expect("test config");
    let dir = std::env::temp_dir();
    let ports = Ports::new(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryQueue::new()),
        Arc::new(LocalDir::new(dir)),
    )
    .with_refusals(log);
    let app = App::build_with(&config, &secrets(), ports, |reg, _| {
        reg.register("test.effect", Arc::new(Scripted::default()));
        reg.register("test.second", Arc::new(Scripted::default()));
    })
    .expect("app builds");
    webhooks_core::http::router(app.ingest.clone())
}

async fn call(router: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = router.clone().oneshot(req).await.expect("answer");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_refused_delivery_leaves_names_and_codes_and_an_accepted_one_nothing() {
    let log = Arc::new(MemoryRefusals::new(RefusalBounds::default()));
    let router = router_with(log.clone());
    let body = gigstack_body("evt_ok", "invoice.created");
    assert_eq!(call(&router, gigstack_request(&body)).await.0, StatusCode::OK);
    assert!(
        log.list(None, 10).await.unwrap().is_empty(),
        "an accepted delivery is not a refusal"
    );

    let secret_body = r#"{"id":"evt_x","type":"invoice.created","card":"BODY-MARKER"}"#;
    let bad = Request::post("/webhooks/gigstack?token=QUERY-MARKER")
        .header("X-Gigstack-Signature", "SIG-MARKER")
        .header("x-request-id", "req-bad-1")
        .header("x-forwarded-for", "198.51.100.23, 10.0.0.1")
        .body(Body::from(secret_body))
        .unwrap();
    let (status, answer) = call(&router, bad).await;
    assert_eq!(
        (status, answer.as_str()),
        (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_signature"}"#)
    );
    let unknown = Request::post("/webhooks/nobody").body(Body::from("x")).unwrap();
    let mut unknown = unknown;
    unknown.extensions_mut().insert(SourceIp("203.0.113.10".into()));
    assert_eq!(call(&router, unknown).await.0, StatusCode::NOT_FOUND);

    let kept = log.list(None, 10).await.unwrap();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(
        (kept[0].provider.as_str(), kept[0].status, kept[0].reason.as_str()),
        ("unknown", 404, "unknown_provider")
    );
    assert_eq!(
        kept[0].source_ip.as_deref(),
        Some("203.0.113.10"),
        "a trusted front's source IP first"
    );
    let r = &kept[1];
    assert_eq!(
        (r.provider.as_str(), r.status, r.reason.as_str()),
        ("gigstack", 401, "invalid_signature")
    );
    assert_eq!(r.request_id, "req-bad-1");
    assert_eq!(r.source_ip.as_deref(), Some("198.51.100.23"));
    assert_eq!(r.body_bytes, secret_body.len() as u64);
    assert_eq!(r.present, ["X-Gigstack-Signature"]);
    assert!(r.absent.is_empty());
    let stored = serde_json::to_string(&kept).unwrap();
    for marker in ["SIG-MARKER", "BODY-MARKER", "QUERY-MARKER", GIGSTACK_SECRET] {
        assert!(!stored.contains(marker), "{marker} kept: {stored}");
    }
}

#[tokio::test]
async fn a_failing_log_changes_no_answer() {
    let router = router_with(Arc::new(Broken));
    let body = gigstack_body("evt_b", "invoice.created");
    let unsigned = Request::post("/webhooks/gigstack")
        .body(Body::from(body.clone()))
        .unwrap();
    assert_eq!(
        call(&router, unsigned).await,
        (StatusCode::UNAUTHORIZED, r#"{"error":"missing_signature"}"#.to_string())
    );
    assert_eq!(call(&router, gigstack_request(&body)).await.0, StatusCode::OK);
}
