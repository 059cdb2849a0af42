//! A bounded load run that proves exactly-once end to end on the embedded
//! default: 10,000 distinct signed deliveries plus 30 % duplicates (some sent
//! at the same moment as their original), 1 % of events whose handler always
//! fails, and faults injected at ingest (the claim-and-enqueue failing before
//! it commits, and after it commits with the answer lost). Everything real
//! but the faults: the HTTP router on 127.0.0.1, the SQLite intake with group
//! commit, the worker loop, the built-in gigstack handler calling a local
//! HTTP sink that counts effects.
//!
//! At the end: every event whose handler can succeed had exactly one effect;
//! every delivery answered 5xx was retried and then accepted (or found a
//! duplicate); the dead letters are exactly the always-failing events.
//! Prints the figures (`cargo test --test load_exactly_once -- --nocapture`).

use async_trait::async_trait;
use axum::extract::State;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webhooks_shared::app::{App, Ports};
use webhooks_shared::artifacts::LocalDir;
use webhooks_shared::config::AppConfig;
use webhooks_shared::db::{Db, Durability};
use webhooks_shared::event::EventState;
use webhooks_shared::intake::sqlite::SqliteIntake;
use webhooks_shared::intake::{Admission, Intake, IntakeError};
use webhooks_shared::queue::sqlite::SqliteQueue;
use webhooks_shared::queue::Queue;
use webhooks_shared::secret::MapResolver;
use webhooks_shared::store::sqlite::SqliteStore;
use webhooks_shared::store::{ClaimOutcome, EventStore, ListFilter, StoreError};
use webhooks_shared::worker::{self, WorkerSettings};

const EVENTS: usize = 10_000;
const DUPLICATE_SHARE: f64 = 0.30;
const ALWAYS_FAILING_EVERY: usize = 100; // 1 %
const SECRET: &str = "load-test-secret-4e1f";
const CONCURRENCY: usize = 32;

/// An intake that fails on purpose: before the inner intake runs (nothing is
/// written), or after it committed (the write stands, the answer is lost).
struct FaultyIntake {
    inner: SqliteIntake,
    calls: AtomicU64,
    failed_before: AtomicU64,
    failed_after: AtomicU64,
}

#[async_trait]
impl Intake for FaultyIntake {
    async fn admit(&self, admission: Admission) -> Result<Vec<ClaimOutcome>, IntakeError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n % 97 == 13 {
            self.failed_before.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("injected: store down".into()).into());
        }
        let outcome = self.inner.admit(admission).await;
        if n % 89 == 7 && outcome.is_ok() {
            self.failed_after.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("injected: answer lost after commit".into()).into());
        }
        outcome
    }
}

/// The notification sink: counts successful notifications per invoice and
/// fails every notification of the always-failing invoices.
#[derive(Default)]
struct Sink {
    effects: Mutex<HashMap<String, u32>>,
    refused: AtomicU64,
}

async fn notify(State(sink): State<Arc<Sink>>, body: String) -> axum::http::StatusCode {
    let text = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_string))
        .unwrap_or_default();
    // "gigstack: invoice inv_evt_load_00042 created ..."
    let Some(invoice) = text.split_whitespace().find(|w| w.starts_with("inv_")) else {
        return axum::http::StatusCode::BAD_REQUEST;
    };
    if always_fails(invoice.trim_start_matches("inv_")) {
        sink.refused.fetch_add(1, Ordering::SeqCst);
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    *sink
        .effects
        .lock()
        .expect("sink")
        .entry(invoice.to_string())
        .or_default() += 1;
    axum::http::StatusCode::OK
}

fn event_id(i: usize) -> String {
    format!("evt_load_{i:05}")
}

fn always_fails(id: &str) -> bool {
    id.trim_start_matches("evt_load_")
        .parse::<usize>()
        .is_ok_and(|i| i % ALWAYS_FAILING_EVERY == 0)
}

fn body(i: usize) -> String {
    let id = event_id(i);
    serde_json::json!({
        "id": id, "type": "invoice.created", "created": 1_732_380_000,
        "data": {"id": format!("inv_{id}"), "client": {"name": "Acme SA de CV"}, "total": 1160.0, "currency": "MXN"}
    })
    .to_string()
}

