//! Handler settings: base URLs (defaults are the providers' real hosts, so
//! tests point them at a local server) and API credentials, which are secret
//! references only, like the verifiers' secrets.

use crate::secret::{describe_reference, Secret, SecretError, SecretRef, SecretResolver};
use serde::Deserialize;
use std::collections::BTreeMap;
use tracing::warn;

/// The `[handlers]` table as written: URLs and secret references.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HandlerSettings {
    /// Slack-compatible incoming webhook for notifications and alerts.
    pub notify_url: String,
    /// Moved to `[destinations.erp] url`: still read, so a file that sets
    /// it gets an error saying where it went instead of "unknown field".
    #[serde(default)]
    pub erp_forward_url: Option<String>,
    pub gigstack_api_url: String,
    pub gigstack_api_key: String,
    pub tusfacturas_api_url: String,
    pub tusfacturas_apikey: String,
    pub tusfacturas_apitoken: String,
    pub tusfacturas_usertoken: String,
    pub piriod_api_url: String,
    pub piriod_api_token: String,
    pub piriod_workspace: String,
    pub http_timeout_secs: u64,
}

/// The settings with every reference resolved. An unset optional value is
/// `None`: the handler that needs it fails permanently with a message naming
/// the setting, and the rest of the product runs.
#[derive(Debug, Clone, Default)]
pub struct ResolvedSettings {
    pub notify_url: Option<String>,
    pub gigstack_api_url: String,
    pub gigstack_api_key: Option<Secret>,
    pub tusfacturas_api_url: String,
    pub tusfacturas_apikey: Option<Secret>,
    pub tusfacturas_apitoken: Option<Secret>,
    pub tusfacturas_usertoken: Option<Secret>,
    pub piriod_api_url: String,
    pub piriod_api_token: Option<Secret>,
    pub piriod_workspace: Option<String>,
    pub http_timeout_secs: u64,
    /// Settings whose reference could not be read, with why (never a value).
    pub unreadable: BTreeMap<String, String>,
}

