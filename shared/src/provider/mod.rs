//! Providers: a provider's config (verifier, where the id and type live, body
//! format, batch split, rejection status, handlers per event type) built into
//! a [`Provider`] that turns a verified request into events.

pub mod extract;
pub mod scan;

use crate::payload::Payload;
use crate::secret::{SecretError, SecretResolver};
use crate::verify::{Verifier, VerifierConfig};
use bytes::Bytes;
use extract::{Context, Part, Source};
use scan::{Lookup, ScanError};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// How the body is encoded.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, turned into a JSON object of strings.
    Form,
    /// JSON, or form when the content type says so.
    Auto,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn default_event_id() -> Vec<String> {
    vec!["sha256".into()]
}

fn default_event_type() -> Vec<String> {
    vec!["body:/type".into()]
}

fn default_reject_status() -> u16 {
    401
}

/// One provider's table in the TOML config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub verifier: VerifierConfig,
    /// Parts joined by `:` into the event id. Default: SHA-256 of the body.
    #[serde(default = "default_event_id", deserialize_with = "one_or_many")]
    pub event_id: Vec<String>,
    /// Candidates for the event type; the first present wins.
    #[serde(default = "default_event_type", deserialize_with = "one_or_many")]
    pub event_type: Vec<String>,
    #[serde(default)]
    pub format: BodyFormat,
    /// JSON pointer to an array of events in the body; each element becomes
    /// its own event, with id and type read relative to the element.
    #[serde(default)]
    pub batch_path: Option<String>,
    /// Status for a missing or bad signature (401, or 403 for providers that expect it).
    #[serde(default = "default_reject_status")]
    pub reject_status: u16,
    /// The public URL of this provider's endpoint, for schemes that sign the URL.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Handler names per event type; `"*"` matches any type. A type with no
    /// entry (and no `"*"`) is recorded as IGNORED.
    #[serde(default)]
    pub handlers: BTreeMap<String, Vec<String>>,
}

/// Why a provider could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {provider}: {source}")]
    Secret {
        provider: String,
        #[source]
        source: SecretError,
    },
    #[error("provider {provider}: {source}")]
    Source {
        provider: String,
        #[source]
        source: extract::BadSource,
    },
    #[error("provider {provider}: reject_status {status} must be 401 or 403")]
    RejectStatus { provider: String, status: u16 },
}

/// Why a verified body could not be turned into events (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("body is not valid JSON")]
    NotJson,
    #[error("body is not valid form data")]
    NotForm,
    #[error("body is not a JSON object")]
    NotObject,
    #[error("{0} is missing")]
    Missing(String),
    #[error("batch path {0} is not an array")]
    NotBatch(String),
}

impl From<ScanError> for PayloadError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::NotJson => PayloadError::NotJson,
            ScanError::NotObject => PayloadError::NotObject,
        }
    }
}

/// One event found in a delivery.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub id: String,
    pub event_type: String,
    pub payload: Payload,
}

/// A provider, ready to verify and extract.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub verifier: Box<dyn Verifier>,
    pub reject_status: u16,
    pub public_url: Option<String>,
    format: BodyFormat,
    event_id: Vec<Part>,
    event_type: Vec<Part>,
    /// Every body field the id and type read, compiled once.
    body_fields: Lookup,
    batch_path: Option<String>,
    handlers: BTreeMap<String, Vec<String>>,
}

impl Provider {
    /// Builds a provider, resolving its secrets.
    pub fn build(name: &str, config: &ProviderConfig, secrets: &dyn SecretResolver) -> Result<Self, ProviderError> {
        let parts = |list: &[String]| -> Result<Vec<Part>, ProviderError> {
            list.iter()
                .map(|s| {
                    s.parse().map_err(|source| ProviderError::Source {
                        provider: name.to_string(),
                        source,
                    })
                })
                .collect()
        };
        if !matches!(config.reject_status, 401 | 403) {
            return Err(ProviderError::RejectStatus {
                provider: name.to_string(),
                status: config.reject_status,
            });
        }
        let verifier = config.verifier.build(secrets).map_err(|source| ProviderError::Secret {
            provider: name.to_string(),
            source,
        })?;
        let event_id = parts(&config.event_id)?;
        let event_type = parts(&config.event_type)?;
        let mut body_pointers: Vec<String> = Vec::new();
        for part in event_id.iter().chain(&event_type) {
            if let Source::Body(pointer) = &part.source {
                if !body_pointers.contains(pointer) {
                    body_pointers.push(pointer.clone());
                }
            }
        }
        Ok(Self {
            name: name.to_string(),
            verifier,
            reject_status: config.reject_status,
            public_url: config.public_url.clone(),
            format: config.format,
            event_id,
            event_type,
            body_fields: Lookup::new(&body_pointers),
            batch_path: config.batch_path.clone(),
            handlers: config.handlers.clone(),
        })
    }

