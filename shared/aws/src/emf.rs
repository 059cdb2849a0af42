//! CloudWatch metrics from the Lambdas, in the Embedded Metric Format: a
//! `metrics` recorder keeps what one invocation records (an ingest request,
//! a processor batch) and [`Emf::flush`] writes it to the function's log as
//! JSON documents that CloudWatch turns into metrics. No API call is made on
//! the request path.
//!
//! A document's dimension values are single, so one invocation writes one
//! document per set of label *values* that cannot share one (an ingest
//! request is always one; a batch of several providers' events one per
//! provider and handler). Each document lists a directive per dimension
//! set, so a rejection's `Rejected` (provider, reason) and its
//! `IngestLatency` (provider) travel together.

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use webhooks_core::telemetry::names;

/// The CloudWatch name and unit of one of the product's metrics.
fn cloudwatch(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        names::ACCEPTED => ("Accepted", "Count"),
        names::DUPLICATE => ("Duplicate", "Count"),
        names::IGNORED => ("Ignored", "Count"),
        names::IN_FLIGHT => ("InFlight", "Count"),
        names::REJECTED => ("Rejected", "Count"),
        names::UNAVAILABLE => ("Unavailable", "Count"),
        names::INGEST_LATENCY => ("IngestLatency", "Seconds"),
        names::HANDLER_SUCCEEDED => ("HandlerSucceeded", "Count"),
        names::HANDLER_RETRIED => ("HandlerRetried", "Count"),
        names::HANDLER_FAILED => ("HandlerFailed", "Count"),
        names::DEAD_LETTERED => ("DeadLettered", "Count"),
        names::HANDLER_LATENCY => ("HandlerLatency", "Seconds"),
        names::EVENT_AGE => ("EventAge", "Seconds"),
        _ => return None,
    })
}

/// The dimension sets a metric is emitted under: its own labels, and the
/// rollups the template's alarms read (no dimension: the whole function;
/// `reason` alone: every provider's rejections for one reason).
fn rollups<'a>(dimensions: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut sets = vec![dimensions.to_vec()];
    if dimensions.len() > 1 && dimensions.contains(&"reason") {
        sets.push(vec!["reason"]);
    }
    if !dimensions.is_empty() {
        sets.push(Vec::new());
    }
    sets
}

/// Labels, sorted by name.
type Labels = Vec<(String, String)>;

/// A document being assembled: its dimension values, its metric values,
/// and a directive per dimension set.
type Document = (BTreeMap<String, String>, Map<String, Value>, Vec<Value>);

#[derive(Debug, Default)]
struct Recorded {
    /// Per label set: metric (CloudWatch name) -> values, in order.
    series: BTreeMap<Labels, BTreeMap<&'static str, (&'static str, Vec<f64>)>>,
}

/// The recorder and its buffer.
#[derive(Debug, Clone)]
pub struct Emf {
    namespace: String,
    recorded: Arc<Mutex<Recorded>>,
}

impl Emf {
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            recorded: Arc::default(),
        }
    }

    /// Installs it as the process's recorder (once, at cold start).
    pub fn install(namespace: &str) -> Result<Self, metrics::SetRecorderError<Self>> {
        let emf = Self::new(namespace);
        metrics::set_global_recorder(emf.clone())?;
        Ok(emf)
    }

    /// The documents for what was recorded since the last flush, with
    /// `context` (the request id, say) on each; the buffer is emptied.
    pub fn documents(&self, context: &[(&str, Value)], timestamp_ms: i64) -> Vec<Value> {
        let taken = std::mem::take(&mut *self.recorded.lock().unwrap_or_else(PoisonError::into_inner));
        let mut docs: Vec<Document> = Vec::new();
        for (labels, metrics) in taken.series {
            // The first document whose dimension values agree with these labels.
            let fits =
                |values: &BTreeMap<String, String>| labels.iter().all(|(k, v)| values.get(k).is_none_or(|x| x == v));
            let at = match docs.iter().position(|(values, _, _)| fits(values)) {
                Some(at) => at,
                None => {
                    docs.push((BTreeMap::new(), Map::new(), Vec::new()));
                    docs.len() - 1
                }
            };
            let (values, body, directives) = &mut docs[at];
            values.extend(labels.iter().cloned());
            let mut defs = Vec::new();
            for (name, (unit, samples)) in metrics {
                let value = match unit {
                    "Count" => json!(samples.iter().sum::<f64>()),
                    _ if samples.len() == 1 => json!(samples[0]),
                    _ => json!(samples),
                };
                body.insert(name.to_string(), value);
                defs.push(json!({"Name": name, "Unit": unit}));
            }
            let dimensions: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
            directives.push(json!({"Namespace": self.namespace, "Dimensions": rollups(&dimensions), "Metrics": defs}));
        }
        docs.into_iter()
            .map(|(values, mut body, directives)| {
                for (k, v) in values {
                    body.insert(k, Value::String(v));
                }
                for (k, v) in context {
                    body.insert((*k).to_string(), v.clone());
                }
                body.insert(
                    "_aws".into(),
                    json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
                );
                Value::Object(body)
            })
            .collect()
    }

    /// Writes the documents to stdout, one line each (the function's log).
    pub fn flush(&self, context: &[(&str, Value)]) {
        let now = webhooks_core::time::unix_now_ms();
        for doc in self.documents(context, now) {
            println!("{doc}");
        }
    }

    fn handle(&self, key: &Key) -> Option<Arc<Series>> {
        let (name, unit) = cloudwatch(key.name())?;
        let mut labels: Labels = key
            .labels()
            .map(|l| (l.key().to_string(), l.value().to_string()))
            .collect();
        labels.sort();
        Some(Arc::new(Series {
            recorded: self.recorded.clone(),
            labels,
            name,
            unit,
        }))
    }
}

