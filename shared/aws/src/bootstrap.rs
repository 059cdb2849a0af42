//! The Lambda functions' cold start, in order: SDK clients; then, at the
//! same time, the first connections and the config overlay followed by
//! every secret the config names (fetched once, concurrently); then the
//! app over the DynamoDB / SQS / S3 adapters through [`App::build`], the
//! same wiring as the local command, plus the AWS-only `eventbridge:BUS`
//! handlers the config names.
//! No verification, claiming or dispatch logic lives here.

use crate::dynamodb::DynamoRefusals;
use crate::dynamodb::DynamoStore;
use crate::emf::Emf;
use crate::env::AwsEnv;
use crate::sdk::{sdk_config, Clients};
use crate::secrets::{fetch, is_aws_reference, CachedSecrets};
use crate::sqs::SqsQueue;
use crate::AwsError;
use aws_config::SdkConfig;
use std::sync::Arc;
use tracing::{error, info, warn};
use webhooks_core::app::{App, Ports};
use webhooks_core::config::{AppConfig, ConfigError, DEFAULT_TOML};
use webhooks_core::handlers::{HandlerDeps, HandlerRegistry};
use webhooks_core::ports::artifacts::{ArtifactError, ArtifactStore};
use webhooks_core::ports::refusals::RefusalBounds;
use webhooks_core::provider::{Provider, Providers};
use webhooks_core::secret::SecretResolver;

/// The adapters over the clients. The artifact store is the S3 bucket with
/// feature `artifacts-s3` (the processor's build), else [`NoArtifacts`].
pub fn ports(env: &AwsEnv, clients: &Clients) -> (Arc<DynamoStore>, Arc<SqsQueue>, Arc<dyn ArtifactStore>) {
    let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &env.events_table));
    let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), &env.queue_url, &env.dlq_url));
    #[cfg(feature = "artifacts-s3")]
    let artifacts: Arc<dyn ArtifactStore> = Arc::new(crate::s3::S3Artifacts::new(
        clients.s3.clone(),
        &env.artifacts_bucket,
        env.artifacts_kms_key.clone(),
    ));
    #[cfg(not(feature = "artifacts-s3"))]
    let artifacts: Arc<dyn ArtifactStore> = Arc::new(NoArtifacts);
    (store, queue, artifacts)
}

/// The artifact store of a build without S3 (the ingest function): only
/// handlers store artifacts and the ingest runs none, so nothing calls it;
/// were something to, it gets a plain "unavailable" naming why, never a
/// silent success.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoArtifacts;

#[async_trait::async_trait]
impl ArtifactStore for NoArtifacts {
    async fn put(&self, path: &str, _bytes: &[u8], _content_type: &str) -> Result<String, ArtifactError> {
        Err(ArtifactError::Unavailable(format!(
            "cannot store `{path}`: this function is built without S3 (feature `artifacts-s3`); artifacts are stored by the processor"
        )))
    }
}

/// Everything a function needs after a cold start.
pub struct Runtime {
    pub app: App,
    /// What this invocation recorded, written to the log by `flush` (the
    /// process's recorder once [`cold_start_with`] has installed it).
    pub metrics: Emf,
    pub queue: Arc<SqsQueue>,
    pub store: Arc<DynamoStore>,
    pub clients: Clients,
}

/// A function's cold start from its environment, with the built-in handlers
/// only; logs how long it took under `function`'s name.
pub async fn init(function: &str, env: &AwsEnv) -> Result<Runtime, AwsError> {
    let started = std::time::Instant::now();
    let sdk = sdk_config(env.endpoint_url.as_deref()).await;
    let runtime = cold_start(env, &sdk).await?;
    info!(function, init_ms = started.elapsed().as_millis() as u64, "initialised");
    Ok(runtime)
}

/// The whole cold start after the SDK config: clients, warm-up, config
/// (built-in + `WEBHOOKS_CONFIG`), secrets prefetched once, adapters and the
/// app with the built-in handlers.
pub async fn cold_start(env: &AwsEnv, sdk: &SdkConfig) -> Result<Runtime, AwsError> {
    cold_start_with(env, sdk, |_, _| {}).await
}

/// The same, with handlers of your own: `extra` registers them beside the
/// built-in ones (see [`App::build_with`]). Installs the runtime's EMF
/// recorder as the process's, here rather than in [`init`], so a function
/// that adds handlers through this keeps its CloudWatch metrics (the first
/// runtime of a process keeps the recorder; a later one warns).
pub async fn cold_start_with(
    env: &AwsEnv,
    sdk: &SdkConfig,
    extra: impl FnOnce(&mut HandlerRegistry, &HandlerDeps),
) -> Result<Runtime, AwsError> {
    let clients = Clients::new(sdk);
    // The first connections to the table and the queue are made beside the
    // config and its secrets, not before them: a cold start costs the
    // longer of the two paths instead of their sum. The secrets come after
    // the overlay because the overlay names some (and may itself live in
    // SSM / Secrets Manager).
    let config_and_secrets = async {
        let overlay = load_overlay(env, &clients).await?;
        let mut texts = vec![DEFAULT_TOML.to_string()];
        texts.extend(overlay.as_ref().map(|(_, t)| t.clone()));
        let secrets = CachedSecrets::prefetch(&clients, &texts, |n| std::env::var(n).ok()).await;
        Ok::<_, AwsError>((overlay, texts, secrets))
    };
    // The first failure ends both: a table that cannot be reached is
    // reported without waiting for, or logging about, the secrets.
    let ((), (overlay, texts, secrets)) = tokio::try_join!(clients.warm_up(env), config_and_secrets)?;
    let config = AppConfig::from_overlay(overlay.as_ref().map(|(o, t)| (o.as_str(), t.as_str())))?;
    let runtime = build(env, clients, &config, &secrets, extra)?;
    if metrics::set_global_recorder(runtime.metrics.clone()).is_err() {
        warn!("a metrics recorder was already installed; CloudWatch metrics stay with it");
    }
    if !runtime.app.providers.pending().is_empty() {
        tokio::spawn(fetch_pending_secrets(
            runtime.app.providers.clone(),
            runtime.clients.clone(),
            texts,
        ));
    }
    Ok(runtime)
}

