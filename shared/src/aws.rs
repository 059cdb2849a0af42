//! What the two Lambda functions share on AWS: the environment they run in
//! (fails fast naming the missing variable), SDK configuration (with an
//! optional endpoint override for an emulator), the clients built once, the
//! first connections opened during init, secrets fetched once at cold start
//! into a cache, and the wiring of the DynamoDB / SQS / S3 adapters into
//! [`App::build`]. No verification, claiming or dispatch logic lives here.

use crate::app::{App, AppError, Ports};
use crate::artifacts::s3::S3Artifacts;
use crate::config::{AppConfig, ConfigError, DEFAULT_TOML};
use crate::handlers::{HandlerDeps, HandlerRegistry};
use crate::queue::sqs::SqsQueue;
use crate::secret::{resolve_basic, Secret, SecretError, SecretResolver};
use crate::store::dynamodb::DynamoStore;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Prefix of a reference to an AWS Secrets Manager secret (`secretsmanager:NAME`
/// or `secretsmanager:NAME#json_key`).
pub const SECRETS_MANAGER: &str = "secretsmanager:";
/// Prefix of a reference to an SSM Parameter Store parameter (`ssm:/NAME`).
pub const SSM: &str = "ssm:";

/// Why a function could not start. Each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("environment variable {0} is required but not set (or empty)")]
    MissingVar(&'static str),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("WEBHOOKS_CONFIG: {0}")]
    ConfigSource(SecretError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("cannot reach {what} during init: {reason}")]
    Unreachable { what: String, reason: String },
}

/// The typed environment of both functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEnv {
    /// `EVENTS_TABLE`: the DynamoDB table of event records.
    pub events_table: String,
    /// `QUEUE_URL`: the main SQS queue.
    pub queue_url: String,
    /// `DLQ_URL`: its dead-letter queue.
    pub dlq_url: String,
    /// `ARTIFACTS_BUCKET`: the S3 bucket for handler artifacts (invoice PDFs).
    pub artifacts_bucket: String,
    /// `ARTIFACTS_KMS_KEY_ID` (optional): SSE-KMS key; unset means SSE-S3 (AES256).
    pub artifacts_kms_key: Option<String>,
    /// `WEBHOOKS_CONFIG` (optional): a TOML overlay merged over the built-in
    /// config: a file path, or `ssm:NAME` / `secretsmanager:NAME` to read the
    /// text from Parameter Store / Secrets Manager.
    pub config: Option<String>,
    /// `AWS_ENDPOINT_URL` (optional): send every SDK call there (an emulator).
    pub endpoint_url: Option<String>,
}

impl AwsEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, AwsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AwsError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(AwsError::MissingVar(name));
        Ok(Self {
            events_table: required("EVENTS_TABLE")?,
            queue_url: required("QUEUE_URL")?,
            dlq_url: required("DLQ_URL")?,
            artifacts_bucket: required("ARTIFACTS_BUCKET")?,
            artifacts_kms_key: get("ARTIFACTS_KMS_KEY_ID"),
            config: get("WEBHOOKS_CONFIG"),
            endpoint_url: get("AWS_ENDPOINT_URL"),
        })
    }
}

/// Timeouts and retries for calls made while a provider waits for an answer:
/// short, so a sick dependency turns into a fast 503 the provider retries.
fn resilience() -> (RetryConfig, TimeoutConfig) {
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(500));
    let timeout = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    (retry, timeout)
}

/// SDK configuration from the environment (region, credentials of the
/// function's role), with `endpoint_url` overriding every service endpoint.
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let (retry, timeout) = resilience();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeout);
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The AWS API emulator a test should use: `WEBHOOKS_TEST_AWS_ENDPOINT`, or
/// `None` with a printed `SKIPPED` line when it is unset, so `cargo test`
/// works on a machine without moto. `scripts/test` sets
/// `WEBHOOKS_TEST_AWS_REQUIRED=1`, which turns a missing emulator into a
/// failure: the suite that CI runs can never pass by skipping.
pub fn emulator_endpoint_for_test(test: &str) -> Option<String> {
    match std::env::var("WEBHOOKS_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("WEBHOOKS_TEST_AWS_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!("{test}: WEBHOOKS_TEST_AWS_REQUIRED=1 but WEBHOOKS_TEST_AWS_ENDPOINT is not set")
        }
        _ => {
            println!(
                "SKIPPED {test}: WEBHOOKS_TEST_AWS_ENDPOINT is not set; run `eval \"$(scripts/aws-emulator start)\"` first"
            );
            None
        }
    }
}

