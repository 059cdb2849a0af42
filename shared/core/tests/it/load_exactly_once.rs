//! A bounded load run that proves exactly-once end to end: 10,000 signed
//! deliveries of 7,000 distinct events (3,000 duplicates, half of them sent
//! at the same moment as their original, half a little later), 1 % of events
//! whose handler always fails, 1 % whose handler fails once or twice and then
//! succeeds, and faults injected in the ports at ingest: the event store
//! refusing some claims, the queue refusing some sends, and the queue taking
//! some sends but losing the answer.
//!
//! Everything is real but the faults: the HTTP router on 127.0.0.1, the
//! send-then-record admission (`EnqueueThenClaim`, as on AWS) over the
//! SQLite store and queue, the worker loop, the built-in gigstack handler
//! calling a local HTTP sink that counts effects. The fault wrappers sit between the admission and the SQLite
//! adapters, so each fault reaches ingest exactly as an outage of DynamoDB
//! or SQS would.
//!
//! At the end: every event whose handler can succeed had exactly one effect
//! (the transient ones included); every injected fault produced one 503, and
//! every delivery answered 503 was retried until it got a 200; the dead
//! letters are exactly the always-failing events; no event is lost.
//! Prints the figures (`cargo test -p webhooks-core --test it load_exactly_once -- --nocapture`).

use axum::extract::State;
use axum::http::StatusCode;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use webhooks_core::app::{App, Ports};
use webhooks_core::config::AppConfig;
use webhooks_core::event::EventState;
use webhooks_core::pipeline::worker::{self, WorkerSettings};
use webhooks_core::ports::admission::EnqueueThenClaim;
use webhooks_core::ports::artifacts::LocalDir;
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::store::{EventStore, ListFilter};
use webhooks_core::secret::MapResolver;
use webhooks_sqlite::{Durability, SqliteBackend};
use webhooks_testkit::faults::{EveryNth, FaultyQueue, FaultyStore, Never};

/// Deliveries sent in all, and how many of them are duplicates (30 %).
const DELIVERIES: usize = 10_000;
const DUPLICATES: usize = 3_000;
const DISTINCT: usize = DELIVERIES - DUPLICATES;
/// A later duplicate is sent together with the original this many events on,
/// so it tends to land while its original is queued or being processed.
const LATER_COPY_LAG: usize = 50;
/// Handler attempts before an event is dead-lettered. Above the most failures
/// a transient event has (2) with room to spare: an event with two messages
/// (a copy's, or a retry's after a lost send answer), the busy one's receive
/// count can run ahead of the record's attempts.
const MAX_ATTEMPTS: u32 = 5;
/// How often a delivery is retried before the test gives up on it.
const MAX_TRIES: u32 = 50;
const SECRET: &str = "load-test-secret-4e1f";
const CONCURRENCY: usize = 32;

/// What the notification sink does with an event's handler calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Succeeds,
    /// Refused this many times (1 or 2), then accepted.
    FailsTransiently(u32),
    /// Always refused: the event must end FAILED and dead-lettered.
    FailsAlways,
}

/// 1 % of events always fail and 1 % fail transiently, spread evenly.
fn fate(i: usize) -> Fate {
    match i % 100 {
        0 => Fate::FailsAlways,
        50 => Fate::FailsTransiently(1 + (i / 100 % 2) as u32),
        _ => Fate::Succeeds,
    }
}

fn event_id(i: usize) -> String {
    format!("evt_load_{i:05}")
}

/// The index back from an event id or from the invoice id derived from it.
fn event_index(id: &str) -> Option<usize> {
    id.trim_start_matches("inv_").strip_prefix("evt_load_")?.parse().ok()
}

/// A lock that survives a panicked holder: the counts are still the counts.
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- the sink that counts effects ---------------------------------------

#[derive(Default)]
struct SinkCounts {
    /// Accepted notifications, per event index: the handler's effects.
    effects: HashMap<usize, u32>,
    /// Refused notifications, per event index.
    refusals: HashMap<usize, u32>,
}

