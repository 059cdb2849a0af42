//! The processor pipeline over ports: lease the record, skip finished ones,
//! run the handlers registered for (provider, event type), record the
//! outcome, and say what to do with the message. The same code runs under the
//! local worker loop and the processor Lambda.

use crate::backoff;
use crate::config::{IngestSettings, RetrySettings};
use crate::event::EventState;
use crate::handlers::{HandlerError, HandlerRegistry};
use crate::provider::Registry;
use crate::queue::{Delivery, Queue, QueueError};
use crate::store::{EventStore, LeaseOutcome, Settlement};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// What should happen to a message after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or nothing to do): delete the message.
    Ack,
    /// Try again after the delay (backoff, or until another lease ends).
    RetryAfter(Duration),
    /// Move to the dead-letter queue.
    DeadLetter(String),
}

/// Why a handler list failed, folded into one error.
#[derive(Debug)]
struct Failure {
    retryable: bool,
    message: String,
}

/// The processor pipeline.
pub struct Processor {
    registry: Arc<Registry>,
    handlers: HandlerRegistry,
    store: Arc<dyn EventStore>,
    queue: Arc<dyn Queue>,
    retry: RetrySettings,
    ttl_secs: i64,
}

impl Processor {
    pub fn new(
        registry: Arc<Registry>,
        handlers: HandlerRegistry,
        store: Arc<dyn EventStore>,
        queue: Arc<dyn Queue>,
        retry: RetrySettings,
        ingest: &IngestSettings,
    ) -> Self {
        Self {
            registry,
            handlers,
            store,
            queue,
            retry,
            ttl_secs: ingest.retention_secs(),
        }
    }