/// Reads one setting. Credentials must be references (`env:NAME`, ...): a
/// literal is refused, described without its text. Other settings (URLs)
/// may be literal. An unset reference is `None`; so is one an AWS source
/// could not read (a JSON secret without that key, say), with the reason
/// kept in `unreadable`: only the handlers that need it fail, and their
/// error names it.
pub(crate) struct Reader<'a> {
    resolver: &'a dyn SecretResolver,
    /// Put before a setting's name in errors (`handlers.`).
    prefix: &'static str,
    pub(crate) unreadable: BTreeMap<String, String>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(resolver: &'a dyn SecretResolver, prefix: &'static str) -> Self {
        Self {
            resolver,
            prefix,
            unreadable: BTreeMap::new(),
        }
    }

    fn read(&mut self, setting: &str, value: &str, credential: bool) -> Result<Option<Secret>, SecretError> {
        if value.is_empty() {
            return Ok(None);
        }
        match SecretRef::parse(value) {
            Ok(_) => {}
            Err(_) if !credential => return Ok(Some(Secret::new(value.as_bytes().to_vec()))),
            Err(_) => {
                return Err(SecretError::Setting {
                    setting: format!("{}{setting}", self.prefix),
                    reason: describe_reference(value),
                })
            }
        }
        match self.resolver.resolve(value) {
            Ok(s) => Ok(Some(s)),
            Err(SecretError::MissingEnv(_)) => Ok(None),
            Err(e @ SecretError::Source { .. }) => {
                warn!(setting, error = %e, "handler setting unavailable; the handlers that need it fail their events");
                self.unreadable.insert(setting.to_string(), e.to_string());
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) fn text(&mut self, setting: &str, value: &str) -> Result<Option<String>, SecretError> {
        Ok(self.read(setting, value, false)?.map(|s| s.expose_str()))
    }

    fn required_text(&mut self, setting: &str, value: &str) -> Result<String, SecretError> {
        Ok(self.text(setting, value)?.unwrap_or_default())
    }

    pub(crate) fn credential(&mut self, setting: &str, value: &str) -> Result<Option<Secret>, SecretError> {
        self.read(setting, value, true)
    }
}

impl HandlerSettings {
    pub fn resolve(&self, resolver: &dyn SecretResolver) -> Result<ResolvedSettings, SecretError> {
        let mut r = Reader::new(resolver, "handlers.");
        Ok(ResolvedSettings {
            notify_url: r.text("notify_url", &self.notify_url)?,
            gigstack_api_url: r.required_text("gigstack_api_url", &self.gigstack_api_url)?,
            gigstack_api_key: r.credential("gigstack_api_key", &self.gigstack_api_key)?,
            tusfacturas_api_url: r.required_text("tusfacturas_api_url", &self.tusfacturas_api_url)?,
            tusfacturas_apikey: r.credential("tusfacturas_apikey", &self.tusfacturas_apikey)?,
            tusfacturas_apitoken: r.credential("tusfacturas_apitoken", &self.tusfacturas_apitoken)?,
            tusfacturas_usertoken: r.credential("tusfacturas_usertoken", &self.tusfacturas_usertoken)?,
            piriod_api_url: r.required_text("piriod_api_url", &self.piriod_api_url)?,
            piriod_api_token: r.credential("piriod_api_token", &self.piriod_api_token)?,
            piriod_workspace: r.text("piriod_workspace", &self.piriod_workspace)?,
            http_timeout_secs: self.http_timeout_secs,
            unreadable: r.unreadable,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::secret::{MapResolver, Secret, SecretError, SecretResolver};

    #[test]
    fn literals_references_and_unset() {
        let cfg = crate::config::AppConfig::builtin().unwrap().handlers;
        let r = MapResolver::default().with("GIGSTACK_API_KEY", "k");
        let s = cfg.resolve(&r).unwrap();
        assert_eq!(s.gigstack_api_key.unwrap().expose(), b"k");
        assert!(s.notify_url.is_none());
        assert!(s.gigstack_api_url.starts_with("https://"));
    }

    #[test]
    fn the_gigstack_api_is_the_api_host() {
        let cfg = crate::config::AppConfig::builtin().unwrap().handlers;
        assert_eq!(cfg.gigstack_api_url, "https://api.gigstack.io/v2");
    }

    #[test]
    fn a_literal_credential_is_refused_without_being_echoed() {
        let mut cfg = crate::config::AppConfig::builtin().unwrap().handlers;
        cfg.piriod_api_token = "sk_live_pasted_value".into();
        let err = cfg.resolve(&MapResolver::default()).unwrap_err().to_string();
        assert!(err.contains("piriod_api_token"), "{err}");
        assert!(!err.contains("sk_live_pasted_value"), "{err}");
        // A URL may be literal.
        cfg.piriod_api_token = "env:PIRIOD_API_TOKEN".into();
        cfg.notify_url = "http://127.0.0.1:9/hook".into();
        assert_eq!(
            cfg.resolve(&MapResolver::default()).unwrap().notify_url.as_deref(),
            Some("http://127.0.0.1:9/hook")
        );
    }

    /// A resolver whose AWS source lacks one key of a JSON secret.
    struct NoKey;

    impl SecretResolver for NoKey {
        fn resolve(&self, reference: &str) -> Result<Secret, SecretError> {
            match reference {
                "secretsmanager:webhooks/handlers#gigstack_api_key" => Err(SecretError::Source {
                    name: reference.into(),
                    reason: "has no key `gigstack_api_key`".into(),
                }),
                "secretsmanager:webhooks/handlers#piriod_api_token" => Ok(Secret::new("tok")),
                _ => crate::secret::resolve_basic(reference, |_| None),
            }
        }
    }

    #[test]
    fn an_unreadable_credential_fails_only_its_handlers_and_is_named() {
        let mut cfg = crate::config::AppConfig::builtin().unwrap().handlers;
        cfg.gigstack_api_key = "secretsmanager:webhooks/handlers#gigstack_api_key".into();
        cfg.piriod_api_token = "secretsmanager:webhooks/handlers#piriod_api_token".into();
        let s = cfg.resolve(&NoKey).expect("the app still starts");
        assert!(s.gigstack_api_key.is_none());
        assert_eq!(s.piriod_api_token.as_ref().unwrap().expose(), b"tok");
        let err = super::super::http_call::missing_setting(
            &s,
            "gigstack.payment_complement",
            "gigstack_api_key",
            "GIGSTACK_API_KEY",
        );
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("has no key `gigstack_api_key`"), "{err}");
    }
}
