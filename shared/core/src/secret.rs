//! Secrets: where they come from (`env:NAME`, or a name resolved by an AWS
//! secret source) and a value type that never prints itself. A secret value
//! is never written in a configuration file: the file holds only references.

use hmac::Hmac;
use sha2::Sha256;
use std::fmt;
use std::sync::OnceLock;

/// A secret value. `Debug` and `Display` are redacted so a secret cannot reach a
/// log line or an error message by accident.
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
    /// HMAC-SHA256 keyed with this secret, made once: most schemes sign with
    /// it, and keying costs two hash blocks per delivery otherwise.
    hmac_sha256: OnceLock<Hmac<Sha256>>,
}

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            hmac_sha256: OnceLock::new(),
        }
    }

    /// The raw bytes, for keying an HMAC or a constant-time comparison.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret as text (lossy), for headers such as `Authorization`.
    pub fn expose_str(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// A fresh HMAC-SHA256 keyed with this secret.
    pub fn hmac_sha256(&self) -> Hmac<Sha256> {
        self.hmac_sha256
            .get_or_init(|| {
                <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(&self.bytes)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
            })
            .clone()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a secret reference could not be resolved. Names the variable or
/// parameter, never the value.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set (or is empty)")]
    MissingEnv(String),
    /// Holds [`describe_reference`]'s safe description, not the text itself:
    /// that text may be a secret pasted where a reference belongs.
    #[error("secret reference ({0}) is not understood: use env:NAME, secretsmanager:NAME or ssm:NAME")]
    BadReference(String),
    #[error("no secret is configured")]
    NoneConfigured,
    #[error("secret {name} could not be read: {reason}")]
    Source { name: String, reason: String },
    /// A public key reference resolved, but to no key of the scheme's kind
    /// (`reason` says which kind, never the text).
    #[error("key {name} is {reason}")]
    BadKey { name: String, reason: String },
    /// A credential setting holds a literal; `reason` describes it safely.
    /// `setting` is the full name (`handlers.piriod_api_token`).
    #[error(
        "{setting} must be a secret reference (env:NAME, secretsmanager:NAME or ssm:NAME), not a value ({reason})"
    )]
    Setting { setting: String, reason: String },
}

/// Resolves secret references. The local command resolves `env:` references;
/// the Lambda functions add an AWS-backed resolver that pre-fetches
/// `secretsmanager:` and `ssm:` names once at cold start.
pub trait SecretResolver: Send + Sync {
    fn resolve(&self, reference: &str) -> Result<Secret, SecretError>;
}

/// Resolves `env:NAME` from the process environment. Anything else (AWS
/// names) is an error here.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvResolver;

impl SecretResolver for EnvResolver {
    fn resolve(&self, reference: &str) -> Result<Secret, SecretError> {
        resolve_basic(reference, |name| std::env::var(name).ok())
    }
}

/// A secret reference, parsed: where a secret's value is. The one parser
/// of the grammar; every resolver and the AWS prefetch go through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretRef<'a> {
    /// `env:NAME`: an environment variable.
    Env(&'a str),
    /// `secretsmanager:NAME`, or `secretsmanager:NAME#key` for one key of a
    /// JSON secret.
    SecretsManager { name: &'a str, key: Option<&'a str> },
    /// `ssm:NAME`: a Parameter Store parameter (decrypted).
    Ssm(&'a str),
}

impl<'a> SecretRef<'a> {
    /// Parses a reference; an error describes it without repeating it (it
    /// may be a secret pasted where its reference belongs).
    pub fn parse(reference: &'a str) -> Result<Self, SecretError> {
        let non_empty = |name: &'a str| Some(name).filter(|n| !n.is_empty());
        let parsed = if let Some(name) = reference.strip_prefix("env:") {
            Some(SecretRef::Env(name))
        } else if let Some(rest) = reference.strip_prefix("secretsmanager:") {
            let (name, key) = match rest.split_once('#') {
                Some((name, key)) => (name, Some(key)),
                None => (rest, None),
            };
            non_empty(name).map(|name| SecretRef::SecretsManager { name, key })
        } else if let Some(name) = reference.strip_prefix("ssm:") {
            non_empty(name).map(SecretRef::Ssm)
        } else {
            None
        };
        parsed.ok_or_else(|| SecretError::bad_reference(reference))
    }

    /// Whether an AWS service holds it (Secrets Manager or Parameter Store).
    pub fn is_aws(&self) -> bool {
        !matches!(self, SecretRef::Env(_))
    }
}

/// Resolves `env:` through `lookup`; shared by every resolver so the
/// reference grammar lives in one place.
pub fn resolve_basic(reference: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Secret, SecretError> {
    match SecretRef::parse(reference) {
        Ok(SecretRef::Env(name)) => match lookup(name) {
            Some(v) if !v.is_empty() => Ok(Secret::new(v.into_bytes())),
            _ => Err(SecretError::MissingEnv(name.to_string())),
        },
        _ => Err(SecretError::bad_reference(reference)),
    }
}

impl SecretError {
    /// A reference that is not understood, described without its text.
    pub fn bad_reference(reference: &str) -> Self {
        SecretError::BadReference(describe_reference(reference))
    }
}

/// What an unreadable reference may show of itself in an error or a log
/// line: its scheme (the text before the first `:`) when that looks like
/// one, never the rest.
pub fn describe_reference(reference: &str) -> String {
    match reference.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.len() <= 20
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            format!("scheme `{scheme}:`")
        }
        _ => "no scheme: is a secret value written where its reference belongs?".to_string(),
    }
}

/// A resolver over a fixed map of names to values: for tests and benchmarks,
/// and for a program that embeds the pipelines and holds its secrets itself.
/// A reference is looked up whole, then as `env:NAME` with NAME in the map.
#[derive(Debug, Default, Clone)]
pub struct MapResolver(pub std::collections::HashMap<String, String>);

impl MapResolver {
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.to_string(), value.to_string());
        self
    }
}

impl SecretResolver for MapResolver {
    fn resolve(&self, reference: &str) -> Result<Secret, SecretError> {
        if let Some(v) = self.0.get(reference) {
            return Ok(Secret::new(v.as_bytes().to_vec()));
        }
        resolve_basic(reference, |name| self.0.get(name).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn env_reference_names_the_variable_when_missing() {
        let err = resolve_basic("env:NOPE_NOT_SET", |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable NOPE_NOT_SET is not set (or is empty)"
        );
    }

    #[test]
    fn map_resolves_env_references_only() {
        let r = MapResolver::default().with("A", "x");
        assert_eq!(r.resolve("env:A").unwrap().expose(), b"x");
        assert!(matches!(r.resolve("literal:y"), Err(SecretError::BadReference(_))));
        assert!(matches!(r.resolve("zzz"), Err(SecretError::BadReference(_))));
    }

    #[test]
    fn a_reference_that_is_not_understood_never_shows_its_text() {
        for pasted in [
            "whsec_S3cr3tValue",
            "literal:S3cr3tValue",
            "sk_live:S3cr3tValue",
            "a b:S3cr3tValue",
        ] {
            let msg = resolve_basic(pasted, |_| None).unwrap_err().to_string();
            assert!(!msg.contains("S3cr3tValue"), "{msg}");
        }
        let msg = resolve_basic("vault:prod/key", |_| None).unwrap_err().to_string();
        assert!(msg.contains("scheme `vault:`"), "{msg}");
        assert!(!msg.contains("prod/key"), "{msg}");
    }
}
