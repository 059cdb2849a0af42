//! `cargo bench -p webhooks-core --bench pipeline`: each verifier at 1, 16
//! and 64 KiB beside the raw HMAC-SHA256 of the same bytes; id and type
//! extraction; the whole ingest pipeline in process on in-memory adapters
//! (verify + extract + claim + enqueue); the processor's dispatch. Ratios to
//! the raw HMAC are read off one run. Figures, not assertions: see
//! README.md, "Performance".

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhooks_core::app::{App, Ports};
use webhooks_core::config::AppConfig;
use webhooks_core::event::Event;
use webhooks_core::handlers::{Handler, HandlerError};
use webhooks_core::pipeline::ingest::{Accepted, Inbound};
use webhooks_core::ports::artifacts::LocalDir;
use webhooks_core::ports::queue::Queue;
use webhooks_core::secret::MapResolver;
use webhooks_core::verify::{Request, SignInput, Signed, Verifier, VerifierConfig};
use webhooks_testkit::memory::queue::MemoryQueue;
use webhooks_testkit::memory::store::MemoryStore;

const SIZES: [usize; 3] = [1024, 16 * 1024, 64 * 1024];
const NOW: i64 = 1_795_000_000;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A gigstack-shaped `invoice.created` body of about `size` bytes, with `id`
/// and `type` first (as gigstack sends them) or `type` last (as Stripe does).
fn body(size: usize, id: &str, type_last: bool) -> String {
    let head = if type_last {
        format!(r#"{{"id":"{id}","object":"event","data":{{"object":{{"items":["#)
    } else {
        format!(r#"{{"id":"{id}","type":"invoice.created","created":1732380000,"data":{{"object":{{"items":["#)
    };
    let tail = if type_last {
        r#"]}},"livemode":false,"type":"invoice.created"}"#
    } else {
        r#"]}},"livemode":false}"#
    };
    let mut s = head;
    let mut i = 0;
    while s.len() + tail.len() + 80 < size {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"sku":"SKU-{i:05}","qty":{},"price":123.45,"desc":"Widget number {i}"}}"#,
            i % 7
        ));
        i += 1;
    }
    s.push_str(tail);
    s
}

