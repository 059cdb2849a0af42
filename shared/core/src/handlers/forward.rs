//! Forwarding from configuration: a provider's handler list may name
//! `forward:NAME`, which POSTs the event to `[destinations.NAME]` as a
//! Standard Webhooks delivery (standardwebhooks.com), so the receiving side
//! verifies it with any Standard Webhooks library instead of trusting the
//! network:
//!
//! - body: what the sender sent, byte for byte, with its content type: for
//!   a form delivery (Twilio, Slack commands, ...), the body that arrived
//!   and its `content-type` ([`Event::original`]), not the JSON object
//!   handlers see; for a JSON delivery of one event, the sender's body
//!   itself; for an element of a JSON batch, that element's own bytes (a
//!   slice of the sender's body; the sender signed only the whole batch, so
//!   no single element can be sent as signed by it), `application/json`;
//! - `webhook-id`: `msg_` + a hash of `provider#event_id` and the destination
//!   name, the same on every retry, so the receiver can drop repeats;
//! - `webhook-timestamp`: now, in Unix seconds;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`
//!   with the destination's `whsec_` secret.
//!
//! The answer is classified like every handler's ([`Call`]). The URL is a
//! reference and may embed a token: it never appears in a result, an error
//! or a log line; neither does the signing secret.

use super::http_call::Call;
use super::settings::Reader;
use super::{Handler, HandlerError};
use crate::event::Event;
use crate::secret::{Secret, SecretError, SecretResolver};
use crate::verify::standard_webhooks::{decode_secret, signature, ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The handler-name prefix that names a destination.
pub const PREFIX: &str = "forward:";

/// A `[destinations.NAME]` table as written.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Where to POST: a reference (`env:ERP_WEBHOOK_URL`) or a literal URL.
    pub url: String,
    /// A reference to the destination's `whsec_...` secret (never a literal).
    #[serde(default)]
    pub signing_secret: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    10
}

/// One destination, resolved: the handler registered as `forward:NAME`.
pub struct Forward {
    name: String,
    http: reqwest::Client,
    url: Option<String>,
    /// Decoded key bytes of the `whsec_` secret.
    key: Option<Secret>,
    /// The references as written, to say what to set when one is unset.
    config: DestinationConfig,
    /// Settings whose reference could not be read (`url`, `signing_secret`), with why.
    unreadable: std::collections::BTreeMap<String, String>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL or the key.
        f.debug_struct("Forward")
            .field("name", &self.name)
            .field("url_set", &self.url.is_some())
            .finish()
    }
}

impl Forward {
    /// Resolves the destination's references. An unset reference is `None`
    /// (the handler then logs or fails when it runs); a literal signing
    /// secret, or one that is not `whsec_<base64>`, is refused here, at
    /// start-up, naming the setting and never echoing the value.
    /// `http` is a client with the destination's timeout.
    pub fn build(
        name: &str,
        config: &DestinationConfig,
        secrets: &dyn SecretResolver,
        http: reqwest::Client,
    ) -> Result<Self, SecretError> {
        let url_setting = format!("destinations.{name}.url");
        let secret_setting = format!("destinations.{name}.signing_secret");
        let mut reader = Reader::new(secrets, "");
        let url = reader.text(&url_setting, &config.url)?.filter(|u| !u.trim().is_empty());
        let key = match reader.credential(&secret_setting, &config.signing_secret)? {
            None => None,
            Some(raw) => Some(Secret::new(decode_secret(raw.expose()).ok_or_else(|| {
                SecretError::BadKey {
                    name: secret_setting.clone(),
                    reason: "not a Standard Webhooks secret (whsec_ followed by base64)".into(),
                }
            })?)),
        };
        Ok(Self {
            name: name.to_string(),
            http,
            url,
            key,
            config: config.clone(),
            unreadable: reader.unreadable,
        })
    }

    /// The handler's name, `forward:NAME`.
    pub fn handler_name(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }

    /// Why a setting has no value: unreadable (with why) or unset (with the
    /// reference to set).
    fn missing(&self, setting: &str, reference: &str) -> String {
        let key = format!("destinations.{}.{setting}", self.name);
        match self.unreadable.get(&key) {
            Some(why) => format!("{key} could not be read: {why}"),
            None if reference.is_empty() => format!("{key} is not configured"),
            None => format!("{key} is not set (reference {reference})"),
        }
    }
}

/// `msg_` + 32 hex digits of SHA-256(`provider#event_id`, NUL, destination):
/// stable across retries of one event to one destination, different per
/// destination, and revealing neither.
pub fn message_id(event: &Event, destination: &str) -> String {
    let mut h = Sha256::new();
    h.update(event.pk().as_bytes());
    h.update([0u8]);
    h.update(destination.as_bytes());
    let digest = h.finalize();
    format!("msg_{}", hex::encode(&digest[..16]))
}

