//! The queue port: at-least-once delivery with a visibility timeout, a
//! receive count, delayed redelivery (backoff) and a dead-letter queue.
//!
//! Adapters: [`sqlite::SqliteQueue`] (embedded default) and, with the `aws`
//! feature, `sqs::SqsQueue`. Both pass the same contract suite ([`contract`]).

pub mod contract;
pub mod memory;
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;

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
pub struct Delivery {
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

    /// Receives up to `max` visible messages, hiding each for `visibility`.
    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Delivery>, QueueError>;

    /// Deletes a processed message.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// Makes the message visible again after `delay` (the backoff).
    async fn retry_after(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError>;

    /// Moves the message to the dead-letter queue with a reason.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), QueueError>;

    /// Lists dead-lettered messages (up to `max`).
    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Moves dead-lettered messages back to the main queue with a fresh
    /// receive count; returns the events moved.
    async fn redrive(&self, max: usize) -> Result<Vec<Event>, QueueError>;
}
