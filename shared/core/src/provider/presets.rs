//! Provider presets: a sender's whole provider table (verifier scheme and
//! parameters, event id and type sources, format, batch path, reject
//! status) kept as data in `presets.toml`, so that configuring a known
//! sender takes a line and its secret references:
//!
//! ```toml
//! [providers.stripe]
//! preset = "stripe"
//! secrets = ["env:STRIPE_WEBHOOK_SECRET"]
//! ```
//!
//! Expansion works on the TOML table before it is deserialized, so every
//! field a provider table accepts may be set beside the preset and wins.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The presets, as shipped.
pub const PRESETS_TOML: &str = include_str!("presets.toml");

/// Keys of a provider table that are secret or key references and belong in
/// the verifier: the user writes them beside `preset`, next to nothing else.
pub const REFERENCE_KEYS: &[&str] = &["secrets", "public_keys", "verify_tokens", "passwords"];

/// One preset: its table and what the documentation says of it.
#[derive(Debug, Clone)]
pub struct Preset {
    pub name: String,
    /// The sender's documentation of the scheme.
    pub docs: String,
    /// One line: the scheme, for `webhooks presets`.
    pub summary: String,
    /// The reference keys the user must add (`secrets`, `public_keys`, ...).
    pub needs: Vec<String>,
    /// The provider table without the references.
    pub table: toml::Table,
}

impl Preset {
    /// The verifier's scheme name.
    pub fn scheme(&self) -> &str {
        self.table
            .get("verifier")
            .and_then(|v| v.get("scheme"))
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
    }
}

