//! Test support shared by the ingest and processor function tests (the
//! processor's tests include this file by path): the emulator, a fresh stack
//! (table, queue + DLQ, bucket) per test, the sample events in `events/`, a
//! counting handler, and a minimal Lambda Runtime API for running the real
//! binaries.

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webhooks_aws::{AwsEnv, Clients, Runtime};
use webhooks_core::config::AppConfig;
use webhooks_core::event::Event;
use webhooks_core::handlers::{Handler, HandlerError, HandlerRegistry};
use webhooks_core::secret::MapResolver;

pub use webhooks_testkit_aws::{endpoint_for_test as endpoint, unique};

pub async fn clients(endpoint: &str) -> Clients {
    Clients::new(&webhooks_testkit_aws::sdk_config(endpoint).await)
}

/// A fresh table, queue + DLQ and bucket in the emulator.
pub struct Stack {
    pub endpoint: String,
    pub clients: Clients,
    pub env: AwsEnv,
}

impl Stack {
    pub async fn create(endpoint: &str, name: &str, max_receive_count: u32) -> Self {
        let clients = clients(endpoint).await;
        let name = unique(name);
        let table = format!("{name}-events");
        webhooks_testkit_aws::create_table(&clients.dynamodb, &table)
            .await
            .expect("create table");
        let (queue_url, dlq_url) = webhooks_testkit_aws::create_queue_pair(&clients.sqs, &name, 180, max_receive_count)
            .await
            .expect("create queues");
        let bucket = format!("{name}-artifacts");
        // The including module's own: the processor's build has S3, the ingest's not.
        super::create_artifacts_bucket(&clients, &bucket).await;
        let env = AwsEnv {
            events_table: table,
            queue_url,
            dlq_url,
            artifacts_bucket: bucket,
            artifacts_kms_key: None,
            config: None,
            endpoint_url: Some(endpoint.to_string()),
            metrics_namespace: "Webhooks".into(),
        };
        Self {
            endpoint: endpoint.to_string(),
            clients,
            env,
        }
    }

