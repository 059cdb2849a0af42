//! The processor pipeline: lease, run handlers, settle.

use crate::processor_fixture::{fixture, Scripted};
use std::sync::atomic::Ordering;
use std::time::Duration;
use webhooks_core::event::EventState;
use webhooks_core::handlers::HandlerError;
use webhooks_core::pipeline::process::Disposition;
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::store::EventStore;
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
