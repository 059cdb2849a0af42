//! The processor Lambda: an SQS event source mapping (with
//! `ReportBatchItemFailures`) hands a batch of records; each becomes a
//! [`ReceivedMessage`] and goes through `webhooks_core::pipeline::process::Processor::run`,
//! which leases the record, runs the handlers and settles the message
//! through the SQS adapter (delete / ChangeMessageVisibility for the backoff /
//! explicit send to the DLQ). Records to try again are reported as batch item
//! failures; every other record is already settled.
//!
//! Each record runs in its own task: a panic in one is a failure of that
//! record only (SQS redelivers it after the visibility timeout), never of the
//! batch. Events run side by side; the messages of one event (its copies'
//! too) run in turn, so a copy finds its event finished, not leased.
//!
//! Invoked directly (not by SQS) with `{"action": "dead_letters"}` or
//! `{"action": "redrive"}` (optional `"max"`), the same function lists the
//! dead-letter queue or moves it back to the main queue, resetting each
//! record to QUEUED so it is processed again (SQS's own console redrive would
//! move the messages but leave their records FAILED, and they would be skipped).
//! Listing marks FAILED the record of a message SQS's redrive policy moved
//! while it still said QUEUED or PROCESSING (a processor that died between
//! receiving it at maxReceiveCount and settling it).

// A record's panic is caught (its task's `JoinError`, the handler's
// `catch_unwind`) only if panics unwind: `cargo lambda build --release`
// would make them abort unless the profile says otherwise (see the
// workspace's `[profile.release]`), so a build that aborts is refused here.
#[cfg(panic = "abort")]
compile_error!("the processor isolates a panicking record, which needs panic = \"unwind\" (set it in the profile)");

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::BoxFuture;
use serde::Deserialize;
use std::sync::Arc;
use tracing::{error, warn};
use webhooks_aws::emf::Emf;
use webhooks_aws::sqs::SqsQueue;
use webhooks_aws::Runtime;
use webhooks_core::pipeline::process::{Disposition, Processor};
use webhooks_core::ports::queue::ReceivedMessage;

/// Runs one message to its disposition.
pub type RunOne = Arc<dyn Fn(ReceivedMessage) -> BoxFuture<'static, Disposition> + Send + Sync>;

/// The batch handler: the processor pipeline over the SQS adapter.
#[derive(Clone)]
pub struct BatchHandler {
    queue: Arc<SqsQueue>,
    run: RunOne,
    metrics: Emf,
}

impl BatchHandler {
    pub fn new(processor: Arc<Processor>, queue: Arc<SqsQueue>, metrics: Emf) -> Self {
        let run: RunOne = Arc::new(move |message: ReceivedMessage| {
            let processor = processor.clone();
            Box::pin(async move { processor.run(&message, webhooks_core::time::unix_now()).await })
        });
        Self { queue, run, metrics }
    }

    /// With another per-message step (tests wrap the processor with one that panics).
    #[cfg(test)]
    pub(crate) fn with_runner(queue: Arc<SqsQueue>, run: RunOne) -> Self {
        Self {
            queue,
            run,
            metrics: Emf::new("test"),
        }
    }

    pub fn from_runtime(runtime: &Runtime) -> Self {
        Self::new(
            runtime.app.processor.clone(),
            runtime.queue.clone(),
            runtime.metrics.clone(),
        )
    }

    /// Handles a batch; returns the message ids SQS should deliver again.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        // Events side by side; an event's messages one after the other,
        // each in a task of its own.
        let groups = by_event(event.records)
            .into_iter()
            .map(|group| self.handle_in_turn(group));
        let handled = futures::future::join_all(groups).await.into_iter().flatten();
        let mut response = SqsBatchResponse::default();
        let mut request_ids: Vec<serde_json::Value> = Vec::new();
        for (message_id, outcome) in handled {
            let retry = match outcome {
                Ok(Handled { retry, request_id }) => {
                    request_ids.extend(request_id.map(serde_json::Value::from));
                    retry
                }
                Err(panicked) => {
                    error!(message_id = %message_id, panicked, "record task failed; SQS delivers it again");
                    true
                }
            };
            if retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
        // What the batch recorded, as EMF documents in the log, with the ids
        // of the requests that delivered its events (to find the ingest's
        // lines and documents for them).
        self.metrics
            .flush(&[("request_ids", serde_json::Value::Array(request_ids))]);
        response
    }

