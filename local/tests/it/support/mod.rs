//! What the `webhooks` command's end-to-end tests share: the real binary
//! started as `webhooks serve` on a temporary database, signed deliveries,
//! and a local HTTP sink standing in for the notification webhook and the
//! provider APIs, which counts every call a handler makes (its effects).
#![allow(dead_code)] // each test file uses its own subset

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const GIGSTACK_SECRET: &str = "gs-secret-5d1f0a7e93c2";
pub const TF_TOKEN: &str = "tf-token-8b2e44c1a9d0";
pub const PIRIOD_TOKEN: &str = "piriod-token-71c3e5f2b8a4";
pub const GIGSTACK_API_KEY: &str = "gs-apikey-c0ffee1234567890";

/// Every secret the tests hand the command; none may ever be printed.
pub const SECRETS: [&str; 4] = [GIGSTACK_SECRET, TF_TOKEN, PIRIOD_TOKEN, GIGSTACK_API_KEY];

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_webhooks")
}

/// Hex HMAC-SHA256 of the body with gigstack's secret: `X-Gigstack-Signature`.
pub fn gigstack_signature(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(GIGSTACK_SECRET.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A gigstack event body with this id and type.
pub fn gigstack_body(id: &str, event_type: &str) -> String {
    serde_json::json!({
        "id": id,
        "type": event_type,
        "created": 1_732_380_000,
        "data": {"id": format!("inv_{id}"), "invoice": format!("inv_{id}"), "client": {"name": "Acme SA de CV"}, "total": 1160.0, "currency": "MXN"}
    })
    .to_string()
}

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
    pub body: String,
    pub authorization: Option<String>,
    /// The status the sink answered.
    pub status: u16,
}

#[derive(Default)]
struct SinkState {
    /// Statuses for the next requests, in order; then `otherwise`.
    plan: VecDeque<u16>,
    otherwise: u16,
    /// Echo the Authorization header back in error bodies (a server that
    /// leaks what it was sent), to prove handlers mask it.
    echo_auth: bool,
    hits: Vec<Hit>,
}

/// A local HTTP server that answers as planned and records every request
/// (a path ending in `.pdf` is answered with a small PDF, as a file host would).
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    /// A path prefix of this sink's own: a request without it (a `serve` of
    /// another test still retrying to a port the kernel has since handed to
    /// this sink) is answered 410 and neither recorded nor planned for.
    prefix: String,
    state: Arc<Mutex<SinkState>>,
}

impl Sink {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(SinkState {
            otherwise: 200,
            ..SinkState::default()
        }));
        let prefix = format!("/sink-{:016x}", rand::random::<u64>());
        let app = axum::Router::new()
            .fallback(any(record))
            .with_state((state.clone(), prefix.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("sink addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, prefix, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}{path}", self.addr, self.prefix)
    }

    /// Answer these statuses first, then `otherwise`.
    pub fn plan(&self, first: &[u16], otherwise: u16) {
        let mut s = self.state.lock().expect("sink lock");
        s.plan = first.iter().copied().collect();
        s.otherwise = otherwise;
    }

    pub fn echo_authorization(&self) {
        self.state.lock().expect("sink lock").echo_auth = true;
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.state.lock().expect("sink lock").hits.clone()
    }

    /// Calls answered 2xx: the effects that took place.
    pub fn effects(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| (200..300).contains(&h.status))
            .collect()
    }
}

async fn record(
    State((state, prefix)): State<(Arc<Mutex<SinkState>>, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(axum::http::HeaderName, &'static str); 1], String) {
    let Some(path) = uri.path().strip_prefix(prefix.as_str()) else {
        return (
            StatusCode::GONE,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            "{\"error\":\"not this sink\"}".to_string(),
        );
    };
    let mut s = state.lock().expect("sink lock");
    let status = s.plan.pop_front().unwrap_or(s.otherwise);
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_pdf = path.ends_with(".pdf") && status < 300;
    let answer = if is_pdf {
        "%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_string()
    } else if s.echo_auth && status >= 400 {
        format!(
            "{{\"error\":\"rejected credentials {}\"}}",
            authorization.clone().unwrap_or_default()
        )
    } else {
        "{\"ok\":true}".to_string()
    };
    s.hits.push(Hit {
        at: Instant::now(),
        path: path.to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
        authorization,
        status,
    });
    let content_type = if is_pdf { "application/pdf" } else { "application/json" };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(axum::http::header::CONTENT_TYPE, content_type)],
        answer,
    )
}

