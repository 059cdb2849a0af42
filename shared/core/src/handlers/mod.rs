//! Business handlers, run by the processor for each (provider, event type).
//!
//! A handler makes its real HTTP call (base URLs are configuration, so tests
//! point them at a local server) and returns a JSON result that is recorded
//! on the event. Its error says whether a retry can help.

pub mod forward;
pub mod gigstack;
pub mod http_call;
pub mod notify;
pub mod piriod;
mod settings;
#[cfg(test)]
mod test_support;
pub mod tusfacturas;

pub use settings::{HandlerSettings, ResolvedSettings};

use crate::event::Event;
use crate::ports::artifacts::ArtifactStore;
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

/// The built-in handlers, by the names the default config
/// (`shared/core/config/default.toml`) uses, so a fresh install runs every seed
/// provider's handlers without code (`forward:NAME` handlers are built from
/// `[destinations]` by [`crate::app::App::build_with`]). Each handler keeps clones of the shared
/// client (one connection pool), artifact store and settings.
pub fn builtin(deps: &HandlerDeps) -> HandlerRegistry {
    let mut registry = HandlerRegistry::new();
    registry
        .register(
            "gigstack.notify_invoice_created",
            Arc::new(gigstack::NotifyInvoiceCreated::new(deps)),
        )
        .register(
            "gigstack.store_invoice_pdf",
            Arc::new(gigstack::StoreInvoicePdf::new(deps)),
        )
        .register(
            "gigstack.payment_complement",
            Arc::new(gigstack::PaymentComplement::new(deps)),
        )
        .register(
            "gigstack.alert_invalid_client",
            Arc::new(gigstack::AlertInvalidClient::new(deps)),
        )
        .register("tusfacturas.lookup", Arc::new(tusfacturas::Lookup::new(deps)))
        .register("piriod.fetch_object", Arc::new(piriod::FetchObject::new(deps)));
    registry
}

#[cfg(test)]
mod builtin_tests {
    use super::*;

    /// Every handler name the default config uses is registered, so
    /// `App::build` does not refuse the built-in configuration.
    #[test]
    fn builtin_covers_the_default_config() {
        let config = crate::config::AppConfig::builtin().expect("default config");
        let dir = tempfile::tempdir().expect("tempdir");
        let deps = HandlerDeps {
            http: http_client(5).expect("client"),
            artifacts: Arc::new(crate::ports::artifacts::LocalDir::new(dir.path())),
            settings: Arc::new(ResolvedSettings::default()),
        };
        let registry = builtin(&deps);
        let mut names = 0;
        for provider in config.providers.values() {
            for list in provider.config.handlers.values() {
                for name in list {
                    if let Some(dest) = name.strip_prefix(forward::PREFIX) {
                        assert!(config.destinations.contains_key(dest), "{name} has no destination");
                        names += 1;
                        continue;
                    }
                    assert!(registry.contains(name), "{name} is not registered");
                    names += 1;
                }
            }
        }
        assert!(names >= 7, "the default config names {names} handlers");
    }
}
