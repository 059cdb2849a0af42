//! Secrets on AWS: every `secretsmanager:` / `ssm:` reference a
//! configuration can reach is fetched once at cold start, concurrently (the
//! Secrets Manager secrets in one batch request per 20, each parameter in
//! one request, however many JSON keys are read from a secret), into a cache
//! that resolves them for the rest of the container's life. Values are never
//! logged; errors carry the service's error code and the reference's name.

use crate::sdk::Clients;
use std::collections::{BTreeSet, HashMap};
use tracing::{info, warn};
use webhooks_core::secret::{resolve_basic, Secret, SecretError, SecretRef, SecretResolver};

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
        let s = match SecretRef::parse(&s) {
            Ok(SecretRef::Env(name)) => match env(name) {
                Some(v) => v,
                None => continue,
            },
            _ => s,
        };
        if is_aws_reference(&s) {
            out.insert(s);
        }
    }
    out
}

pub(crate) fn is_aws_reference(s: &str) -> bool {
    SecretRef::parse(s).is_ok_and(|r| r.is_aws())
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
        // Each secret fetched once, however many JSON keys are read from it.
        let sources: BTreeSet<&str> = refs.iter().map(|r| split_key(r).0).collect();
        let raw = fetch_sources(clients, sources).await;
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
        if let Ok(SecretRef::Env(name)) = SecretRef::parse(reference) {
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

/// `secretsmanager:NAME#key` -> (`secretsmanager:NAME`, `Some(key)`): the
/// secret to fetch, and the JSON key to read from it.
fn split_key(reference: &str) -> (&str, Option<&str>) {
    match SecretRef::parse(reference) {
        Ok(SecretRef::SecretsManager { key: Some(key), .. }) => {
            (&reference[..reference.len() - key.len() - 1], Some(key))
        }
        _ => (reference, None),
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

/// Reads every source at once: the Secrets Manager secrets in one
/// `BatchGetSecretValue` per 20 (a cold start pays one round trip, and one
/// connection, for all of them instead of one each), everything else, and
/// any secret the batch did not answer for, one request each, all
/// concurrently (a lone Secrets Manager secret is one `GetSecretValue`). A
/// batch the service refuses (an older role without
/// `secretsmanager:BatchGetSecretValue`) falls back to one request each; a
/// batch without an answer fails its secrets.
async fn fetch_sources<'a>(
    clients: &Clients,
    sources: BTreeSet<&'a str>,
) -> HashMap<&'a str, Result<Secret, SecretError>> {
    let (mut batchable, mut single): (Vec<&str>, Vec<&str>) = sources
        .into_iter()
        .partition(|s| matches!(SecretRef::parse(s), Ok(SecretRef::SecretsManager { key: None, .. })));
    if batchable.len() < 2 {
        single.append(&mut batchable);
    }
    let batched = futures::future::join_all(batchable.chunks(BATCH_MAX).map(|ids| batch_get(clients, ids.to_vec())));
    let (batched, singles) = futures::join!(batched, fetch_each(clients, single));
    let mut out: HashMap<&str, Result<Secret, SecretError>> = singles.into_iter().collect();
    let mut leftover = Vec::new();
    for (answered, unanswered) in batched {
        out.extend(answered);
        leftover.extend(unanswered);
    }
    out.extend(fetch_each(clients, leftover).await);
    out
}

/// One request per source, all at once.
async fn fetch_each<'a>(clients: &Clients, sources: Vec<&'a str>) -> Vec<(&'a str, Result<Secret, SecretError>)> {
    futures::future::join_all(
        sources
            .into_iter()
            .map(|src| async move { (src, fetch_raw(clients, src).await) }),
    )
    .await
}

/// `BatchGetSecretValue` takes at most 20 secret ids.
const BATCH_MAX: usize = 20;

/// A batch's outcome: each answered reference with its value or error, and
/// the references it left unanswered.
type Batched<'a> = (Vec<(&'a str, Result<Secret, SecretError>)>, Vec<&'a str>);

/// One `BatchGetSecretValue` for `references` (`secretsmanager:NAME`):
/// what it answered, and the references to fetch one by one (all of them
/// when the call itself failed).
async fn batch_get<'a>(clients: &Clients, references: Vec<&'a str>) -> Batched<'a> {
    let ids: Vec<String> = references.iter().map(|r| secret_id(r).to_string()).collect();
    match clients
        .secrets_manager
        .batch_get_secret_value()
        .set_secret_id_list(Some(ids))
        .send()
        .await
    {
        Ok(out) => match_batch(references, &out),
        // The service answered and refused the batch (an older role
        // without the permission): the secrets may still be readable one
        // by one.
        Err(e) if e.as_service_error().is_some() => {
            info!(reason = %secrets_manager_error(&e), "BatchGetSecretValue refused; fetching the secrets one by one");
            (Vec::new(), references)
        }
        // No answer (a timeout, a connection refused): one request each
        // would only wait as long again, past the cold start's limit; each
        // secret is reported unavailable, and fetched again with backoff.
        Err(e) => {
            let reason = secrets_manager_error(&e);
            let failed = references
                .into_iter()
                .map(|r| {
                    let error = SecretError::Source {
                        name: r.to_string(),
                        reason: reason.clone(),
                    };
                    (r, Err(error))
                })
                .collect();
            (failed, Vec::new())
        }
    }
}

/// The secret id in `secretsmanager:ID`, as `SecretRef` reads it.
fn secret_id(reference: &str) -> &str {
    match SecretRef::parse(reference) {
        Ok(SecretRef::SecretsManager { name, .. }) => name,
        _ => reference,
    }
}