/// A temporary working directory with the database, config and logs.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("webhooks.db")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the config overlay: fast retries, handler URLs on the sink.
    pub fn config(&self, sink: &Sink, max_attempts: u32, base_delay_ms: u64) -> PathBuf {
        let path = self.path("config.toml");
        let text = format!(
            r#"
[retry]
max_attempts = {max_attempts}
base_delay_ms = {base_delay_ms}
max_delay_ms = 5000
processing_lease_secs = 5

[handlers]
notify_url = "{notify}"
gigstack_api_url = "{api}"
tusfacturas_api_url = "{api}"
piriod_api_url = "{api}"
http_timeout_secs = 3

[destinations.erp]
url = "{erp}"
signing_secret = "env:ERP_FORWARD_SIGNING_SECRET"
timeout_secs = 3
"#,
            notify = sink.url("/notify"),
            erp = sink.url("/erp"),
            api = sink.url("/api"),
        );
        std::fs::write(&path, text).expect("write config");
        path
    }
}

/// The `whsec_` secret `[destinations.erp]` signs with in these tests.
pub const ERP_SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The environment every command gets: the secrets, and nothing inherited
/// that could change the outcome.
pub fn command(workdir: &Workdir, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(workdir.dir.path())
        .env_remove("WEBHOOKS_CONFIG")
        .env_remove("WEBHOOKS_DB")
        .env_remove("NOTIFY_WEBHOOK_URL")
        .env("GIGSTACK_WEBHOOK_SECRET", GIGSTACK_SECRET)
        .env("TF_WEBHOOK_TOKEN", TF_TOKEN)
        .env("PIRIOD_WEBHOOK_TOKEN", PIRIOD_TOKEN)
        .env("GIGSTACK_API_KEY", GIGSTACK_API_KEY)
        .env("ERP_FORWARD_SIGNING_SECRET", ERP_SIGNING_SECRET)
        .env("NO_COLOR", "1");
    cmd
}

/// Runs a one-shot subcommand against the work directory's database.
pub fn run(workdir: &Workdir, args: &[&str]) -> Output {
    let db = workdir.db();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--db", db.to_str().expect("utf-8 path")]);
    command(workdir, &all).output().expect("run webhooks")
}

/// `webhooks events show PROVIDER ID --json`, parsed; `None` when absent.
pub fn show(workdir: &Workdir, provider: &str, id: &str) -> Option<serde_json::Value> {
    let out = run(workdir, &["events", "show", provider, id, "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Polls until the event reaches `state`; panics with the last record after `within`.
pub async fn wait_for_state(
    workdir: &Workdir,
    provider: &str,
    id: &str,
    state: &str,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let record = show(workdir, provider, id);
        if let Some(r) = &record {
            if r["state"] == state {
                return r.clone();
            }
        }
        if Instant::now() > deadline {
            panic!("{provider}#{id} did not reach {state} within {within:?}; last: {record:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running `webhooks serve`, its output captured to files.
pub struct Serve {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Serve {
    /// Starts `webhooks serve` on a free port with `extra` arguments and
    /// waits for its "listening" line.
    pub fn start(workdir: &Workdir, config: &Path, extra: &[&str]) -> Self {
        Self::start_with(workdir, config, extra, &[])
    }

    pub fn start_with(workdir: &Workdir, config: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let n = std::fs::read_dir(workdir.dir.path()).map(|d| d.count()).unwrap_or(0);
        let stdout_path = workdir.path(&format!("serve-{n}.out"));
        let stderr_path = workdir.path(&format!("serve-{n}.err"));
        let db = workdir.db();
        let mut args = vec!["serve"];
        if !extra.contains(&"--addr") {
            args.extend(["--addr", "127.0.0.1:0"]);
        }
        args.extend([
            "--db",
            db.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            "--artifacts-dir",
        ]);
        let artifacts = workdir.path("artifacts");
        args.push(artifacts.to_str().expect("utf-8"));
        args.extend_from_slice(extra);
        let mut cmd = command(workdir, &args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("spawn webhooks serve");
        // Read stdout until the listening line, then keep copying it to a file.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let copy_to = stdout_path.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut file = std::fs::File::create(copy_to).expect("stdout file");
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                if !sent {
                    if let Some(addr) = line.strip_prefix("webhooks listening on http://") {
                        let _ = tx.send(addr.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!("webhooks serve did not start: {err}");
            }
        };
        Self {
            child,
            addr,
            stdout_path,
            stderr_path,
        }
    }

    pub fn url(&self, provider: &str) -> String {
        format!("http://{}/webhooks/{provider}", self.addr)
    }

    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        format!("{out}\n{err}")
    }

    /// Waits until the output contains `text`; returns the output.
    pub fn wait_output(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let out = self.output();
            if out.contains(text) || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9: no chance to clean up.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit code.
    pub fn terminate(mut self, within: Duration) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50)); // let the copier flush
                return (status.code(), self.output());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("webhooks serve did not stop within {within:?}: {}", self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts a signed gigstack delivery; returns (status, body).
pub async fn post_gigstack(client: &reqwest::Client, serve: &Serve, body: &str) -> (u16, serde_json::Value) {
    let resp = client
        .post(serve.url("gigstack"))
        .header("content-type", "application/json")
        .header("x-gigstack-signature", gigstack_signature(body))
        .body(body.to_string())
        .send()
        .await
        .expect("post delivery");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}
