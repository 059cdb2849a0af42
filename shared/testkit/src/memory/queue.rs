//! A queue in process memory, with the same visibility timeout, receive
//! count, delays and dead letters as the real adapters; nothing survives a
//! restart. For benchmarks without I/O and for tests.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use webhooks_core::event::Event;
use webhooks_core::ports::queue::{DeadLetter, Queue, QueueError, ReceivedMessage, Redrive, RedriveGate};

#[derive(Debug)]
struct Message {
    event: Event,
    visible_at: Instant,
    receive_count: u32,
    dead: Option<String>,
}

/// [`Queue`] over an ordered map of messages.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    state: Mutex<(u64, BTreeMap<u64, Message>)>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, (u64, BTreeMap<u64, Message>)> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops every message, dead letters included.
    pub fn clear(&self) {
        self.state().1.clear();
    }

    /// Messages waiting or in flight (not dead-lettered).
    pub fn depth(&self) -> usize {
        self.state().1.values().filter(|m| m.dead.is_none()).count()
    }

    /// Runs `f` on the message the receipt names, if that receive is still current.
    fn with_current(&self, receipt: &str, f: impl FnOnce(&mut BTreeMap<u64, Message>, u64)) -> Result<(), QueueError> {
        let (id, count) = receipt
            .split_once(':')
            .and_then(|(id, count)| Some((id.parse::<u64>().ok()?, count.parse::<u32>().ok()?)))
            .ok_or_else(|| QueueError::BadMessage(format!("receipt {receipt} is not ours")))?;
        let mut state = self.state();
        if state.1.get(&id).is_some_and(|m| m.receive_count == count) {
            f(&mut state.1, id);
        }
        Ok(())
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, events: &[&Event]) -> Result<(), QueueError> {
        let mut state = self.state();
        let now = Instant::now();
        for event in events {
            state.0 += 1;
            let id = state.0;
            state.1.insert(
                id,
                Message {
                    event: (*event).clone(),
                    visible_at: now,
                    receive_count: 0,
                    dead: None,
                },
            );
        }
        Ok(())
    }

    async fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        let now = Instant::now();
        let mut state = self.state();
        let mut out = Vec::new();
        for (id, m) in state.1.iter_mut() {
            if out.len() >= max {
                break;
            }
            if m.dead.is_some() || m.visible_at > now {
                continue;
            }
            m.receive_count += 1;
            m.visible_at = now + visibility;
            out.push(ReceivedMessage {
                event: m.event.clone(),
                receipt: format!("{id}:{}", m.receive_count),
                message_id: id.to_string(),
                receive_count: m.receive_count,
            });
        }
        Ok(out)
    }

    async fn ack(&self, message: &ReceivedMessage) -> Result<(), QueueError> {
        self.with_current(&message.receipt, |messages, id| {
            messages.remove(&id);
        })
    }

    async fn retry_after(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        self.with_current(&message.receipt, |messages, id| {
            if let Some(m) = messages.get_mut(&id) {
                m.visible_at = Instant::now() + delay;
            }
        })
    }

    async fn retry_fresh(&self, message: &ReceivedMessage, delay: Duration) -> Result<(), QueueError> {
        self.with_current(&message.receipt, |messages, id| {
            if let Some(m) = messages.get_mut(&id) {
                m.visible_at = Instant::now() + delay;
                m.receive_count = 0;
            }
        })
    }

    async fn dead_letter(&self, message: &ReceivedMessage, reason: &str) -> Result<(), QueueError> {
        self.with_current(&message.receipt, |messages, id| {
            if let Some(m) = messages.get_mut(&id) {
                m.dead = Some(reason.to_string());
            }
        })
    }

    async fn dead_letters(&self, max: usize) -> Result<Vec<DeadLetter>, QueueError> {
        Ok(self
            .state()
            .1
            .values()
            .filter_map(|m| {
                m.dead.as_ref().map(|reason| DeadLetter {
                    event: m.event.clone(),
                    reason: reason.clone(),
                })
            })
            .take(max)
            .collect())
    }

    async fn redrive(&self, max: usize, gate: &dyn RedriveGate) -> Result<Vec<Event>, QueueError> {
        // The gate is asynchronous: decide with the lock released.
        let dead: Vec<(u64, Event)> = self
            .state()
            .1
            .iter()
            .filter(|(_, m)| m.dead.is_some())
            .map(|(id, m)| (*id, m.event.clone()))
            .collect();
        let mut moved = Vec::new();
        for (id, event) in dead {
            if moved.len() >= max {
                break;
            }
            let decision = gate.decide(&event).await;
            let mut state = self.state();
            match decision {
                Redrive::Send => {
                    if let Some(m) = state.1.get_mut(&id) {
                        m.dead = None;
                        m.receive_count = 0;
                        m.visible_at = Instant::now();
                        moved.push(event);
                    }
                }
                Redrive::Discard => {
                    state.1.remove(&id);
                }
                Redrive::Keep => {}
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_queue_contract() {
        crate::contract::queue::run_all(&MemoryQueue::new()).await;
    }

    #[tokio::test]
    async fn memory_adapters_pass_the_admission_contract() {
        let store = std::sync::Arc::new(crate::memory::store::MemoryStore::new());
        let queue = std::sync::Arc::new(MemoryQueue::new());
        let admission = webhooks_core::ports::admission::EnqueueThenClaim::new(store.clone(), queue.clone());
        crate::contract::admission::run_all(&admission, store.as_ref(), queue.as_ref(), "memory").await;
    }
}