    /// The function environment a Lambda of this stack would have:
    /// `events/env.json`'s secrets plus this stack's names and the emulator.
    pub fn lambda_env(&self, function: &str) -> BTreeMap<String, String> {
        let mut vars = env_json(function);
        for (k, v) in [
            ("EVENTS_TABLE", self.env.events_table.clone()),
            ("QUEUE_URL", self.env.queue_url.clone()),
            ("DLQ_URL", self.env.dlq_url.clone()),
            ("ARTIFACTS_BUCKET", self.env.artifacts_bucket.clone()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
        ] {
            vars.insert(k.to_string(), v);
        }
        vars
    }

    /// Builds the app over this stack as a cold start would, with the
    /// secrets of `events/env.json`, `overlay` merged over the built-in
    /// config and `counter` registered under [`COUNTER`].
    pub fn runtime(&self, overlay: &str, counter: &Counter) -> Runtime {
        self.runtime_with(self.clients.clone(), overlay, counter)
    }

    /// Same, with other clients (one pointed at a closed port, say).
    pub fn runtime_with(&self, clients: Clients, overlay: &str, counter: &Counter) -> Runtime {
        let config = AppConfig::from_overlay(Some(("test overlay", overlay))).expect("config");
        let names: Vec<String> = config
            .enabled_providers()
            .values()
            .flat_map(|p| p.handlers.values().flatten().cloned())
            .collect();
        let vars = env_json("IngestFunction");
        let secrets = MapResolver(vars.into_iter().collect());
        let counter = counter.clone();
        webhooks_aws::build(
            &self.env,
            clients,
            &config,
            &secrets,
            move |registry: &mut HandlerRegistry, _| {
                registry.register(COUNTER, Arc::new(counter.clone()));
                // Built-in handlers this test does not exercise: stand-ins that succeed.
                for name in names {
                    if !registry.contains(&name) {
                        registry.register(&name, Arc::new(counter.clone()));
                    }
                }
            },
        )
        .expect("app builds")
    }

    /// Messages now on the main queue, received raw (as the Lambda event
    /// source mapping would), hidden for `visibility` seconds.
    pub async fn receive_raw(&self, max: usize, visibility: i32) -> Vec<aws_sdk_sqs::types::Message> {
        let mut out = Vec::new();
        for _ in 0..20 {
            let got = self
                .clients
                .sqs
                .receive_message()
                .queue_url(&self.env.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(visibility)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .expect("receive");
            let empty = got.messages().is_empty();
            out.extend(got.messages.unwrap_or_default());
            if out.len() >= max || (empty && !out.is_empty()) {
                break;
            }
            if empty {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        out
    }

    /// Bodies of the messages in the DLQ, with their `reason` attribute (a peek).
    pub async fn dlq_messages(&self) -> Vec<(String, Option<String>)> {
        let got = self
            .clients
            .sqs
            .receive_message()
            .queue_url(&self.env.dlq_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive dlq");
        got.messages()
            .iter()
            .map(|m| {
                let reason = m
                    .message_attributes()
                    .and_then(|a| a.get("reason"))
                    .and_then(|v| v.string_value())
                    .map(str::to_string);
                (m.body().unwrap_or_default().to_string(), reason)
            })
            .collect()
    }

    pub async fn send_raw(&self, body: &str) {
        self.clients
            .sqs
            .send_message()
            .queue_url(&self.env.queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
}

/// `events/`.
pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

pub fn read_event(name: &str) -> String {
    std::fs::read_to_string(events_dir().join(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

/// The top-level files of `events/` (not `events/bodies/`: the `webhooks`
/// command's tests send every one of those through `serve` and its handlers).
pub fn event_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One function's variables from `events/env.json`.
pub fn env_json(function: &str) -> BTreeMap<String, String> {
    let all: serde_json::Value = serde_json::from_str(&read_event("env.json")).expect("env.json is JSON");
    all.get(function)
        .and_then(|v| v.as_object())
        .unwrap_or_else(|| panic!("env.json has no {function}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// The handler name the tests map event types to.
pub const COUNTER: &str = "test.count";

/// Maps every seed provider's event types to the counting handler.
pub const COUNT_ALL: &str = r#"
[providers.gigstack.handlers]
"invoice.created" = ["test.count"]
[providers.tusfacturas.handlers]
"*" = ["test.count"]
[providers.piriod.handlers]
"*" = ["test.count"]
"#;

/// A handler that counts runs per event id and fails as told.
#[derive(Clone, Default)]
pub struct Counter {
    runs: Arc<Mutex<HashMap<String, u32>>>,
    fail_retryable: Arc<Mutex<Option<String>>>,
}

impl Counter {
    /// Runs for `event_id`, or for its occurrences (`{event_id}@{slot}`, as
    /// a provider with a dedup window names them).
    pub fn runs(&self, event_id: &str) -> u32 {
        let occurrence = format!("{event_id}@");
        self.runs
            .lock()
            .expect("lock")
            .iter()
            .filter(|(id, _)| *id == event_id || id.starts_with(&occurrence))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u32 {
        self.runs.lock().expect("lock").values().sum()
    }

    /// Every run fails with a retryable error from now on.
    pub fn fail_with(&self, message: &str) {
        *self.fail_retryable.lock().expect("lock") = Some(message.to_string());
    }
}

#[async_trait]
impl Handler for Counter {
    async fn handle(&self, event: &Event) -> Result<serde_json::Value, HandlerError> {
        *self.runs.lock().expect("lock").entry(event.id.to_string()).or_default() += 1;
        if let Some(m) = self.fail_retryable.lock().expect("lock").clone() {
            return Err(HandlerError::Retryable(m));
        }
        Ok(serde_json::json!({"counted": event.id}))
    }
}

/// One HTTP answer as API Gateway gets it back from the function.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: serde_json::Map<String, serde_json::Value>,
    pub body: serde_json::Value,
}

/// Feeds an API Gateway HTTP API v2 event through `lambda_http`'s request
/// conversion, the router, and its response conversion, exactly as
/// `lambda_http::run` does.
pub async fn invoke_http(router: &axum::Router, event_json: &str) -> Answer {
    use lambda_http::tower::{Service, ServiceExt};
    let request: lambda_http::request::LambdaRequest = serde_json::from_str(event_json).expect("an API Gateway event");
    let mut adapter = lambda_http::Adapter::from(router.clone());
    let ready = adapter.ready().await.expect("ready");
    let response = ready
        .call(lambda_http::LambdaEvent::new(request, lambda_http::Context::default()))
        .await
        .expect("infallible router");
    parse_answer(&serde_json::to_value(&response).expect("response serializes"))
}

/// Reads an `APIGatewayV2HTTPResponse` JSON.
pub fn parse_answer(v: &serde_json::Value) -> Answer {
    let status = v["statusCode"].as_u64().expect("statusCode") as u16;
    let headers = v["headers"].as_object().cloned().unwrap_or_default();
    let body = v["body"].as_str().unwrap_or_default();
    let body = serde_json::from_str(body).unwrap_or_else(|_| serde_json::Value::String(body.to_string()));
    Answer { status, headers, body }
}

/// A minimal Lambda Runtime API on 127.0.0.1 (what `cargo lambda watch`
/// and the Lambda service provide): serves queued events to `/next` and
/// collects what the function answers.
pub mod runtime_api {
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use std::sync::Arc;
    use std::time::Instant;
    use tokio::sync::{mpsc, Mutex};

    /// What the function sent back.
    #[derive(Debug)]
    pub enum Outcome {
        Response(String, serde_json::Value),
        Error(String, String),
        InitError(String),
    }

    #[derive(Clone)]
    struct Shared {
        events: Arc<Mutex<mpsc::UnboundedReceiver<(String, String)>>>,
        outcomes: mpsc::UnboundedSender<(Instant, Outcome)>,
        polls: mpsc::UnboundedSender<Instant>,
    }

    pub struct RuntimeApi {
        pub addr: std::net::SocketAddr,
        events: mpsc::UnboundedSender<(String, String)>,
        pub outcomes: mpsc::UnboundedReceiver<(Instant, Outcome)>,
        /// When the function asked for its next event (the first one marks the end of init).
        pub polls: mpsc::UnboundedReceiver<Instant>,
        server: tokio::task::JoinHandle<()>,
    }

    impl RuntimeApi {
        pub async fn start() -> Self {
            let (events_tx, events_rx) = mpsc::unbounded_channel();
            let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
            let (polls_tx, polls_rx) = mpsc::unbounded_channel();
            let shared = Shared {
                events: Arc::new(Mutex::new(events_rx)),
                outcomes: outcomes_tx,
                polls: polls_tx,
            };
            let app = axum::Router::new()
                .route("/2018-06-01/runtime/invocation/next", get(next))
                .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
                .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
                .route("/2018-06-01/runtime/init/error", post(init_error))
                .with_state(shared);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Self {
                addr,
                events: events_tx,
                outcomes: outcomes_rx,
                polls: polls_rx,
                server,
            }
        }

        /// Queues an invocation; returns when it was handed over.
        pub fn invoke(&self, request_id: &str, payload: &str) -> Instant {
            let _ = self.events.send((request_id.to_string(), payload.to_string()));
            Instant::now()
        }

        /// The next outcome, within `timeout`.
        pub async fn outcome(&mut self, timeout: std::time::Duration) -> (Instant, Outcome) {
            tokio::time::timeout(timeout, self.outcomes.recv())
                .await
                .expect("the function answered in time")
                .expect("runtime API is up")
        }
    }

    impl Drop for RuntimeApi {
        fn drop(&mut self) {
            self.server.abort();
        }
    }

    async fn next(State(s): State<Shared>) -> impl IntoResponse {
        let _ = s.polls.send(Instant::now());
        let got = s.events.lock().await.recv().await;
        let Some((id, payload)) = got else {
            return (StatusCode::GONE, HeaderMap::new(), String::new());
        };
        let mut headers = HeaderMap::new();
        let deadline = (std::time::SystemTime::now() + std::time::Duration::from_secs(30))
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        for (k, v) in [
            ("lambda-runtime-aws-request-id", id.clone()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:test".to_string(),
            ),
            ("lambda-runtime-trace-id", format!("Root=1-00000000-{id};Sampled=0")),
        ] {
            if let Ok(v) = v.parse() {
                headers.insert(k, v);
            }
        }
        (StatusCode::OK, headers, payload)
    }

    async fn response(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let _ = s.outcomes.send((Instant::now(), Outcome::Response(id, v)));
        StatusCode::ACCEPTED
    }

    async fn error(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
        let text = String::from_utf8_lossy(&body).into_owned();
        let _ = s.outcomes.send((Instant::now(), Outcome::Error(id, text)));
        StatusCode::ACCEPTED
    }

    async fn init_error(State(s): State<Shared>, body: Bytes) -> StatusCode {
        let text = String::from_utf8_lossy(&body).into_owned();
        let _ = s.outcomes.send((Instant::now(), Outcome::InitError(text)));
        StatusCode::ACCEPTED
    }
}

/// Starts a function binary against `api`, with `vars` and the Lambda
/// runtime variables; killed when dropped.
pub struct Function {
    pub child: tokio::process::Child,
    pub started: std::time::Instant,
}

impl Function {
    pub fn spawn(bin: &str, api: std::net::SocketAddr, vars: &BTreeMap<String, String>) -> Self {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
            .envs(vars)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let started = std::time::Instant::now();
        let child = cmd.spawn().expect("spawn the function binary");
        Self { child, started }
    }

    /// Waits for the process to exit (bounded); returns its status and output.
    pub async fn finish(self, timeout: Duration) -> (Option<i32>, String) {
        let out = tokio::time::timeout(timeout, self.child.wait_with_output())
            .await
            .expect("the function exits in time")
            .expect("wait");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }
}

/// An overlay that leaves every seed event type with no handler, so nothing
/// a function under test runs calls out of the machine.
pub fn no_handlers_overlay() -> String {
    let config = webhooks_core::config::AppConfig::builtin().expect("builtin");
    let mut text = String::new();
    for (name, provider) in config.enabled_providers() {
        text.push_str(&format!("[providers.{name}.handlers]\n"));
        for event_type in provider.handlers.keys() {
            text.push_str(&format!("{event_type:?} = []\n"));
        }
    }
    text
}

/// The key under which `provider`'s event `id` is stored: the id itself, or
/// its occurrence `{id}@{slot}` for a provider with a dedup window (Piriod).
pub async fn stored_key(runtime: &Runtime, provider: &str, id: &str) -> webhooks_core::event::EventKey {
    use webhooks_core::ports::store::{EventStore, ListFilter};
    let filter = ListFilter {
        provider: Some(provider.to_string()),
        limit: 100,
        ..Default::default()
    };
    let records = runtime.store.list(&filter).await.expect("list");
    let occurrence = format!("{id}@");
    let record = records
        .iter()
        .find(|r| r.event_id == id || r.event_id.starts_with(&occurrence))
        .unwrap_or_else(|| panic!("no record of {provider} {id}"));
    record.key()
}
