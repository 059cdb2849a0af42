//! The processor pipeline over ports: lease the record, skip finished ones,
//! run the handlers registered for (provider, event type), record the
//! outcome, and say what to do with the message. The same code runs under the
//! local worker loop and the processor Lambda.

use crate::config::{IngestSettings, RetrySettings};
use crate::event::{extend_history, AttemptEntry, AttemptOutcome, Event, EventRecord, EventState};
use crate::handlers::{HandlerError, HandlerRegistry};
use crate::pipeline::backoff;
use crate::ports::queue::{DeadLetter, Queue, QueueError, ReceivedMessage};
use crate::ports::store::{EventStore, LeaseOutcome, Settlement};
use crate::provider::Providers;
use crate::telemetry::{self, HandlerOutcome};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use tracing::{error, info, warn};

/// What should happen to a message after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or nothing to do): delete the message.
    Ack,
    /// Try again after the delay (backoff, or until another lease ends).
    RetryAfter(Duration),
    /// Try again after the delay with the receive count back at zero: the
    /// message has been received as many times as the queue allows (SQS's
    /// redrive policy would move it to the dead letters on its next receive
    /// while its record says QUEUED). Every retry at that count is one of
    /// these ([`Processor::process`]): the record's attempts, counted per
    /// lease, decide when to give up, not the queue's receive count.
    RetryFresh(Duration),
    /// Move to the dead-letter queue.
    DeadLetter(String),
}

/// Why a handler list failed, folded into one error: retryable only when
/// every failure was.
#[derive(Debug)]
struct Failure {
    retryable: bool,
    message: String,
}

/// The results handlers recorded on an event, by handler name.
type Results = serde_json::Map<String, serde_json::Value>;

/// What running an event's handlers came to; [`Processor::settle`] maps each
/// to the record's state and the message's disposition.
#[derive(Debug)]
enum Outcome {
    Succeeded(Results),
    NoHandler(Results),
    BadPayload(Results, String),
    Failed(Results, Failure),
    /// Every earlier lease ended without an outcome (the processor died
    /// during the handlers each time): given up without running them again.
    Abandoned(Results, String),
}

/// The processor pipeline.
pub struct Processor {
    providers: Arc<Providers>,
    handlers: HandlerRegistry,
    store: Arc<dyn EventStore>,
    queue: Arc<dyn Queue>,
    retry: RetrySettings,
    ttl_secs: i64,
}

