//! The ingest pipeline over ports: route to a provider, check size, verify,
//! extract, claim each event, enqueue, answer. No AWS and no HTTP framework
//! types: the axum router in [`crate::http`] adapts to and from it, and it is
//! the same code under `webhooks serve` and the ingest Lambda.

use crate::config::IngestSettings;
use crate::event::{Event, EventState};
use crate::intake::{Admission, Intake, IntakeError};
use crate::provider::{PayloadError, Provider, Registry};
use crate::queue::QueueError;
use crate::store::ClaimOutcome;
use crate::verify::{Handshake, Request, VerifyError};
use bytes::Bytes;
use http::{HeaderMap, Method};
use std::sync::Arc;
use tracing::{info, warn};

/// An inbound request, as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub provider: String,
    pub method: Method,
    pub headers: HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// The request path, for rebuilding the public URL.
    pub path: String,
    pub body: Bytes,
    pub now: i64,
    pub request_id: String,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// At least one new event was claimed and queued.
    New { ids: Vec<String> },
    /// Every event was seen before and is queued or processed.
    Duplicate { ids: Vec<String> },
    /// Every event has a type with no handler: recorded, nothing runs.
    Ignored { ids: Vec<String> },
    /// A handshake or challenge, answered as the verifier says.
    Handshake(Handshake),
}

/// Why a delivery was not accepted. Each maps to one row of the HTTP table.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown provider")]
    UnknownProvider,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payload too large")]
    TooLarge,
    #[error("rejected: {error}")]
    Rejected { status: u16, error: VerifyError },
    #[error("invalid payload: {0}")]
    InvalidPayload(PayloadError),
    #[error("a copy of this event is still being accepted")]
    InFlight,
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl IngestError {
    /// The HTTP status of this answer.
    pub fn status(&self) -> u16 {
        match self {
            IngestError::UnknownProvider => 404,
            IngestError::MethodNotAllowed => 405,
            IngestError::TooLarge => 413,
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
            IngestError::Rejected { error, .. } => error.reason(),
            IngestError::InvalidPayload(_) => "invalid_payload",
            IngestError::InFlight => "in_progress",
            IngestError::Unavailable(_) => "unavailable",
        };
        match self {
            IngestError::InvalidPayload(detail) => serde_json::json!({"error": code, "detail": detail.to_string()}),
            _ => serde_json::json!({ "error": code }),
        }
    }
}

/// The ingest pipeline.
pub struct Ingest {
    registry: Arc<Registry>,
    intake: Arc<dyn Intake>,
    settings: IngestSettings,
}

impl Ingest {
    pub fn new(registry: Arc<Registry>, intake: Arc<dyn Intake>, settings: IngestSettings) -> Self {
        Self {
            registry,
            intake,
            settings,
        }
    }

