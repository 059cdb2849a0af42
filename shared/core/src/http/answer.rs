//! The one map from an ingest outcome to its HTTP answer: status, JSON
//! body, `retry-after` where the sender should come back. The README's
//! table of answers is this file. Answers carry stable codes only, never a
//! secret, a signature or internal error text (the log has those).

use crate::pipeline::ingest::{Accepted, IngestError};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytestring::ByteString;

impl IngestError {
    /// The HTTP status of this answer.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::UnknownProvider => 404,
            IngestError::MethodNotAllowed => 405,
            IngestError::TooLarge => 413,
            IngestError::Incomplete => 400,
            IngestError::Rejected { status, .. } => *status,
            IngestError::InvalidPayload(_) => 400,
            IngestError::InFlight => 409,
            IngestError::Unavailable(_) => 503,
        }
    }

    /// The JSON body: a stable code, and for bad payloads a detail that
    /// names what is wrong (never a secret or internal error text).
    pub fn body(&self) -> serde_json::Value {
        let code = match self {
            IngestError::UnknownProvider => "unknown_provider",
            IngestError::MethodNotAllowed => "method_not_allowed",
            IngestError::TooLarge => "payload_too_large",
            IngestError::Incomplete => "invalid_payload",
            IngestError::Rejected { error, .. } => error.reason(),
            IngestError::InvalidPayload(_) => "invalid_payload",
            IngestError::InFlight => "in_progress",
            IngestError::Unavailable(_) => "unavailable",
        };
        match self {
            IngestError::InvalidPayload(detail) => serde_json::json!({"error": code, "detail": detail.to_string()}),
            IngestError::Incomplete => serde_json::json!({"error": code, "detail": self.to_string()}),
            _ => serde_json::json!({ "error": code }),
        }
    }
}

/// The body of an acceptance, written straight from the ids (a JSON value
/// built first cost six allocations a request). Fields in this order so the
/// bytes are those the README shows: `{"ids":[...],"status":"accepted"}`.
#[derive(serde::Serialize)]
struct Acknowledgement<'a> {
    ids: &'a [ByteString],
    status: &'static str,
}

/// Maps a pipeline outcome to the HTTP answers table.
pub fn answer(accepted_status: u16, outcome: Result<Accepted, IngestError>) -> Response {
    let acknowledge = |status: StatusCode, ids: &[ByteString], word: &'static str| {
        (status, Json(Acknowledgement { ids, status: word })).into_response()
    };
    match outcome {
        Ok(Accepted::New { ids }) => {
            let status = StatusCode::from_u16(accepted_status).unwrap_or(StatusCode::OK);
            acknowledge(status, &ids, "accepted")
        }
        Ok(Accepted::Duplicate { ids }) => acknowledge(StatusCode::OK, &ids, "duplicate"),
        Ok(Accepted::Ignored { ids }) => acknowledge(StatusCode::OK, &ids, "ignored"),
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