#[async_trait]
impl Handler for Forward {
    async fn handle(&self, event: &Event) -> Result<Value, HandlerError> {
        let handler = self.handler_name();
        let url_key = format!("destinations.{}.url", self.name);
        let Some(url) = &self.url else {
            if self.unreadable.contains_key(&url_key) {
                return Err(HandlerError::Permanent(format!(
                    "{handler}: {}",
                    self.missing("url", &self.config.url)
                )));
            }
            // A fresh install has no ERP: the event is logged, not lost in a retry loop.
            let reason = self.missing("url", &self.config.url);
            tracing::info!(
                provider = %event.provider,
                event_id = %event.id,
                event_type = %event.event_type,
                destination = %self.name,
                "destination url is not set; event not forwarded (logged only)"
            );
            return Ok(json!({ "forwarded": false, "destination": self.name, "reason": reason }));
        };
        let Some(key) = &self.key else {
            // Sending unsigned would teach the receiver to accept anything.
            return Err(HandlerError::Permanent(format!(
                "{handler}: {}; nothing is forwarded unsigned",
                self.missing("signing_secret", &self.config.signing_secret)
            )));
        };
        let id = message_id(event, &self.name);
        let timestamp = crate::time::unix_now().to_string();
        // The bytes signed are the bytes sent; `Bytes` shares them, no copy.
        let (content_type, body) = match &event.original {
            Some(original) => (original.content_type.as_str(), original.body.clone()),
            None => ("application/json", event.payload.to_bytes()),
        };
        let signed = signature(key.expose(), &id, &timestamp, &body);
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(ID_HEADER, &id)
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, signed)
            .body(body);
        let reply = Call::new(format!("forward to destination {}", self.name))
            .masking_text(url)
            .send(request)
            .await?;
        Ok(json!({
            "forwarded": true,
            "destination": self.name,
            "status": reply.status,
            "webhook_id": id,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::super::test_support::{assert_classifies, assert_no_secret, event, TestServer};
    use super::*;
    use crate::secret::MapResolver;
    use crate::verify::standard_webhooks::{StandardWebhooksConfig, StandardWebhooksVerifier};
    use crate::verify::{Request, Verifier};
    use std::sync::Arc;

    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn config(url: &str) -> DestinationConfig {
        DestinationConfig {
            url: url.into(),
            signing_secret: "env:DEST_SECRET".into(),
            timeout_secs: 5,
        }
    }

    fn client() -> reqwest::Client {
        crate::handlers::http_client(5).unwrap()
    }

    fn secrets() -> MapResolver {
        MapResolver::default().with("DEST_SECRET", WHSEC)
    }

    fn forward(url: &str) -> Forward {
        Forward::build("erp", &config(url), &secrets(), client()).unwrap()
    }

    #[tokio::test]
    async fn posts_the_payload_signed_as_standard_webhooks() {
        let server = TestServer::start().await;
        server.reply(204, "text/plain", "");
        let url = server.url("/inbox?token=urltoken123");
        let payload = r#"{"id":"evt_9",  "type":"invoice.cancelled","data":{"n":1.50}}"#;
        let mut ev = event("gigstack", "invoice.cancelled", json!({}));
        ev.payload = crate::payload::Payload::from_text(payload);
        let out = forward(&url).handle(&ev).await;
        assert_no_secret(&out, &["urltoken123", WHSEC]);
        let out = out.unwrap();
        assert_eq!(out["forwarded"], true);
        assert_eq!(out["status"], 204);
        let req = server.single_request();
        assert_eq!(req.method, "POST");
        assert_eq!(req.body, payload.as_bytes(), "the payload byte for byte");
        assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
        let id = req.header("webhook-id").unwrap();
        assert_eq!(id, message_id(&ev, "erp"));
        assert_eq!(out["webhook_id"], id.as_str());
        let ts = req.header("webhook-timestamp").unwrap();
        let now = crate::time::unix_now();
        assert!((ts.parse::<i64>().unwrap() - now).abs() < 5, "{ts} vs {now}");
        // Our own verifier (tested against the reference vectors) accepts it.
        let verifier = StandardWebhooksVerifier::new(
            StandardWebhooksConfig {
                secrets: vec![],
                tolerance_secs: 300,
            },
            vec![Secret::new(decode_secret(WHSEC.as_bytes()).unwrap())],
        );
        let headers = req.headers.clone();
        let r = Request {
            method: &http::Method::POST,
            headers: &headers,
            query: &[],
            body: &req.body,
            url: "",
            now,
        };
        assert_eq!(verifier.verify(&r), Ok(()));
    }

    #[tokio::test]
    async fn a_form_event_is_sent_as_the_body_that_arrived_with_its_content_type() {
        let server = TestServer::start().await;
        server.reply(204, "text/plain", "");
        let raw: &[u8] = b"MessageSid=SM1&Body=caf%C3%A9+%26+more&Weird=\xff";
        let mut ev = event("twilio", "sms", json!({"MessageSid": "SM1", "Body": "café & more"}));
        ev.original = Some(crate::payload::OriginalBody {
            content_type: "application/x-www-form-urlencoded; charset=utf-8".into(),
            body: bytes::Bytes::from_static(raw),
        });
        let out = forward(&server.url("/inbox")).handle(&ev).await.unwrap();
        assert_eq!(out["forwarded"], true);
        let req = server.single_request();
        assert_eq!(req.body, raw, "the original bytes, not the JSON payload");
        assert_eq!(
            req.header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded; charset=utf-8")
        );
        let key = decode_secret(WHSEC.as_bytes()).unwrap();
        let expected = signature(
            &key,
            &req.header("webhook-id").unwrap(),
            &req.header("webhook-timestamp").unwrap(),
            raw,
        );
        assert_eq!(
            req.header("webhook-signature"),
            Some(expected),
            "signed over the bytes sent"
        );
    }

    #[test]
    fn the_message_id_is_stable_per_event_and_destination() {
        let a = event("gigstack", "t", json!({}));
        let mut b = a.clone();
        b.id = "evt_other".into();
        assert_eq!(message_id(&a, "erp"), message_id(&a, "erp"));
        assert_ne!(message_id(&a, "erp"), message_id(&a, "audit"));
        assert_ne!(message_id(&a, "erp"), message_id(&b, "erp"));
        let id = message_id(&a, "erp");
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
    }

    #[tokio::test]
    async fn answers_are_classified_and_the_url_is_masked() {
        assert_classifies(
            |base| {
                let h: Arc<dyn Handler> = Arc::new(forward(&format!("{base}/hook/secretpath987")));
                (h, event("gigstack", "t", json!({"id": 1})))
            },
            &["secretpath987", WHSEC],
        )
        .await;
    }

    #[tokio::test]
    async fn an_unset_url_logs_only_and_succeeds() {
        let h = Forward::build("erp", &config("env:ERP_FORWARD_URL"), &secrets(), client()).unwrap();
        let out = h.handle(&event("gigstack", "t", json!({}))).await.unwrap();
        assert_eq!(out["forwarded"], false);
        let reason = out["reason"].as_str().unwrap();
        assert!(
            reason.contains("destinations.erp.url") && reason.contains("env:ERP_FORWARD_URL"),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_url_without_a_signing_secret_sends_nothing_and_fails_for_good() {
        let server = TestServer::start().await;
        let h = Forward::build("erp", &config(&server.url("/x")), &MapResolver::default(), client()).unwrap();
        let err = h.handle(&event("gigstack", "t", json!({}))).await.unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("destinations.erp.signing_secret"), "{err}");
        assert!(server.requests().is_empty());
    }

    #[test]
    fn a_literal_or_malformed_signing_secret_is_refused_without_echo() {
        let mut c = config("http://127.0.0.1:9/");
        c.signing_secret = WHSEC.into();
        let err = Forward::build("erp", &c, &secrets(), client()).unwrap_err().to_string();
        assert!(
            err.contains("destinations.erp.signing_secret") && !err.contains(WHSEC),
            "{err}"
        );
        let r = MapResolver::default().with("DEST_SECRET", "not base64 !!");
        let err = Forward::build("erp", &config("http://127.0.0.1:9/"), &r, client())
            .unwrap_err()
            .to_string();
        assert!(err.contains("whsec_") && !err.contains("not base64"), "{err}");
    }

    /// A resolver whose AWS source lacks the URL's key.
    struct NoUrlKey;

    impl SecretResolver for NoUrlKey {
        fn resolve(&self, reference: &str) -> Result<Secret, SecretError> {
            match reference {
                "secretsmanager:webhooks/handlers#erp_forward_url" => Err(SecretError::Source {
                    name: reference.into(),
                    reason: "has no key `erp_forward_url`".into(),
                }),
                _ => secrets().resolve(reference),
            }
        }
    }

    #[tokio::test]
    async fn a_url_configured_but_unreadable_fails_for_good_naming_it() {
        let h = Forward::build(
            "erp",
            &config("secretsmanager:webhooks/handlers#erp_forward_url"),
            &NoUrlKey,
            client(),
        )
        .unwrap();
        let err = h.handle(&event("gigstack", "t", json!({}))).await.unwrap_err();
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(text.contains("destinations.erp.url could not be read"), "{text}");
        assert!(text.contains("has no key `erp_forward_url`"), "{text}");
    }
}