    /// The handler names for an event type; `None` means the type is
    /// unknown and the event is IGNORED.
    pub fn handlers_for(&self, event_type: &str) -> Option<&[String]> {
        self.handlers
            .get(event_type)
            .or_else(|| self.handlers.get("*"))
            .map(Vec::as_slice)
    }

    /// Every handler name this provider refers to.
    pub fn handler_names(&self) -> impl Iterator<Item = &str> {
        self.handlers.values().flatten().map(String::as_str)
    }

    /// Extracts the event(s) of a verified body. A single JSON event is read
    /// only as far as its id and type (see [`scan`]) and its payload is the
    /// body itself, not a copy; form bodies and batches are parsed whole.
    pub fn extract(
        &self,
        body: &Bytes,
        content_type: Option<&str>,
        header: &dyn Fn(&str) -> Option<String>,
        query: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<Extracted>, PayloadError> {
        let is_form = match self.format {
            BodyFormat::Json => false,
            BodyFormat::Form => true,
            BodyFormat::Auto => content_type
                .map(|c| c.starts_with("application/x-www-form-urlencoded"))
                .unwrap_or(false),
        };
        if is_form {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| PayloadError::NotForm)?;
            let map: serde_json::Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let value = Value::Object(map);
            return Ok(vec![self.extract_value(&value, header, query)?]);
        }
        match &self.batch_path {
            None => {
                let payload = Payload::from_bytes(body.clone()).map_err(|_| PayloadError::NotJson)?;
                let fields = self.body_fields.read(body)?;
                let ctx = Context {
                    body,
                    field: &|p| self.field(&fields, p),
                    header,
                    query,
                };
                Ok(vec![self.one_of(&ctx, payload)?])
            }
            Some(path) => {
                let json: Value = serde_json::from_slice(body).map_err(|_| PayloadError::NotJson)?;
                let items = json
                    .pointer(path)
                    .and_then(Value::as_array)
                    .ok_or_else(|| PayloadError::NotBatch(path.clone()))?;
                items
                    .iter()
                    .map(|item| self.extract_value(item, header, query))
                    .collect()
            }
        }
    }