fn signature(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

async fn serve(router: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// What the client saw for one delivery.
#[derive(Default)]
struct Sent {
    tries: u32,
    rejected_5xx: u32,
    in_progress_409: u32,
    final_status: &'static str,
}

/// Posts until the answer is 200, retrying 5xx and 409 as a provider does.
async fn deliver(client: &reqwest::Client, url: &str, body: &str) -> Sent {
    let mut sent = Sent::default();
    let signature = signature(body);
    loop {
        sent.tries += 1;
        assert!(sent.tries < 100, "a delivery was never accepted");
        let resp = client
            .post(url)
            .header("x-gigstack-signature", &signature)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("the server answers");
        match resp.status().as_u16() {
            200 => {
                let answer: serde_json::Value = resp.json().await.expect("json");
                sent.final_status = if answer["status"] == "accepted" {
                    "accepted"
                } else {
                    "duplicate"
                };
                return sent;
            }
            409 => sent.in_progress_409 += 1,
            s if s >= 500 => sent.rejected_5xx += 1,
            other => panic!("unexpected answer {other}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_deliveries_with_duplicates_and_faults_have_exactly_one_effect_each() {
    let started = Instant::now();
    let sink = Arc::new(Sink::default());
    let sink_addr = serve(
        axum::Router::new()
            .route("/notify", axum::routing::post(notify))
            .with_state(sink.clone()),
    )
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("load.db"), Durability::Normal).expect("db");
    let store = Arc::new(SqliteStore::new(db.clone()));
    let queue = Arc::new(SqliteQueue::new(db.clone()));
    let intake = Arc::new(FaultyIntake {
        inner: SqliteIntake::new(db.clone()),
        calls: AtomicU64::new(0),
        failed_before: AtomicU64::new(0),
        failed_after: AtomicU64::new(0),
    });
    let overlay = format!(
        r#"
        [retry]
        max_attempts = 3
        base_delay_ms = 20
        max_delay_ms = 100
        processing_lease_secs = 10
        [handlers]
        notify_url = "http://{sink_addr}/notify"
        http_timeout_secs = 5
        "#
    );
    let config = AppConfig::from_overlay(Some(("load", &overlay))).expect("config");
    let secrets = MapResolver::default()
        .with("GIGSTACK_WEBHOOK_SECRET", SECRET)
        .with("TF_WEBHOOK_TOKEN", "x")
        .with("PIRIOD_WEBHOOK_TOKEN", "y");
    let ports =
        Ports::new(store.clone(), queue.clone(), Arc::new(LocalDir::new(dir.path()))).with_intake(intake.clone());
    let app = App::build(&config, &secrets, ports, |_, _| {}).expect("app");
    let addr = serve(webhooks_shared::http::router(app.ingest.clone())).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(worker::run(
        app.processor.clone(),
        store.clone(),
        WorkerSettings {
            batch: 32,
            idle_poll: Duration::from_millis(20),
            ..WorkerSettings::default()
        },
        stopped,
    ));

    // Every event once, and 30 % of them again: half of those copies at the
    // same moment as the original, half a little later.
    let duplicates = (EVENTS as f64 * DUPLICATE_SHARE) as usize;
    let mut plan: Vec<Vec<usize>> = (0..EVENTS).map(|i| vec![i]).collect();
    for k in 0..duplicates {
        let i = (k * 7919) % EVENTS;
        if k % 2 == 0 {
            plan[i].push(i); // concurrent copy
        } else {
            plan.push(vec![i]); // a later copy
        }
    }
    let url = format!("http://{addr}/webhooks/gigstack");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    let results: Vec<Sent> = futures::stream::iter(plan)
        .map(|copies| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let sends = copies.into_iter().map(|i| {
                    let (client, url) = (client.clone(), url.clone());
                    async move { deliver(&client, &url, &body(i)).await }
                });
                futures::future::join_all(sends).await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    let sending = started.elapsed();

    // Wait for every event to be finished (DONE, or FAILED for the failing ones).
    let deadline = Instant::now() + Duration::from_secs(120);
    let (done, failed) = loop {
        let count = |state| {
            let store = store.clone();
            async move {
                store
                    .list(&ListFilter {
                        state: Some(state),
                        provider: None,
                        limit: EVENTS * 2,
                    })
                    .await
                    .expect("list")
                    .len()
            }
        };
        let (done, failed) = (count(EventState::Done).await, count(EventState::Failed).await);
        if done + failed >= EVENTS || Instant::now() > deadline {
            break (done, failed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Let any stray second attempt arrive before counting effects.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(true);
    let _ = worker.await;

    let accepted = results.iter().filter(|r| r.final_status == "accepted").count();
    let answered_duplicate = results.iter().filter(|r| r.final_status == "duplicate").count();
    let rejected: u32 = results.iter().map(|r| r.rejected_5xx).sum();
    let in_progress: u32 = results.iter().map(|r| r.in_progress_409).sum();
    let retried = results.iter().filter(|r| r.tries > 1).count();
    let effects = sink.effects.lock().expect("sink").clone();
    let dead = queue.dead_letters(EVENTS).await.expect("dead letters");
    let failing: HashSet<String> = (0..EVENTS).map(event_id).filter(|id| always_fails(id)).collect();

    println!(
        "load run: {} deliveries of {EVENTS} events in {sending:.1?}",
        results.len()
    );
    println!("  accepted {accepted}, answered duplicate {answered_duplicate}, retried {retried}");
    println!(
        "  5xx answers {rejected} (injected: {} before commit, {} after commit), 409 answers {in_progress}",
        intake.failed_before.load(Ordering::SeqCst),
        intake.failed_after.load(Ordering::SeqCst)
    );
    println!(
        "  events DONE {done}, FAILED {failed}; effects {} on {} invoices; refused by the sink {}; dead letters {}",
        effects.values().sum::<u32>(),
        effects.len(),
        sink.refused.load(Ordering::SeqCst),
        dead.len()
    );
    println!("  total {:.1?}", started.elapsed());

    assert_eq!(
        results.len(),
        EVENTS + duplicates,
        "every delivery was answered 200 in the end"
    );
    assert!(rejected > 0, "faults were injected and answered 5xx");
    assert_eq!(accepted + answered_duplicate, results.len());
    assert!(accepted <= EVENTS, "no event is accepted twice");
    for i in 0..EVENTS {
        let id = event_id(i);
        let n = effects.get(&format!("inv_{id}")).copied().unwrap_or(0);
        if failing.contains(&id) {
            assert_eq!(n, 0, "{id} always fails, so it has no effect");
        } else {
            assert_eq!(n, 1, "{id} has exactly one effect");
        }
    }
    assert_eq!((done, failed), (EVENTS - failing.len(), failing.len()));
    let dead_ids: HashSet<String> = dead.iter().map(|d| d.event.id.clone()).collect();
    assert_eq!(
        dead_ids, failing,
        "the dead letters are exactly the always-failing events"
    );
    assert_eq!(dead.len(), failing.len(), "each dead-lettered once");
}
