//! The queue port: at-least-once messages with a visibility timeout, a
//! receive count, delayed redelivery (backoff) and a dead-letter queue.
//!
//! Adapters: `webhooks_sqlite::SqliteQueue` (embedded default) and
//! `webhooks_aws::sqs::SqsQueue`. Both pass the same contract suite
//! (`webhooks_testkit::contract::queue`).

use crate::event::Event;
use async_trait::async_trait;
use std::time::Duration;

/// Why the queue could not answer.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("message is not an event envelope: {0}")]
    BadMessage(String),
    #[error("message too large for the queue: {0} bytes")]
    TooLarge(usize),
}

/// One received message.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub event: Event,
    /// Opaque handle for ack / retry / dead-letter.
    pub receipt: String,
    /// The adapter's message id (SQS MessageId), for batch failure reports.
    pub message_id: String,
    /// How many times this message has been received, this time included.
    pub receive_count: u32,
}

/// A dead-lettered message, as listed for an operator.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub event: Event,
    pub reason: String,
}

/// The queue.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends events; adapters batch as their service allows. All or error.
    /// By reference: the caller keeps its events, and adapters that copy
    /// them (the in-memory one) do so once.
    async fn send(&self, events: &[&Event]) -> Result<(), QueueError>;

    /// Whether `event` fits in one message of this queue (`TooLarge` when
    /// not). Ingest asks before it claims anything, so a message that can
    /// never be queued gets 413 at once instead of a 503 on every retry.
    /// Queues without a practical limit (the embedded one) accept all.
    fn fits(&self, _event: &Event) -> Result<(), QueueError> {
        Ok(())
    }

    /// Receives up to `max` visible messages, hiding each for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Deletes a processed message.
    async fn ack(&self, message: &ReceivedMessage) -> Result<(), QueueError>;

    /// Makes the message visible again after `delay` (the backoff).
    async fn retry_after(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError>;

    /// Makes the message visible again after `delay` with its receive count
    /// back at zero: for a retry that was no attempt (another processor's
    /// lease, the store unreachable), so the queue's own count (SQS's
    /// redrive policy) cannot move it to the dead letters behind the
    /// record's back. On SQS a new message replaces it.
    async fn retry_fresh(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError>;

    /// Moves the message to the dead-letter queue with a reason.
    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), QueueError>;

    /// Lists dead-lettered messages (up to `max`).
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Walks the dead-lettered messages and, as `gate` decides for each,
    /// moves it back to the main queue with a fresh receive count, discards
    /// it, or leaves it parked; stops after `max` moved. Returns the events
    /// moved. The gate runs before a message is moved, so what it prepares
    /// (the record reset to QUEUED) is in place before any processor can
    /// receive the message.
    async fn redrive(&self, max: usize, gate: &dyn RedriveGate) -> Result<Vec<Event>, QueueError>;
}

/// What a redrive does with one dead-lettered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redrive {
    /// Back on the main queue.
    Send,
    /// Deleted: there is nothing left to do for its event.
    Discard,
    /// Left in the dead letters (not this one, or not now).
    Keep,
}

/// Decides, message by message, what a redrive does.
#[async_trait]
pub trait RedriveGate: Send + Sync {
    async fn decide(&self, event: &Event) -> Redrive;
}

/// Moves every dead letter back, unconditionally (for tests and tools that
/// have no records to prepare).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedriveAll;

#[async_trait]
impl RedriveGate for RedriveAll {
    async fn decide(&self, _event: &Event) -> Redrive {
        Redrive::Send
    }
}
