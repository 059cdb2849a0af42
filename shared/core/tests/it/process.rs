//! The processor pipeline: lease, run handlers, settle.

use crate::processor_fixture::{fixture, fixture_over, Scripted};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use webhooks_core::event::Event;
use webhooks_core::event::EventState;
use webhooks_core::handlers::HandlerError;
use webhooks_core::pipeline::process::Disposition;
use webhooks_core::ports::queue::{DeadLetter, Queue, QueueError, ReceivedMessage, RedriveGate};
use webhooks_core::ports::store::EventStore;
use webhooks_testkit::faults::{EveryNth, FaultyStore, Never};
use webhooks_testkit::fixtures::event;

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

/// A retry's time counts from the attempt's end: after an attempt slower
/// than its backoff, another message of the event (a copy's, run right
/// after it) still finds the retry ahead and waits, spending no attempt.
#[tokio::test]
async fn a_slow_attempts_backoff_counts_from_its_end() {
    let slow = Scripted::taking(
        Duration::from_millis(2_100),
        vec![HandlerError::Retryable("503".into())],
    );
    let f = fixture(slow.clone(), Scripted::new(vec![]), 5);
    let ev = event("p", "e-slow", "t");
    let original = f.deliver(&ev).await;
    let copy = f.deliver(&ev).await;
    assert!(matches!(
        f.processor.run(&original, 100).await,
        Disposition::RetryAfter(_)
    ));
    let rec = f.record(&ev).await;
    // Ended at 102 at the earliest; the backoff (0.5 to 1 s) rounds up to
    // 1. Counted from the start it would say 101.
    assert!(rec.next_attempt_at >= Some(103), "{:?}", rec.next_attempt_at);
    assert!(
        matches!(f.processor.run(&copy, 101).await, Disposition::RetryAfter(_)),
        "a copy taken up before the backoff is over waits for it"
    );
    assert_eq!(slow.calls.load(Ordering::SeqCst), 1, "no attempt spent early");
    assert_eq!(f.record(&ev).await.attempts, 1);
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

/// Receives that found the record leased elsewhere are no attempts: they
/// do not bring the dead letters closer, and at the queue's receive limit
/// the message is retried with its count reset rather than left for the
/// queue to dead-letter while its record says QUEUED.
#[tokio::test]
async fn busy_receives_are_not_attempts_and_never_reach_the_dead_letters() {
    const MAX: u32 = 3;
    let first = Scripted::new(vec![]);
    let f = fixture(first.clone(), Scripted::new(vec![]), MAX);
    let ev = event("p", "e5b", "t");
    let mut d = f.deliver(&ev).await;
    f.store
        .lease(&ev, 100, 60, 1000)
        .await
        .expect("another processor's lease");
    for receive in 1..=MAX {
        assert_eq!(d.receive_count, receive);
        // Decided without the queue's side effects, then applied with no delay.
        let disposition = f.processor.process(&d, 110).await;
        if receive < MAX {
            assert_eq!(disposition, Disposition::RetryAfter(Duration::from_secs(50)));
            f.queue.retry_after(&d, Duration::ZERO).await.expect("retry");
        } else {
            assert_eq!(
                disposition,
                Disposition::RetryFresh(Duration::from_secs(50)),
                "at the limit"
            );
            f.queue.retry_fresh(&d, Duration::ZERO).await.expect("retry fresh");
        }
        d = f.redeliver().await;
    }
    assert_eq!(d.receive_count, 1, "counted afresh after the limit");
    assert!(f.queue.dead_letters(10).await.expect("dead letters").is_empty());
    // The other lease ends without settling (its processor died): this
    // message's lease is attempt 2 of the record, and it runs the handlers.
    assert_eq!(f.processor.run(&d, 200).await, Disposition::Ack);
    let rec = f.record(&ev).await;
    assert_eq!((rec.state, rec.attempts), (EventState::Done, 2));
    assert_eq!(first.calls.load(Ordering::SeqCst), 1);
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

/// Every attempt appends one entry per handler it ran (what succeeded in an
/// earlier attempt is not run, so not listed again), in order, with the
/// attempt's time and number and the handler's error; a retry records when
/// it is due, and reaching DONE clears it.
#[tokio::test]
async fn a_fail_then_succeed_sequence_is_recorded_in_the_history() {
    use webhooks_core::event::AttemptOutcome::{Retryable, Succeeded};
    let second = Scripted::new(vec![HandlerError::Retryable("503 upstream".into())]);
    let f = fixture(Scripted::new(vec![]), second, 3);
    let ev = event("p", "hist", "t");
    let d = f.deliver(&ev).await;
    let Disposition::RetryAfter(delay) = f.processor.run(&d, 100).await else {
        panic!("a retryable error is retried");
    };
    let rec = f.record(&ev).await;
    let due = rec.next_attempt_at.expect("a retry records when it is due");
    assert_eq!(due, 100 + delay.as_secs_f64().ceil() as i64, "due after the backoff");
    f.queue.retry_after(&d, Duration::ZERO).await.expect("visible");
    let d = f.redeliver().await;
    assert_eq!(f.processor.run(&d, 102).await, Disposition::Ack);
    let rec = f.record(&ev).await;
    assert_eq!(rec.next_attempt_at, None, "DONE has no next attempt");
    let got: Vec<_> = rec
        .history
        .iter()
        .map(|e| (e.at, e.attempt, e.handler.as_deref(), e.outcome, e.error.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (100, 1, Some("first"), Succeeded, None),
            (100, 1, Some("second"), Retryable, Some("retryable: 503 upstream")),
            (102, 2, Some("second"), Succeeded, None),
        ]
    );
}

/// An attempt that runs no handler still leaves one entry saying why.
#[tokio::test]
async fn an_attempt_that_runs_no_handler_leaves_one_entry() {
    use webhooks_core::event::AttemptOutcome::{Ignored, Permanent};
    let f = fixture(Scripted::new(vec![]), Scripted::new(vec![]), 3);
    let ev = event("p", "none", "no.handlers");
    let d = f.deliver(&ev).await;
    assert_eq!(f.processor.run(&d, 100).await, Disposition::Ack);
    let got: Vec<_> = f
        .record(&ev)
        .await
        .history
        .iter()
        .map(|e| (e.handler.clone(), e.outcome))
        .collect();
    assert_eq!(got, [(None, Ignored)]);

    let mut bad = event("p", "bad", "t");
    bad.payload = webhooks_core::payload::Payload::from_text("{\"id\":\"bad\"} not json".to_string());
    let d = f.deliver(&bad).await;
    assert!(matches!(f.processor.run(&d, 100).await, Disposition::DeadLetter(_)));
    let rec = f.record(&bad).await;
    assert_eq!(rec.history.len(), 1, "{:?}", rec.history);
    assert_eq!(
        (rec.history[0].handler.as_deref(), rec.history[0].outcome),
        (None, Permanent)
    );
    assert!(
        rec.history[0].error.as_deref().unwrap_or("").contains("not valid JSON"),
        "{:?}",
        rec.history
    );
}

/// Receives the same message until the queue has counted `count` receives
/// (each made visible again at once), as receives that found the record
/// leased elsewhere would have.
async fn received_times(
    f: &crate::processor_fixture::Fixture,
    ev: &webhooks_core::event::Event,
    count: u32,
) -> webhooks_core::ports::queue::ReceivedMessage {
    let mut d = f.deliver(ev).await;
    while d.receive_count < count {
        f.queue.retry_after(&d, Duration::ZERO).await.expect("visible");
        d = f.redeliver().await;
    }
    d
}

/// A retryable failure with attempts left, on a message the queue has
/// already received as often as it allows (receives that were no attempt
/// raised its count): a fresh copy, not a plain retry the queue would
/// dead-letter on its next receive while the record says QUEUED.
#[tokio::test]
async fn a_retryable_failure_at_the_receive_limit_is_retried_fresh() {
    const MAX: u32 = 3;
    let first = Scripted::new(vec![HandlerError::Retryable("503".into())]);
    let f = fixture(first.clone(), Scripted::new(vec![]), MAX);
    let ev = event("p", "e8", "t");
    let d = received_times(&f, &ev, MAX).await;
    // Decided without the queue's side effects, then applied with no delay.
    let disposition = f.processor.process(&d, 100).await;
    assert!(matches!(disposition, Disposition::RetryFresh(_)), "{disposition:?}");
    f.queue.retry_fresh(&d, Duration::ZERO).await.expect("retry fresh");
    let rec = f.record(&ev).await;
    assert_eq!((rec.state, rec.attempts), (EventState::Queued, 1));
    let d = f.redeliver().await;
    assert_eq!(d.receive_count, 1, "a fresh copy");
    assert!(f.queue.dead_letters(10).await.expect("dead letters").is_empty());
    assert_eq!(f.processor.run(&d, 200).await, Disposition::Ack);
    assert_eq!(first.calls.load(Ordering::SeqCst), 2);
}

/// An outcome that could not be recorded is retried; at the receive limit
/// with a fresh copy too.
#[tokio::test]
async fn an_outcome_that_cannot_be_recorded_at_the_receive_limit_is_retried_fresh() {
    const MAX: u32 = 2;
    let first = Scripted::new(vec![]);
    // Store writes: the lease (call 0) passes, the settle (call 1) fails.
    let f = fixture_over(
        first.clone(),
        Scripted::new(vec![]),
        MAX,
        |inner| {
            Arc::new(FaultyStore {
                inner,
                claims: Arc::new(Never),
                writes: Arc::new(EveryNth::new(1000, 1)),
            })
        },
        |queue| queue,
    );
    let ev = event("p", "e9", "t");
    let d = received_times(&f, &ev, MAX).await;
    // Decided without the queue's side effects, then applied with no delay.
    let disposition = f.processor.process(&d, 100).await;
    assert!(matches!(disposition, Disposition::RetryFresh(_)), "{disposition:?}");
    f.queue.retry_fresh(&d, Duration::ZERO).await.expect("retry fresh");
    assert_eq!(f.record(&ev).await.state, EventState::Processing, "nothing recorded");
    assert_eq!(f.redeliver().await.receive_count, 1, "a fresh copy");
    assert!(f.queue.dead_letters(10).await.expect("dead letters").is_empty());
}

/// A processor that dies in the handlers at every lease never settles; the
/// record's attempts still grow, one per lease. The lease after the last
/// allowed attempt gives up without running the handlers again: FAILED, and
/// dead-lettered by the processor with a reason that says what happened.
#[tokio::test]
async fn a_record_whose_every_attempt_crashed_is_failed_and_dead_lettered_without_running() {
    const MAX: u32 = 2;
    let first = Scripted::new(vec![]);
    let f = fixture(first.clone(), Scripted::new(vec![]), MAX);
    let ev = event("p", "e10", "t");
    let d = f.deliver(&ev).await;
    // Two processors that leased the record and died (their leases expire).
    for at in [100, 200] {
        assert!(matches!(
            f.store.lease(&ev, at, 60, 1000).await.expect("lease"),
            webhooks_core::ports::store::LeaseOutcome::Leased(_)
        ));
    }
    let disposition = f.processor.run(&d, 300).await;
    let why = "the processor stopped 2 times while running this event's handlers (crash, timeout or out of memory)";
    assert_eq!(disposition, Disposition::DeadLetter(why.into()));
    assert_eq!(first.calls.load(Ordering::SeqCst), 0, "no handler runs again");
    let rec = f.record(&ev).await;
    assert_eq!((rec.state, rec.last_error.as_deref()), (EventState::Failed, Some(why)));
    let entries: Vec<_> = rec
        .history
        .iter()
        .map(|e| (e.handler.as_deref(), e.error.as_deref()))
        .collect();
    assert_eq!(entries, [(None, Some(why))], "the give-up is the one entry");
    let dead = f.queue.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, why);
}

/// A queue whose acks fail, everything else passing through.
struct AckFails(Arc<dyn Queue>);

#[async_trait::async_trait]
impl Queue for AckFails {
    async fn send(&self, events: &[&Event]) -> Result<(), QueueError> {
        self.0.send(events).await
    }
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.0.receive(max, visibility).await
    }
    async fn ack(&self, _message: &ReceivedMessage) -> Result<(), QueueError> {
        Err(QueueError::Unavailable("injected: ack refused".into()))
    }
    async fn retry_after(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        self.0.retry_after(message, delay).await
    }
    async fn retry_fresh(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        self.0.retry_fresh(message, delay).await
    }
    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), QueueError> {
        self.0.dead_letter(message, reason).await
    }
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.0.dead_letters(max).await
    }
    async fn redrive(&self, max: usize, gate: &dyn RedriveGate) -> Result<Vec<Event>, QueueError> {
        self.0.redrive(max, gate).await
    }
}