    pub fn retry_settings(&self) -> &RetrySettings {
        &self.retry
    }

    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.queue
    }

    /// Processes one delivery and applies the outcome to the queue. Returns
    /// the disposition (the Lambda reports `RetryAfter` as a batch item failure).
    pub async fn run(&self, delivery: &Delivery, now: i64) -> Disposition {
        let disposition = self.process(delivery, now).await;
        let applied = match &disposition {
            Disposition::Ack => self.queue.ack(delivery).await,
            Disposition::RetryAfter(d) => self.queue.retry_after(delivery, *d).await,
            Disposition::DeadLetter(reason) => self.queue.dead_letter(delivery, reason).await,
        };
        if let Err(e) = applied {
            warn!(event_id = %delivery.event.id, error = %e, "could not settle message; it becomes visible again");
            return Disposition::RetryAfter(Duration::ZERO);
        }
        disposition
    }

    /// Decides what to do with one delivery (no queue side effects).
    pub async fn process(&self, delivery: &Delivery, now: i64) -> Disposition {
        let event = &delivery.event;
        let lease = self
            .store
            .lease(event, now, self.retry.processing_lease_secs, self.ttl_secs)
            .await;
        let record = match lease {
            Ok(LeaseOutcome::Leased(record)) => record,
            Ok(LeaseOutcome::Finished(state)) => {
                info!(provider = %event.provider, event_id = %event.id, state = %state, "already finished; skipped");
                return Disposition::Ack;
            }
            Ok(LeaseOutcome::Busy { until }) => {
                let wait = (until - now).max(1) as u64;
                return Disposition::RetryAfter(Duration::from_secs(wait));
            }
            Err(e) => {
                warn!(event_id = %event.id, error = %e, "store unavailable; retrying later");
                return Disposition::RetryAfter(self.backoff(delivery.receive_count));
            }
        };
        let attempt = record.attempts.max(delivery.receive_count);
        let names: Vec<String> = match self
            .registry
            .get(&event.provider)
            .and_then(|p| p.handlers_for(&event.event_type))
        {
            Some(names) => names.to_vec(),
            None => {
                return self
                    .finish(
                        delivery,
                        EventState::Ignored,
                        None,
                        record.results,
                        now,
                        Disposition::Ack,
                    )
                    .await
            }
        };
        // Ingest read only the id and type: a signed body that is not JSON
        // past them fails here, before any handler, and for good.
        if let Err(e) = event.payload.check_json() {
            let reason = format!("payload is not valid JSON: {e}");
            error!(provider = %event.provider, event_id = %event.id, %reason, "dead-lettered");
            return self
                .finish(
                    delivery,
                    EventState::Failed,
                    Some(reason.clone()),
                    record.results,
                    now,
                    Disposition::DeadLetter(reason),
                )
                .await;
        }
        let mut results = record.results.clone();
        let mut failure: Option<Failure> = None;
        for name in &names {
            if results.contains_key(name) {
                continue; // succeeded in an earlier attempt: its effect is not repeated
            }
            let outcome = match self.handlers.get(name) {
                None => Err(HandlerError::Permanent(format!("handler {name} is not registered"))),
                Some(handler) => match AssertUnwindSafe(handler.handle(event)).catch_unwind().await {
                    Ok(r) => r,
                    Err(_) => Err(HandlerError::Permanent(format!("handler {name} panicked"))),
                },
            };
            match outcome {
                Ok(value) => {
                    results.insert(name.clone(), value);
                }
                Err(e) => {
                    warn!(provider = %event.provider, event_id = %event.id, handler = %name, attempt, error = %e, "handler failed");
                    let f = failure.get_or_insert(Failure {
                        retryable: true,
                        message: String::new(),
                    });
                    f.retryable &= e.is_retryable();
                    if !f.message.is_empty() {
                        f.message.push_str("; ");
                    }
                    f.message.push_str(&format!("{name}: {e}"));
                }
            }
        }
        match failure {
            None => {
                info!(provider = %event.provider, event_id = %event.id, event_type = %event.event_type, attempt, "processed");
                self.finish(delivery, EventState::Done, None, results, now, Disposition::Ack)
                    .await
            }
            Some(f) if f.retryable && attempt < self.retry.max_attempts => {
                let delay = self.backoff(attempt);
                self.finish(
                    delivery,
                    EventState::Queued,
                    Some(f.message),
                    results,
                    now,
                    Disposition::RetryAfter(delay),
                )
                .await
            }
            Some(f) => {
                let reason = if f.retryable {
                    format!("gave up after {attempt} attempts: {}", f.message)
                } else {
                    f.message
                };
                error!(provider = %event.provider, event_id = %event.id, %reason, "dead-lettered");
                self.finish(
                    delivery,
                    EventState::Failed,
                    Some(reason.clone()),
                    results,
                    now,
                    Disposition::DeadLetter(reason),
                )
                .await
            }
        }
    }

    async fn finish(
        &self,
        delivery: &Delivery,
        state: EventState,
        error: Option<String>,
        results: serde_json::Map<String, serde_json::Value>,
        now: i64,
        then: Disposition,
    ) -> Disposition {
        let settlement = Settlement {
            state,
            error,
            results,
            now,
        };
        match self.store.settle(&delivery.event.key(), settlement).await {
            Ok(()) => then,
            Err(e) => {
                // The lease runs out and the message comes back: nothing is lost.
                warn!(event_id = %delivery.event.id, error = %e, "could not record outcome; retrying");
                Disposition::RetryAfter(self.backoff(delivery.receive_count))
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff::delay(&self.retry, attempt.max(1), &mut rand::thread_rng())
    }

    /// Moves up to `max` dead letters back to the queue, each record reset
    /// first ([`crate::replay::redrive_dead_letters`]); returns their keys.
    pub async fn redrive_dead_letters(&self, max: usize, now: i64) -> Result<Vec<String>, QueueError> {
        let moved = crate::replay::redrive_dead_letters(self.store.as_ref(), self.queue.as_ref(), max, now).await?;
        Ok(moved.iter().map(ToString::to_string).collect())
    }
}

/// A processor over the in-memory adapters, for this module's tests and the
/// worker's.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::config::AppConfig;
    use crate::event::{Event, EventRecord};
    use crate::handlers::Handler;
    use crate::queue::memory::MemoryQueue;
    use crate::secret::MapResolver;
    use crate::store::contract::claim_as;
    use crate::store::memory::MemoryStore;
    use async_trait::async_trait;
    use serde_json::Value;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Answers from a script (then succeeds), counting calls.
    pub(crate) struct Scripted {
        script: std::sync::Mutex<Vec<HandlerError>>,
        pub(crate) calls: AtomicU32,
    }

    impl Scripted {
        pub(crate) fn new(script: Vec<HandlerError>) -> Arc<Self> {
            Arc::new(Self {
                script: std::sync::Mutex::new(script.into_iter().rev().collect()),
                calls: AtomicU32::new(0),
            })
        }
    }

    #[async_trait]
    impl Handler for Scripted {
        async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.script.lock().expect("lock").pop() {
                Some(e) => Err(e),
                None => Ok(serde_json::json!({"done": event.id})),
            }
        }
    }

    pub(crate) struct Fixture {
        pub(crate) processor: Arc<Processor>,
        pub(crate) store: Arc<MemoryStore>,
        pub(crate) queue: Arc<MemoryQueue>,
    }

    /// Provider `p` with token auth; type `t` runs `first` then `second`.
    pub(crate) fn fixture(first: Arc<Scripted>, second: Arc<Scripted>, max_attempts: u32) -> Fixture {
        let overlay = format!(
            r#"
            [retry]
            max_attempts = {max_attempts}
            base_delay_ms = 1000
            max_delay_ms = 8000
            [providers.gigstack]
            enabled = false
            [providers.tusfacturas]
            enabled = false
            [providers.piriod]
            enabled = false
            [providers.p]
            verifier = {{ scheme = "token", name = "X-Token", secrets = ["env:T"] }}
            event_id = "body:/id"
            handlers = {{ "t" = ["first", "second"], "u" = ["missing"] }}
            "#
        );
        let config = AppConfig::from_overlay(Some(("test", &overlay))).expect("config");
        let secrets = MapResolver::default().with("T", "token");
        let registry = Arc::new(Registry::build(&config.enabled_providers(), &secrets).expect("registry"));
        let mut handlers = HandlerRegistry::new();
        handlers.register("first", first).register("second", second);
        let (store, queue) = (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
        let processor = Arc::new(Processor::new(
            registry,
            handlers,
            store.clone(),
            queue.clone(),
            config.retry.clone(),
            &config.ingest,
        ));
        Fixture {
            processor,
            store,
            queue,
        }
    }

    impl Fixture {
        /// Claims and queues `ev`, then receives it.
        pub(crate) async fn deliver(&self, ev: &Event) -> Delivery {
            self.store
                .claim(claim_as(ev, EventState::Received, 100, 1000))
                .await
                .expect("claim");
            self.queue.send(&[ev]).await.expect("send");
            self.redeliver().await
        }

        pub(crate) async fn redeliver(&self) -> Delivery {
            self.queue
                .receive(1, Duration::ZERO)
                .await
                .expect("receive")
                .pop()
                .expect("a message")
        }

        pub(crate) async fn record(&self, ev: &Event) -> EventRecord {
            self.store.get(&ev.key()).await.expect("get").expect("record")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{fixture, Scripted};
    use super::*;
    use crate::store::contract::event;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn success_runs_every_handler_once_and_acks() {
        let (a, b) = (Scripted::new(vec![]), Scripted::new(vec![]));
        let f = fixture(a.clone(), b.clone(), 3);
        let ev = event("p", "e1", "t");
        let d = f.deliver(&ev).await;
        assert_eq!(f.processor.run(&d, 100).await, Disposition::Ack);
        let rec = f.record(&ev).await;
        assert_eq!(rec.state, EventState::Done);
        assert_eq!(rec.results.keys().collect::<Vec<_>>(), ["first", "second"]);
        // SQS delivers at least once: a second copy runs nothing.
        f.queue.send(&[&ev]).await.expect("send");
        let again = f.redeliver().await;
        assert_eq!(f.processor.run(&again, 101).await, Disposition::Ack);
        assert_eq!((a.calls.load(Ordering::SeqCst), b.calls.load(Ordering::SeqCst)), (1, 1));
    }

    #[tokio::test]
    async fn a_permanent_error_dead_letters_at_once_without_retrying() {
        let first = Scripted::new(vec![HandlerError::Permanent("400 bad rfc".into())]);
        let f = fixture(first.clone(), Scripted::new(vec![]), 5);
        let ev = event("p", "e2", "t");
        let d = f.deliver(&ev).await;
        let disposition = f.processor.run(&d, 100).await;
        assert!(
            matches!(&disposition, Disposition::DeadLetter(r) if r.contains("400 bad rfc")),
            "{disposition:?}"
        );
        let rec = f.record(&ev).await;
        assert_eq!((rec.state, rec.attempts), (EventState::Failed, 1));
        assert_eq!(first.calls.load(Ordering::SeqCst), 1);
        let dead = f.queue.dead_letters(10).await.expect("dead letters");
        assert_eq!(dead.len(), 1);
        assert!(dead[0].reason.contains("first: permanent"), "{}", dead[0].reason);
    }

    #[tokio::test]
    async fn a_retryable_error_backs_off_and_a_later_attempt_skips_what_succeeded() {
        let second = Scripted::new(vec![HandlerError::Retryable("503".into())]);
        let first = Scripted::new(vec![]);
        let f = fixture(first.clone(), second.clone(), 3);
        let ev = event("p", "e3", "t");
        let d = f.deliver(&ev).await;
        let Disposition::RetryAfter(delay) = f.processor.run(&d, 100).await else {
            panic!("a retryable error is retried");
        };
        // Attempt 1: base 1000 ms, jitter in [50 %, 100 %].
        assert!((500..=1000).contains(&(delay.as_millis() as u64)), "{delay:?}");
        let rec = f.record(&ev).await;
        assert_eq!(rec.state, EventState::Queued);
        assert!(
            rec.last_error.as_deref().unwrap_or("").contains("second: retryable"),
            "{rec:?}"
        );
        assert!(rec.results.contains_key("first"), "the success is kept");
        f.queue.retry_after(&d, Duration::ZERO).await.expect("visible");
        let d = f.redeliver().await;
        assert_eq!(f.processor.run(&d, 102).await, Disposition::Ack);
        assert_eq!(f.record(&ev).await.state, EventState::Done);
        assert_eq!(first.calls.load(Ordering::SeqCst), 1, "first is not repeated");
        assert_eq!(second.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_last_attempt_dead_letters_with_the_count() {
        let failing = (0..2).map(|_| HandlerError::Retryable("timeout".into())).collect();
        let first = Scripted::new(failing);
        let f = fixture(first.clone(), Scripted::new(vec![]), 2);
        let ev = event("p", "e4", "t");
        let d = f.deliver(&ev).await;
        assert!(matches!(f.processor.run(&d, 100).await, Disposition::RetryAfter(_)));
        f.queue.retry_after(&d, Duration::ZERO).await.expect("visible");
        let d = f.redeliver().await;
        let disposition = f.processor.run(&d, 101).await;
        assert!(
            matches!(&disposition, Disposition::DeadLetter(r) if r.starts_with("gave up after 2 attempts")),
            "{disposition:?}"
        );
        assert_eq!(f.record(&ev).await.state, EventState::Failed);
    }

    #[tokio::test]
    async fn a_live_lease_elsewhere_waits_for_it_and_runs_nothing() {
        let first = Scripted::new(vec![]);
        let f = fixture(first.clone(), Scripted::new(vec![]), 3);
        let ev = event("p", "e5", "t");
        let d = f.deliver(&ev).await;
        f.store
            .lease(&ev, 100, 60, 1000)
            .await
            .expect("another processor's lease");
        assert_eq!(
            f.processor.process(&d, 110).await,
            Disposition::RetryAfter(Duration::from_secs(50))
        );
        assert_eq!(first.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_unregistered_handler_or_a_type_without_handlers() {
        let f = fixture(Scripted::new(vec![]), Scripted::new(vec![]), 3);
        let ev = event("p", "e6", "u");
        let d = f.deliver(&ev).await;
        assert!(matches!(
            f.processor.run(&d, 100).await,
            Disposition::DeadLetter(r) if r.contains("handler missing is not registered")
        ));
        let ev = event("p", "e7", "no.handlers");
        let d = f.deliver(&ev).await;
        assert_eq!(f.processor.run(&d, 100).await, Disposition::Ack);
        assert_eq!(f.record(&ev).await.state, EventState::Ignored);
    }
}
