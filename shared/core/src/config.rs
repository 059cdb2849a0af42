//! The application configuration: ingest limits, retry policy, handler
//! settings and providers. The built-in default (`config/default.toml`) serves
//! the seed providers; a user file is merged over it table by table.

use crate::provider::ProviderConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The built-in configuration.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Ingest limits and answers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub max_body_bytes: usize,
    pub accepted_status: u16,
    pub claim_lease_secs: i64,
    pub retention_days: i64,
}

impl IngestSettings {
    pub fn retention_secs(&self) -> i64 {
        self.retention_days * 86_400
    }
}

/// How failed handlers are retried.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    pub max_attempts: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub processing_lease_secs: i64,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub ingest: IngestSettings,
    pub retry: RetrySettings,
    pub handlers: crate::handlers::HandlerSettings,
    /// Where `forward:NAME` handlers send events.
    #[serde(default)]
    pub destinations: BTreeMap<String, crate::handlers::forward::DestinationConfig>,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderEntry>,
}

/// A provider table, with a switch to turn a built-in one off.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderEntry {
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(flatten)]
    pub config: ProviderConfig,
}

fn enabled_by_default() -> bool {
    true
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {origin} is not valid TOML: {message}")]
    Syntax { origin: String, message: String },
    #[error("config is invalid: {0}")]
    Invalid(String),
}

impl AppConfig {
    /// The built-in configuration alone.
    pub fn builtin() -> Result<Self, ConfigError> {
        Self::from_overlay(None)
    }

    /// The built-in configuration with the file at `path` merged over it.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let overlay = match path {
            None => None,
            Some(p) => Some((
                p.display().to_string(),
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
            )),
        };
        Self::from_overlay(overlay.as_ref().map(|(o, t)| (o.as_str(), t.as_str())))
    }

    /// The built-in configuration with `overlay` (origin, TOML text) merged over it.
    pub fn from_overlay(overlay: Option<(&str, &str)>) -> Result<Self, ConfigError> {
        let mut base: toml::Table = DEFAULT_TOML.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
            origin: "(built-in)".into(),
            message: e.message().to_string(),
        })?;
        if let Some((origin, text)) = overlay {
            let top: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
            merge(&mut base, top);
        }
        expand_presets(&mut base)?;
        let config: AppConfig = toml::Value::Table(base)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.retry.max_attempts == 0 {
            return Err(ConfigError::Invalid("retry.max_attempts must be at least 1".into()));
        }
        if !matches!(self.ingest.accepted_status, 200 | 202) {
            return Err(ConfigError::Invalid("ingest.accepted_status must be 200 or 202".into()));
        }
        if self.handlers.erp_forward_url.is_some() {
            return Err(ConfigError::Invalid(
                "handlers.erp_forward_url has moved: set url (and signing_secret, a whsec_ reference) in [destinations.erp]; invoice.cancelled is forwarded by the handler \"forward:erp\"".into(),
            ));
        }
        if self.ingest.max_body_bytes == 0 {
            return Err(ConfigError::Invalid("ingest.max_body_bytes must be positive".into()));
        }
        Ok(())
    }

    /// The providers that are switched on.
    pub fn enabled_providers(&self) -> BTreeMap<String, ProviderConfig> {
        self.providers
            .iter()
            .filter(|(_, e)| e.enabled)
            .map(|(n, e)| (n.clone(), e.config.clone()))
            .collect()
    }
}

/// Replaces every provider table that names a `preset` with its expansion
/// (see [`crate::provider::presets`]), after the user's file is merged over
/// the built-in one, so a preset may be named in either.
fn expand_presets(base: &mut toml::Table) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(providers)) = base.get_mut("providers") else {
        return Ok(());
    };
    for (name, value) in providers.iter_mut() {
        if let toml::Value::Table(table) = value {
            *table = crate::provider::presets::expand(name, table).map_err(ConfigError::Invalid)?;
        }
    }
    Ok(())
}

/// Merges `top` into `base`: tables recursively, anything else replaced.
/// A provider's `verifier` table is replaced whole, since schemes differ in keys.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) if k != "verifier" => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_the_seed_providers() {
        let c = AppConfig::builtin().unwrap();
        assert_eq!(
            c.providers.keys().collect::<Vec<_>>(),
            ["gigstack", "piriod", "tusfacturas"]
        );
        assert_eq!(c.ingest.max_body_bytes, 1 << 20);
        assert_eq!(c.retry.max_attempts, 5);
    }

    #[test]
    fn overlay_merges_and_disables() {
        let c = AppConfig::from_overlay(Some((
            "test",
            r#"
            retry = { max_attempts = 3 }
            [providers.piriod]
            enabled = false
            [providers.custom]
            verifier = { scheme = "hmac", header = "X-Sig", secrets = ["env:CUSTOM"] }
            "#,
        )))
        .unwrap();
        assert_eq!(c.retry.max_attempts, 3);
        assert_eq!(c.retry.base_delay_ms, 2000);
        let on = c.enabled_providers();
        assert!(on.contains_key("custom") && on.contains_key("gigstack") && !on.contains_key("piriod"));
    }

    #[test]
    fn a_preset_in_the_user_file_expands_and_an_unknown_one_is_refused() {
        let c = AppConfig::from_overlay(Some((
            "test",
            r#"
            [providers.gh]
            preset = "github"
            secrets = ["env:GH_SECRET"]
            [providers.gh.handlers]
            push = ["x"]
            "#,
        )))
        .unwrap();
        let gh = &c.enabled_providers()["gh"];
        assert_eq!(gh.event_id, ["header:X-GitHub-Delivery"]);
        assert_eq!(gh.handlers["push"], ["x"]);
        let e = AppConfig::from_overlay(Some(("t", "[providers.x]\npreset = \"nope\"\nsecrets = [\"env:A\"]")))
            .unwrap_err();
        assert!(matches!(e, ConfigError::Invalid(_)), "{e}");
        assert!(
            e.to_string().contains("unknown preset \"nope\"") && e.to_string().contains("github"),
            "{e}"
        );
    }

    #[test]
    fn destinations_parse_with_a_default_timeout_and_the_old_erp_setting_says_where_it_went() {
        let c = AppConfig::from_overlay(Some((
            "test",
            "[destinations.audit]\nurl = \"env:AUDIT_URL\"\nsigning_secret = \"env:AUDIT_SECRET\"",
        )))
        .unwrap();
        assert_eq!(c.destinations["audit"].timeout_secs, 10);
        assert_eq!(c.destinations["erp"].url, "env:ERP_FORWARD_URL");
        assert_eq!(
            c.providers["gigstack"].config.handlers["invoice.cancelled"],
            ["forward:erp"]
        );
        let e = AppConfig::from_overlay(Some(("t", "[handlers]\nerp_forward_url = \"env:X\""))).unwrap_err();
        assert!(e.to_string().contains("[destinations.erp]"), "{e}");
        let e = AppConfig::from_overlay(Some(("t", "[destinations.x]\nurl = \"u\"\nsecret = \"env:S\""))).unwrap_err();
        assert!(e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn errors_say_where() {
        let e = AppConfig::from_overlay(Some(("my.toml", "retry = ["))).unwrap_err();
        assert!(e.to_string().contains("my.toml"), "{e}");
        let e = AppConfig::from_overlay(Some(("x", "[retry]\nmax_attempts = 0"))).unwrap_err();
        assert!(e.to_string().contains("max_attempts"), "{e}");
    }
}