/// SDK configuration for an emulator at `endpoint_url`: fixed dummy
/// credentials and region, so nothing about a real account is needed. For
/// tests and local tools.
pub async fn emulator_sdk_config(endpoint_url: &str) -> SdkConfig {
    let (retry, timeout) = resilience();
    let credentials = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "emulator");
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint_url)
        .credentials_provider(credentials)
        .retry_config(retry)
        .timeout_config(timeout)
        .load()
        .await
}

/// The SDK clients, built once per cold start and shared by every request.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub s3: aws_sdk_s3::Client,
    pub secrets_manager: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl Clients {
    /// Builds every client from one configuration. With an endpoint override
    /// (an emulator), S3 uses path-style addressing.
    pub fn new(config: &SdkConfig) -> Self {
        let mut s3 = aws_sdk_s3::config::Builder::from(config);
        if config.endpoint_url().is_some() {
            s3 = s3.force_path_style(true);
        }
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            secrets_manager: aws_sdk_secretsmanager::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
        }
    }

    /// Opens the connections the hot path uses (DynamoDB and SQS), so the
    /// first request does not pay DNS, TCP and TLS. Also proves the table and
    /// queue exist and the role may use them: a wrong name fails the cold
    /// start, not the first delivery.
    pub async fn warm_up(&self, env: &AwsEnv) -> Result<(), AwsError> {
        let table = self.dynamodb.describe_table().table_name(&env.events_table).send();
        let queue = self
            .sqs
            .get_queue_attributes()
            .queue_url(&env.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .send();
        let (table, queue) = tokio::join!(table, queue);
        table.map_err(|e| AwsError::Unreachable {
            what: format!("DynamoDB table {}", env.events_table),
            reason: DisplayErrorContext(&e).to_string(),
        })?;
        queue.map_err(|e| AwsError::Unreachable {
            what: format!("SQS queue {}", env.queue_url),
            reason: DisplayErrorContext(&e).to_string(),
        })?;
        Ok(())
    }
}

/// The adapters over the clients.
pub fn ports(env: &AwsEnv, clients: &Clients) -> (Arc<DynamoStore>, Arc<SqsQueue>, Arc<S3Artifacts>) {
    let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &env.events_table));
    let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), &env.queue_url, &env.dlq_url));
    let artifacts = Arc::new(S3Artifacts::new(
        clients.s3.clone(),
        &env.artifacts_bucket,
        env.artifacts_kms_key.clone(),
    ));
    (store, queue, artifacts)
}

/// Everything a function needs after a cold start.
pub struct Runtime {
    pub app: App,
    pub queue: Arc<SqsQueue>,
    pub store: Arc<DynamoStore>,
    pub clients: Clients,
}

/// A function's cold start from its environment, with the built-in handlers
/// only; logs how long it took under `function`'s name.
pub async fn init(function: &str, env: &AwsEnv) -> Result<Runtime, AwsError> {
    let started = std::time::Instant::now();
    let sdk = sdk_config(env.endpoint_url.as_deref()).await;
    let runtime = cold_start(env, &sdk, |_, _| {}).await?;
    info!(function, init_ms = started.elapsed().as_millis() as u64, "initialised");
    Ok(runtime)
}

