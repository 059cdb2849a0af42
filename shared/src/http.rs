//! The one ingest surface: an axum `Router` that `webhooks serve` runs with
//! `axum::serve` and the ingest Lambda runs under `lambda_http`.
//!
//! Routes: `POST /webhooks/{provider}`, `GET /webhooks/{provider}`
//! (handshakes) and `GET /healthz`.

use crate::ingest::{Accepted, Inbound, Ingest, IngestError};
use axum::body::Body;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use rand::Rng;
use std::sync::Arc;

/// Builds the router over an ingest pipeline. Every answer, whatever the
/// route, carries `x-request-id`: the one its log lines carry.
pub fn router(ingest: Arc<Ingest>) -> Router {
    Router::new()
        .route("/webhooks/{provider}", any(webhook))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(ingest)
        .layer(axum::middleware::from_fn(with_request_id))
}

/// The request id of one request, chosen once by [`with_request_id`].
#[derive(Debug, Clone)]
struct RequestId(String);

/// Picks the request id, hands it to the route, and puts it on the answer.
async fn with_request_id(mut req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    let header = HeaderValue::from_str(&id).ok();
    req.extensions_mut().insert(RequestId(id));
    let mut response = next.run(req).await;
    if let Some(v) = header {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

async fn healthz(State(ingest): State<Arc<Ingest>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "providers": ingest.registry().names()}))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "not_found"}))).into_response()
}

/// Reads the body with the configured limit, answering 413 past it.
async fn webhook(
    State(ingest): State<Arc<Ingest>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(provider): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let limit = ingest.settings().max_body_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let outcome = if ingest.registry().get(&provider).is_none() {
        Err(IngestError::UnknownProvider)
    } else if declared.is_some_and(|n| n > limit) {
        Err(IngestError::TooLarge)
    } else {
        match axum::body::to_bytes(body, limit).await {
            Err(_) => Err(IngestError::TooLarge),
            Ok(bytes) => {
                let inbound = Inbound {
                    provider,
                    method,
                    headers,
                    query: uri.query().map(str::to_string),
                    path: uri.path().to_string(),
                    body: bytes,
                    now: crate::time::unix_now(),
                    request_id,
                };
                ingest.handle(&inbound).await
            }
        }
    };
    answer(ingest.settings().accepted_status, outcome)
}

/// Maps a pipeline outcome to the HTTP answers table.
pub fn answer(accepted_status: u16, outcome: Result<Accepted, IngestError>) -> Response {
    match outcome {
        Ok(Accepted::New { ids }) => {
            let status = StatusCode::from_u16(accepted_status).unwrap_or(StatusCode::OK);
            (status, Json(serde_json::json!({"status": "accepted", "ids": ids}))).into_response()
        }
        Ok(Accepted::Duplicate { ids }) => (
            StatusCode::OK,
            Json(serde_json::json!({"status": "duplicate", "ids": ids})),
        )
            .into_response(),
        Ok(Accepted::Ignored { ids }) => (
            StatusCode::OK,
            Json(serde_json::json!({"status": "ignored", "ids": ids})),
        )
            .into_response(),
        Ok(Accepted::Handshake(h)) => {
            let status = StatusCode::from_u16(h.status).unwrap_or(StatusCode::OK);
            (status, [(axum::http::header::CONTENT_TYPE, h.content_type)], h.body).into_response()
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = (status, Json(e.body())).into_response();
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::CONFLICT {
                r.headers_mut().insert("retry-after", HeaderValue::from_static("5"));
            }
            r
        }
    }
}

/// The caller's request id (`X-Request-Id`, API Gateway's `X-Amzn-Trace-Id`),
/// or a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    for name in ["x-request-id", "x-amzn-request-id", "x-amzn-trace-id"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            if !v.is_empty() && v.len() <= 128 {
                return v.to_string();
            }
        }
    }
    format!("{:016x}", rand::thread_rng().gen::<u64>())
}
