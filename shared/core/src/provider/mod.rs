//! Providers: a provider's config (verifier, where the id and type live, body
//! format, batch split, rejection status, handlers per event type) built into
//! a [`Provider`] that turns a verified request into events.

pub mod extract;
pub mod presets;
pub mod scan;

use crate::payload::{OriginalBody, Payload};
use crate::secret::{SecretError, SecretResolver};
use crate::verify::{Verifier, VerifierConfig};
use bytes::Bytes;
use bytestring::ByteString;
use extract::{Context, Part, Source};
use scan::{Lookup, ScanError};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use tracing::warn;

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
    /// Where the id comes from when `event_id` is absent from a delivery
    /// (same syntax; e.g. `"sha256"`, the body's hash): for senders whose
    /// test tools or older versions leave the id out. Logged at warn.
    #[serde(default, deserialize_with = "one_or_many")]
    pub event_id_fallback: Vec<String>,
    /// A copy of an event id seen less than this many seconds ago is a
    /// duplicate; after it, the same id is a new occurrence, recorded and
    /// processed. For senders whose id names the object rather than the
    /// occurrence (Piriod's `event` + `object_id`). Unset: a duplicate for
    /// as long as the record is kept.
    #[serde(default)]
    pub dedup_window_secs: Option<u64>,
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
    #[error("provider {provider}: verifier: {reason}")]
    Verifier { provider: String, reason: String },
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
    #[error("event id is {0} bytes long; at most {MAX_EVENT_ID_BYTES} are accepted")]
    IdTooLong(usize),
}

/// The longest event id accepted, in bytes. The record's key is
/// `provider#event_id`, and DynamoDB refuses keys over 2,048 bytes: an id
/// past that would make every claim fail as "unavailable" and the sender
/// retry for ever. Real ids are tens of bytes.
pub const MAX_EVENT_ID_BYTES: usize = 512;

impl From<ScanError> for PayloadError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::NotJson => PayloadError::NotJson,
            ScanError::NotObject => PayloadError::NotObject,
        }
    }
}

/// The array at JSON `pointer` in `doc`, as the elements' own text (each a
/// slice of `doc`); `Ok(None)` when nothing is there or it is not an array.
/// Every level it walks through is checked to be JSON, as is each element.
fn raw_array_at<'a>(doc: &'a str, pointer: &str) -> Result<Option<Vec<&'a RawValue>>, PayloadError> {
    use std::collections::HashMap;
    let not_json = |_| PayloadError::NotJson;
    let mut here: &'a RawValue = serde_json::from_str(doc).map_err(not_json)?;
    if !pointer.is_empty() {
        let Some(rest) = pointer.strip_prefix('/') else {
            return Ok(None);
        };
        for segment in rest.split('/') {
            let key = segment.replace("~1", "/").replace("~0", "~");
            let text = here.get();
            let next = if text.starts_with('{') {
                let mut fields: HashMap<String, &'a RawValue> = serde_json::from_str(text).map_err(not_json)?;
                fields.remove(&key)
            } else if text.starts_with('[') {
                let items: Vec<&'a RawValue> = serde_json::from_str(text).map_err(not_json)?;
                key.parse::<usize>().ok().and_then(|i| items.get(i).copied())
            } else {
                None
            };
            match next {
                Some(n) => here = n,
                None => return Ok(None),
            }
        }
    }
    if !here.get().starts_with('[') {
        return Ok(None);
    }
    serde_json::from_str(here.get()).map(Some).map_err(not_json)
}

/// The content type of a form body, and what a form body that arrived
/// without one is forwarded as.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// One event found in a delivery.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub id: ByteString,
    pub event_type: ByteString,
    pub payload: Payload,
    /// The body as it arrived, when `payload` is not it (a form body):
    /// see [`OriginalBody`].
    pub original: Option<OriginalBody>,
}

/// The events of one delivery: one, inline, unless it is a batch.
pub type Extraction = smallvec::SmallVec<[Extracted; 1]>;

