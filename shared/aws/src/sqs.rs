//! The queue on Amazon SQS: a main queue with a RedrivePolicy to its
//! dead-letter queue (the SAM template makes both).
//!
//! - send: `SendMessageBatch` in chunks of at most 10 entries and 1 MiB; the
//!   entries a batch reports failed are sent once more, and if any still
//!   fails the whole send is an error (the ingest answers 503 and the
//!   provider retries; a copy that did go out is a duplicate the processor's
//!   lease absorbs). Each message carries the attributes `provider`,
//!   `event_id` and `event_type`.
//! - receive: `ReceiveMessage` with `ApproximateReceiveCount`.
//! - ack: `DeleteMessage`; retry_after: `ChangeMessageVisibility` (the
//!   backoff, at most 12 hours); dead_letter: `SendMessage` to the DLQ with
//!   the reason as the `reason` attribute, then `DeleteMessage`.
//! - dead_letters: receive from the DLQ with a short visibility, then make
//!   the messages visible again (a peek); redrive: receive from the DLQ,
//!   send to the main queue (a new message, so a fresh receive count), delete.
//!
//! A body that is not an event envelope can never be processed: it is sent
//! to the DLQ with the reason and deleted, wherever it is met.

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;
use std::collections::HashMap;
use std::time::Duration;
use tracing::{info, warn};
use webhooks_core::event::Event;
use webhooks_core::ports::queue::{DeadLetter, Queue, QueueError, ReceivedMessage, Redrive, RedriveGate};

/// SQS's limit on one message, and on one batch request.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// SQS's limit on entries per batch.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// ChangeMessageVisibility's upper bound.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// How long `dead_letters` hides what it peeks at before showing it again.
const PEEK_VISIBILITY_SECS: i32 = 30;
/// The message attribute carrying a dead-letter reason.
pub const REASON_ATTRIBUTE: &str = "reason";

