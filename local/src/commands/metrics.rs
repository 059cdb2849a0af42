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
use std::time::Duration;
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

/// How often the histograms' recorded samples are folded into their
/// buckets. The recorder keeps each sample until then, or until a scrape
/// renders them: without upkeep, a server that nobody scrapes grows by
/// every latency it records (measured: about 25 bytes a delivery, half a
/// MiB a second at 20,000 deliveries a second, without end). Once a
/// second keeps that to one second's samples.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Installs the process-wide Prometheus recorder, and the task that keeps
/// its memory bounded (see [`UPKEEP_EVERY`]). Must run inside the runtime.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("latency_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(names::EVENT_AGE.into()), AGE_BUCKETS)?
        .install_recorder()?;
    let upkeep = handle.clone();
    every(UPKEEP_EVERY, move || upkeep.run_upkeep());
    Ok(handle)
}

/// Runs `f` every `period` (the first time one period from now) for as
/// long as the runtime runs.
fn every(period: Duration, f: impl Fn() + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        // After a stall, one catch-up run is enough: each run drains everything.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            f();
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// [`every`] with a task that counts its runs.
    fn counted_every(period: Duration) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let task = every(period, move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        (runs, task)
    }

    #[tokio::test]
    async fn runs_the_task_again_and_again() {
        let (runs, task) = counted_every(Duration::from_millis(5));
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            while runs.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        task.abort();
        assert!(waited.is_ok(), "ran {} times in 10 s", runs.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn the_first_run_waits_one_period() {
        let (runs, task) = counted_every(Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_millis(50)).await;
        task.abort();
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }
}