/// First wait before fetching a pending provider's secrets again; it
/// doubles up to [`PENDING_RETRY_MAX`].
pub const PENDING_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
pub const PENDING_RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// Fetches the secrets of the providers that could not get theirs at cold
/// start, with exponential backoff, until every one is served. Meanwhile
/// they answer 503 (the sender retries). Lambda runs this task only while
/// the container handles invocations, which is when it matters.
async fn fetch_pending_secrets(providers: Arc<Providers>, clients: Clients, texts: Vec<String>) {
    let mut wait = PENDING_RETRY_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        let secrets = CachedSecrets::prefetch(&clients, &texts, |n| std::env::var(n).ok()).await;
        for (name, config) in providers.pending() {
            match Provider::build(&name, &config, &secrets) {
                Ok(provider) => {
                    info!(provider = %name, "secret fetched; provider served");
                    providers.activate(provider);
                }
                Err(e) => {
                    error!(provider = %name, error = %e, retry_in_secs = wait.as_secs(), "provider's secret still unavailable");
                    providers.still_pending(&name, e.to_string());
                }
            }
        }
        if providers.pending().is_empty() {
            return;
        }
        wait = (wait * 2).min(PENDING_RETRY_MAX);
    }
}

/// Builds the app over the AWS adapters with an already loaded config and resolver.
pub fn build(
    env: &AwsEnv,
    clients: Clients,
    config: &AppConfig,
    secrets: &dyn SecretResolver,
    extra: impl FnOnce(&mut HandlerRegistry, &HandlerDeps),
) -> Result<Runtime, AwsError> {
    let (store, queue, artifacts) = ports(env, &clients);
    #[cfg(feature = "eventbridge")]
    let eventbridge = clients.eventbridge.clone();
    let used: Vec<String> = config
        .enabled_providers()
        .values()
        .flat_map(|p| p.handlers.values().flatten().cloned())
        .collect();
    let app = App::build_with(
        config,
        secrets,
        // Refused deliveries go to the same table (see `DynamoRefusals`).
        Ports::new(store.clone(), queue.clone(), artifacts).with_refusals(Arc::new(DynamoRefusals::new(
            clients.dynamodb.clone(),
            &env.events_table,
            RefusalBounds::default(),
        ))),
        |registry, deps| {
            // AWS-only handlers first, so `extra` may still replace one.
            #[cfg(feature = "eventbridge")]
            crate::eventbridge::register(registry, &eventbridge, used.iter().map(String::as_str));
            #[cfg(not(feature = "eventbridge"))]
            crate::eventbridge::register_unlinked(registry, used.iter().map(String::as_str));
            extra(registry, deps);
        },
    )?;
    for (provider, why) in &app.providers.disabled {
        warn!(%provider, reason = %why, "provider disabled");
    }
    for (provider, _) in app.providers.pending() {
        let reason = app.providers.pending_reason(&provider).unwrap_or_default();
        error!(%provider, %reason, "provider's secret could not be fetched; answering 503 and fetching again with backoff");
    }
    info!(providers = ?app.providers.names(), "ready");
    Ok(Runtime {
        app,
        metrics: Emf::new(&env.metrics_namespace),
        queue,
        store,
        clients,
    })
}

/// Reads the `WEBHOOKS_CONFIG` overlay: `(origin, text)`.
pub async fn load_overlay(env: &AwsEnv, clients: &Clients) -> Result<Option<(String, String)>, AwsError> {
    let Some(source) = env.config.as_deref() else {
        return Ok(None);
    };
    if is_aws_reference(source) {
        let text = fetch(clients, source).await.map_err(AwsError::ConfigSource)?;
        return Ok(Some((source.to_string(), text.expose_str())));
    }
    let text = std::fs::read_to_string(source).map_err(|e| ConfigError::Read {
        path: source.to_string(),
        source: e,
    })?;
    Ok(Some((source.to_string(), text)))
}

#[cfg(all(test, not(feature = "artifacts-s3")))]
mod tests {
    use super::*;

    /// The ingest's build has no S3: its artifact store refuses, saying why,
    /// rather than pretending to have stored the file.
    #[tokio::test]
    async fn without_s3_the_artifact_store_refuses_and_names_why() {
        let err = NoArtifacts
            .put("gigstack/inv_1.pdf", b"%PDF", "application/pdf")
            .await
            .expect_err("refused");
        assert!(matches!(err, ArtifactError::Unavailable(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("gigstack/inv_1.pdf") && text.contains("artifacts-s3"),
            "{text}"
        );
    }
}