/// One metric under one label set.
#[derive(Debug)]
struct Series {
    recorded: Arc<Mutex<Recorded>>,
    labels: Labels,
    name: &'static str,
    unit: &'static str,
}

impl Series {
    fn push(&self, value: f64) {
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        let metrics = recorded.series.entry(self.labels.clone()).or_default();
        metrics
            .entry(self.name)
            .or_insert((self.unit, Vec::new()))
            .1
            .push(value);
    }
}

impl CounterFn for Series {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }

    fn absolute(&self, value: u64) {
        self.push(value as f64);
    }
}

impl HistogramFn for Series {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl GaugeFn for Series {
    fn increment(&self, value: f64) {
        self.push(value);
    }

    fn decrement(&self, value: f64) {
        self.push(-value);
    }

    fn set(&self, value: f64) {
        self.push(value);
    }
}

impl Recorder for Emf {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.handle(key).map(Counter::from_arc).unwrap_or_else(Counter::noop)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.handle(key).map(Gauge::from_arc).unwrap_or_else(Gauge::noop)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.handle(key)
            .map(Histogram::from_arc)
            .unwrap_or_else(Histogram::noop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_is_one_document_with_a_directive_per_dimension_set() {
        let emf = Emf::new("Webhooks");
        metrics::with_local_recorder(&emf, || {
            metrics::counter!(names::REJECTED, "provider" => "gigstack", "reason" => "invalid_signature").increment(1);
            metrics::histogram!(names::INGEST_LATENCY, "provider" => "gigstack").record(0.002);
            metrics::counter!("something_else").increment(1);
        });
        let docs = emf.documents(&[("request_id", Value::from("rq-1"))], 1_700_000_000_000);
        assert_eq!(docs.len(), 1, "{docs:?}");
        let d = &docs[0];
        assert_eq!(
            (d["provider"].as_str(), d["reason"].as_str()),
            (Some("gigstack"), Some("invalid_signature"))
        );
        assert_eq!(
            (d["Rejected"].as_f64(), d["IngestLatency"].as_f64()),
            (Some(1.0), Some(0.002))
        );
        assert_eq!(d["request_id"], "rq-1");
        let directives = d["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        let dims: Vec<&Value> = directives.iter().map(|x| &x["Dimensions"][0]).collect();
        assert!(
            dims.contains(&&json!(["provider"])) && dims.contains(&&json!(["provider", "reason"])),
            "{d}"
        );
        // The rollups the alarms read: rejections by reason alone, and every metric with no dimension.
        let rejected = directives
            .iter()
            .find(|x| x["Metrics"][0]["Name"] == "Rejected")
            .unwrap();
        assert_eq!(rejected["Dimensions"], json!([["provider", "reason"], ["reason"], []]));
        assert!(directives.iter().all(|x| x["Namespace"] == "Webhooks"));
        assert!(d.get("something_else").is_none(), "only the product's metrics");
        assert!(emf.documents(&[], 0).is_empty(), "flushed");
    }

    #[test]
    fn a_batch_of_two_providers_is_two_documents_and_counts_add_up() {
        let emf = Emf::new("W");
        metrics::with_local_recorder(&emf, || {
            for _ in 0..3 {
                metrics::counter!(names::HANDLER_SUCCEEDED, "provider" => "a", "handler" => "h").increment(1);
            }
            metrics::counter!(names::DEAD_LETTERED, "provider" => "b").increment(1);
        });
        let docs = emf.documents(&[], 0);
        assert_eq!(docs.len(), 2, "{docs:?}");
        let a = docs.iter().find(|d| d["provider"] == "a").unwrap();
        assert_eq!(a["HandlerSucceeded"], 3.0);
        let b = docs.iter().find(|d| d["provider"] == "b").unwrap();
        assert_eq!(b["DeadLettered"], 1.0);
    }
}