/// The whole cold start after the SDK config: clients, warm-up, config
/// (built-in + `WEBHOOKS_CONFIG`), secrets prefetched once, adapters and the
/// app with `extra` handlers.
pub async fn cold_start(
    env: &AwsEnv,
    sdk: &SdkConfig,
    extra: impl FnOnce(&mut HandlerRegistry, &HandlerDeps),
) -> Result<Runtime, AwsError> {
    let clients = Clients::new(sdk);
    // The config text may itself live in SSM / Secrets Manager.
    let (overlay, warm) = tokio::join!(load_overlay(env, &clients), clients.warm_up(env));
    warm?;
    let overlay = overlay?;
    let config = AppConfig::from_overlay(overlay.as_ref().map(|(o, t)| (o.as_str(), t.as_str())))?;
    let mut texts = vec![DEFAULT_TOML.to_string()];
    texts.extend(overlay.map(|(_, t)| t));
    let secrets = CachedSecrets::prefetch(&clients, &texts, |n| std::env::var(n).ok()).await;
    let runtime = build(env, clients, &config, &secrets, extra)?;
    Ok(runtime)
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
    let app = App::build(
        config,
        secrets,
        Ports::new(store.clone(), queue.clone(), artifacts),
        extra,
    )?;
    for (provider, why) in &app.registry.disabled {
        warn!(%provider, reason = %why, "provider disabled");
    }
    info!(providers = ?app.registry.names(), "ready");
    Ok(Runtime {
        app,
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
    if source.starts_with(SECRETS_MANAGER) || source.starts_with(SSM) {
        let text = fetch(clients, source).await.map_err(AwsError::ConfigSource)?;
        return Ok(Some((source.to_string(), text.expose_str())));
    }
    let text = std::fs::read_to_string(source).map_err(|e| ConfigError::Read {
        path: source.to_string(),
        source: e,
    })?;
    Ok(Some((source.to_string(), text)))
}

/// Every AWS reference a configuration can resolve: string values starting
/// with `secretsmanager:` / `ssm:`, and `env:NAME` values whose variable
/// holds such a reference (the template points `GIGSTACK_WEBHOOK_SECRET` at a
/// secret name, so the built-in config needs no change on AWS).
pub fn aws_references(toml_texts: &[String], env: impl Fn(&str) -> Option<String>) -> BTreeSet<String> {
    fn walk(v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::String(s) => out.push(s.clone()),
            toml::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            toml::Value::Table(t) => t.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut strings = Vec::new();
    for text in toml_texts {
        if let Ok(table) = text.parse::<toml::Table>() {
            walk(&toml::Value::Table(table), &mut strings);
        }
    }
    let mut out = BTreeSet::new();
    for s in strings {
        let s = match s.strip_prefix("env:") {
            Some(name) => match env(name) {
                Some(v) => v,
                None => continue,
            },
            None => s,
        };
        if is_aws_reference(&s) {
            out.insert(s);
        }
    }
    out
}

fn is_aws_reference(s: &str) -> bool {
    s.strip_prefix(SECRETS_MANAGER)
        .or_else(|| s.strip_prefix(SSM))
        .is_some_and(|name| !name.is_empty())
}

/// Secrets fetched once at cold start. Resolves `secretsmanager:` / `ssm:`
/// from the cache, `env:NAME` from the environment (following a variable
/// whose value is itself an AWS reference). Never logs a value.
pub struct CachedSecrets {
    fetched: HashMap<String, Result<Secret, SecretError>>,
    env: EnvLookup,
}

/// Reads an environment variable (the process environment, or a map in tests).
type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

impl std::fmt::Debug for CachedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.fetched.keys().collect();
        names.sort();
        f.debug_struct("CachedSecrets").field("names", &names).finish()
    }
}

impl CachedSecrets {
    /// Fetches every AWS reference found in `toml_texts` (concurrently) and
    /// keeps the results, failures included, so resolution names what failed.
    pub async fn prefetch(
        clients: &Clients,
        toml_texts: &[String],
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        let refs = aws_references(toml_texts, &env);
        // One request per secret, however many JSON keys are read from it.
        let sources: BTreeSet<&str> = refs.iter().map(|r| split_key(r).0).collect();
        let fetches = sources
            .into_iter()
            .map(|src| async move { (src, fetch_raw(clients, src).await) });
        let raw: HashMap<&str, Result<Secret, SecretError>> =
            futures::future::join_all(fetches).await.into_iter().collect();
        let fetched: HashMap<String, Result<Secret, SecretError>> = refs
            .iter()
            .map(|r| {
                let (src, key) = split_key(r);
                let got = raw
                    .get(src)
                    .cloned()
                    .unwrap_or_else(|| Err(SecretError::bad_reference(r)));
                (r.clone(), select_key(r, got, key))
            })
            .collect();
        let failed = fetched.values().filter(|r| r.is_err()).count();
        info!(secrets = fetched.len(), failed, "secrets prefetched");
        for (name, result) in &fetched {
            if let Err(e) = result {
                warn!(secret = %name, error = %e, "secret not available");
            }
        }
        Self {
            fetched,
            env: Box::new(env),
        }
    }

    /// A cache over given values (tests).
    pub fn from_values(
        values: impl IntoIterator<Item = (String, String)>,
        env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            fetched: values
                .into_iter()
                .map(|(k, v)| (k, Ok(Secret::new(v.into_bytes()))))
                .collect(),
            env: Box::new(env),
        }
    }

    /// How many references were fetched (successfully or not).
    pub fn len(&self) -> usize {
        self.fetched.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fetched.is_empty()
    }

    fn cached(&self, reference: &str) -> Result<Secret, SecretError> {
        match self.fetched.get(reference) {
            Some(r) => r.clone(),
            None => Err(SecretError::Source {
                name: reference.to_string(),
                reason: "was not prefetched at cold start".into(),
            }),
        }
    }
}