/// A provider, ready to verify and extract.
#[derive(Debug)]
pub struct Provider {
    /// Shared with every event of this provider, not copied into each.
    pub name: ByteString,
    pub verifier: Box<dyn Verifier>,
    pub reject_status: u16,
    pub public_url: Option<String>,
    format: BodyFormat,
    event_id: Vec<Part>,
    event_id_fallback: Vec<Part>,
    /// See [`ProviderConfig::dedup_window_secs`].
    pub dedup_window_secs: Option<i64>,
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
        config.verifier.check().map_err(|reason| ProviderError::Verifier {
            provider: name.to_string(),
            reason,
        })?;
        let verifier = config.verifier.build(secrets).map_err(|source| ProviderError::Secret {
            provider: name.to_string(),
            source,
        })?;
        let event_id = parts(&config.event_id)?;
        let event_id_fallback = parts(&config.event_id_fallback)?;
        let event_type = parts(&config.event_type)?;
        // What the scan must find before it may stop: each part of the id
        // (or, failing it, the fallback's fields), and the first present
        // candidate of the type.
        let body = |parts: &[Part]| -> Vec<String> {
            parts
                .iter()
                .filter_map(|p| match &p.source {
                    Source::Body(pointer) => Some(pointer.clone()),
                    _ => None,
                })
                .collect()
        };
        let fallback = body(&event_id_fallback);
        let mut groups: Vec<Vec<String>> = body(&event_id)
            .into_iter()
            .map(|p| std::iter::once(p).chain(fallback.iter().cloned()).collect())
            .collect();
        if groups.is_empty() && !fallback.is_empty() {
            groups.push(fallback);
        }
        groups.push(body(&event_type));
        Ok(Self {
            name: name.into(),
            verifier,
            reject_status: config.reject_status,
            public_url: config.public_url.clone(),
            format: config.format,
            event_id,
            event_id_fallback,
            dedup_window_secs: config.dedup_window_secs.map(|s| s.min(i64::MAX as u64) as i64),
            event_type,
            body_fields: Lookup::grouped(&groups),
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
    ) -> Result<Extraction, PayloadError> {
        let is_form = match self.format {
            BodyFormat::Json => false,
            BodyFormat::Form => true,
            BodyFormat::Auto => content_type.map(|c| c.starts_with(FORM_CONTENT_TYPE)).unwrap_or(false),
        };
        if is_form {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| PayloadError::NotForm)?;
            let map: serde_json::Map<String, Value> = pairs.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let value = Value::Object(map);
            let mut event = self.extract_value(&value, header, query)?;
            // The bytes are shared with the request, not copied.
            event.original = Some(OriginalBody {
                content_type: content_type.unwrap_or(FORM_CONTENT_TYPE).to_string(),
                body: body.clone(),
            });
            return Ok(smallvec::smallvec![event]);
        }
        match &self.batch_path {
            None => {
                let payload = Payload::from_bytes(body.clone()).map_err(|_| PayloadError::NotJson)?;
                let fields = self.body_fields.read(body)?;
                let ctx = Context {
                    body,
                    field: &|p| self.field(&fields, p, Some(body)),
                    header,
                    query,
                };
                Ok(smallvec::smallvec![self.one_of(&ctx, payload)?])
            }
            Some(path) => {
                let text = std::str::from_utf8(body).map_err(|_| PayloadError::NotJson)?;
                let items = raw_array_at(text, path)?.ok_or_else(|| PayloadError::NotBatch(path.clone()))?;
                items
                    .into_iter()
                    .map(|item| {
                        let value: Value = serde_json::from_str(item.get()).map_err(|_| PayloadError::NotJson)?;
                        let mut event = self.extract_value(&value, header, query)?;
                        // The element's own bytes, shared with the request:
                        // what it was signed as inside the batch (a
                        // re-serialization would sort keys and round numbers).
                        let own = Payload::from_bytes(body.slice_ref(item.get().as_bytes()))
                            .map_err(|_| PayloadError::NotJson)?;
                        event.payload = own;
                        Ok(event)
                    })
                    .collect()
            }
        }
    }

