//! Handler settings: base URLs (defaults are the providers' real hosts, so
//! tests point them at a local server) and API credentials (secret references).

use crate::secret::{Secret, SecretError, SecretResolver};
use serde::Deserialize;

/// The `[handlers]` table as written: URLs and secret references.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HandlerSettings {
    /// Slack-compatible incoming webhook for notifications and alerts.
    pub notify_url: String,
    /// Where gigstack `invoice.cancelled` events are forwarded.
    pub erp_forward_url: String,
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
    pub erp_forward_url: Option<String>,
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
}

/// A value that is either literal text or a reference (`env:NAME`, ...).
/// An unset reference is `None`; a reference the resolver cannot read for
/// another reason is an error.
fn optional(value: &str, resolver: &dyn SecretResolver) -> Result<Option<Secret>, SecretError> {
    if value.is_empty() {
        return Ok(None);
    }
    let is_reference = ["env:", "secretsmanager:", "ssm:"].iter().any(|p| value.starts_with(p));
    if !is_reference {
        return Ok(Some(Secret::new(value.as_bytes().to_vec())));
    }
    match resolver.resolve(value) {
        Ok(s) => Ok(Some(s)),
        Err(SecretError::MissingEnv(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn optional_text(value: &str, resolver: &dyn SecretResolver) -> Result<Option<String>, SecretError> {
    Ok(optional(value, resolver)?.map(|s| s.expose_str()))
}

fn required_text(value: &str, resolver: &dyn SecretResolver) -> Result<String, SecretError> {
    Ok(optional_text(value, resolver)?.unwrap_or_default())
}

impl HandlerSettings {
    pub fn resolve(&self, resolver: &dyn SecretResolver) -> Result<ResolvedSettings, SecretError> {
        Ok(ResolvedSettings {
            notify_url: optional_text(&self.notify_url, resolver)?,
            erp_forward_url: optional_text(&self.erp_forward_url, resolver)?,
            gigstack_api_url: required_text(&self.gigstack_api_url, resolver)?,
            gigstack_api_key: optional(&self.gigstack_api_key, resolver)?,
            tusfacturas_api_url: required_text(&self.tusfacturas_api_url, resolver)?,
            tusfacturas_apikey: optional(&self.tusfacturas_apikey, resolver)?,
            tusfacturas_apitoken: optional(&self.tusfacturas_apitoken, resolver)?,
            tusfacturas_usertoken: optional(&self.tusfacturas_usertoken, resolver)?,
            piriod_api_url: required_text(&self.piriod_api_url, resolver)?,
            piriod_api_token: optional(&self.piriod_api_token, resolver)?,
            piriod_workspace: optional_text(&self.piriod_workspace, resolver)?,
            http_timeout_secs: self.http_timeout_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::secret::MapResolver;

    #[test]
    fn literals_references_and_unset() {
        let cfg = crate::config::AppConfig::builtin().unwrap().handlers;
        let r = MapResolver::default().with("GIGSTACK_API_KEY", "k");
        let s = cfg.resolve(&r).unwrap();
        assert_eq!(s.gigstack_api_key.unwrap().expose(), b"k");
        assert!(s.notify_url.is_none());
        assert!(s.gigstack_api_url.starts_with("https://"));
    }
}