    /// Processes the messages of one event in turn, each in its own task (a
    /// panic stays that record's). `Err(panicked)`: its task failed.
    async fn handle_in_turn(&self, group: Vec<SqsMessage>) -> Vec<(String, Result<Handled, bool>)> {
        let mut results = Vec::with_capacity(group.len());
        for record in group {
            let message_id = record.message_id.clone().unwrap_or_default();
            let this = self.clone();
            let outcome = tokio::spawn(async move { this.handle_record(record).await }).await;
            results.push((message_id, outcome.map_err(|e| e.is_panic())));
        }
        results
    }

    /// Processes one record.
    async fn handle_record(&self, record: SqsMessage) -> Handled {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        let receipt = record.receipt_handle.as_deref().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let count = record.attributes.get("ApproximateReceiveCount").map(String::as_str);
        match SqsQueue::received_message(message_id, receipt, body, count) {
            Ok(message) => {
                let request_id = message.event.request_id.as_deref().map(str::to_string);
                // A fresh retry replaced the message: nothing for SQS to deliver again.
                let retry = !matches!(
                    (self.run)(message).await,
                    Disposition::Ack | Disposition::DeadLetter(_) | Disposition::RetryFresh(_)
                );
                Handled { retry, request_id }
            }
            Err(e) => {
                // Nothing can ever process it: park it in the DLQ now.
                warn!(message_id = %message_id, error = %e, "not an event envelope; dead-lettered");
                let retry = match self.queue.dead_letter_raw(receipt, body, &e.to_string()).await {
                    Ok(()) => {
                        webhooks_core::telemetry::dead_lettered(poison_provider(&record));
                        false
                    }
                    Err(e) => {
                        warn!(message_id = %message_id, error = %e, "could not dead-letter; the redrive policy will");
                        true
                    }
                };
                Handled {
                    retry,
                    request_id: None,
                }
            }
        }
    }
}

/// The batch's records grouped by event, in the order each event first
/// appears: the `provider` and `event_id` attributes the ingest sets on every
/// message. An event can have several messages in one batch: ingest sends a
/// copy's message before it knows the delivery for a copy, and SQS delivers
/// at least once. Run side by side, all but one would find the event leased
/// by a neighbour and go back to the queue for a retry; run in turn, they
/// find it finished and are acknowledged. A record without the attributes
/// is a group of its own.
fn by_event(records: Vec<SqsMessage>) -> Vec<Vec<SqsMessage>> {
    let mut groups: Vec<Vec<SqsMessage>> = Vec::with_capacity(records.len());
    let mut index: std::collections::HashMap<(String, String), usize> = std::collections::HashMap::new();
    for record in records {
        let attribute = |name: &str| record.message_attributes.get(name).and_then(|a| a.string_value.clone());
        match attribute("provider").zip(attribute("event_id")) {
            Some(key) => match index.get(&key) {
                Some(&at) => groups[at].push(record),
                None => {
                    index.insert(key, groups.len());
                    groups.push(vec![record]);
                }
            },
            None => groups.push(vec![record]),
        }
    }
    groups
}