fn raw_hmac(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The schemes benchmarked, as a provider table would configure them: one
/// entry per `VerifierConfig` variant (generic HMAC, token, basic auth,
/// Standard Webhooks, Stripe, GitHub, Shopify, Slack, Meta, Mercado Pago,
/// Twilio, Square, Paddle, HubSpot, Zoom, dLocal, Khipu, Wompi's property
/// checksum), so a scheme added there and not here is easy to spot.
const SCHEMES: [(&str, &str); 18] = [
    (
        "gigstack_hmac",
        r#"{ scheme = "hmac", header = "X-Gigstack-Signature", secrets = ["env:S"] }"#,
    ),
    ("github", r#"{ scheme = "github", secrets = ["env:S"] }"#),
    ("shopify", r#"{ scheme = "shopify", secrets = ["env:S"] }"#),
    ("stripe", r#"{ scheme = "stripe", secrets = ["env:S"] }"#),
    ("slack", r#"{ scheme = "slack", secrets = ["env:S"] }"#),
    (
        "standard_webhooks",
        r#"{ scheme = "standard_webhooks", secrets = ["env:S"] }"#,
    ),
    (
        "meta",
        r#"{ scheme = "meta", secrets = ["env:S"], verify_tokens = ["env:S"] }"#,
    ),
    ("mercado_pago", r#"{ scheme = "mercado_pago", secrets = ["env:S"] }"#),
    ("twilio_json", r#"{ scheme = "twilio", secrets = ["env:S"] }"#),
    (
        "token_header",
        r#"{ scheme = "token", name = "TF-WebhookToken", secrets = ["env:S"] }"#,
    ),
    (
        "basic_auth",
        r#"{ scheme = "basic_auth", username = "piriod", passwords = ["env:S"] }"#,
    ),
    ("square", r#"{ scheme = "square", secrets = ["env:S"] }"#),
    ("paddle", r#"{ scheme = "paddle", secrets = ["env:S"] }"#),
    ("hubspot", r#"{ scheme = "hubspot", secrets = ["env:S"] }"#),
    ("zoom", r#"{ scheme = "zoom", secrets = ["env:S"] }"#),
    (
        "dlocal",
        r#"{ scheme = "dlocal", secrets = ["env:S"], logins = ["env:S"] }"#,
    ),
    ("khipu", r#"{ scheme = "khipu", secrets = ["env:S"] }"#),
    (
        "property_checksum",
        r#"{ scheme = "property_checksum", secrets = ["env:S"] }"#,
    ),
];

fn scheme_config(config: &str) -> VerifierConfig {
    #[derive(serde::Deserialize)]
    struct T {
        verifier: VerifierConfig,
    }
    let t: T = toml::from_str(&format!("verifier = {config}")).expect("scheme config");
    t.verifier
}

fn verifier(config: &VerifierConfig) -> Box<dyn Verifier> {
    config
        .build(&MapResolver::default().with("S", SECRET))
        .expect("verifier builds")
}

/// The variant's name. The match has no wildcard on purpose: a scheme added
/// to `VerifierConfig` fails to compile here until it is named, and then
/// [`assert_every_scheme_benchmarked`] fails until it is in [`SCHEMES`].
fn variant(config: &VerifierConfig) -> &'static str {
    match config {
        VerifierConfig::Hmac(_) => "hmac",
        VerifierConfig::Token(_) => "token",
        VerifierConfig::BasicAuth(_) => "basic_auth",
        VerifierConfig::StandardWebhooks(_) => "standard_webhooks",
        VerifierConfig::Stripe(_) => "stripe",
        VerifierConfig::Github(_) => "github",
        VerifierConfig::Shopify(_) => "shopify",
        VerifierConfig::Slack(_) => "slack",
        VerifierConfig::Meta(_) => "meta",
        VerifierConfig::MercadoPago(_) => "mercado_pago",
        VerifierConfig::Twilio(_) => "twilio",
        VerifierConfig::Square(_) => "square",
        VerifierConfig::Paddle(_) => "paddle",
        VerifierConfig::Hubspot(_) => "hubspot",
        VerifierConfig::Zoom(_) => "zoom",
        VerifierConfig::Dlocal(_) => "dlocal",
        VerifierConfig::Khipu(_) => "khipu",
        VerifierConfig::PropertyChecksum(_) => "property_checksum",
        // Not in SCHEMES: the bench signs with the verifier's own `sign`,
        // and a public-key verifier holds no private key to sign with.
        VerifierConfig::Ed25519(_) => "ed25519",
        VerifierConfig::EcdsaP256(_) => "ecdsa_p256",
        VerifierConfig::RsaSha256(_) => "rsa_sha256",
    }
}

/// Every variant of `VerifierConfig` appears in [`SCHEMES`].
fn assert_every_scheme_benchmarked(configs: &[VerifierConfig]) {
    let covered: std::collections::BTreeSet<_> = configs.iter().map(variant).collect();
    assert_eq!(covered.len(), SCHEMES.len(), "one entry per scheme: {covered:?}");
}

/// A signed request, as owned parts.
struct SignedParts {
    headers: HeaderMap,
    query: Vec<(String, String)>,
    url: String,
}

/// The body `v` verifies: the benchmark body as is, or, for a scheme whose
/// proof is inside the body (Wompi's checksum), that body under `data`
/// beside a signature listing one of its values, the checksum filled in.
fn signed_body(v: &dyn Verifier, body: &[u8]) -> Vec<u8> {
    let wrapped = [
        br#"{"timestamp":1795000000,"signature":{"properties":["id"]},"data":"#.as_slice(),
        body,
        b"}",
    ]
    .concat();
    let input = SignInput {
        body: &wrapped,
        now: NOW,
        id: "msg_bench_1",
        url: "",
    };
    match v.sign_body(&input) {
        Some(signed) => signed.expect("signs in the body"),
        None => body.to_vec(),
    }
}

fn signed(v: &dyn Verifier, body: &[u8]) -> SignedParts {
    let base = "https://hooks.example.com/webhooks/bench";
    let s: Signed = v.sign(&SignInput {
        body,
        now: NOW,
        id: "msg_bench_1",
        url: base,
    });
    let mut headers = HeaderMap::new();
    for (k, val) in &s.headers {
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(val).expect("header value"),
        );
    }
    let url = if s.query.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", serde_urlencoded::to_string(&s.query).expect("query"))
    };
    SignedParts {
        headers,
        query: s.query,
        url,
    }
}

fn bench_verifiers(c: &mut Criterion) {
    let configs: Vec<VerifierConfig> = SCHEMES.iter().map(|(_, c)| scheme_config(c)).collect();
    assert_every_scheme_benchmarked(&configs);
    let mut group = c.benchmark_group("verify");
    for size in SIZES {
        let body = body(size, "evt_bench_1", false).into_bytes();
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("raw_hmac_sha256", size), &body, |b, body| {
            b.iter(|| raw_hmac(SECRET.as_bytes(), std::hint::black_box(body)))
        });
        for (&(name, _), config) in SCHEMES.iter().zip(&configs) {
            let v = verifier(config);
            let body = signed_body(v.as_ref(), &body);
            let s = signed(v.as_ref(), &body);
            let method = Method::POST;
            let req = Request {
                method: &method,
                headers: &s.headers,
                query: &s.query,
                body: &body,
                url: &s.url,
                now: NOW,
            };
            assert_eq!(v.verify(&req), Ok(()), "{name} verifies what it signed");
            group.bench_with_input(BenchmarkId::new(name, size), &req, |b, req| {
                b.iter(|| v.verify(std::hint::black_box(req)))
            });
        }
    }
    group.finish();
}

/// The overlay every pipeline benchmark runs with: gigstack's events go to a
/// handler that does nothing, and a Stripe-like provider reads its type last.
const OVERLAY: &str = r#"
[providers.gigstack.handlers]
"invoice.created" = ["bench.noop"]
"invoice.stamped" = []
"payment.received" = []
"invoice.cancelled" = []
"client.validated" = []

[providers.stripe]
verifier = { scheme = "stripe", secrets = ["env:STRIPE"] }
event_id = "body:/id"
event_type = "body:/type"
[providers.stripe.handlers]
"invoice.created" = ["bench.noop"]
"#;

struct Noop;

#[async_trait::async_trait]
impl Handler for Noop {
    async fn handle(&self, _event: &Event) -> Result<serde_json::Value, HandlerError> {
        Ok(serde_json::Value::Null)
    }
}

/// The app over in-memory adapters, with room for `capacity` events (so
/// the store's map is not measured growing).
fn app(dir: &std::path::Path, capacity: usize) -> (App, Arc<MemoryQueue>) {
    let (app, _, queue) = app_with_store(dir, capacity);
    (app, queue)
}

/// [`app`], and its store.
fn app_with_store(dir: &std::path::Path, capacity: usize) -> (App, Arc<MemoryStore>, Arc<MemoryQueue>) {
    let config = AppConfig::from_overlay(Some(("bench", OVERLAY))).expect("config");
    let secrets = MapResolver::default()
        .with("GIGSTACK_WEBHOOK_SECRET", SECRET)
        .with("TF_WEBHOOK_TOKEN", SECRET)
        .with("PIRIOD_WEBHOOK_TOKEN", SECRET)
        .with("STRIPE", SECRET);
    let queue = Arc::new(MemoryQueue::new());
    let store = Arc::new(MemoryStore::with_capacity(capacity));
    let ports = Ports::new(store.clone(), queue.clone(), Arc::new(LocalDir::new(dir)));
    let app = App::build_with(&config, &secrets, ports, |registry, _| {
        registry.register("bench.noop", Arc::new(Noop));
    })
    .expect("app");
    (app, store, queue)
}

/// A body as the server hands it over: hyper reads requests into one
/// buffer and freezes each body off it, so the `Bytes` is already shared and
/// cloning it only counts a reference. A `Bytes` made from a `String`
/// allocates its reference count at its first clone instead (about 770
/// instructions and a `malloc` a delivery), which the server never pays.
fn as_received(body: String) -> Bytes {
    bytes::BytesMut::from(body.as_bytes()).split().freeze()
}

/// A request id as the server makes a fresh one: sixteen hex digits in one
/// allocation its clones share (`Bytes::from_owner`). One made from a `&str`
/// allocates its reference count at its first clone instead, which the
/// server does not pay for an id it makes.
fn request_id() -> bytestring::ByteString {
    bytestring::ByteString::try_from(Bytes::from_owner(*b"00c0ffee00c0ffee")).expect("ASCII")
}

/// `n` signed deliveries with distinct ids, from `first` on.
fn deliveries(app: &App, provider: &str, size: usize, type_last: bool, first: u64, n: u64) -> Vec<Inbound> {
    let p = app.providers.get(provider).expect("provider");
    (first..first + n)
        .map(|i| {
            let body = as_received(body(size, &format!("evt_{i:09}"), type_last));
            let s = signed(p.verifier.as_ref(), &body);
            Inbound {
                provider: provider.to_string(),
                method: Method::POST,
                headers: s.headers,
                query: None,
                path: format!("/webhooks/{provider}"),
                body,
                now: NOW,
                request_id: request_id(),
            }
        })
        .collect()
}

fn bench_extraction(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (app, _) = app(dir.path(), 0);
    let mut group = c.benchmark_group("extract");
    for (label, provider, type_last) in [("id_type_first", "gigstack", false), ("type_last", "stripe", true)] {
        let p = app.providers.get(provider).expect("provider");
        for size in SIZES {
            let body = Bytes::from(body(size, "evt_1", type_last));
            group.throughput(Throughput::Bytes(body.len() as u64));
            group.bench_with_input(BenchmarkId::new(label, size), &body, |b, body| {
                b.iter(|| {
                    p.extract(std::hint::black_box(body), Some("application/json"), &|_| None, &|_| {
                        None
                    })
                })
            });
        }
    }
    group.finish();
}

/// Deliveries are made (signed) in small batches just before they are
/// ingested, outside the timed part, so each body is in cache as it is in a
/// server that has just read it from the socket, not evicted by thousands
/// of others made earlier.
const BATCH: u64 = 32;

/// The store and the queue are emptied (outside the timed part) every
/// `ROUND` deliveries, so they run at the steady size of a long-running
/// process instead of growing with criterion's sample: an in-memory map
/// doubling and the kernel's first touch of its new pages are costs of the
/// test double's unbounded growth, not of the pipeline (a sample of 40,000
/// deliveries spent a fifth of its time rehashing the map).
const ROUND: u64 = 1024;
const _: () = assert!(ROUND.is_multiple_of(BATCH), "a round is whole batches");

fn bench_ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut group = c.benchmark_group("ingest_pipeline");
    for (label, provider, type_last) in [("id_type_first", "gigstack", false), ("type_last", "stripe", true)] {
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            // One app for every sample, emptied every ROUND deliveries
            // (outside the timed part): memory stays bounded, and the store
            // writes into memory it has used before, as a long-running
            // server's does.
            let dir = tempfile::tempdir().expect("tempdir");
            let (app, store, queue) = app_with_store(dir.path(), ROUND as usize);
            group.bench_function(BenchmarkId::new(label, size), |b| {
                b.iter_custom(|iters| {
                    let mut timed = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        if done.is_multiple_of(ROUND) {
                            store.clear();
                            queue.clear();
                        }
                        let n = BATCH.min(iters - done);
                        let inbound = deliveries(&app, provider, size, type_last, done % ROUND, n);
                        timed += rt.block_on(async {
                            let start = Instant::now();
                            for delivery in &inbound {
                                let answer = app.ingest.handle(delivery).await;
                                debug_assert!(matches!(answer, Ok(Accepted::New { .. })));
                                std::hint::black_box(answer).ok();
                            }
                            start.elapsed()
                        });
                        done += n;
                    }
                    timed
                })
            });
        }
    }
    group.finish();
}

fn bench_dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("process");
    group.bench_function("dispatch_noop_handler", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (app, queue) = app(dir.path(), iters as usize);
            rt.block_on(async {
                for delivery in deliveries(&app, "gigstack", 1024, false, 0, iters) {
                    app.ingest.handle(&delivery).await.expect("accepted");
                }
                let mut received = Vec::with_capacity(iters as usize);
                while received.len() < iters as usize {
                    received.extend(queue.receive(1000, Duration::from_secs(600)).await.expect("receive"));
                }
                let start = Instant::now();
                for delivery in &received {
                    std::hint::black_box(app.processor.run(delivery, NOW).await);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_verifiers, bench_extraction, bench_ingest, bench_dispatch);
criterion_main!(benches);
