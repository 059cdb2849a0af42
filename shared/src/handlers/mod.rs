//! Business handlers, run by the processor for each (provider, event type).
//!
//! A handler makes its real HTTP call (base URLs are configuration, so tests
//! point them at a local server) and returns a JSON result that is recorded
//! on the event. Its error says whether a retry can help.

mod settings;

pub use settings::{HandlerSettings, ResolvedSettings};

use crate::artifacts::ArtifactStore;
use crate::event::Event;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Why a handler failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Network errors, timeouts, 5xx, 429: try again after a backoff.
    #[error("retryable: {0}")]
    Retryable(String),
    /// 4xx other than 429, bad data: retrying cannot help; dead-letter now.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl HandlerError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, HandlerError::Retryable(_))
    }
}

/// One business action for an event.
#[async_trait]
pub trait Handler: Send + Sync {
    /// Runs the action; the returned value is recorded under the handler's name.
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError>;
}

/// What built-in handlers share: one HTTP client (connection pool), the
/// artifact store and the resolved settings.
#[derive(Clone)]
pub struct HandlerDeps {
    pub http: reqwest::Client,
    pub artifacts: Arc<dyn ArtifactStore>,
    pub settings: Arc<ResolvedSettings>,
}

/// Handlers by name.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("HandlerRegistry").field("handlers", &names).finish()
    }
}

impl HandlerRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a handler under `name`.
    pub fn register(&mut self, name: &str, handler: Arc<dyn Handler>) -> &mut Self {
        self.handlers.insert(name.to_string(), handler);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }
}

/// Builds a `reqwest` client with the configured timeout (rustls, pooled).
pub fn http_client(timeout_secs: u64) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_secs.max(1)))
        .connect_timeout(std::time::Duration::from_secs(timeout_secs.clamp(1, 5)))
        .user_agent(concat!("webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The built-in handlers, by the names the default config uses.
pub fn builtin(_deps: &HandlerDeps) -> HandlerRegistry {
    HandlerRegistry::new()
}
