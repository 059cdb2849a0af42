//! A test harness: the real app (router, pipelines, SQLite adapters) with
//! scripted handlers and fault switches on the ports.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use hmac::{Mac, SimpleHmac};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use webhooks_core::app::{App, Ports};
use webhooks_core::config::AppConfig;
use webhooks_core::event::{Event, EventKey, EventRecord, EventState};
use webhooks_core::handlers::{Handler, HandlerError};
use webhooks_core::ports::artifacts::LocalDir;
use webhooks_core::ports::store::EventStore;
use webhooks_core::secret::MapResolver;
use webhooks_sqlite::{Durability, SqliteBackend, SqliteQueue};
use webhooks_testkit::faults::{FaultyQueue, FaultyStore, Never, Switch};

pub const GIGSTACK_SECRET: &str = "test-gigstack-secret-9f8e7d";
pub const TF_TOKEN: &str = "test-tf-token-5a4b3c";
pub const PIRIOD_TOKEN: &str = "test-piriod-token-1x2y3z";

/// Test config: gigstack types routed to scripted handlers, small retry delays.
pub const OVERLAY: &str = r#"
[retry]
max_attempts = 3
base_delay_ms = 200
max_delay_ms = 2000
processing_lease_secs = 30

[providers.gigstack.handlers]
"invoice.created" = ["test.effect"]
"invoice.stamped" = ["test.effect"]
"payment.received" = ["test.effect", "test.second"]
"invoice.cancelled" = ["test.effect"]
"client.validated" = ["test.effect"]

[providers.tusfacturas.handlers]
"*" = ["test.effect"]

[providers.piriod.handlers]
"*" = ["test.effect"]

[providers.stamped]
verifier = { scheme = "hmac", header = "X-Sig", timestamp_header = "X-Ts", signed_content = "{timestamp}.{body}", tolerance_secs = 300, secrets = ["env:STAMPED_SECRET"] }
event_id = "body:/id"
handlers = { "t" = ["test.effect"] }
"#;

pub fn secrets() -> MapResolver {
    MapResolver::default()
        .with("GIGSTACK_WEBHOOK_SECRET", GIGSTACK_SECRET)
        .with("TF_WEBHOOK_TOKEN", TF_TOKEN)
        .with("PIRIOD_WEBHOOK_TOKEN", PIRIOD_TOKEN)
        .with("STAMPED_SECRET", "stamped-secret")
        .with("BATCH_TOKEN", "batch-token")
        .with("MP_SECRET", "mp-secret")
        .with("FWD_SECRET", FWD_WHSEC)
}

/// The `whsec_` secret the test destinations sign with (`env:FWD_SECRET`).
pub const FWD_WHSEC: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// A handler whose failures are scripted, counting calls and effects.
#[derive(Default)]
pub struct Scripted {
    pub calls: AtomicU32,
    pub effects: AtomicU32,
    /// Fail (retryably) this many first calls.
    pub fail_first: AtomicU32,
    pub always_fail: AtomicBool,
    pub permanent: AtomicBool,
    pub panic: AtomicBool,
    pub call_times: Mutex<Vec<Instant>>,
}

#[async_trait]
impl Handler for Scripted {
    async fn handle(&self, event: &Event) -> Result<serde_json::Value, HandlerError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.call_times.lock().expect("lock").push(Instant::now());
        if self.panic.load(Ordering::SeqCst) {
            panic!("scripted panic");
        }
        if self.permanent.load(Ordering::SeqCst) {
            return Err(HandlerError::Permanent("scripted 400".into()));
        }
        if self.always_fail.load(Ordering::SeqCst) || n <= self.fail_first.load(Ordering::SeqCst) {
            return Err(HandlerError::Retryable(format!("scripted 503 on call {n}")));
        }
        self.effects.fetch_add(1, Ordering::SeqCst);
        Ok(serde_json::json!({"effect": event.id}))
    }
}

/// Switches that make a port fail.
#[derive(Default)]
pub struct Faults {
    pub store_down: Arc<Switch>,
    pub queue_down: Arc<Switch>,
}

