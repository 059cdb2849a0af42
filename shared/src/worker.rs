//! The local worker loop: what SQS + the processor Lambda do in AWS, done
//! by polling the embedded queue. Runs until told to stop, then finishes the
//! messages it holds.

use crate::process::Processor;
use crate::store::EventStore;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventState;
    use crate::process::test_support::{fixture, Scripted};
    use crate::queue::Queue;
    use crate::store::contract::claim_as;
    use crate::store::contract::event;
    use std::sync::atomic::Ordering;

    fn fast() -> WorkerSettings {
        WorkerSettings {
            batch: 4,
            idle_poll: Duration::from_millis(10),
            purge_every: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn processes_what_is_queued_purges_what_expired_and_stops_when_told() {
        let first = Scripted::new(vec![]);
        let f = fixture(first.clone(), Scripted::new(vec![]), 3);
        let events: Vec<_> = (0..10).map(|i| event("p", &format!("w{i}"), "t")).collect();
        for ev in &events {
            f.store
                .claim(claim_as(ev, EventState::Received, unix_now(), 3600))
                .await
                .expect("claim");
        }
        f.queue.send(&events.iter().collect::<Vec<_>>()).await.expect("send");
        // A record long past its TTL, which the worker's purge removes.
        let old = event("p", "expired", "t");
        f.store
            .claim(claim_as(&old, EventState::Ignored, 100, 10))
            .await
            .expect("claim");

        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = tokio::spawn(run(f.processor.clone(), f.store.clone(), fast(), stop_rx));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while first.calls.load(Ordering::SeqCst) < 10 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker did not drain the queue"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for ev in &events {
            assert_eq!(f.record(ev).await.state, EventState::Done);
        }
        assert!(
            f.store.get(&old.key()).await.expect("get").is_none(),
            "expired record purged"
        );
        stop_tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), worker)
            .await
            .expect("the worker stops when told")
            .expect("no panic");
        assert_eq!(f.queue.depth(), 0);
        assert_eq!(first.calls.load(Ordering::SeqCst), 10, "each ran once");
    }
}