impl SecretResolver for CachedSecrets {
    fn resolve(&self, reference: &str) -> Result<Secret, SecretError> {
        if is_aws_reference(reference) {
            return self.cached(reference);
        }
        if let Some(name) = reference.strip_prefix("env:") {
            if let Some(value) = (self.env)(name).filter(|v| is_aws_reference(v)) {
                return self.cached(&value);
            }
        }
        resolve_basic(reference, |name| (self.env)(name))
    }
}

/// Reads one reference from Secrets Manager or Parameter Store.
/// `secretsmanager:NAME#key` reads `key` from a JSON secret.
pub async fn fetch(clients: &Clients, reference: &str) -> Result<Secret, SecretError> {
    let (source, key) = split_key(reference);
    let raw = fetch_raw(clients, source).await;
    select_key(reference, raw, key)
}

/// `secretsmanager:NAME#key` -> (`secretsmanager:NAME`, `Some(key)`).
fn split_key(reference: &str) -> (&str, Option<&str>) {
    match reference.strip_prefix(SECRETS_MANAGER).and_then(|r| r.split_once('#')) {
        Some((name, key)) => (&reference[..SECRETS_MANAGER.len() + name.len()], Some(key)),
        None => (reference, None),
    }
}

fn select_key(reference: &str, raw: Result<Secret, SecretError>, key: Option<&str>) -> Result<Secret, SecretError> {
    let source = |reason: String| SecretError::Source {
        name: reference.to_string(),
        reason,
    };
    let raw = raw.map_err(|e| match e {
        SecretError::Source { reason, .. } => source(reason),
        other => other,
    })?;
    let Some(key) = key else {
        return Ok(raw);
    };
    let json: serde_json::Value =
        serde_json::from_slice(raw.expose()).map_err(|_| source("is not a JSON object".into()))?;
    match json.get(key) {
        Some(serde_json::Value::String(s)) => Ok(Secret::new(s.as_bytes().to_vec())),
        Some(v) if !v.is_null() => Ok(Secret::new(v.to_string().into_bytes())),
        _ => Err(source(format!("has no key `{key}`"))),
    }
}

/// Reads a whole secret (`secretsmanager:NAME`) or parameter (`ssm:NAME`).
async fn fetch_raw(clients: &Clients, reference: &str) -> Result<Secret, SecretError> {
    let source = |reason: String| SecretError::Source {
        name: reference.to_string(),
        reason,
    };
    if let Some(name) = reference.strip_prefix(SECRETS_MANAGER) {
        let out = clients
            .secrets_manager
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| source(error_code(&e)))?;
        return match (out.secret_string(), out.secret_binary()) {
            (Some(s), _) => Ok(Secret::new(s.as_bytes().to_vec())),
            (None, Some(b)) => Ok(Secret::new(b.as_ref().to_vec())),
            (None, None) => Err(source("has no value".into())),
        };
    }
    if let Some(name) = reference.strip_prefix(SSM) {
        let out = clients
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| source(error_code(&e)))?;
        return out
            .parameter()
            .and_then(|p| p.value())
            .map(|v| Secret::new(v.as_bytes().to_vec()))
            .ok_or_else(|| source("has no value".into()));
    }
    Err(SecretError::bad_reference(reference))
}