/// An ack that fails leaves the message to come back; at the receive limit
/// it would come back into the dead letters, its record DONE. A fresh copy
/// replaces it instead (and is acked when it comes back); below the limit
/// it is a plain retry.
#[tokio::test]
async fn a_failed_ack_at_the_receive_limit_is_replaced_by_a_fresh_copy() {
    const MAX: u32 = 2;
    let f = fixture_over(
        Scripted::new(vec![]),
        Scripted::new(vec![]),
        MAX,
        |store| store,
        |queue| Arc::new(AckFails(queue)),
    );
    let ev = event("p", "e11", "t");
    let d = f.deliver(&ev).await;
    assert_eq!(f.processor.run(&d, 100).await, Disposition::RetryAfter(Duration::ZERO));
    let d = f.redeliver().await;
    assert_eq!(d.receive_count, MAX);
    assert_eq!(f.processor.run(&d, 100).await, Disposition::RetryFresh(Duration::ZERO));
    assert_eq!(f.record(&ev).await.state, EventState::Done);
    assert_eq!(f.redeliver().await.receive_count, 1, "a fresh copy");
}

/// A message the queue moved to the dead letters on its own (the redrive
/// policy, the processor gone before settling) leaves its record waiting;
/// listing the dead letters marks it FAILED with the dead letter's reason,
/// unless it was touched within the last lease period (a replay in flight).
#[tokio::test]
async fn listing_the_dead_letters_fails_a_record_the_queue_moved_behind_its_back() {
    let first = Scripted::new(vec![]);
    let f = fixture(first.clone(), Scripted::new(vec![]), 3);
    let ev = event("p", "e12", "t");
    let d = f.deliver(&ev).await; // claimed at 100, so updated at 100
    let why = "moved to the dead-letter queue by the queue's redrive policy after 3 receives";
    f.queue.dead_letter(&d, why).await.expect("moved by the queue");
    // Within the lease period (60 s) of the last update: left alone.
    let listed = f.processor.dead_letters(10, 150).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(f.record(&ev).await.state, EventState::Received);
    f.processor.dead_letters(10, 200).await.expect("list");
    let rec = f.record(&ev).await;
    assert_eq!((rec.state, rec.last_error.as_deref()), (EventState::Failed, Some(why)));
    assert_eq!(first.calls.load(Ordering::SeqCst), 0);
}
