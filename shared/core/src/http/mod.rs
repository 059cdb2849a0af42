//! The one ingest surface: an axum `Router` that `webhooks serve` runs with
//! `axum::serve` and the ingest Lambda runs under `lambda_http`.
//!
//! Routes: `POST /webhooks/{provider}`, `GET /webhooks/{provider}`
//! (handshakes) and `GET /healthz`. What each ingest outcome answers is in
//! [`answer`], the one place that maps them.

mod answer;

pub use answer::answer;

use crate::pipeline::ingest::{Inbound, Ingest, IngestError, Refused};
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use bytes::Bytes;
use bytestring::ByteString;
use rand::Rng;
use std::net::SocketAddr;
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

/// The sender's address as a trusted front (API Gateway's `sourceIp`) saw
/// it; the ingest Lambda puts it in the request's extensions. Without it the
/// refusal log takes `X-Forwarded-For`'s first entry, else the peer address
/// (when the server was started with connect info).
#[derive(Debug, Clone)]
pub struct SourceIp(pub String);

/// The request id of one request, chosen once by [`with_request_id`]: one
/// buffer shared by the route, the answer's header, the log lines and the
/// events, each taking a reference to it rather than a copy.
#[derive(Debug, Clone)]
struct RequestId(ByteString);

/// The answer's header that carries the request id (a name made from a
/// `&str` is copied into a new allocation at every insert).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Picks the request id, hands it to the route, and puts it on the answer.
async fn with_request_id(mut req: Request, next: Next) -> Response {
    let id = request_id(req.headers());
    let header = HeaderValue::from_maybe_shared(id.as_bytes().clone()).ok();
    req.extensions_mut().insert(RequestId(id));
    let mut response = next.run(req).await;
    if let Some(v) = header {
        response.headers_mut().insert(X_REQUEST_ID, v);
    }
    response
}

async fn healthz(State(ingest): State<Arc<Ingest>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "providers": ingest.providers().names()}))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "not_found"}))).into_response()
}

/// Reads the body with the configured limit, answering 413 past it. Every
/// answer that is not an acceptance is offered to the refusal log here,
/// after it is decided: the accepted path does not pay for it.
#[allow(clippy::too_many_arguments)]
async fn webhook(
    State(ingest): State<Arc<Ingest>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    front: Option<Extension<SourceIp>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Path(provider): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = std::time::Instant::now();
    let limit = ingest.settings().max_body_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let known = ingest.providers().get(&provider).is_some() || ingest.providers().pending_reason(&provider).is_some();
    // The body's size as far as it is known: read, else declared.
    let mut body_bytes = declared.unwrap_or(0);
    let (outcome, headers) = if !known {
        (Err(IngestError::UnknownProvider), headers)
    } else if declared.is_some_and(|n| n > limit) {
        (Err(IngestError::TooLarge), headers)
    } else {
        match axum::body::to_bytes(body, limit).await {
            Err(e) if is_over_limit(&e) => (Err(IngestError::TooLarge), headers),
            Err(e) => {
                // The client went away (or broke the framing) before the body
                // ended: nothing was read, so nothing is kept.
                tracing::info!(%request_id, provider = %provider, error = %e, "body not received in full; nothing kept");
                (Err(IngestError::Incomplete), headers)
            }
            Ok(bytes) => {
                body_bytes = bytes.len();
                let inbound = Inbound {
                    provider: provider.clone(),
                    method,
                    headers,
                    query: uri.query().map(str::to_string),
                    path: uri.path().to_string(),
                    body: bytes,
                    now: crate::time::unix_now(),
                    request_id: request_id.clone(),
                };
                let outcome = ingest.handle(&inbound).await;
                (outcome, inbound.headers)
            }
        }
    };
    crate::telemetry::ingested(&provider, known, &outcome, started.elapsed());
    if let Err(error) = &outcome {
        let source_ip = front
            .map(|Extension(SourceIp(ip))| ip)
            .or_else(|| forwarded_for(&headers))
            .or_else(|| peer.map(|Extension(ConnectInfo(addr))| addr.ip().to_string()));
        let refused = Refused {
            provider: &provider,
            error,
            request_id: &request_id,
            headers: &headers,
            query: uri.query(),
            source_ip,
            body_bytes: body_bytes as u64,
            now: crate::time::unix_now(),
        };
        ingest.record_refusal(refused).await;
    }
    answer(ingest.settings().accepted_status, outcome)
}

/// `X-Forwarded-For`'s first entry: the client as the first proxy saw it.
fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty() && first.len() <= 64).then(|| first.to_string())
}

/// Whether reading the body failed because it passed the size limit (and
/// not because the client stopped sending it).
fn is_over_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The caller's request id (`X-Request-Id`, API Gateway's `X-Amzn-Trace-Id`),
/// or a fresh one.
fn request_id(headers: &HeaderMap) -> ByteString {
    for name in ["x-request-id", "x-amzn-request-id", "x-amzn-trace-id"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            if !v.is_empty() && v.len() <= 128 {
                return ByteString::from(v);
            }
        }
    }
    fresh_request_id(rand::thread_rng().gen())
}

/// Sixteen hex digits of `n`, in one allocation that every clone shares
/// (`Bytes::from_owner`; a `String` turned into `Bytes` allocates a second
/// time, for its reference count, at its first clone).
fn fresh_request_id(n: u64) -> ByteString {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits: [u8; 16] = std::array::from_fn(|i| HEX[(n >> (60 - 4 * i)) as usize & 0xf]);
    ByteString::try_from(Bytes::from_owner(digits)).expect("hex digits are UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_request_id_is_the_number_in_sixteen_lowercase_hex_digits() {
        assert_eq!(&*fresh_request_id(0x0123_4567_89ab_cdef), "0123456789abcdef");
        assert_eq!(&*fresh_request_id(0), "0000000000000000");
        assert_eq!(&*fresh_request_id(u64::MAX), "ffffffffffffffff");
        assert_eq!(&*fresh_request_id(0xa), "000000000000000a");
    }
}