/// The notification endpoint the gigstack handler posts to. It refuses
/// (500, which the handler reports as retryable) as each event's [`Fate`]
/// says, and counts what it accepts.
#[derive(Default)]
struct Sink {
    counts: Mutex<SinkCounts>,
}

impl Sink {
    fn answer(&self, i: usize) -> StatusCode {
        let mut counts = locked(&self.counts);
        let refused = counts.refusals.get(&i).copied().unwrap_or(0);
        let refuse = match fate(i) {
            Fate::Succeeds => false,
            Fate::FailsTransiently(n) => refused < n,
            Fate::FailsAlways => true,
        };
        if refuse {
            *counts.refusals.entry(i).or_default() += 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            *counts.effects.entry(i).or_default() += 1;
            StatusCode::OK
        }
    }
}

async fn notify(State(sink): State<Arc<Sink>>, body: String) -> StatusCode {
    // {"text": "gigstack: invoice inv_evt_load_00042 created ..."}
    let text = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(str::to_string))
        .unwrap_or_default();
    match text.split_whitespace().find_map(event_index) {
        Some(i) => sink.answer(i),
        None => StatusCode::BAD_REQUEST,
    }
}

// ---- the sender -----------------------------------------------------------

fn body(i: usize) -> String {
    let id = event_id(i);
    serde_json::json!({
        "id": id, "type": "invoice.created", "created": 1_732_380_000,
        "data": {"id": format!("inv_{id}"), "client": {"name": "Acme SA de CV"}, "total": 1160.0, "currency": "MXN"}
    })
    .to_string()
}

fn signature(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
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

/// What the sender saw for one delivery.
#[derive(Debug, Default)]
struct Sent {
    event: usize,
    /// Every HTTP status answered, in order; 0 for no answer at all.
    statuses: Vec<u16>,
    /// The answer's `status` field on the final 200.
    outcome: String,
}

impl Sent {
    fn last(&self) -> u16 {
        self.statuses.last().copied().unwrap_or(0)
    }
    fn count(&self, status: u16) -> usize {
        self.statuses.iter().filter(|s| **s == status).count()
    }
    fn count_5xx(&self) -> usize {
        self.statuses.iter().filter(|s| **s >= 500).count()
    }
}

/// Posts event `i` until the answer is 200, retrying 5xx and 409 as a
/// provider does; stops at anything else, or after [`MAX_TRIES`], so the
/// assertions report it instead of a hang.
async fn deliver(client: &reqwest::Client, url: &str, i: usize) -> Sent {
    let body = body(i);
    let signature = signature(&body);
    let mut sent = Sent {
        event: i,
        ..Sent::default()
    };
    while sent.statuses.len() < MAX_TRIES as usize {
        let answer = client
            .post(url)
            .header("x-gigstack-signature", &signature)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let Ok(resp) = answer else {
            sent.statuses.push(0);
            return sent;
        };
        let status = resp.status().as_u16();
        sent.statuses.push(status);
        match status {
            200 => {
                let answer: serde_json::Value = resp.json().await.unwrap_or_default();
                sent.outcome = answer["status"].as_str().unwrap_or_default().to_string();
                return sent;
            }
            409 | 500..=599 => tokio::time::sleep(Duration::from_millis(5)).await,
            _ => return sent,
        }
    }
    sent
}

/// The delivery plan: one group per distinct event, sent together. Half the
/// duplicates ride in their original's group (concurrent copies), half in
/// the group [`LATER_COPY_LAG`] events on (later copies).
fn plan() -> Vec<Vec<usize>> {
    let mut plan: Vec<Vec<usize>> = (0..DISTINCT).map(|i| vec![i]).collect();
    for k in 0..DUPLICATES {
        // 7919 is prime to DISTINCT: every duplicate is of a different event.
        let i = (k * 7919) % DISTINCT;
        let group = if k % 2 == 0 {
            i
        } else {
            (i + LATER_COPY_LAG).min(DISTINCT - 1)
        };
        plan[group].push(i);
    }
    plan
}

/// Sends the plan, [`CONCURRENCY`] groups at a time.
async fn send_all(url: &str) -> Vec<Sent> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build()
        .expect("client");
    futures::stream::iter(plan())
        .map(|group| {
            let client = client.clone();
            async move { futures::future::join_all(group.into_iter().map(|i| deliver(&client, url, i))).await }
        })
        .buffer_unordered(CONCURRENCY)
        .flat_map(futures::stream::iter)
        .collect()
        .await
}