    /// One event from a parsed value (a form body, an element of a batch):
    /// its payload is the value's JSON text (a batch element's is then
    /// replaced by its own bytes; the id, `sha256` included, is read from
    /// the value, as it always has been, so ids stay what they were).
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
            field: &|p| self.field(&fields, p, None),
            header,
            query,
        };
        self.one_of(&ctx, payload.clone())
    }

    /// A body field as text; when it was read as it stands in `body` (no
    /// escapes to undo), a slice of the body's bytes rather than a copy.
    fn field(&self, fields: &[Option<Cow<'_, str>>], pointer: &str, body: Option<&Bytes>) -> Option<ByteString> {
        let at = self.body_fields.slot(pointer)?;
        match (fields.get(at)?.as_ref()?, body) {
            (Cow::Borrowed(text), Some(body)) => Some(shared_text(body, text)),
            (text, _) => Some(ByteString::from(text.as_ref())),
        }
    }

    fn one_of(&self, ctx: &Context<'_>, payload: Payload) -> Result<Extracted, PayloadError> {
        let id = match extract::composite(&self.event_id, ctx) {
            Ok(id) => id,
            Err(missing) if !self.event_id_fallback.is_empty() => {
                let id = extract::composite(&self.event_id_fallback, ctx).map_err(PayloadError::Missing)?;
                warn!(provider = %self.name, reason = %missing, event_id = %id, "event id absent; the fallback id source is used");
                id
            }
            Err(missing) => return Err(PayloadError::Missing(missing)),
        };
        if id.len() > MAX_EVENT_ID_BYTES {
            return Err(PayloadError::IdTooLong(id.len()));
        }
        let event_type = extract::first_present(&self.event_type, ctx).map_err(PayloadError::Missing)?;
        Ok(Extracted {
            id,
            event_type,
            payload,
            original: None,
        })
    }
}

/// `text`, which the scan borrowed from `body`, as a slice of `body`: a
/// reference count instead of an allocation. A copy when it is not inside
/// `body` (never expected; `Bytes::slice_ref` would panic).
fn shared_text(body: &Bytes, text: &str) -> ByteString {
    let range = body.as_ptr_range();
    let inside = range.start <= text.as_ptr() && text.as_bytes().as_ptr_range().end <= range.end;
    if inside {
        if let Ok(shared) = ByteString::try_from(body.slice_ref(text.as_bytes())) {
            return shared;
        }
    }
    ByteString::from(text)
}

/// The providers in force, the ones left out with the reason, and the ones
/// waiting for a secret an AWS source could not give at cold start.
///
/// A provider whose secret is missing locally (an unset variable) is left
/// out (`disabled`, 404): the operator must set it. One whose secret could
/// not be *fetched* (Secrets Manager or SSM failing) is `pending`: it is
/// answered 503 so the sender retries, while [`Providers::pending`] lets the
/// AWS bootstrap fetch again with backoff and [`Providers::activate`] serve
/// it. The handlers of every configured provider are known either way, so
/// the processor never takes a pending provider's events for unknown types.
#[derive(Debug, Default)]
pub struct Providers {
    served: RwLock<HashMap<String, Arc<Provider>>>,
    pending: Mutex<BTreeMap<String, (ProviderConfig, String)>>,
    /// Handler names per provider and event type, for every configured provider.
    handlers: HashMap<String, BTreeMap<String, Vec<String>>>,
    /// Providers that are configured but not served, with why (a missing
    /// secret names its variable).
    pub disabled: Vec<(String, String)>,
}

impl Providers {
    /// Builds every configured provider. A provider whose secret is missing
    /// is left out and listed in `disabled`: unverified deliveries are
    /// never accepted. One whose secret could not be fetched is pending.
    pub fn build(
        configs: &BTreeMap<String, ProviderConfig>,
        secrets: &dyn SecretResolver,
    ) -> Result<Self, ProviderError> {
        let mut reg = Providers::default();
        for (name, cfg) in configs {
            reg.handlers.insert(name.clone(), cfg.handlers.clone());
            match Provider::build(name, cfg, secrets) {
                Ok(p) => {
                    reg.served_mut().insert(name.clone(), Arc::new(p));
                }
                Err(ProviderError::Secret {
                    source: source @ SecretError::Source { .. },
                    ..
                }) => {
                    reg.pending_lock()
                        .insert(name.clone(), (cfg.clone(), source.to_string()));
                }
                Err(ProviderError::Secret { source, .. }) => reg.disabled.push((name.clone(), source.to_string())),
                Err(other) => return Err(other),
            }
        }
        Ok(reg)
    }

    pub fn get(&self, name: &str) -> Option<Arc<Provider>> {
        self.served().get(name).cloned()
    }

    /// Why a pending provider is not served yet, if `name` is one.
    pub fn pending_reason(&self, name: &str) -> Option<String> {
        self.pending_lock().get(name).map(|(_, why)| why.clone())
    }

    /// The pending providers' configurations, to build again once their
    /// secrets can be fetched.
    pub fn pending(&self) -> Vec<(String, ProviderConfig)> {
        self.pending_lock()
            .iter()
            .map(|(n, (c, _))| (n.clone(), c.clone()))
            .collect()
    }

    /// Serves a pending provider, built now that its secret could be read.
    pub fn activate(&self, provider: Provider) {
        self.pending_lock().remove(&*provider.name);
        self.served_mut().insert(provider.name.to_string(), Arc::new(provider));
    }

