//! A processor over the in-memory adapters, with handlers that answer from
//! a script: the fixture of the process and worker tests.

use async_trait::async_trait;
use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use webhooks_core::config::AppConfig;
use webhooks_core::event::EventState;
use webhooks_core::event::{Event, EventRecord};
use webhooks_core::handlers::Handler;
use webhooks_core::handlers::{HandlerError, HandlerRegistry};
use webhooks_core::pipeline::process::Processor;
use webhooks_core::ports::queue::{Queue, ReceivedMessage};
use webhooks_core::ports::store::EventStore;
use webhooks_core::provider::Providers;
use webhooks_core::secret::MapResolver;
use webhooks_testkit::fixtures::claim_as;
use webhooks_testkit::memory::queue::MemoryQueue;
use webhooks_testkit::memory::store::MemoryStore;

/// Answers from a script (then succeeds), counting calls; optionally
/// taking its time over each.
pub struct Scripted {
    script: std::sync::Mutex<Vec<HandlerError>>,
    pub calls: AtomicU32,
    takes: Duration,
}

impl Scripted {
    pub fn new(script: Vec<HandlerError>) -> Arc<Self> {
        Self::taking(Duration::ZERO, script)
    }

    /// Each call takes `takes` of real time before it answers.
    pub fn taking(takes: Duration, script: Vec<HandlerError>) -> Arc<Self> {
        Arc::new(Self {
            script: std::sync::Mutex::new(script.into_iter().rev().collect()),
            calls: AtomicU32::new(0),
            takes,
        })
    }
}

#[async_trait]
impl Handler for Scripted {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.takes.is_zero() {
            tokio::time::sleep(self.takes).await;
        }
        match self.script.lock().expect("lock").pop() {
            Some(e) => Err(e),
            None => Ok(serde_json::json!({"done": event.id})),
        }
    }
}

pub struct Fixture {
    pub processor: Arc<Processor>,
    pub store: Arc<MemoryStore>,
    pub queue: Arc<MemoryQueue>,
}

/// Provider `p` with token auth; type `t` runs `first` then `second`.
pub fn fixture(first: Arc<Scripted>, second: Arc<Scripted>, max_attempts: u32) -> Fixture {
    fixture_over(first, second, max_attempts, |store| store, |queue| queue)
}

/// [`fixture`] with the processor's store and queue wrapped (by faulty
/// ones); the fixture's own `store` and `queue` stay the ones behind them.
pub fn fixture_over(
    first: Arc<Scripted>,
    second: Arc<Scripted>,
    max_attempts: u32,
    wrap_store: impl FnOnce(Arc<dyn EventStore>) -> Arc<dyn EventStore>,
    wrap_queue: impl FnOnce(Arc<dyn Queue>) -> Arc<dyn Queue>,
) -> Fixture {
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
    let providers = Arc::new(Providers::build(&config.enabled_providers(), &secrets).expect("providers"));
    let mut handlers = HandlerRegistry::new();
    handlers.register("first", first).register("second", second);
    let (store, queue) = (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    let processor = Arc::new(Processor::new(
        providers,
        handlers,
        wrap_store(store.clone()),
        wrap_queue(queue.clone()),
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
    pub async fn deliver(&self, ev: &Event) -> ReceivedMessage {
        self.store
            .claim(claim_as(ev, EventState::Received, 100, 1000))
            .await
            .expect("claim");
        self.queue.send(&[ev]).await.expect("send");
        self.redeliver().await
    }

    pub async fn redeliver(&self) -> ReceivedMessage {
        self.queue
            .receive(1, Duration::ZERO)
            .await
            .expect("receive")
            .pop()
            .expect("a message")
    }

    pub async fn record(&self, ev: &Event) -> EventRecord {
        self.store.get(&ev.key()).await.expect("get").expect("record")
    }
}