    pub fn settings(&self) -> &IngestSettings {
        &self.settings
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Handles one request end to end.
    pub async fn handle(&self, inbound: &Inbound) -> Result<Accepted, IngestError> {
        let provider = self
            .registry
            .get(&inbound.provider)
            .ok_or(IngestError::UnknownProvider)?;
        let query = parse_query(inbound.query.as_deref());
        // Only schemes that sign the URL (Twilio) need it rebuilt.
        let url = if provider.verifier.signs_url() {
            public_url(provider, inbound)
        } else {
            String::new()
        };
        let req = Request {
            method: &inbound.method,
            headers: &inbound.headers,
            query: &query,
            body: &inbound.body,
            url: &url,
            now: inbound.now,
        };
        if inbound.method == Method::GET {
            return provider
                .verifier
                .handshake(&req)
                .map(Accepted::Handshake)
                .ok_or(IngestError::MethodNotAllowed);
        }
        if inbound.method != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        if inbound.body.len() > self.settings.max_body_bytes {
            return Err(IngestError::TooLarge);
        }
        if let Err(error) = provider.verifier.verify(&req) {
            warn!(request_id = %inbound.request_id, provider = %provider.name, reason = error.reason(), detail = %error, "delivery rejected");
            return Err(IngestError::Rejected {
                status: provider.reject_status,
                error,
            });
        }
        if let Some(answer) = provider.verifier.challenge(&req) {
            info!(request_id = %inbound.request_id, provider = %provider.name, "challenge answered");
            return Ok(Accepted::Handshake(answer));
        }
        let header = |name: &str| {
            inbound
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let query_value = |name: &str| req.query_param(name).map(str::to_string);
        let content_type = inbound
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let extracted = provider
            .extract(&inbound.body, content_type, &header, &query_value)
            .map_err(|e| {
                warn!(request_id = %inbound.request_id, provider = %provider.name, detail = %e, "invalid payload");
                IngestError::InvalidPayload(e)
            })?;
        let mut events: Vec<(Event, EventState)> = Vec::with_capacity(extracted.len());
        for x in extracted {
            // A batch that names the same event twice holds it once.
            if events.iter().any(|(e, _)| e.id == x.id) {
                continue;
            }
            let state = match provider.handlers_for(&x.event_type) {
                Some(_) => EventState::Received,
                None => EventState::Ignored,
            };
            let event = Event {
                provider: provider.name.clone(),
                id: x.id,
                event_type: x.event_type,
                received_at: inbound.now,
                payload: x.payload,
            };
            events.push((event, state));
        }
        self.admit(inbound, events).await
    }

    /// Claims and enqueues through the intake port, and answers.
    async fn admit(&self, inbound: &Inbound, events: Vec<(Event, EventState)>) -> Result<Accepted, IngestError> {
        let events: Arc<[(Event, EventState)]> = events.into();
        let admission = Admission {
            events: events.clone(),
            now: inbound.now,
            claim_lease_secs: self.settings.claim_lease_secs,
            ttl_secs: self.settings.retention_secs(),
        };
        let outcomes = match self.intake.admit(admission).await {
            Ok(outcomes) => outcomes,
            Err(IntakeError::Queue(QueueError::TooLarge(size))) => {
                // A retry cannot fit either: 413, not 503. Nothing was claimed.
                warn!(request_id = %inbound.request_id, provider = %inbound.provider, message_bytes = size, "event too large for the queue; nothing kept");
                return Err(IngestError::TooLarge);
            }
            Err(e) => {
                warn!(request_id = %inbound.request_id, provider = %inbound.provider, error = %e, "claim or enqueue failed; nothing kept");
                return Err(IngestError::Unavailable(e.to_string()));
            }
        };
        let ids: Vec<String> = events.iter().map(|(e, _)| e.id.clone()).collect();
        let claimed = |want: EventState| {
            events
                .iter()
                .zip(&outcomes)
                .any(|((_, state), outcome)| *state == want && *outcome == ClaimOutcome::Claimed)
        };
        let outcome = if outcomes.contains(&ClaimOutcome::InFlight) {
            Err(IngestError::InFlight)
        } else if claimed(EventState::Received) {
            Ok(Accepted::New { ids })
        } else if outcomes.iter().any(|o| matches!(o, ClaimOutcome::Duplicate(_))) {
            Ok(Accepted::Duplicate { ids })
        } else {
            Ok(Accepted::Ignored { ids })
        };
        for (event, _) in events.iter() {
            info!(
                request_id = %inbound.request_id,
                provider = %event.provider,
                event_id = %event.id,
                event_type = %event.event_type,
                outcome = outcome_name(&outcome),
                "delivery handled"
            );
        }
        outcome
    }
}

fn outcome_name(outcome: &Result<Accepted, IngestError>) -> &'static str {
    match outcome {
        Ok(Accepted::New { .. }) => "accepted",
        Ok(Accepted::Duplicate { .. }) => "duplicate",
        Ok(Accepted::Ignored { .. }) => "ignored",
        Ok(Accepted::Handshake(_)) => "handshake",
        Err(IngestError::InFlight) => "in_progress",
        Err(_) => "error",
    }
}

/// Decodes a query string into pairs (invalid encodings are dropped).
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
}

/// The URL the sender called: the provider's configured `public_url`, else
/// rebuilt from `X-Forwarded-Proto` / `X-Forwarded-Host` (or `Host`), never
/// the internal address alone.
fn public_url(provider: &Provider, inbound: &Inbound) -> String {
    let query = inbound.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
    if let Some(base) = &provider.public_url {
        return format!("{base}{query}");
    }
    let header = |n: &str| inbound.headers.get(n).and_then(|v| v.to_str().ok());
    let proto = header("x-forwarded-proto").unwrap_or("https");
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or("localhost");
    format!("{proto}://{host}{}{query}", inbound.path)
}