    /// One event from a parsed value (a form body, an element of a batch):
    /// its payload is the value's JSON text.
    fn extract_value(
        &self,
        value: &Value,
        header: &dyn Fn(&str) -> Option<String>,
        query: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Extracted, PayloadError> {
        let payload = Payload::from_text(value.to_string());
        let fields = self.body_fields.read_value(value);
        let ctx = Context {
            body: payload.as_str().as_bytes(),
            field: &|p| self.field(&fields, p),
            header,
            query,
        };
        self.one_of(&ctx, payload.clone())
    }

    fn field(&self, fields: &[Option<std::borrow::Cow<'_, str>>], pointer: &str) -> Option<String> {
        let at = self.body_fields.slot(pointer)?;
        fields.get(at)?.as_deref().map(str::to_string)
    }

    fn one_of(&self, ctx: &Context<'_>, payload: Payload) -> Result<Extracted, PayloadError> {
        let id = extract::composite(&self.event_id, ctx).map_err(PayloadError::Missing)?;
        let event_type = extract::first_present(&self.event_type, ctx).map_err(PayloadError::Missing)?;
        Ok(Extracted {
            id,
            event_type,
            payload,
        })
    }
}

/// The providers in force, and the ones left out with the reason.
#[derive(Debug, Default)]
pub struct Registry {
    providers: HashMap<String, Provider>,
    /// Providers that are configured but not served, with why (a missing
    /// secret names its variable).
    pub disabled: Vec<(String, String)>,
}

impl Registry {
    /// Builds every configured provider. A provider whose secret is missing
    /// is left out and listed in `disabled`: unverified deliveries are
    /// never accepted.
    pub fn build(
        configs: &BTreeMap<String, ProviderConfig>,
        secrets: &dyn SecretResolver,
    ) -> Result<Self, ProviderError> {
        let mut reg = Registry::default();
        for (name, cfg) in configs {
            match Provider::build(name, cfg, secrets) {
                Ok(p) => {
                    reg.providers.insert(name.clone(), p);
                }
                Err(ProviderError::Secret { source, .. }) => reg.disabled.push((name.clone(), source.to_string())),
                Err(other) => return Err(other),
            }
        }
        Ok(reg)
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }

    /// Names of the providers in force, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.providers.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::MapResolver;

    fn provider(toml_text: &str) -> Provider {
        let cfg: ProviderConfig = toml::from_str(toml_text).unwrap();
        Provider::build("p", &cfg, &MapResolver::default().with("S", "x")).unwrap()
    }

    const NO_HEADERS: &dyn Fn(&str) -> Option<String> = &|_| None;

    #[test]
    fn json_event_keeps_raw_payload() {
        let p = provider(
            r#"verifier = { scheme = "token", name = "t", secrets = ["env:S"] }
               event_id = "body:/id"
               handlers = { "a.b" = ["x"] }"#,
        );
        let evs = p
            .extract(
                &Bytes::from_static(br#"{"id":"e1", "type":"a.b"}"#),
                None,
                NO_HEADERS,
                NO_HEADERS,
            )
            .unwrap();
        assert_eq!(evs[0].id, "e1");
        assert_eq!(evs[0].event_type, "a.b");
        assert_eq!(evs[0].payload.as_str(), r#"{"id":"e1", "type":"a.b"}"#);
        assert_eq!(p.handlers_for("a.b"), Some(&["x".to_string()][..]));
        assert_eq!(p.handlers_for("zzz"), None);
    }

    #[test]
    fn form_body_becomes_object() {
        let p = provider(
            r#"verifier = { scheme = "token", name = "t", secrets = ["env:S"] }
               format = "auto"
               event_id = ["body:/external_reference", "?body:/estado"]
               event_type = "const:comprobante"
               handlers = { "*" = ["y"] }"#,
        );
        let evs = p
            .extract(
                &Bytes::from_static(b"external_reference=ab%201&estado=A"),
                Some("application/x-www-form-urlencoded"),
                NO_HEADERS,
                NO_HEADERS,
            )
            .unwrap();
        assert_eq!(evs[0].id, "ab 1:A");
        assert_eq!(evs[0].event_type, "comprobante");
        assert_eq!(p.handlers_for("anything"), Some(&["y".to_string()][..]));
    }

    #[test]
    fn batch_split_and_errors() {
        let p = provider(
            r#"verifier = { scheme = "token", name = "t", secrets = ["env:S"] }
               event_id = "body:/id"
               batch_path = "/events""#,
        );
        let evs = p
            .extract(
                &Bytes::from_static(br#"{"events":[{"id":"1","type":"t"},{"id":"2","type":"t"}]}"#),
                None,
                NO_HEADERS,
                NO_HEADERS,
            )
            .unwrap();
        assert_eq!(evs.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(
            p.extract(&Bytes::from_static(br#"{"events":3}"#), None, NO_HEADERS, NO_HEADERS)
                .unwrap_err(),
            PayloadError::NotBatch("/events".into())
        );
        assert_eq!(
            p.extract(&Bytes::from_static(b"not json"), None, NO_HEADERS, NO_HEADERS)
                .unwrap_err(),
            PayloadError::NotJson
        );
        assert_eq!(
            p.extract(
                &Bytes::from_static(br#"{"events":[{"type":"t"}]}"#),
                None,
                NO_HEADERS,
                NO_HEADERS
            )
            .unwrap_err(),
            PayloadError::Missing("body field /id".into())
        );
    }

    #[test]
    fn missing_secret_disables_provider_naming_the_variable() {
        let cfg: ProviderConfig =
            toml::from_str(r#"verifier = { scheme = "token", name = "t", secrets = ["env:NOT_SET_ANYWHERE"] }"#)
                .unwrap();
        let mut configs = BTreeMap::new();
        configs.insert("p".to_string(), cfg);
        let reg = Registry::build(&configs, &MapResolver::default()).unwrap();
        assert!(reg.get("p").is_none());
        assert!(reg.disabled[0].1.contains("NOT_SET_ANYWHERE"), "{:?}", reg.disabled);
    }
}