    /// Keeps a pending provider pending, with the latest reason.
    pub fn still_pending(&self, name: &str, reason: String) {
        if let Some(entry) = self.pending_lock().get_mut(name) {
            entry.1 = reason;
        }
    }

    /// Names of the providers in force, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.served().keys().cloned().collect();
        v.sort_unstable();
        v
    }

    /// The handler names for an event type of a configured provider (served
    /// or not); `None` means the type is unknown and the event is IGNORED.
    pub fn handlers_for(&self, provider: &str, event_type: &str) -> Option<&[String]> {
        let handlers = self.handlers.get(provider)?;
        handlers
            .get(event_type)
            .or_else(|| handlers.get("*"))
            .map(Vec::as_slice)
    }

    /// Every (provider, handler name) the configuration refers to.
    pub fn handler_names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.handlers
            .iter()
            .flat_map(|(p, h)| h.values().flatten().map(move |n| (p.as_str(), n.as_str())))
    }

    fn served(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Provider>>> {
        self.served.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn served_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Provider>>> {
        self.served.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (ProviderConfig, String)>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
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

    fn ids(p: &Provider, body: &str) -> Result<Vec<String>, PayloadError> {
        let body = Bytes::from(body.to_string());
        Ok(p.extract(&body, None, NO_HEADERS, NO_HEADERS)?
            .into_iter()
            .map(|x| x.id.to_string())
            .collect())
    }

    #[test]
    fn a_template_naming_a_header_that_is_not_configured_is_a_start_up_error() {
        let cfg: ProviderConfig = toml::from_str(
            r#"verifier = { scheme = "hmac", header = "X-Sig", signed_content = "{timestamp}.{body}", secrets = ["env:S"] }"#,
        )
        .unwrap();
        let err = Provider::build("p", &cfg, &MapResolver::default().with("S", "x")).unwrap_err();
        assert!(matches!(err, ProviderError::Verifier { .. }), "{err}");
        assert!(err.to_string().contains("timestamp_header"), "{err}");
    }

    /// Whether `text`'s bytes lie inside `body`'s (shared, not copied).
    fn shares(body: &Bytes, text: &ByteString) -> bool {
        let (range, at) = (body.as_ptr_range(), text.as_bytes().as_ptr());
        range.start <= at && at < range.end
    }

    /// An HMAC provider reading its id and type from the given sources
    /// (TOML values: a string or an array of strings).
    fn reading(event_id: &str, event_type: &str) -> Provider {
        provider(&format!(
            "verifier = {{ scheme = \"hmac\", header = \"X\", secrets = [\"env:S\"] }}\n\
             event_id = {event_id}\nevent_type = {event_type}"
        ))
    }

    #[test]
    fn an_id_and_type_read_as_they_stand_share_the_body_and_escaped_ones_are_copies() {
        let body = Bytes::from_static(br#"{"id":"evt_1","type":"invoice\u002ecreated","n":1}"#);
        let p = reading(r#""body:/id""#, r#""body:/type""#);
        let x = p.extract(&body, None, NO_HEADERS, NO_HEADERS).unwrap().remove(0);
        assert_eq!((&*x.id, &*x.event_type), ("evt_1", "invoice.created"));
        assert!(shares(&body, &x.id), "the id is a slice of the body");
        assert!(!shares(&body, &x.event_type), "a value with escapes undone is a copy");
        // A composite id is built, not sliced; a number is printed.
        let p = reading(r#"["body:/id", "body:/n"]"#, r#""body:/type""#);
        let x = p.extract(&body, None, NO_HEADERS, NO_HEADERS).unwrap().remove(0);
        assert_eq!(&*x.id, "evt_1:1");
    }

    #[test]
    fn text_from_elsewhere_than_the_body_is_copied_not_sliced() {
        let body = Bytes::from_static(b"evt_1");
        let elsewhere = String::from("evt_1");
        let text = shared_text(&body, &elsewhere);
        assert_eq!(&*text, "evt_1");
        assert!(!shares(&body, &text));
        assert!(shares(
            &body,
            &shared_text(&body, std::str::from_utf8(&body[..3]).unwrap())
        ));
    }

    #[test]
    fn the_fallback_id_is_used_only_when_the_id_is_absent() {
        let p = provider(
            r#"
            verifier = { scheme = "hmac", header = "X", secrets = ["env:S"] }
            event_id = "body:/id"
            event_id_fallback = "sha256"
            event_type = ["body:/type", "body:/event"]
            "#,
        );
        assert_eq!(ids(&p, r#"{"id":"e1","type":"t"}"#).unwrap(), ["e1"]);
        let body = r#"{"event":"invoice.created","data":{},"timestamp":1}"#;
        let hashed = ids(&p, body).unwrap();
        assert_eq!(
            hashed,
            [hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes()))]
        );
        let body = Bytes::from(body);
        assert_eq!(
            p.extract(&body, None, NO_HEADERS, NO_HEADERS).unwrap()[0].event_type,
            "invoice.created"
        );
    }

    #[test]
    fn an_id_over_the_cap_is_invalid_payload() {
        let p = provider(
            r#"verifier = { scheme = "hmac", header = "X", secrets = ["env:S"] }
            event_id = "body:/id""#,
        );
        let long = "x".repeat(MAX_EVENT_ID_BYTES + 1);
        let err = ids(&p, &format!(r#"{{"id":"{long}","type":"t"}}"#)).unwrap_err();
        assert_eq!(err, PayloadError::IdTooLong(MAX_EVENT_ID_BYTES + 1));
        assert!(err.to_string().contains("at most 512"), "{err}");
        let at_cap = "y".repeat(MAX_EVENT_ID_BYTES);
        assert_eq!(
            ids(&p, &format!(r#"{{"id":"{at_cap}","type":"t"}}"#)).unwrap(),
            [at_cap]
        );
    }

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
        assert!(evs[0].original.is_none(), "the payload is the body: no second copy");
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
        let original = evs[0]
            .original
            .as_ref()
            .expect("a form event keeps the body it arrived as");
        assert_eq!(&original.body[..], b"external_reference=ab%201&estado=A");
        assert_eq!(original.content_type, "application/x-www-form-urlencoded");
        assert_eq!(evs[0].payload.json().unwrap()["external_reference"], "ab 1");
        let forced = provider(
            r#"verifier = { scheme = "token", name = "t", secrets = ["env:S"] }
               format = "form"
               event_id = "body:/id"
               event_type = "const:c""#,
        );
        let evs = forced
            .extract(&Bytes::from_static(b"id=1"), None, NO_HEADERS, NO_HEADERS)
            .unwrap();
        assert_eq!(
            evs[0].original.as_ref().map(|o| o.content_type.as_str()),
            Some(FORM_CONTENT_TYPE),
            "a form body that came without a content type is forwarded as form"
        );
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
        assert_eq!(evs.iter().map(|e| &*e.id).collect::<Vec<_>>(), ["1", "2"]);
        assert!(
            evs.iter().all(|e| e.original.is_none()),
            "a JSON element is its own body"
        );
        let body = Bytes::from_static(
            br#"{"events":[ {"type":"t", "id":"9", "amount": 10.50, "big": 123456789012345678901234} ]}"#,
        );
        let evs = p.extract(&body, None, NO_HEADERS, NO_HEADERS).unwrap();
        assert_eq!(
            evs[0].payload.as_str(),
            r#"{"type":"t", "id":"9", "amount": 10.50, "big": 123456789012345678901234}"#,
            "an element's own bytes: key order, spacing and number text kept"
        );
        assert_eq!(
            evs[0].payload.as_str().as_ptr(),
            body[12..].as_ptr(),
            "shared with the body, not copied"
        );
        let nested = provider(
            r#"verifier = { scheme = "token", name = "t", secrets = ["env:S"] }
               event_id = "body:/id"
               batch_path = "/a~1b/1/list""#,
        );
        let evs = nested
            .extract(
                &Bytes::from_static(br#"{"x":1,"a/b":[0,{"list":[{"id":"n1","type":"t"}]}]}"#),
                None,
                NO_HEADERS,
                NO_HEADERS,
            )
            .unwrap();
        assert_eq!(evs[0].id, "n1");
        assert_eq!(
            nested
                .extract(
                    &Bytes::from_static(br#"{"a/b":[0,{"list":[1,}]}"#),
                    None,
                    NO_HEADERS,
                    NO_HEADERS
                )
                .unwrap_err(),
            PayloadError::NotJson
        );
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
        let reg = Providers::build(&configs, &MapResolver::default()).unwrap();
        assert!(reg.get("p").is_none());
        assert!(reg.disabled[0].1.contains("NOT_SET_ANYWHERE"), "{:?}", reg.disabled);
    }
}