pub struct Harness {
    pub app: App,
    pub router: axum::Router,
    pub store: Arc<FaultyStore>,
    pub queue: Arc<FaultyQueue>,
    /// The SQLite queue behind the faults, for its depth.
    pub sqlite_queue: Arc<SqliteQueue>,
    pub faults: Arc<Faults>,
    pub effect: Arc<Scripted>,
    pub second: Arc<Scripted>,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_overlay("")
    }

    /// The app with `OVERLAY` and then `extra` merged over the built-in config.
    pub fn with_overlay(extra: &str) -> Self {
        Self::with_overlay_and_secrets(extra, secrets())
    }

    /// As [`Harness::with_overlay`], resolving references with `resolver`
    /// (for keys a test makes at run time).
    pub fn with_overlay_and_secrets(extra: &str, resolver: MapResolver) -> Self {
        let config = AppConfig::from_overlay(Some(("test", &format!("{OVERLAY}\n{extra}")))).expect("test config");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteBackend::open(&dir.path().join("t.db"), Durability::Normal).expect("db");
        let faults = Arc::new(Faults::default());
        let store = Arc::new(FaultyStore {
            inner: db.store(),
            claims: faults.store_down.clone(),
            writes: faults.store_down.clone(),
        });
        let sqlite_queue = db.queue();
        let queue = Arc::new(FaultyQueue {
            inner: sqlite_queue.clone(),
            before: faults.queue_down.clone(),
            after: Arc::new(Never),
        });
        let effect = Arc::new(Scripted::default());
        let second = Arc::new(Scripted::default());
        let (e, s) = (effect.clone(), second.clone());
        let ports = Ports::new(
            store.clone(),
            queue.clone(),
            Arc::new(LocalDir::new(dir.path().join("artifacts"))),
        );
        let app = App::build_with(&config, &resolver, ports, move |reg, _| {
            reg.register("test.effect", e);
            reg.register("test.second", s);
        })
        .expect("app builds");
        let router = webhooks_core::http::router(app.ingest.clone());
        Self {
            app,
            router,
            store,
            queue,
            sqlite_queue,
            faults,
            effect,
            second,
            dir,
        }
    }

    /// Sends a request through the real router.
    pub async fn call(&self, req: Request<Body>) -> (StatusCode, serde_json::Value, String) {
        let resp = self.router.clone().oneshot(req).await.expect("router answers");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, json, text)
    }

    pub async fn record(&self, provider: &str, id: &str) -> Option<EventRecord> {
        self.store.get(&EventKey::new(provider, id)).await.expect("get")
    }

    /// Runs the processor until no message is left (or `limit` passes).
    pub async fn drain(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let batch = self
                .queue
                .inner
                .receive(10, Duration::from_secs(30))
                .await
                .expect("receive");
            if batch.is_empty() {
                if self.sqlite_queue.depth().await.expect("depth") == 0 || start.elapsed() > limit {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            let now = webhooks_core::time::unix_now();
            for d in &batch {
                self.app.processor.run(d, now).await;
            }
        }
    }

    pub async fn state(&self, provider: &str, id: &str) -> Option<EventState> {
        self.record(provider, id).await.map(|r| r.state)
    }
}

/// hex(HMAC-SHA256(secret, body)), computed here independently of the crate.
pub fn gigstack_signature(body: &[u8]) -> String {
    let mut mac =
        <SimpleHmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(GIGSTACK_SECRET.as_bytes()).expect("key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn gigstack_body(id: &str, event_type: &str) -> String {
    format!(r#"{{"id":"{id}","type":"{event_type}","data":{{"total":10}}}}"#)
}

/// A JSON `POST` to `path` with `headers` (a sender's signature headers).
pub fn post(path: &str, body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::post(path).header("content-type", "application/json");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    req.body(Body::from(body.to_string())).expect("request")
}

/// A correctly signed gigstack delivery.
pub fn gigstack_request(body: &str) -> Request<Body> {
    Request::post("/webhooks/gigstack")
        .header("content-type", "application/json")
        .header("X-Gigstack-Signature", gigstack_signature(body.as_bytes()))
        .body(Body::from(body.to_string()))
        .expect("request")
}
