//! The local worker loop: what SQS + the processor Lambda do in AWS, done
//! by polling the embedded queue. Runs until told to stop, then finishes the
//! messages it holds.

use crate::pipeline::process::Processor;
use crate::ports::store::EventStore;
use crate::time::unix_now;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Worker tuning.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Messages taken per poll and processed concurrently.
    pub batch: usize,
    /// Sleep between polls when the queue is empty.
    pub idle_poll: Duration,
    /// How often records past their TTL are purged.
    pub purge_every: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            batch: 10,
            idle_poll: Duration::from_millis(100),
            purge_every: Duration::from_secs(3600),
        }
    }
}

/// Polls the queue and processes messages until `stop` turns true.
pub async fn run(
    processor: Arc<Processor>,
    store: Arc<dyn EventStore>,
    settings: WorkerSettings,
    mut stop: watch::Receiver<bool>,
) {
    let visibility = Duration::from_secs(processor.retry_settings().processing_lease_secs.max(1) as u64 + 30);
    let mut last_purge = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        let batch = match processor.queue().receive(settings.batch, visibility).await {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "queue receive failed; backing off");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(settings.idle_poll) => {}
                _ = stop.changed() => {}
            }
        } else {
            let now = unix_now();
            let runs = batch.iter().map(|d| processor.run(d, now));
            futures::future::join_all(runs).await;
        }
        if last_purge.elapsed() >= settings.purge_every {
            last_purge = tokio::time::Instant::now();
            match store.purge_expired(unix_now()).await {
                Ok(n) if n > 0 => info!(purged = n, "expired event records purged"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "purge failed"),
            }
        }
    }
    info!("worker stopped");
}
