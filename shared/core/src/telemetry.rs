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
use metrics::{Key, Label, Level, Metadata};
use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
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

/// Where the ingest's series say they come from, as the `metrics` macros
/// would set it.
static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The labels of an unknown provider's series.
static UNKNOWN_PROVIDER: [Label; 1] = [Label::from_static_parts("provider", "unknown")];

/// The `provider` label of a configured provider's series, made at its
/// first answer and kept for the life of the process, as the recorder keeps
/// the series itself. A key that borrows its labels for `'static` is kept
/// by the recorder as it stands; one built per answer (`counter!` and
/// `histogram!` with a `String` label) cost four allocations per series per
/// answer, to build the labels and for the recorder to copy them. Only
/// configured names come here, so their number is bounded by the config.
fn provider_labels(provider: &str) -> &'static [Label] {
    type Made = HashMap<Box<str>, &'static [Label]>;
    static MADE: OnceLock<RwLock<Made>> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    if let Some(labels) = made.read().unwrap_or_else(PoisonError::into_inner).get(provider) {
        return labels;
    }
    let mut made = made.write().unwrap_or_else(PoisonError::into_inner);
    made.entry(provider.into()).or_insert_with(|| {
        let label = Label::new("provider", provider.to_string());
        Box::leak(Box::new([label]))
    })
}

/// One answer of the ingest surface. `known` says whether `provider` is a
/// configured name (else it is counted as `unknown`).
pub fn ingested(provider: &str, known: bool, outcome: &Result<Accepted, IngestError>, latency: Duration) {
    let labels: &'static [Label] = if known {
        provider_labels(provider)
    } else {
        &UNKNOWN_PROVIDER
    };
    let counter = |name: &'static str| {
        let key = Key::from_static_labels(name, labels);
        metrics::with_recorder(|r| r.register_counter(&key, &METADATA)).increment(1)
    };
    match outcome {
        Ok(Accepted::New { .. }) => counter(names::ACCEPTED),
        Ok(Accepted::Duplicate { .. }) => counter(names::DUPLICATE),
        Ok(Accepted::Ignored { .. }) => counter(names::IGNORED),
        Ok(Accepted::Handshake(_)) => {}
        Err(IngestError::InFlight) => counter(names::IN_FLIGHT),
        Err(IngestError::Unavailable(_)) => counter(names::UNAVAILABLE),
        Err(e) => {
            let reason = rejection_reason(e);
            let provider = if known { provider } else { "unknown" };
            metrics::counter!(names::REJECTED, "provider" => provider.to_string(), "reason" => reason).increment(1);
        }
    }
    let key = Key::from_static_labels(names::INGEST_LATENCY, labels);
    metrics::with_recorder(|r| r.register_histogram(&key, &METADATA)).record(latency.as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ingest::IngestError;
    use metrics::{Counter, CounterFn, Gauge, Histogram, HistogramFn, KeyName, Recorder, SharedString, Unit};
    use std::sync::{Arc, Mutex};

    /// What was recorded, as `name{label=value,...}` and the sum of values.
    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, f64)>>);

    struct Handle {
        series: String,
        seen: Arc<Seen>,
    }

    impl CounterFn for Handle {
        fn increment(&self, value: u64) {
            self.seen.0.lock().unwrap().push((self.series.clone(), value as f64));
        }
        fn absolute(&self, _: u64) {}
    }

    impl HistogramFn for Handle {
        fn record(&self, value: f64) {
            self.seen.0.lock().unwrap().push((self.series.clone(), value));
        }
    }

    struct Recording(Arc<Seen>);

    impl Recording {
        fn handle(&self, key: &Key) -> Arc<Handle> {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let series = format!("{}{{{}}}", key.name(), labels.join(","));
            Arc::new(Handle {
                series,
                seen: self.0.clone(),
            })
        }
    }

    impl Recorder for Recording {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.handle(key))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.handle(key))
        }
    }

    #[test]
    fn answers_are_counted_under_the_configured_name_or_unknown() {
        let seen = Arc::new(Seen::default());
        let recorder = Recording(seen.clone());
        metrics::with_local_recorder(&recorder, || {
            let accepted = Ok(Accepted::New { ids: vec!["e1".into()] });
            ingested("gigstack", true, &accepted, Duration::from_millis(2));
            ingested("gigstack", true, &Err(IngestError::InFlight), Duration::from_millis(1));
            ingested(
                "made-up",
                false,
                &Err(IngestError::UnknownProvider),
                Duration::from_millis(1),
            );
        });
        let seen = seen.0.lock().unwrap().clone();
        let series: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            series,
            [
                "accepted_total{provider=gigstack}",
                "ingest_latency_seconds{provider=gigstack}",
                "in_flight_total{provider=gigstack}",
                "ingest_latency_seconds{provider=gigstack}",
                "rejected_total{provider=unknown,reason=unknown_provider}",
                "ingest_latency_seconds{provider=unknown}",
            ]
        );
        assert_eq!(seen[0].1, 1.0);
        assert!((seen[1].1 - 0.002).abs() < 1e-9, "latency in seconds: {}", seen[1].1);
    }

    #[test]
    fn a_providers_labels_are_made_once() {
        let first = provider_labels("labels-made-once");
        let again = provider_labels("labels-made-once");
        assert!(std::ptr::eq(first, again), "the same labels, not a copy");
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].key(), first[0].value()), ("provider", "labels-made-once"));
        assert!(!std::ptr::eq(first, provider_labels("another-provider")));
    }
}
