//! A real HTTP server on 127.0.0.1:0 for handler tests: it records every
//! request (method, path, query, headers, body) and answers from a script
//! (FIFO), or 200 `{}` once the script is empty. Handlers are tested through
//! their real `reqwest` client against it, never against a stub.

#![allow(clippy::unwrap_used)]

use super::{Handler, HandlerDeps, HandlerError, ResolvedSettings};
use crate::artifacts::{ArtifactStore, LocalDir};
use crate::event::Event;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: ::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Debug, Clone)]
struct Scripted {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Scripted>>,
}

/// The running server; stops when dropped.
pub struct TestServer {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, shared, task }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Queues the next answer.
    pub fn reply(&self, status: u16, content_type: &str, body: impl Into<Vec<u8>>) {
        self.reply_with_headers(status, &[("content-type", content_type)], body);
    }

    pub fn reply_json(&self, status: u16, body: Value) {
        self.reply(status, "application/json", body.to_string());
    }

    pub fn reply_with_headers(&self, status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) {
        self.shared.script.lock().unwrap().push_back(Scripted {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.into(),
        });
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The only request seen (fails the test otherwise).
    pub fn single_request(&self) -> Recorded {
        let seen = self.requests();
        assert_eq!(seen.len(), 1, "expected one request, saw {seen:?}");
        seen.into_iter().next().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024).await.unwrap().to_vec();
    shared.seen.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
    });
    let next = shared.script.lock().unwrap().pop_front().unwrap_or(Scripted {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{}".to_vec(),
    });
    let mut response = Response::builder().status(next.status);
    for (k, v) in &next.headers {
        response = response.header(k, v);
    }
    response.body(Body::from(next.body)).unwrap()
}

/// A base URL on which nothing listens: connecting is refused.
pub async fn refused_base() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// An event as the processor hands it to a handler.
pub fn event(provider: &str, event_type: &str, payload: Value) -> Event {
    Event {
        provider: provider.into(),
        id: "evt_test_1".into(),
        event_type: event_type.into(),
        received_at: 1_700_000_000,
        payload: crate::payload::Payload::from_text(payload.to_string()),
    }
}

/// Handler deps over a real client, `settings`, and artifacts in `dir`.
pub fn deps(settings: ResolvedSettings, dir: &std::path::Path) -> HandlerDeps {
    HandlerDeps {
        http: super::http_client(5).unwrap(),
        artifacts: Arc::new(LocalDir::new(dir)) as Arc<dyn ArtifactStore>,
        settings: Arc::new(settings),
    }
}

/// Fails when `secret` appears in a result or an error text.
pub fn assert_no_secret(outcome: &Result<Value, HandlerError>, secrets: &[&str]) {
    let text = match outcome {
        Ok(v) => v.to_string(),
        Err(e) => e.to_string(),
    };
    for s in secrets {
        assert!(!text.contains(s), "secret leaked into {text}");
    }
}

/// Runs a handler against a server answering 404, 429 and 500, and against a
/// refused connection, and checks the classification of each. `build` gets
/// the base URL the handler should call and returns the handler and event.
pub async fn assert_classifies<F>(build: F, secrets: &[&str])
where
    F: Fn(&str) -> (Arc<dyn Handler>, Event),
{
    for (status, retryable) in [(404u16, false), (429, true), (500, true)] {
        let server = TestServer::start().await;
        server.reply(status, "application/json", r#"{"error":"scripted"}"#);
        let (handler, event) = build(server.base());
        let outcome = handler.handle(&event).await;
        assert_no_secret(&outcome, secrets);
        let err = outcome.expect_err("scripted failure must fail");
        assert_eq!(err.is_retryable(), retryable, "HTTP {status}: {err}");
        assert!(err.to_string().contains(&status.to_string()), "{err}");
        assert!(
            !server.requests().is_empty(),
            "HTTP {status}: no request reached the server"
        );
    }
    let (handler, event) = build(&refused_base().await);
    let outcome = handler.handle(&event).await;
    assert_no_secret(&outcome, secrets);
    let err = outcome.expect_err("refused connection must fail");
    assert!(err.is_retryable(), "connection refused: {err}");
}