/// A Secrets Manager secret's value: its string, else its binary.
fn value_of(string: Option<&str>, binary: Option<&aws_sdk_secretsmanager::primitives::Blob>) -> Option<Secret> {
    match (string, binary) {
        (Some(s), _) => Some(Secret::new(s.as_bytes().to_vec())),
        (None, Some(b)) => Some(Secret::new(b.as_ref().to_vec())),
        (None, None) => None,
    }
}

/// Pairs a batch's answers with the references asked for: a value whose
/// name or ARN is the id asked for, or an error naming that id. A reference
/// the answer does not mention (a partial ARN, say) is left over, to be
/// fetched alone rather than reported missing.
fn match_batch<'a>(
    references: Vec<&'a str>,
    out: &aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput,
) -> Batched<'a> {
    let mut answered = Vec::new();
    let mut leftover = Vec::new();
    for reference in references {
        let id = secret_id(reference);
        let source = |reason: String| SecretError::Source {
            name: reference.to_string(),
            reason,
        };
        let value = out
            .secret_values()
            .iter()
            .find(|v| v.name() == Some(id) || v.arn() == Some(id));
        let error = out.errors().iter().find(|e| e.secret_id() == Some(id));
        let result = match (value, error) {
            (Some(v), _) => value_of(v.secret_string(), v.secret_binary()).ok_or_else(|| source("has no value".into())),
            (None, Some(e)) => Err(source(code_and_message(e.error_code(), e.message()))),
            (None, None) => {
                leftover.push(reference);
                continue;
            }
        };
        answered.push((reference, result));
    }
    (answered, leftover)
}

/// Reads a whole secret (`secretsmanager:NAME`) or parameter (`ssm:NAME`).
async fn fetch_raw(clients: &Clients, reference: &str) -> Result<Secret, SecretError> {
    let source = |reason: String| SecretError::Source {
        name: reference.to_string(),
        reason,
    };
    let parsed = SecretRef::parse(reference)?;
    if let SecretRef::SecretsManager { name, key: None } = parsed {
        let out = clients
            .secrets_manager
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| source(secrets_manager_error(&e)))?;
        return value_of(out.secret_string(), out.secret_binary()).ok_or_else(|| source("has no value".into()));
    }
    if let SecretRef::Ssm(name) = parsed {
        let out = clients
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| source(ssm_error(&e)))?;
        return out
            .parameter()
            .and_then(|p| p.value())
            .map(|v| Secret::new(v.as_bytes().to_vec()))
            .ok_or_else(|| source("has no value".into()));
    }
    Err(SecretError::bad_reference(reference))
}

/// A Secrets Manager error as the service's code (e.g.
/// `ResourceNotFoundException`) or the transport failure: what to fix, and
/// never a secret value.
fn secrets_manager_error<E, R>(e: &aws_sdk_secretsmanager::error::SdkError<E, R>) -> String
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => code_and_message(se.code(), se.message()),
        None => aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
    }
}

/// The same for an SSM Parameter Store error, typed by its own crate.
fn ssm_error<E, R>(e: &aws_sdk_ssm::error::SdkError<E, R>) -> String
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => code_and_message(se.code(), se.message()),
        None => aws_sdk_ssm::error::DisplayErrorContext(e).to_string(),
    }
}

fn code_and_message(code: Option<&str>, message: Option<&str>) -> String {
    format!("{}: {}", code.unwrap_or("error"), message.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::vars;
    use webhooks_core::config::DEFAULT_TOML;

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

    /// A batch's answer is matched to the references by name or ARN; an
    /// error names its id; what the answer does not mention is fetched
    /// alone, not reported missing.
    #[test]
    fn a_batch_answer_is_matched_by_name_or_arn_and_the_rest_left_over() {
        use aws_sdk_secretsmanager::operation::batch_get_secret_value::BatchGetSecretValueOutput;
        use aws_sdk_secretsmanager::types::{ApiErrorType, SecretValueEntry};
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:b-AbCdEf";
        let out = BatchGetSecretValueOutput::builder()
            .secret_values(SecretValueEntry::builder().name("a").secret_string("va").build())
            .secret_values(
                SecretValueEntry::builder()
                    .name("b")
                    .arn(arn)
                    .secret_string("vb")
                    .build(),
            )
            .errors(
                ApiErrorType::builder()
                    .secret_id("gone")
                    .error_code("ResourceNotFoundException")
                    .message("Secrets Manager can't find the specified secret.")
                    .build(),
            )
            .build();
        let by_arn = format!("secretsmanager:{arn}");
        let asked = vec![
            "secretsmanager:a",
            by_arn.as_str(),
            "secretsmanager:gone",
            "secretsmanager:b-partial",
        ];
        let (answered, leftover) = match_batch(asked, &out);
        let answered: HashMap<&str, Result<Secret, SecretError>> = answered.into_iter().collect();
        assert_eq!(answered["secretsmanager:a"].as_ref().expect("a").expose(), b"va");
        assert_eq!(answered[by_arn.as_str()].as_ref().expect("b by ARN").expose(), b"vb");
        let gone = answered["secretsmanager:gone"].as_ref().expect_err("gone");
        assert!(
            gone.to_string().contains("secretsmanager:gone") && gone.to_string().contains("ResourceNotFoundException"),
            "{gone}"
        );
        assert_eq!(leftover, ["secretsmanager:b-partial"]);
    }

    #[test]
    fn cache_resolves_all_reference_kinds_and_never_prints_values() {
        let cache = CachedSecrets {
            fetched: [("secretsmanager:a".to_string(), Ok(Secret::new("sa")))].into(),
            env: Box::new(vars(&[
                ("IND", "secretsmanager:a"),
                ("PLAIN", "p"),
                ("GONE", "ssm:/gone"),
            ])),
        };
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
