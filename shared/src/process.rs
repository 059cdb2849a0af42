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
