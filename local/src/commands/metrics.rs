//! `GET /metrics` of `webhooks serve`: the product's figures
//! (`webhooks_core::telemetry`) in the Prometheus text format, plus the
//! queue's depth and the dead-letter count, read from the database at each
//! scrape.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use webhooks_core::ports::queue::Queue;
use webhooks_core::telemetry::names;
use webhooks_sqlite::SqliteQueue;

/// Buckets of the `_seconds` histograms: sub-millisecond ingest up to
/// handlers that take tens of seconds, and event ages up to a day.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const AGE_BUCKETS: &[f64] = &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0];

/// Most dead letters counted at one scrape.
const DEAD_LETTER_COUNT_CAP: usize = 100_000;

/// Installs the process-wide Prometheus recorder.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    Ok(PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("latency_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(names::EVENT_AGE.into()), AGE_BUCKETS)?
        .install_recorder()?)
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    queue: Arc<SqliteQueue>,
}

/// The `/metrics` route.
pub fn routes(handle: PrometheusHandle, queue: Arc<SqliteQueue>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape { handle, queue })
}

async fn scrape(State(s): State<Scrape>) -> Response {
    if let Ok(depth) = s.queue.depth().await {
        metrics::gauge!(names::QUEUE_DEPTH).set(depth as f64);
    }
    if let Ok(dead) = s.queue.dead_letters(DEAD_LETTER_COUNT_CAP).await {
        metrics::gauge!(names::DEAD_LETTERS).set(dead.len() as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.handle.render()).into_response()
}
