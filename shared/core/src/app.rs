//! Wiring: configuration + ports -> the ingest and processor pipelines. The
//! local command and the Lambda functions both build through here, so they
//! cannot drift apart.

use crate::config::AppConfig;
use crate::handlers::{self, HandlerDeps, HandlerRegistry};
use crate::pipeline::ingest::Ingest;
use crate::pipeline::process::Processor;
use crate::ports::admission::{Admission, EnqueueThenClaim};
use crate::ports::artifacts::ArtifactStore;
use crate::ports::queue::Queue;
use crate::ports::refusals::{NoRefusals, RefusalLog};
use crate::ports::store::EventStore;
use crate::provider::{ProviderError, Providers};
use crate::secret::{SecretError, SecretResolver};
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
    #[error("provider {provider} names handler `{handler}`, but no [destinations.{destination}] is configured")]
    UnknownDestination {
        provider: String,
        handler: String,
        destination: String,
    },
    #[error("HTTP client: {0}")]
    Http(String),
}

/// The two pipelines over one set of ports.
pub struct App {
    pub providers: Arc<Providers>,
    pub ingest: Arc<Ingest>,
    pub processor: Arc<Processor>,
}

/// What the app is built from.
pub struct Ports {
    pub store: Arc<dyn EventStore>,
    pub queue: Arc<dyn Queue>,
    pub artifacts: Arc<dyn ArtifactStore>,
    /// How ingest claims and enqueues: [`EnqueueThenClaim`] over the store
    /// and queue unless an adapter does both at once.
    pub admission: Arc<dyn Admission>,
    /// Where ingest keeps refused deliveries; [`NoRefusals`] unless set.
    pub refusals: Arc<dyn RefusalLog>,
}

impl Ports {
    /// Ports whose admission is the send-then-record protocol over `store` and `queue`.
    pub fn new(store: Arc<dyn EventStore>, queue: Arc<dyn Queue>, artifacts: Arc<dyn ArtifactStore>) -> Self {
        let admission = Arc::new(EnqueueThenClaim::new(store.clone(), queue.clone()));
        Self {
            store,
            queue,
            artifacts,
            admission,
            refusals: Arc::new(NoRefusals),
        }
    }

    /// The same ports with another admission.
    pub fn with_admission(self, admission: Arc<dyn Admission>) -> Self {
        Self { admission, ..self }
    }

    /// The same ports with a refusal log.
    pub fn with_refusals(self, refusals: Arc<dyn RefusalLog>) -> Self {
        Self { refusals, ..self }
    }
}

impl App {
    /// Builds providers (refusing to run with none), the built-in handlers
    /// and both pipelines.
    pub fn build(config: &AppConfig, secrets: &dyn SecretResolver, ports: Ports) -> Result<Self, AppError> {
        Self::build_with(config, secrets, ports, |_, _| {})
    }

    /// The same, with handlers of your own: `extra` registers them beside the
    /// built-in ones, with the same deps (HTTP client, artifacts, settings).
    pub fn build_with(
        config: &AppConfig,
        secrets: &dyn SecretResolver,
        ports: Ports,
        extra: impl FnOnce(&mut HandlerRegistry, &HandlerDeps),
    ) -> Result<Self, AppError> {
        let providers = Arc::new(Providers::build(&config.enabled_providers(), secrets)?);
        // Pending providers (a secret not fetched yet) count: they are retried.
        if providers.names().is_empty() && providers.pending().is_empty() {
            let why = providers
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
        register_destinations(config, secrets, &providers, &mut handler_registry)?;
        for (provider, name) in providers.handler_names() {
            if !handler_registry.contains(name) {
                return Err(AppError::UnknownHandler {
                    provider: provider.to_string(),
                    handler: name.to_string(),
                });
            }
        }
        let ingest = Arc::new(
            Ingest::new(
                providers.clone(),
                ports.admission,
                ports.store.clone(),
                config.ingest.clone(),
            )
            .with_refusals(ports.refusals),
        );
        let processor = Arc::new(Processor::new(
            providers.clone(),
            handler_registry,
            ports.store,
            ports.queue,
            config.retry.clone(),
            &config.ingest,
        ));
        Ok(Self {
            providers,
            ingest,
            processor,
        })
    }
}

/// Registers a [`Forward`](handlers::forward::Forward) handler for every
/// `forward:NAME` a provider uses (and no other code registered), from
/// `[destinations.NAME]`, each with a client of the destination's timeout.
/// Only used destinations are resolved, so an unused one's unset secret is
/// no concern; a used one that is not configured stops the start-up.
fn register_destinations(
    config: &AppConfig,
    secrets: &dyn SecretResolver,
    providers: &Providers,
    registry: &mut HandlerRegistry,
) -> Result<(), AppError> {
    for (provider, name) in providers.handler_names() {
        let Some(destination) = name.strip_prefix(handlers::forward::PREFIX) else {
            continue;
        };
        if registry.contains(name) {
            continue;
        }
        let Some(dest) = config.destinations.get(destination) else {
            return Err(AppError::UnknownDestination {
                provider: provider.to_string(),
                handler: name.to_string(),
                destination: destination.to_string(),
            });
        };
        let http = handlers::http_client(dest.timeout_secs).map_err(|e| AppError::Http(e.to_string()))?;
        let forward = handlers::forward::Forward::build(destination, dest, secrets, http)?;
        registry.register(name, Arc::new(forward));
    }
    Ok(())
}