/// Every preset by name. The table is embedded and tested, so a malformed
/// one is a build defect, caught by `every_preset_parses_and_builds`.
pub fn all() -> &'static BTreeMap<String, Preset> {
    static PRESETS: OnceLock<BTreeMap<String, Preset>> = OnceLock::new();
    PRESETS.get_or_init(|| {
        let root: toml::Table = PRESETS_TOML.parse().expect("presets.toml is valid TOML");
        root.into_iter()
            .map(|(name, value)| {
                let mut table = match value {
                    toml::Value::Table(t) => t,
                    _ => panic!("preset {name} is not a table"),
                };
                let about = match table.remove("about") {
                    Some(toml::Value::Table(t)) => t,
                    _ => panic!("preset {name} has no about table"),
                };
                let text = |k: &str| {
                    about
                        .get(k)
                        .and_then(toml::Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let needs = about
                    .get("needs")
                    .and_then(toml::Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                let preset = Preset {
                    name: name.clone(),
                    docs: text("docs"),
                    summary: text("summary"),
                    needs,
                    table,
                };
                (name, preset)
            })
            .collect()
    })
}

/// The names of the presets, comma-separated, for error messages.
fn known() -> String {
    all().keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Expands `table` (the provider `provider`'s) when it names a preset: the
/// preset's table, then every field of `table` over it (`verifier` merged
/// key by key unless it names another scheme, whose table then replaces the
/// preset's whole), then the reference keys moved into the verifier. A table
/// without `preset` comes back unchanged. Errors name the provider.
pub fn expand(provider: &str, table: &toml::Table) -> Result<toml::Table, String> {
    let Some(name) = table.get("preset") else {
        return Ok(table.clone());
    };
    let Some(name) = name.as_str() else {
        return Err(format!(
            "providers.{provider}: preset must be a name (known: {})",
            known()
        ));
    };
    let Some(preset) = all().get(name) else {
        return Err(format!(
            "providers.{provider}: unknown preset \"{name}\" (known: {})",
            known()
        ));
    };
    let mut out = preset.table.clone();
    if let Some(user) = table.get("verifier") {
        let Some(user) = user.as_table() else {
            return Err(format!("providers.{provider}: verifier must be a table"));
        };
        let same_scheme = user.get("scheme").is_none_or(|s| s.as_str() == Some(preset.scheme()));
        match out.get_mut("verifier").and_then(toml::Value::as_table_mut) {
            Some(base) if same_scheme => base.extend(user.clone()),
            _ => {
                out.insert("verifier".into(), toml::Value::Table(user.clone()));
            }
        }
    }
    for (k, v) in table {
        if k == "preset" || k == "verifier" {
            continue;
        }
        if REFERENCE_KEYS.contains(&k.as_str()) {
            if let Some(verifier) = out.get_mut("verifier").and_then(toml::Value::as_table_mut) {
                verifier.insert(k.clone(), v.clone());
            }
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    let verifier = out.get("verifier").and_then(toml::Value::as_table);
    for need in &preset.needs {
        if verifier.is_none_or(|v| !v.contains_key(need)) {
            return Err(format!(
                "providers.{provider}: preset \"{name}\" needs {need} = [\"env:NAME\", ...] (references, not values)"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{Provider, ProviderConfig};
    use crate::secret::MapResolver;

    fn table(text: &str) -> toml::Table {
        text.parse().expect("toml")
    }

    fn config(text: &str) -> ProviderConfig {
        let expanded = expand("p", &table(text)).expect("expands");
        toml::Value::Table(expanded).try_into().expect("a provider config")
    }

    #[test]
    fn a_preset_fills_in_everything_but_the_secrets() {
        let c = config(
            r#"preset = "github"
            secrets = ["env:GH", "env:GH_OLD"]"#,
        );
        let gh = table(
            r#"verifier = { scheme = "github", secrets = ["env:GH", "env:GH_OLD"] }
            event_id = "header:X-GitHub-Delivery"
            event_type = "header:X-GitHub-Event""#,
        );
        let by_hand: ProviderConfig = toml::Value::Table(gh).try_into().expect("config");
        assert_eq!(c.verifier, by_hand.verifier);
        assert_eq!(c.event_id, by_hand.event_id);
        assert_eq!(c.event_type, by_hand.event_type);
        assert_eq!(c.reject_status, 401);
    }

    #[test]
    fn fields_beside_the_preset_override_it() {
        let c = config(
            r#"preset = "stripe"
            secrets = ["env:S"]
            verifier = { tolerance_secs = 60 }
            event_type = "const:x"
            reject_status = 403
            handlers = { "*" = ["h"] }"#,
        );
        let crate::verify::VerifierConfig::Stripe(s) = &c.verifier else {
            panic!("{:?}", c.verifier)
        };
        assert_eq!(s.tolerance_secs, 60);
        assert_eq!(s.secrets, ["env:S"]);
        assert_eq!(c.event_id, ["body:/id"], "kept from the preset");
        assert_eq!(c.event_type, ["const:x"]);
        assert_eq!(c.reject_status, 403);
        assert_eq!(c.handlers["*"], ["h"]);
    }

    #[test]
    fn a_verifier_of_another_scheme_replaces_the_presets() {
        let c = config(
            r#"preset = "gigstack"
            verifier = { scheme = "token", name = "X-Token" }
            secrets = ["env:T"]"#,
        );
        assert!(
            matches!(c.verifier, crate::verify::VerifierConfig::Token(_)),
            "{:?}",
            c.verifier
        );
        assert_eq!(c.event_type, ["body:/type", "body:/event"]);
    }

    #[test]
    fn an_unknown_preset_lists_the_known_ones() {
        let err = expand("shop", &table(r#"preset = "stirpe""#)).expect_err("rejected");
        assert!(err.contains("providers.shop") && err.contains("\"stirpe\""), "{err}");
        for name in ["github", "stripe", "gigstack"] {
            assert!(err.contains(name), "{err}");
        }
        let err = expand("shop", &table("preset = 3")).expect_err("rejected");
        assert!(err.contains("known: "), "{err}");
    }

    #[test]
    fn a_missing_reference_is_named() {
        let err = expand("gh", &table(r#"preset = "github""#)).expect_err("rejected");
        assert!(err.contains("needs secrets"), "{err}");
    }

    #[test]
    fn a_table_without_preset_is_unchanged() {
        let t = table(r#"verifier = { scheme = "github", secrets = ["env:S"] }"#);
        assert_eq!(expand("p", &t).expect("ok"), t);
    }

    /// Every preset, given a reference of each kind it needs, deserializes
    /// and checks; the shared-secret ones build.
    #[test]
    fn every_preset_parses_and_builds() {
        assert!(!all().is_empty());
        let resolver = MapResolver::default().with("S", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        for (name, preset) in all() {
            assert!(preset.docs.starts_with("https://"), "{name}: docs");
            assert!(!preset.summary.is_empty() && !preset.scheme().is_empty(), "{name}");
            let mut t = toml::Table::new();
            t.insert("preset".into(), name.as_str().into());
            for need in &preset.needs {
                t.insert(need.clone(), toml::Value::Array(vec!["env:S".into()]));
            }
            let expanded = expand("p", &t).unwrap_or_else(|e| panic!("{name}: {e}"));
            let c: ProviderConfig = toml::Value::Table(expanded)
                .try_into()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if preset.needs.iter().all(|n| n != "public_keys") {
                Provider::build(name, &c, &resolver).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}