/// The ids of the records in `state`.
async fn ids_in(store: &dyn EventStore, state: EventState) -> BTreeSet<String> {
    let filter = ListFilter {
        state: Some(state),
        limit: DISTINCT * 2,
        ..Default::default()
    };
    match store.list(&filter).await {
        Ok(records) => records.into_iter().map(|r| r.event_id.to_string()).collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Waits (bounded) until every distinct event is DONE or FAILED.
async fn settled(store: &dyn EventStore, within: Duration) -> (BTreeSet<String>, BTreeSet<String>) {
    let deadline = Instant::now() + within;
    loop {
        let done = ids_in(store, EventState::Done).await;
        let failed = ids_in(store, EventState::Failed).await;
        if done.len() + failed.len() >= DISTINCT || Instant::now() > deadline {
            return (done, failed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ids_where(pred: impl Fn(Fate) -> bool) -> BTreeSet<String> {
    (0..DISTINCT).filter(|i| pred(fate(*i))).map(event_id).collect()
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

    // The SQLite adapters, and the admission over them through the fault wrappers.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqliteBackend::open(&dir.path().join("load.db"), Durability::Normal).expect("db");
    let store: Arc<dyn EventStore> = db.store();
    let queue: Arc<dyn Queue> = db.queue();
    // Claims refused before anything is written (a throttled DynamoDB);
    // sends refused, and sends taken whose answer is lost.
    let (claims, before, after) = (
        Arc::new(EveryNth::new(61, 17)),
        Arc::new(EveryNth::new(53, 11)),
        Arc::new(EveryNth::new(59, 29)),
    );
    let faulty_store = Arc::new(FaultyStore {
        inner: store.clone(),
        claims: claims.clone(),
        writes: Arc::new(Never),
    });
    let faulty_queue = Arc::new(FaultyQueue {
        inner: queue.clone(),
        before: before.clone(),
        after: after.clone(),
    });
    let admission = Arc::new(EnqueueThenClaim::new(faulty_store.clone(), faulty_queue.clone()));

    let overlay = format!(
        r#"
        [retry]
        max_attempts = {MAX_ATTEMPTS}
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
    // The processor works on the plain adapters: the faults are at ingest.
    let ports = Ports::new(store.clone(), queue.clone(), Arc::new(LocalDir::new(dir.path()))).with_admission(admission);
    let app = App::build(&config, &secrets, ports).expect("app");
    let addr = serve(webhooks_core::http::router(app.ingest.clone())).await;
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

    let results = send_all(&format!("http://{addr}/webhooks/gigstack")).await;
    let sending = started.elapsed();
    let (done, failed) = settled(store.as_ref(), Duration::from_secs(40)).await;
    // Let a stray second message (from a lost send answer) be seen and
    // skipped before the effects are counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop.send(true);
    let _ = worker.await;

    // ---- figures ----
    let dead: Vec<String> = match queue.dead_letters(DISTINCT).await {
        Ok(d) => d.into_iter().map(|d| d.event.id.to_string()).collect(),
        Err(e) => panic!("dead letters: {e}"),
    };
    let (effects, refusals) = {
        let counts = locked(&sink.counts);
        (counts.effects.clone(), counts.refusals.clone())
    };
    let mut fault_hits = claims.hits();
    for (id, n) in before.hits().into_iter().chain(after.hits()) {
        *fault_hits.entry(id).or_default() += n;
    }
    let injected: u32 = fault_hits.values().sum();
    let mut answers_503: BTreeMap<String, u32> = BTreeMap::new();
    for r in &results {
        let n = r.count(503) as u32;
        if n > 0 {
            *answers_503.entry(event_id(r.event)).or_default() += n;
        }
    }
    let total_5xx: usize = results.iter().map(Sent::count_5xx).sum();
    let total_503: u32 = answers_503.values().sum();
    let total_409: usize = results.iter().map(|r| r.count(409)).sum();
    let answered = |outcome: &str| results.iter().filter(|r| r.outcome == outcome).count();
    let rejected: Vec<&Sent> = results.iter().filter(|r| r.count_5xx() > 0).collect();
    let always = ids_where(|f| f == Fate::FailsAlways);
    let transient = ids_where(|f| matches!(f, Fate::FailsTransiently(_)));

    println!("load run (exactly once):");
    println!(
        "  deliveries   {} ({DISTINCT} distinct, {DUPLICATES} duplicates, half concurrent)",
        results.len()
    );
    println!(
        "  answers      accepted {}, duplicate {}, 409 in flight {total_409}",
        answered("accepted"),
        answered("duplicate")
    );
    println!(
        "  503s         {total_503} on {} deliveries, each retried to a 200",
        rejected.len()
    );
    println!(
        "  faults       {injected} injected: {} claims refused, {} sends refused, {} send answers lost",
        claims.total(),
        before.total(),
        after.total()
    );
    println!(
        "  effects      {} on {} events ({} transient events recovered after {} refusals)",
        effects.values().sum::<u32>(),
        effects.len(),
        transient.len(),
        transient
            .iter()
            .filter_map(|id| event_index(id))
            .map(|i| refusals.get(&i).copied().unwrap_or(0))
            .sum::<u32>()
    );
    println!(
        "  records      DONE {}, FAILED {}; dead letters {} (always failing {})",
        done.len(),
        failed.len(),
        dead.len(),
        always.len()
    );
    println!("  elapsed      sending {sending:.1?}, total {:.1?}", started.elapsed());

    // ---- every delivery was answered, every fault was a 503 and was retried ----
    assert_eq!(results.len(), DELIVERIES, "every planned delivery was sent");
    for r in &results {
        assert_eq!(r.last(), 200, "{} ended {:?}", event_id(r.event), r.statuses);
    }
    assert!(
        claims.total() > 0 && before.total() > 0 && after.total() > 0,
        "every kind of fault was injected"
    );
    assert_eq!(
        answers_503, fault_hits,
        "each injected fault answered one 503, on its event"
    );
    assert_eq!(total_5xx, injected as usize, "no 5xx but the injected faults");
    assert!(
        rejected.iter().all(|r| r.last() == 200),
        "every delivery answered 503 was retried until accepted"
    );
    assert_eq!(answered("accepted") + answered("duplicate"), DELIVERIES);
    assert_eq!(
        total_409, 0,
        "no copy is refused: a record exists only once its message does"
    );
    assert!(answered("accepted") <= DISTINCT, "no event is accepted twice");

    // ---- exactly one effect, dead letters exactly the always-failing ----
    for i in 0..DISTINCT {
        let n = effects.get(&i).copied().unwrap_or(0);
        match fate(i) {
            Fate::FailsAlways => assert_eq!(n, 0, "{} always fails: no effect", event_id(i)),
            Fate::FailsTransiently(k) => {
                assert_eq!(n, 1, "{} has exactly one effect", event_id(i));
                assert_eq!(refusals.get(&i).copied(), Some(k), "{} failed {k}x first", event_id(i));
            }
            Fate::Succeeds => assert_eq!(n, 1, "{} has exactly one effect", event_id(i)),
        }
    }
    assert_eq!(done.len() + failed.len(), DISTINCT, "no event is lost");
    assert_eq!(failed, always, "FAILED are exactly the always-failing events");
    assert_eq!(dead.len(), always.len(), "each always-failing event dead-lettered once");
    assert_eq!(
        dead.into_iter().collect::<BTreeSet<_>>(),
        always,
        "the dead letters are the always-failing events"
    );
}