impl Processor {
    pub fn new(
        providers: Arc<Providers>,
        handlers: HandlerRegistry,
        store: Arc<dyn EventStore>,
        queue: Arc<dyn Queue>,
        retry: RetrySettings,
        ingest: &IngestSettings,
    ) -> Self {
        Self {
            providers,
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

    /// Processes one message and applies the outcome to the queue. Returns
    /// the disposition (the Lambda reports `RetryAfter` as a batch item failure).
    /// Every log line of it carries the event's key and the id of the
    /// request that delivered it, so the ingest's lines and the processor's
    /// join on one id.
    pub async fn run(&self, message: &ReceivedMessage, now: i64) -> Disposition {
        let span = tracing::info_span!(
            "event",
            key = %message.event.key(),
            request_id = message.event.request_id.as_deref().unwrap_or("-"),
        );
        self.run_settled(message, now).instrument(span).await
    }

    async fn run_settled(&self, message: &ReceivedMessage, now: i64) -> Disposition {
        let disposition = self.process(message, now).await;
        let applied = match &disposition {
            Disposition::Ack => self.queue.ack(message).await,
            Disposition::RetryAfter(d) => self.queue.retry_after(message, *d).await,
            Disposition::RetryFresh(d) => self.queue.retry_fresh(message, *d).await,
            Disposition::DeadLetter(reason) => self.queue.dead_letter(message, reason).await,
        };
        if let Err(e) = applied {
            warn!(event_id = %message.event.id, error = %e, "could not settle message; it becomes visible again");
            // At the receive limit a message left to come back is moved to
            // the dead letters by the queue on its next receive. Only an ack
            // can fail that way with a record that is not FAILED (a retry at
            // the limit already is a fresh one; a failed dead letter reaches
            // the dead letters that way, its record FAILED): a fresh copy
            // comes back and is acked then.
            if disposition == Disposition::Ack {
                if let fresh @ Disposition::RetryFresh(d) =
                    self.within_receive_limit(message, Disposition::RetryAfter(Duration::ZERO))
                {
                    match self.queue.retry_fresh(message, d).await {
                        Ok(()) => return fresh,
                        Err(e) => {
                            warn!(event_id = %message.event.id, error = %e, "could not replace the message either")
                        }
                    }
                }
            }
            return Disposition::RetryAfter(Duration::ZERO);
        }
        disposition
    }

    /// Decides what to do with one message (no queue side effects), in three
    /// steps: [`lease`](Self::lease) the record, [`run_handlers`](Self::run_handlers)
    /// that have not yet succeeded for it, [`settle`](Self::settle) the outcome.
    /// Whatever the step that asks for a retry, the one rule of
    /// [`within_receive_limit`](Self::within_receive_limit) then applies.
    pub async fn process(&self, message: &ReceivedMessage, now: i64) -> Disposition {
        let decided = self.decide(message, now).await;
        self.within_receive_limit(message, decided)
    }

    async fn decide(&self, message: &ReceivedMessage, now: i64) -> Disposition {
        let record = match self.lease(message, now).await {
            Ok(record) => record,
            Err(skip) => return skip,
        };
        // The store counts attempts (one per lease); the queue's receive
        // count also counts receives that were no attempt (busy, store down).
        let attempt = record.attempts;
        let mut entries = Vec::new();
        let started = std::time::Instant::now();
        let outcome = if attempt > self.retry.max_attempts {
            // Every attempt allowed was leased and none gave up: the last
            // (at least) ended without an outcome, the processor gone
            // mid-handlers. Running them again would likely kill it again.
            Outcome::Abandoned(
                record.results,
                abandoned_reason(attempt - 1, record.last_error.as_deref()),
            )
        } else {
            self.run_handlers(&message.event, record.results, attempt, now, &mut entries)
                .await
        };
        let history = extend_history(record.history, entries);
        // Settled as of the attempt's end, which a retry's time counts from
        // (as the queue's delay does): after a slow attempt, another message
        // of the event (a copy's) must still find the backoff ahead of it.
        let ended = now + started.elapsed().as_secs() as i64;
        self.settle(message, outcome, attempt, history, ended).await
    }

    /// The one rule for retries: a message received as many times as the
    /// queue allows (`retry.max_attempts`, which the SAM template keeps
    /// equal to SQS's maxReceiveCount) is retried with its receive count
    /// reset, whatever asked for the retry (another processor's lease, the
    /// store down, a retryable handler failure, an outcome that could not be
    /// recorded). Left to come back, it would be moved to the dead letters by
    /// the queue on its next receive while its record says QUEUED. The
    /// record's attempts decide when to give up; the queue's count is only
    /// the backstop for a processor that dies before settling.
    fn within_receive_limit(&self, message: &ReceivedMessage, disposition: Disposition) -> Disposition {
        match disposition {
            Disposition::RetryAfter(delay) if message.receive_count >= self.retry.max_attempts => {
                info!(event_id = %message.event.id, receives = message.receive_count, "at the queue's receive limit; retried with its receive count reset");
                Disposition::RetryFresh(delay)
            }
            other => other,
        }
    }

    /// Takes the processing lease, or says what to do with a message whose
    /// record is finished (ack), leased by another processor (retry when its
    /// lease ends) or unreachable (retry with backoff).
    async fn lease(&self, message: &ReceivedMessage, now: i64) -> Result<EventRecord, Disposition> {
        let event = &message.event;
        let lease = self
            .store
            .lease(event, now, self.retry.processing_lease_secs, self.ttl_secs)
            .await;
        match lease {
            Ok(LeaseOutcome::Leased(record)) => Ok(record),
            Ok(LeaseOutcome::Finished(state)) => {
                info!(provider = %event.provider, event_id = %event.id, state = %state, "already finished; skipped");
                Err(Disposition::Ack)
            }
            Ok(LeaseOutcome::Busy { until }) => {
                let wait = (until - now).max(1) as u64;
                Err(Disposition::RetryAfter(Duration::from_secs(wait)))
            }
            Err(e) => {
                warn!(event_id = %event.id, error = %e, "store unavailable; retrying later");
                Err(Disposition::RetryAfter(self.backoff(message.receive_count)))
            }
        }
    }

    /// Runs, in order, every handler registered for the event's type that has
    /// no result yet (those that succeeded in an earlier attempt are not run
    /// again). A panic is a permanent failure of that handler. Each handler
    /// run is appended to `entries` (the attempt history), timed and with
    /// its error.
    async fn run_handlers(
        &self,
        event: &Event,
        mut results: Results,
        attempt: u32,
        now: i64,
        entries: &mut Vec<AttemptEntry>,
    ) -> Outcome {
        let names: Vec<String> = match self.providers.handlers_for(&event.provider, &event.event_type) {
            Some(names) => names.to_vec(),
            None => return Outcome::NoHandler(results),
        };
        // Ingest read only the id and type: a signed body that is not JSON
        // past them fails here, before any handler, and for good.
        if let Err(e) = event.payload.check_json() {
            return Outcome::BadPayload(results, format!("payload is not valid JSON: {e}"));
        }
        let mut failure: Option<Failure> = None;
        for name in &names {
            if results.contains_key(name) {
                continue; // succeeded in an earlier attempt: its effect is not repeated
            }
            let started = std::time::Instant::now();
            let mut panicked = false;
            let outcome = match self.handlers.get(name) {
                None => Err(HandlerError::Permanent(format!("handler {name} is not registered"))),
                Some(handler) => match AssertUnwindSafe(handler.handle(event)).catch_unwind().await {
                    Ok(r) => r,
                    Err(_) => {
                        panicked = true;
                        Err(HandlerError::Permanent(format!("handler {name} panicked")))
                    }
                },
            };
            let ran = match &outcome {
                Ok(_) => AttemptOutcome::Succeeded,
                Err(_) if panicked => AttemptOutcome::Panicked,
                Err(e) if e.is_retryable() => AttemptOutcome::Retryable,
                Err(_) => AttemptOutcome::Permanent,
            };
            let error = outcome.as_ref().err().map(ToString::to_string);
            entries.push(AttemptEntry::new(
                now,
                attempt,
                Some(name),
                ran,
                started.elapsed().as_millis() as u64,
                error.as_deref(),
            ));
            let counted = match &outcome {
                Ok(_) => HandlerOutcome::Succeeded,
                Err(e) if e.is_retryable() && attempt < self.retry.max_attempts => HandlerOutcome::Retried,
                Err(_) => HandlerOutcome::Failed,
            };
            telemetry::handled(&event.provider, name, counted, started.elapsed());
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
            None => Outcome::Succeeded(results),
            Some(f) => Outcome::Failed(results, f),
        }
    }

    /// Records the outcome and says what to do with the message. The one
    /// table of outcomes:
    ///
    /// | outcome | record | message |
    /// | --- | --- | --- |
    /// | every handler succeeded | DONE | ack |
    /// | no handler for the type (any more) | IGNORED | ack |
    /// | a retryable failure, attempts left | QUEUED, error kept | retry after the backoff |
    /// | a retryable failure on the last attempt | FAILED, "gave up after N attempts: ..." | dead letter |
    /// | a permanent failure, or a payload that is not JSON | FAILED, the error | dead letter |
    /// | leased once more than `max_attempts` (every attempt ended without an outcome at least the last: the processor died in the handlers) | FAILED, "the processor stopped N times ..." | dead letter, no handler run |
    ///
    /// When the record cannot be written the message is retried with
    /// backoff, whatever the outcome: the lease runs out, nothing is lost.
    /// Any retry of a message at the queue's receive limit is a fresh one
    /// ([`within_receive_limit`](Self::within_receive_limit)).
    ///
    /// `history` is the record's, this attempt's handler runs appended; an
    /// attempt that ran no handler adds one entry saying why.
    async fn settle(
        &self,
        message: &ReceivedMessage,
        outcome: Outcome,
        attempt: u32,
        mut history: Vec<AttemptEntry>,
        now: i64,
    ) -> Disposition {
        let event = &message.event;
        let none_ran = |outcome, error: Option<&str>| AttemptEntry::new(now, attempt, None, outcome, 0, error);
        match &outcome {
            Outcome::NoHandler(_) => history = extend_history(history, [none_ran(AttemptOutcome::Ignored, None)]),
            Outcome::BadPayload(_, reason) | Outcome::Abandoned(_, reason) => {
                history = extend_history(history, [none_ran(AttemptOutcome::Permanent, Some(reason))])
            }
            Outcome::Succeeded(_) | Outcome::Failed(..) => {}
        }
        let mut next_attempt_at = None;
        let (state, error, results, then) = match outcome {
            Outcome::Succeeded(results) => {
                info!(provider = %event.provider, event_id = %event.id, event_type = %event.event_type, attempt, "processed");
                telemetry::done(&event.provider, now - event.received_at);
                (EventState::Done, None, results, Disposition::Ack)
            }
            Outcome::NoHandler(results) => (EventState::Ignored, None, results, Disposition::Ack),
            Outcome::Failed(results, f) if f.retryable && attempt < self.retry.max_attempts => {
                let delay = self.backoff(attempt);
                next_attempt_at = Some(now + delay.as_secs_f64().ceil() as i64);
                (
                    EventState::Queued,
                    Some(f.message),
                    results,
                    Disposition::RetryAfter(delay),
                )
            }
            Outcome::Failed(results, f) => {
                let reason = if f.retryable {
                    format!("gave up after {attempt} attempts: {}", f.message)
                } else {
                    f.message
                };
                error!(provider = %event.provider, event_id = %event.id, %reason, "dead-lettered");
                (
                    EventState::Failed,
                    Some(reason.clone()),
                    results,
                    Disposition::DeadLetter(reason),
                )
            }
            Outcome::BadPayload(results, reason) | Outcome::Abandoned(results, reason) => {
                error!(provider = %event.provider, event_id = %event.id, %reason, "dead-lettered");
                (
                    EventState::Failed,
                    Some(reason.clone()),
                    results,
                    Disposition::DeadLetter(reason),
                )
            }
        };
        if matches!(then, Disposition::DeadLetter(_)) {
            telemetry::dead_lettered(&event.provider);
        }
        let settlement = Settlement {
            state,
            error,
            results,
            history,
            next_attempt_at,
            now,
        };
        match self.store.settle(&event.key(), settlement).await {
            Ok(()) => then,
            Err(e) => {
                // The lease runs out and the message comes back: nothing is lost.
                warn!(event_id = %event.id, error = %e, "could not record outcome; retrying");
                Disposition::RetryAfter(self.backoff(message.receive_count))
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff::delay(&self.retry, attempt.max(1), &mut rand::thread_rng())
    }

    /// Lists up to `max` dead letters, and marks FAILED (with the dead
    /// letter's reason) each record still waiting for its message: the queue
    /// moved that message on its own (SQS's redrive policy, when a processor
    /// died between receiving it at the receive limit and settling it), and
    /// the record would otherwise say QUEUED or PROCESSING for good
    /// ([`crate::pipeline::replay::fail_waiting_record`], which `webhooks
    /// dead-letters list` runs too).
    pub async fn dead_letters(&self, max: usize, now: i64) -> Result<Vec<DeadLetter>, QueueError> {
        let listed = self.queue.dead_letters(max).await?;
        for dead in &listed {
            crate::pipeline::replay::fail_waiting_record(
                self.store.as_ref(),
                dead,
                now,
                self.retry.processing_lease_secs,
                self.ttl_secs,
            )
            .await;
        }
        Ok(listed)
    }

    /// Moves up to `max` dead letters back to the queue, each record reset
    /// first ([`crate::pipeline::replay::redrive_dead_letters`]); returns their keys.
    pub async fn redrive_dead_letters(&self, max: usize, now: i64) -> Result<Vec<String>, QueueError> {
        let moved =
            crate::pipeline::replay::redrive_dead_letters(self.store.as_ref(), self.queue.as_ref(), max, now).await?;
        Ok(moved.iter().map(ToString::to_string).collect())
    }
}

/// Why an event whose attempts all ended without an outcome is given up:
/// when no attempt recorded an error, every one of the `attempts` leases
/// ended with the processor gone; otherwise at least the last did, and the
/// last error recorded is kept beside it.
fn abandoned_reason(attempts: u32, last_error: Option<&str>) -> String {
    match last_error {
        None => format!(
            "the processor stopped {attempts} times while running this event's handlers (crash, timeout or out of memory)"
        ),
        Some(error) => format!(
            "gave up after {attempts} attempts: the processor stopped while running this event's handlers \
             (crash, timeout or out of memory) on the last; the last error recorded: {error}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::abandoned_reason;

    #[test]
    fn an_abandoned_event_keeps_the_last_error_an_attempt_recorded() {
        assert_eq!(
            abandoned_reason(3, None),
            "the processor stopped 3 times while running this event's handlers (crash, timeout or out of memory)"
        );
        let reason = abandoned_reason(3, Some("erp: 503"));
        assert!(
            reason.starts_with("gave up after 3 attempts: the processor stopped"),
            "{reason}"
        );
        assert!(reason.ends_with("the last error recorded: erp: 503"), "{reason}");
    }
}
