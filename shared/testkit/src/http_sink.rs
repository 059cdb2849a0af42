//! The recording HTTP sink: a real HTTP server on 127.0.0.1:0 for handler tests: it records every
//! request (method, path, query, headers, body) and answers from a script
//! (FIFO), or 200 `{}` once the script is empty. Handlers are tested through
//! their real `reqwest` client against it, never against a stub.

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
