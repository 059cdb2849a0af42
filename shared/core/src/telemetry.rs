//! The product's own figures, named in one place: what ingest answered per
//! provider (rejections by reason), how handlers fared and how long they
//! took, dead letters, and how old an event is when it is done.
//!
//! They go through the `metrics` facade. `webhooks serve` installs a
//! Prometheus recorder and serves them at `GET /metrics`; where no recorder
//! is installed they cost a few nanoseconds and go nowhere. Labels are the
//! configured provider and handler names and fixed reason codes, never a
//! value from the request (an unknown provider is counted as `unknown`), so
//! a flood of made-up paths cannot grow the number of series.

use crate::pipeline::ingest::{Accepted, IngestError};
use std::time::Duration;

/// Names, as Prometheus shows them.
pub mod names {
    pub const ACCEPTED: &str = "accepted_total";
    pub const DUPLICATE: &str = "duplicate_total";
    pub const IGNORED: &str = "ignored_total";
    pub const IN_FLIGHT: &str = "in_flight_total";
    pub const REJECTED: &str = "rejected_total";
    pub const UNAVAILABLE: &str = "unavailable_total";
    pub const INGEST_LATENCY: &str = "ingest_latency_seconds";
    pub const HANDLER_SUCCEEDED: &str = "handler_succeeded_total";
    pub const HANDLER_RETRIED: &str = "handler_retried_total";
    pub const HANDLER_FAILED: &str = "handler_failed_total";
    pub const DEAD_LETTERED: &str = "dead_lettered_total";
    pub const HANDLER_LATENCY: &str = "handler_latency_seconds";
    pub const EVENT_AGE: &str = "event_age_seconds";
    pub const QUEUE_DEPTH: &str = "queue_depth";
    pub const DEAD_LETTERS: &str = "dead_letters";
}

/// One answer of the ingest surface. `known` says whether `provider` is a
/// configured name (else it is counted as `unknown`).
pub fn ingested(provider: &str, known: bool, outcome: &Result<Accepted, IngestError>, latency: Duration) {
    let provider = if known {
        provider.to_string()
    } else {
        "unknown".to_string()
    };
    let counter = |name: &'static str| metrics::counter!(name, "provider" => provider.clone()).increment(1);
    match outcome {
        Ok(Accepted::New { .. }) => counter(names::ACCEPTED),
        Ok(Accepted::Duplicate { .. }) => counter(names::DUPLICATE),
        Ok(Accepted::Ignored { .. }) => counter(names::IGNORED),
        Ok(Accepted::Handshake(_)) => {}
        Err(IngestError::InFlight) => counter(names::IN_FLIGHT),
        Err(IngestError::Unavailable(_)) => counter(names::UNAVAILABLE),
        Err(e) => {
            let reason = rejection_reason(e);
            metrics::counter!(names::REJECTED, "provider" => provider.clone(), "reason" => reason).increment(1);
        }
    }
    metrics::histogram!(names::INGEST_LATENCY, "provider" => provider).record(latency.as_secs_f64());
}

/// The reason code a rejection is counted under: the answer's error code.
pub fn rejection_reason(e: &IngestError) -> &'static str {
    match e {
        IngestError::UnknownProvider => "unknown_provider",
        IngestError::MethodNotAllowed => "method_not_allowed",
        IngestError::TooLarge => "payload_too_large",
        IngestError::Incomplete | IngestError::InvalidPayload(_) => "invalid_payload",
        IngestError::Rejected { error, .. } => error.reason(),
        IngestError::InFlight => "in_progress",
        IngestError::Unavailable(_) => "unavailable",
    }
}

/// How one handler run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerOutcome {
    Succeeded,
    /// Failed retryably, with attempts left.
    Retried,
    /// Failed for good (permanently, or on the last attempt).
    Failed,
}

pub fn handled(provider: &str, handler: &str, outcome: HandlerOutcome, latency: Duration) {
    let name = match outcome {
        HandlerOutcome::Succeeded => names::HANDLER_SUCCEEDED,
        HandlerOutcome::Retried => names::HANDLER_RETRIED,
        HandlerOutcome::Failed => names::HANDLER_FAILED,
    };
    metrics::counter!(name, "provider" => provider.to_string(), "handler" => handler.to_string()).increment(1);
    metrics::histogram!(names::HANDLER_LATENCY, "handler" => handler.to_string()).record(latency.as_secs_f64());
}

pub fn dead_lettered(provider: &str) {
    metrics::counter!(names::DEAD_LETTERED, "provider" => provider.to_string()).increment(1);
}

/// Seconds from the event's receipt to its last handler's success.
pub fn done(provider: &str, age_secs: i64) {
    metrics::histogram!(names::EVENT_AGE, "provider" => provider.to_string()).record(age_secs.max(0) as f64);
}