/// SQS-backed [`Queue`].
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dlq_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: &str, dlq_url: &str) -> Self {
        Self {
            client,
            queue_url: queue_url.to_string(),
            dlq_url: dlq_url.to_string(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    pub fn dlq_url(&self) -> &str {
        &self.dlq_url
    }

    /// Builds a [`ReceivedMessage`] from what SQS (or a Lambda SQS event record)
    /// says about a message. `receive_count` is the `ApproximateReceiveCount`
    /// attribute (1 when absent or unreadable).
    pub fn received_message(
        message_id: &str,
        receipt_handle: &str,
        body: &str,
        receive_count: Option<&str>,
    ) -> Result<ReceivedMessage, QueueError> {
        let event: Event = serde_json::from_str(body).map_err(|e| QueueError::BadMessage(e.to_string()))?;
        Ok(ReceivedMessage {
            event,
            receipt: receipt_handle.to_string(),
            message_id: message_id.to_string(),
            receive_count: receive_count.and_then(|c| c.parse().ok()).unwrap_or(1).max(1),
        })
    }

    /// Parks a message that cannot be processed (not an envelope) in the DLQ
    /// with `reason`, and deletes it from the main queue.
    pub async fn dead_letter_raw(&self, receipt_handle: &str, body: &str, reason: &str) -> Result<(), QueueError> {
        let mut send = self.client.send_message().queue_url(&self.dlq_url).message_body(body);
        if let Some(v) = attribute(reason, 1024) {
            send = send.message_attributes(REASON_ATTRIBUTE, v);
        }
        send.send().await.map_err(unavailable)?;
        self.delete(&self.queue_url, receipt_handle).await
    }

    async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn receive_from(
        &self,
        queue_url: &str,
        max: usize,
        visibility_secs: i32,
    ) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH_ENTRIES) as i32)
            .visibility_timeout(visibility_secs)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Sends entries in one SendMessageBatch; returns the ids of entries that failed.
    async fn send_batch(&self, entries: &[SendMessageBatchRequestEntry]) -> Result<Vec<String>, QueueError> {
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries.to_vec()))
            .send()
            .await
            .map_err(unavailable)?;
        for f in out.failed() {
            warn!(entry = %f.id(), code = %f.code(), sender_fault = f.sender_fault(), message = f.message().unwrap_or(""), "batch entry failed");
        }
        Ok(out.failed().iter().map(|f| f.id().to_string()).collect())
    }

    /// Messages of the main queue waiting or in flight (approximate).
    pub async fn depth(&self, dlq: bool) -> Result<u64, QueueError> {
        let url = if dlq { &self.dlq_url } else { &self.queue_url };
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(unavailable)?;
        let attrs = out.attributes();
        let get = |n: QueueAttributeName| {
            attrs
                .and_then(|a| a.get(&n))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(get(QueueAttributeName::ApproximateNumberOfMessages)
            + get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
    }
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> QueueError {
    QueueError::Unavailable(DisplayErrorContext(&e).to_string())
}

/// A String message attribute, with characters SQS refuses dropped and the
/// value cut to `max` bytes; `None` when nothing is left.
fn attribute(value: &str, max: usize) -> Option<MessageAttributeValue> {
    let mut clean = String::with_capacity(value.len().min(max));
    for c in value.chars() {
        let allowed =
            matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
        if !allowed {
            continue;
        }
        if clean.len() + c.len_utf8() > max {
            break;
        }
        clean.push(c);
    }
    if clean.is_empty() {
        return None;
    }
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(clean)
        .build()
        .ok()
}

fn event_attributes(event: &Event) -> HashMap<String, MessageAttributeValue> {
    let mut attrs = HashMap::new();
    for (name, value) in [
        ("provider", &*event.provider),
        ("event_id", &*event.id),
        ("event_type", &*event.event_type),
    ] {
        if let Some(v) = attribute(value, 256) {
            attrs.insert(name.to_string(), v);
        }
    }
    attrs
}

/// What SQS counts against its size limits: body plus attribute names, types and values.
fn message_size(body: &str, attrs: &HashMap<String, MessageAttributeValue>) -> usize {
    body.len() + attributes_size(attrs)
}

fn attributes_size(attrs: &HashMap<String, MessageAttributeValue>) -> usize {
    attrs
        .iter()
        .map(|(k, v)| k.len() + v.data_type().len() + v.string_value().map_or(0, str::len))
        .sum()
}

/// Counts the bytes written to it, so an envelope is measured without a copy.
#[derive(Default)]
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn receive_count(m: &Message) -> Option<&str> {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .map(String::as_str)
}

/// The message of one event: its envelope, its attributes and their size
/// as SQS counts it; `TooLarge` over SQS's limit.
fn message(event: &Event) -> Result<(String, HashMap<String, MessageAttributeValue>, usize), QueueError> {
    let body = serde_json::to_string(event).map_err(|e| QueueError::BadMessage(e.to_string()))?;
    let attrs = event_attributes(event);
    let size = message_size(&body, &attrs);
    if size > MAX_MESSAGE_BYTES {
        return Err(QueueError::TooLarge(size));
    }
    Ok((body, attrs, size))
}

#[async_trait]
impl Queue for SqsQueue {
    fn fits(&self, event: &Event) -> Result<(), QueueError> {
        // Measured, not built: `send` builds the message once, before the record.
        let mut body = ByteCount::default();
        serde_json::to_writer(&mut body, event).map_err(|e| QueueError::BadMessage(e.to_string()))?;
        let size = body.0 + attributes_size(&event_attributes(event));
        if size > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge(size));
        }
        Ok(())
    }

    async fn send(&self, events: &[&Event]) -> Result<(), QueueError> {
        // Plan batches: at most 10 entries and 1 MiB each.
        let mut batches: Vec<Vec<SendMessageBatchRequestEntry>> = Vec::new();
        let mut current: Vec<SendMessageBatchRequestEntry> = Vec::new();
        let mut current_bytes = 0usize;
        for (i, event) in events.iter().enumerate() {
            let (body, attrs, size) = message(event)?;
            if current.len() == MAX_BATCH_ENTRIES || current_bytes + size > MAX_MESSAGE_BYTES {
                batches.push(std::mem::take(&mut current));
                current_bytes = 0;
            }
            let entry = SendMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .message_body(body)
                .set_message_attributes(Some(attrs))
                .build()
                .map_err(|e| QueueError::BadMessage(e.to_string()))?;
            current.push(entry);
            current_bytes += size;
        }
        if !current.is_empty() {
            batches.push(current);
        }
        for batch in batches {
            let failed = self.send_batch(&batch).await?;
            if failed.is_empty() {
                continue;
            }
            let again: Vec<SendMessageBatchRequestEntry> = batch
                .into_iter()
                .filter(|e| failed.iter().any(|id| id == e.id()))
                .collect();
            let still = self.send_batch(&again).await?;
            if !still.is_empty() {
                return Err(QueueError::Unavailable(format!(
                    "{} of {} messages could not be sent after a retry",
                    still.len(),
                    events.len()
                )));
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let visibility_secs = visibility.as_secs().min(MAX_VISIBILITY.as_secs()) as i32;
        let messages = self.receive_from(&self.queue_url, max, visibility_secs).await?;
        let mut out = Vec::with_capacity(messages.len());
        for m in messages {
            let (id, receipt, body) = (
                m.message_id().unwrap_or_default(),
                m.receipt_handle().unwrap_or_default(),
                m.body().unwrap_or_default(),
            );
            match Self::received_message(id, receipt, body, receive_count(&m)) {
                Ok(d) => out.push(d),
                Err(e) => {
                    warn!(message_id = %id, error = %e, "not an event envelope; dead-lettered");
                    self.dead_letter_raw(receipt, body, &e.to_string()).await?;
                }
            }
        }
        Ok(out)
    }

    async fn ack(&self, received: &ReceivedMessage) -> Result<(), QueueError> {
        self.delete(&self.queue_url, &received.receipt).await
    }

    async fn retry_after(&self, received: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        // SQS counts whole seconds: round up so a retry never comes early.
        let secs = delay.as_millis().div_ceil(1000).min(MAX_VISIBILITY.as_secs() as u128) as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&received.receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// A new message (same body and attributes, delayed; SQS allows up to
    /// 15 minutes) replaces the received one, which is then deleted: the new
    /// one starts at receive count zero. Should the delete fail, the old
    /// copy comes back too, and the record's lease makes it harmless.
    async fn retry_fresh(&self, received: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        let (body, attrs, _) = message(&received.event)?;
        let secs = delay.as_millis().div_ceil(1000).min(900) as i32;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .set_message_attributes(Some(attrs))
            .delay_seconds(secs)
            .send()
            .await
            .map_err(unavailable)?;
        self.delete(&self.queue_url, &received.receipt).await
    }

    async fn dead_letter(&self, received: &ReceivedMessage, reason: &str) -> Result<(), QueueError> {
        let body = serde_json::to_string(&received.event).map_err(|e| QueueError::BadMessage(e.to_string()))?;
        let mut attrs = event_attributes(&received.event);
        if let Some(v) = attribute(reason, 1024) {
            attrs.insert(REASON_ATTRIBUTE.to_string(), v);
        }
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(body)
            .set_message_attributes(Some(attrs))
            .send()
            .await
            .map_err(unavailable)?;
        self.delete(&self.queue_url, &received.receipt).await
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        let mut peeked: Vec<Message> = Vec::new();
        while peeked.len() < max {
            let got = self
                .receive_from(&self.dlq_url, max - peeked.len(), PEEK_VISIBILITY_SECS)
                .await?;
            if got.is_empty() {
                break;
            }
            peeked.extend(got);
        }
        let mut out = Vec::with_capacity(peeked.len());
        // Asked once, and only when a message has no reason of its own.
        let mut moved_reason: Option<String> = None;
        for m in &peeked {
            match serde_json::from_str::<Event>(m.body().unwrap_or_default()) {
                Ok(event) => {
                    let own = m
                        .message_attributes()
                        .and_then(|a| a.get(REASON_ATTRIBUTE))
                        .and_then(|v| v.string_value());
                    let reason = match own {
                        Some(reason) => reason.to_string(),
                        None => match &moved_reason {
                            Some(reason) => reason.clone(),
                            None => moved_reason.insert(self.moved_by_redrive_policy().await).clone(),
                        },
                    };
                    out.push(DeadLetter { event, reason });
                }
                Err(e) => {
                    warn!(message_id = m.message_id().unwrap_or_default(), error = %e, "DLQ message is not an event envelope")
                }
            }
        }
        // Show them again: this was a peek.
        for receipt in peeked.iter().filter_map(|m| m.receipt_handle()) {
            self.show_dead_letter(receipt).await;
        }
        Ok(out)
    }

    async fn redrive(&self, max: usize, gate: &dyn RedriveGate) -> Result<Vec<Event>, QueueError> {
        let mut moved = Vec::new();
        // Received and left parked: hidden until the end, so the walk ends.
        let mut kept: Vec<String> = Vec::new();
        while moved.len() < max {
            let got = self
                .receive_from(&self.dlq_url, MAX_BATCH_ENTRIES, PEEK_VISIBILITY_SECS)
                .await?;
            if got.is_empty() {
                break;
            }
            for m in got {
                let receipt = m.receipt_handle().unwrap_or_default().to_string();
                // Not an envelope: it would only come straight back. Leave it.
                let decision = match serde_json::from_str::<Event>(m.body().unwrap_or_default()) {
                    Ok(event) if moved.len() < max => Some((gate.decide(&event).await, event)),
                    _ => None,
                };
                match decision {
                    Some((Redrive::Send, event)) => {
                        self.send(&[&event]).await?;
                        self.delete(&self.dlq_url, &receipt).await?;
                        info!(provider = %event.provider, event_id = %event.id, "redriven from the DLQ");
                        moved.push(event);
                    }
                    Some((Redrive::Discard, event)) => {
                        self.delete(&self.dlq_url, &receipt).await?;
                        info!(provider = %event.provider, event_id = %event.id, "stale dead letter discarded");
                    }
                    Some((Redrive::Keep, _)) | None => kept.push(receipt),
                }
            }
        }
        for receipt in kept {
            self.show_dead_letter(&receipt).await;
        }
        Ok(moved)
    }
}

impl SqsQueue {
    /// The reason of a dead letter with none of its own: only SQS's redrive
    /// policy moves a message without one, after the main queue's
    /// maxReceiveCount receives.
    async fn moved_by_redrive_policy(&self) -> String {
        match self.max_receive_count().await {
            Some(n) => format!("moved to the dead-letter queue by the queue's redrive policy after {n} receives"),
            None => {
                "moved to the dead-letter queue by the queue's redrive policy (maxReceiveCount reached)".to_string()
            }
        }
    }

    /// The main queue's RedrivePolicy maxReceiveCount (a number or, as SQS
    /// itself writes it, a string of digits).
    async fn max_receive_count(&self) -> Option<u32> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| warn!(error = %DisplayErrorContext(&e), "could not read the queue's redrive policy"))
            .ok()?;
        let policy = out.attributes()?.get(&QueueAttributeName::RedrivePolicy)?;
        max_receive_count(policy)
    }

    /// Makes a DLQ message that was only looked at visible again at once.
    async fn show_dead_letter(&self, receipt: &str) {
        let shown = self
            .client
            .change_message_visibility()
            .queue_url(&self.dlq_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
        if let Err(e) = shown {
            warn!(error = %DisplayErrorContext(&e), "could not make a peeked DLQ message visible; it reappears after {PEEK_VISIBILITY_SECS}s");
        }
    }
}

/// maxReceiveCount out of a RedrivePolicy document.
fn max_receive_count(policy: &str) -> Option<u32> {
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    match policy.get("maxReceiveCount")? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_receive_count_reads_either_spelling() {
        assert_eq!(
            max_receive_count(r#"{"deadLetterTargetArn":"a","maxReceiveCount":"5"}"#),
            Some(5)
        );
        assert_eq!(max_receive_count(r#"{"maxReceiveCount":3}"#), Some(3));
        assert_eq!(max_receive_count(r#"{"deadLetterTargetArn":"a"}"#), None);
        assert_eq!(max_receive_count("not json"), None);
    }

    #[test]
    fn fits_measures_exactly_what_send_builds() {
        let queue = SqsQueue::new(
            Client::from_conf(
                aws_sdk_sqs::Config::builder()
                    .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                    .build(),
            ),
            "q",
            "d",
        );
        let mut ev = webhooks_testkit::fixtures::event("p", "e\"1", "t");
        let (_, _, built) = message(&ev).expect("fits");
        let mut measured = ByteCount::default();
        serde_json::to_writer(&mut measured, &ev).expect("writes");
        assert_eq!(measured.0 + attributes_size(&event_attributes(&ev)), built);
        assert!(queue.fits(&ev).is_ok());
        let filler = "x".repeat(MAX_MESSAGE_BYTES);
        ev.payload = webhooks_core::payload::Payload::from_text(format!(r#"{{"f":"{filler}"}}"#));
        assert!(matches!(queue.fits(&ev), Err(QueueError::TooLarge(n)) if n > MAX_MESSAGE_BYTES));
        assert!(matches!(message(&ev), Err(QueueError::TooLarge(_))));
    }

    #[test]
    fn attributes_are_cleaned_and_bounded() {
        let v = attribute("a\u{0}b", 256).expect("test value");
        assert_eq!(v.string_value(), Some("ab"));
        assert!(attribute("", 10).is_none());
        assert!(attribute("\u{1}", 10).is_none());
        let v = attribute("ñññ", 5).expect("test value");
        assert_eq!(v.string_value(), Some("ññ"));
    }

    #[test]
    fn messages_from_lambda_records() {
        let ev = webhooks_testkit::fixtures::event("p", "e", "t");
        let body = serde_json::to_string(&ev).expect("test value");
        let d = SqsQueue::received_message("mid", "rh", &body, Some("3")).expect("test value");
        assert_eq!(
            (d.message_id.as_str(), d.receipt.as_str(), d.receive_count),
            ("mid", "rh", 3)
        );
        assert_eq!(
            SqsQueue::received_message("m", "r", &body, None)
                .expect("test value")
                .receive_count,
            1
        );
        assert!(matches!(
            SqsQueue::received_message("m", "r", "not json", Some("1")),
            Err(QueueError::BadMessage(_))
        ));
    }
}