/// The provider a poison message is counted under in `DeadLettered`: the
/// `provider` message attribute the ingest sets on every message it sends,
/// when present and shaped like a provider name (a bounded dimension);
/// otherwise (a message sent by hand, or attributes lost) the provider
/// cannot be known and it is counted under "unknown", so the metric's total
/// still matches what reached the dead-letter queue.
fn poison_provider(record: &SqsMessage) -> &str {
    record
        .message_attributes
        .get("provider")
        .and_then(|a| a.string_value.as_deref())
        .filter(|p| {
            !p.is_empty()
                && p.len() <= 64
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
        .unwrap_or("unknown")
}

/// What became of one record of a batch.
struct Handled {
    /// SQS should deliver it again (a batch item failure).
    retry: bool,
    /// The id of the request that delivered its event, when it says.
    request_id: Option<String>,
}

/// An operator's direct invocation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Lists up to `max` dead-lettered events (ids, types and reasons; no payloads).
    DeadLetters {
        #[serde(default = "default_max")]
        max: usize,
    },
    /// Moves up to `max` dead-lettered events back to the main queue.
    Redrive {
        #[serde(default = "default_max")]
        max: usize,
    },
}

fn default_max() -> usize {
    100
}

/// Why an invocation could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("not an SQS event nor a command ({{\"action\": \"dead_letters\" | \"redrive\"}}): {0}")]
    Unknown(String),
    #[error(transparent)]
    Queue(#[from] webhooks_core::ports::queue::QueueError),
}

/// The whole function: SQS batches and operator commands.
#[derive(Clone)]
pub struct Function {
    pub batches: BatchHandler,
    processor: Arc<Processor>,
}

impl Function {
    pub fn from_runtime(runtime: &Runtime) -> Self {
        Self {
            batches: BatchHandler::from_runtime(runtime),
            processor: runtime.app.processor.clone(),
        }
    }

    /// Dispatches one invocation payload.
    pub async fn invoke(&self, payload: serde_json::Value) -> Result<serde_json::Value, InvokeError> {
        if payload.get("Records").is_some() {
            let event: SqsEvent = serde_json::from_value(payload).map_err(|e| InvokeError::Unknown(e.to_string()))?;
            let response = self.batches.handle(event).await;
            return serde_json::to_value(response).map_err(|e| InvokeError::Unknown(e.to_string()));
        }
        let command: Command = serde_json::from_value(payload).map_err(|e| InvokeError::Unknown(e.to_string()))?;
        self.command(command).await
    }

    pub async fn command(&self, command: Command) -> Result<serde_json::Value, InvokeError> {
        match command {
            Command::DeadLetters { max } => {
                // Through the processor: a record still waiting for a message
                // SQS's redrive policy moved is marked FAILED on the way.
                let listed = self
                    .processor
                    .dead_letters(max, webhooks_core::time::unix_now())
                    .await?;
                let items: Vec<serde_json::Value> = listed
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "provider": d.event.provider,
                            "id": d.event.id,
                            "type": d.event.event_type,
                            "received_at": d.event.received_at,
                            "reason": d.reason,
                        })
                    })
                    .collect();
                Ok(serde_json::json!({ "dead_letters": items }))
            }
            Command::Redrive { max } => {
                let moved = self
                    .processor
                    .redrive_dead_letters(max, webhooks_core::time::unix_now())
                    .await?;
                tracing::info!(count = moved.len(), "dead letters redriven");
                Ok(serde_json::json!({ "redriven": moved }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_defaults() {
        let c: Command = serde_json::from_str(r#"{"action":"redrive"}"#).expect("redrive");
        assert_eq!(c, Command::Redrive { max: 100 });
        let c: Command = serde_json::from_str(r#"{"action":"dead_letters","max":5}"#).expect("list");
        assert_eq!(c, Command::DeadLetters { max: 5 });
        assert!(serde_json::from_str::<Command>(r#"{"action":"purge"}"#).is_err());
    }
}

#[cfg(test)]
mod batch_tests;

#[cfg(test)]
mod by_event_tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessageAttribute;

    fn record(id: &str, event: Option<(&str, &str)>) -> SqsMessage {
        let mut record = SqsMessage::default();
        record.message_id = Some(id.into());
        if let Some((provider, event_id)) = event {
            for (name, value) in [("provider", provider), ("event_id", event_id)] {
                let mut attribute = SqsMessageAttribute::default();
                attribute.string_value = Some(value.into());
                record.message_attributes.insert(name.into(), attribute);
            }
        }
        record
    }

    fn ids(groups: &[Vec<SqsMessage>]) -> Vec<Vec<&str>> {
        groups
            .iter()
            .map(|g| g.iter().map(|r| r.message_id.as_deref().unwrap_or_default()).collect())
            .collect()
    }

    #[test]
    fn an_events_messages_are_one_group_in_batch_order() {
        let groups = by_event(vec![
            record("m1", Some(("gigstack", "evt_1"))),
            record("m2", Some(("piriod", "evt_1"))),
            record("m3", None),
            record("m4", Some(("gigstack", "evt_1"))),
            record("m5", None),
        ]);
        assert_eq!(
            ids(&groups),
            [vec!["m1", "m4"], vec!["m2"], vec!["m3"], vec!["m5"]],
            "same provider and id together, first seen first; the same id of another provider and records without attributes apart"
        );
    }
}