/// The service's error code (e.g. `ResourceNotFoundException`), or the
/// transport failure: what to fix, and never a secret value.
fn error_code<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> String {
    match e.as_service_error() {
        Some(se) => format!("{}: {}", se.code().unwrap_or("error"), se.message().unwrap_or("")),
        None => DisplayErrorContext(e).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |n| map.get(n).cloned()
    }

    #[test]
    fn env_names_the_missing_variable() {
        let all = [
            ("EVENTS_TABLE", "t"),
            ("QUEUE_URL", "q"),
            ("DLQ_URL", "d"),
            ("ARTIFACTS_BUCKET", "b"),
        ];
        let env = AwsEnv::from_lookup(vars(&all)).expect("test value");
        assert_eq!(env.events_table, "t");
        assert!(env.config.is_none() && env.endpoint_url.is_none());
        for skip in 0..all.len() {
            let mut some: Vec<(&str, &str)> = all.to_vec();
            let (missing, _) = some.remove(skip);
            let err = AwsEnv::from_lookup(vars(&some)).expect_err("should fail");
            assert!(err.to_string().contains(missing), "{err}");
        }
        let mut blank = all.to_vec();
        blank[1] = ("QUEUE_URL", "  ");
        assert!(AwsEnv::from_lookup(vars(&blank))
            .expect_err("should fail")
            .to_string()
            .contains("QUEUE_URL"));
    }

    #[test]
    fn references_are_found_directly_and_through_env() {
        let texts = vec![
            DEFAULT_TOML.to_string(),
            r#"
            [providers.x]
            verifier = { scheme = "hmac", header = "X", secrets = ["secretsmanager:direct", "ssm:/p/q"] }
            [handlers]
            notify_url = "ssm:/notify"
            "#
            .to_string(),
        ];
        let env = vars(&[
            ("GIGSTACK_WEBHOOK_SECRET", "secretsmanager:webhooks/gigstack#current"),
            ("TF_WEBHOOK_TOKEN", "plain-value"),
        ]);
        assert_eq!(split_key("secretsmanager:a/b#k"), ("secretsmanager:a/b", Some("k")));
        assert_eq!(split_key("ssm:/a#b"), ("ssm:/a#b", None));
        let refs = aws_references(&texts, env);
        let got: Vec<&str> = refs.iter().map(String::as_str).collect();
        assert_eq!(
            got,
            [
                "secretsmanager:direct",
                "secretsmanager:webhooks/gigstack#current",
                "ssm:/notify",
                "ssm:/p/q"
            ]
        );
    }

    #[test]
    fn cache_resolves_all_reference_kinds_and_never_prints_values() {
        let cache = CachedSecrets::from_values(
            [("secretsmanager:a".to_string(), "sa".to_string())],
            vars(&[("IND", "secretsmanager:a"), ("PLAIN", "p"), ("GONE", "ssm:/gone")]),
        );
        assert_eq!(cache.resolve("secretsmanager:a").expect("test value").expose(), b"sa");
        assert_eq!(cache.resolve("env:IND").expect("test value").expose(), b"sa");
        assert_eq!(cache.resolve("env:PLAIN").expect("test value").expose(), b"p");
        assert!(matches!(cache.resolve("literal:l"), Err(SecretError::BadReference(_))));
        assert!(matches!(cache.resolve("env:NOPE"), Err(SecretError::MissingEnv(_))));
        let err = cache.resolve("env:GONE").expect_err("should fail");
        assert!(err.to_string().contains("ssm:/gone"), "{err}");
        assert!(!format!("{cache:?}").contains("sa\""), "{cache:?}");
    }
}
