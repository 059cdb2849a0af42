//! Wiring: configuration + ports -> the ingest and processor pipelines. The
//! local command and the Lambda functions both build through here, so they
//! cannot drift apart.

use crate::artifacts::ArtifactStore;
use crate::config::AppConfig;
use crate::handlers::{self, HandlerDeps, HandlerRegistry};
use crate::ingest::Ingest;
use crate::intake::{ClaimThenEnqueue, Intake};
use crate::process::Processor;
use crate::provider::{ProviderError, Registry};
use crate::queue::Queue;
use crate::secret::{SecretError, SecretResolver};
use crate::store::EventStore;
use std::sync::Arc;

/// Why the application could not be assembled. Each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("handler settings: {0}")]
    Settings(#[from] SecretError),
    #[error("no provider is active: {0}")]
    NoProvider(String),
    #[error("provider {provider} names handler `{handler}`, which does not exist")]
    UnknownHandler { provider: String, handler: String },
    #[error("HTTP client: {0}")]
    Http(String),
}

/// The two pipelines over one set of ports.
pub struct App {
    pub registry: Arc<Registry>,
    pub ingest: Arc<Ingest>,
    pub processor: Arc<Processor>,
}

/// What the app is built from.
pub struct Ports {
    pub store: Arc<dyn EventStore>,
    pub queue: Arc<dyn Queue>,
    pub artifacts: Arc<dyn ArtifactStore>,
    /// How ingest claims and enqueues: [`ClaimThenEnqueue`] over the store
    /// and queue unless an adapter does both at once.
    pub intake: Arc<dyn Intake>,
}

impl Ports {
    /// Ports whose intake is the claim-then-enqueue protocol over `store` and `queue`.
    pub fn new(store: Arc<dyn EventStore>, queue: Arc<dyn Queue>, artifacts: Arc<dyn ArtifactStore>) -> Self {
        let intake = Arc::new(ClaimThenEnqueue::new(store.clone(), queue.clone()));
        Self {
            store,
            queue,
            artifacts,
            intake,
        }
    }

    /// The same ports with another intake.
    pub fn with_intake(self, intake: Arc<dyn Intake>) -> Self {
        Self { intake, ..self }
    }
}

impl App {
    /// Builds providers (refusing to run with none), the built-in handlers
    /// plus `extra` ones, and both pipelines.
    pub fn build(
        config: &AppConfig,
        secrets: &dyn SecretResolver,
        ports: Ports,
        extra: impl FnOnce(&mut HandlerRegistry, &HandlerDeps),
    ) -> Result<Self, AppError> {
        let registry = Arc::new(Registry::build(&config.enabled_providers(), secrets)?);
        if registry.names().is_empty() {
            let why = registry
                .disabled
                .iter()
                .map(|(p, e)| format!("{p}: {e}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(AppError::NoProvider(if why.is_empty() {
                "none is configured".into()
            } else {
                why
            }));
        }
        let settings = Arc::new(config.handlers.resolve(secrets)?);
        let http = handlers::http_client(settings.http_timeout_secs).map_err(|e| AppError::Http(e.to_string()))?;
        let deps = HandlerDeps {
            http,
            artifacts: ports.artifacts.clone(),
            settings,
        };
        let mut handler_registry = handlers::builtin(&deps);
        extra(&mut handler_registry, &deps);
        for provider in registry.iter() {
            for name in provider.handler_names() {
                if !handler_registry.contains(name) {
                    return Err(AppError::UnknownHandler {
                        provider: provider.name.clone(),
                        handler: name.to_string(),
                    });
                }
            }
        }
        let ingest = Arc::new(Ingest::new(registry.clone(), ports.intake, config.ingest.clone()));
        let processor = Arc::new(Processor::new(
            registry.clone(),
            handler_registry,
            ports.store,
            ports.queue,
            config.retry.clone(),
            &config.ingest,
        ));
        Ok(Self {
            registry,
            ingest,
            processor,
        })
    }
}
