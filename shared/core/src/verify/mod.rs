//! Verifiers: one per signing scheme, pure functions over the raw request
//! (body bytes exactly as received, headers, query, public URL, secrets, now).
//!
//! A verifier never reads a parsed JSON body: it runs before parsing, so a
//! forged body never reaches the parser. The one exception is
//! [`property_checksum`] (Wompi), whose proof is inside the body: it reads
//! only the envelope and the values the checksum covers, as raw slices. Every comparison is constant time
//! (`hmac`'s `verify_slice` or `subtle`). Every secret-based verifier takes a
//! list of secrets so a secret can be rotated without downtime.

mod hmac_scheme;
mod token;

pub mod dlocal;
pub mod github;
pub mod hubspot;
pub mod khipu;
pub mod mercado_pago;
pub mod meta;
pub mod paddle;
pub mod property_checksum;
pub mod public_key;
pub mod shopify;
pub mod slack;
pub mod square;
pub mod standard_webhooks;
pub mod stripe;
pub mod twilio;
pub mod zoom;

pub use dlocal::{DlocalConfig, DlocalVerifier};
pub use github::{GithubConfig, GithubVerifier};
pub use hmac_scheme::{hmac, verify_any, Algorithm, Encoding, HmacConfig, HmacVerifier, MAX_MAC_BYTES};
pub use hubspot::{HubspotConfig, HubspotVerifier};
pub use khipu::{KhipuConfig, KhipuVerifier};
pub use mercado_pago::{MercadoPagoConfig, MercadoPagoVerifier};
pub use meta::{MetaConfig, MetaVerifier};
pub use paddle::{PaddleConfig, PaddleVerifier};
pub use property_checksum::{PropertyChecksumConfig, PropertyChecksumVerifier};
pub use public_key::{Ping, PublicKeyConfig, PublicKeyVerifier};
pub use shopify::{ShopifyConfig, ShopifyVerifier};
pub use slack::{SlackConfig, SlackVerifier};
pub use square::{SquareConfig, SquareVerifier};
pub use standard_webhooks::{StandardWebhooksConfig, StandardWebhooksVerifier};
pub use stripe::{StripeConfig, StripeVerifier};
pub use token::{matches_any, BasicAuthConfig, BasicAuthVerifier, KeyLocation, TokenConfig, TokenVerifier};
pub use twilio::{TwilioConfig, TwilioVerifier};
pub use zoom::{ZoomConfig, ZoomVerifier};

use crate::secret::{Secret, SecretError, SecretResolver};
use http::HeaderMap;
use serde::Deserialize;
use std::fmt::Debug;

/// The parts of an inbound request a verifier may look at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a http::Method,
    pub headers: &'a HeaderMap,
    /// Decoded query parameters, in order.
    pub query: &'a [(String, String)],
    /// The raw body, byte for byte as received.
    pub body: &'a [u8],
    /// The public URL the sender called (scheme, host, path, query), for
    /// schemes that sign the URL. Built from configuration or forwarded
    /// headers, never from the internal host.
    pub url: &'a str,
    /// Unix seconds.
    pub now: i64,
}

impl<'a> Request<'a> {
    /// A header's value as text, `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A header the scheme cannot do without: [`VerifyError::Missing`] when
    /// absent, [`VerifyError::Invalid`] when present but not visible ASCII.
    pub fn require_header(&self, name: &str) -> Result<&'a str, VerifyError> {
        match self.headers.get(name) {
            None => Err(VerifyError::Missing(name.to_string())),
            Some(v) => v
                .to_str()
                .map_err(|_| VerifyError::Invalid(format!("{name} is not visible ASCII"))),
        }
    }

    /// Every value of a header that may arrive more than once (a proxy or a
    /// rotation can repeat it), each parsed by `parse`: [`VerifyError::Missing`]
    /// when absent; else the values that parse, or, when none does, the
    /// first value's error. A single value gives exactly what
    /// [`Request::require_header`] followed by `parse` gives.
    pub fn parse_each<T>(
        &self,
        name: &str,
        mut parse: impl FnMut(&'a str) -> Result<T, VerifyError>,
    ) -> Result<Vec<T>, VerifyError> {
        let values = self.headers.get_all(name);
        if values.iter().next().is_none() {
            return Err(VerifyError::Missing(name.to_string()));
        }
        all_ok(values.iter().map(|v| {
            v.to_str()
                .map_err(|_| VerifyError::Invalid(format!("{name} is not visible ASCII")))
                .and_then(&mut parse)
        }))
    }

    /// The first query parameter with this name.
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The values of the results that are `Ok`, or, when none is, the first
/// error (an empty input gives an empty list).
pub fn all_ok<T>(results: impl IntoIterator<Item = Result<T, VerifyError>>) -> Result<Vec<T>, VerifyError> {
    let mut ok = Vec::with_capacity(1);
    let mut first_error = None;
    for r in results {
        match r {
            Ok(t) => ok.push(t),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if ok.is_empty() => Err(e),
        _ => Ok(ok),
    }
}

/// Why a delivery was not accepted as authentic. The `reason` strings are the
/// error codes of the HTTP answers table; the details go to logs only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The header, parameter or credential that carries the proof is absent.
    #[error("missing {0}")]
    Missing(String),
    /// The proof is present but does not match any configured secret, or is
    /// malformed (the detail says which).
    #[error("invalid signature: {0}")]
    Invalid(String),
    /// The signed timestamp is too old or too far in the future.
    #[error("timestamp outside tolerance: {0}")]
    TimestampOutOfTolerance(String),
}

impl VerifyError {
    /// The stable error code returned to the caller.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Missing(_) => "missing_signature",
            VerifyError::Invalid(_) => "invalid_signature",
            VerifyError::TimestampOutOfTolerance(_) => "timestamp_out_of_tolerance",
        }
    }
}

/// A reply that a verifier gives instead of accepting an event: the GET
/// subscription handshakes (Meta) and in-band challenges (Slack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// What `webhooks sign` needs to produce a valid delivery.
#[derive(Debug, Clone)]
pub struct SignInput<'a> {
    pub body: &'a [u8],
    pub now: i64,
    /// The delivery or message id, for schemes that sign it.
    pub id: &'a str,
    /// The public URL the delivery is posted to, for schemes that sign it.
    pub url: &'a str,
}

/// The headers and query parameters that make a delivery valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
}

/// A signing scheme with its resolved secrets.
pub trait Verifier: Send + Sync + Debug {
    /// Accepts or rejects a delivery.
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError>;

    /// Answers a GET handshake (subscription check). `None` means the scheme
    /// has none and the GET is answered 405 `method_not_allowed`.
    fn handshake(&self, _req: &Request<'_>) -> Option<Handshake> {
        None
    }

    /// Answers an in-band challenge carried by a verified POST (Slack's
    /// `url_verification`); `None` lets the delivery through as an event.
    fn challenge(&self, _req: &Request<'_>) -> Option<Handshake> {
        None
    }

    /// Produces what makes `input.body` a valid delivery, with the first
    /// (current) secret.
    fn sign(&self, input: &SignInput<'_>) -> Signed;

    /// For schemes whose proof is inside the body (Wompi's checksum): the
    /// body with the proof written in, with the first secret, or why this
    /// body cannot carry one. `None` (every other scheme): the body is sent
    /// as it is, with what [`sign`](Self::sign) gives.
    fn sign_body(&self, _input: &SignInput<'_>) -> Option<Result<Vec<u8>, String>> {
        None
    }

    /// False for public-key schemes: only the sender holds the private key,
    /// so `sign` cannot make a valid delivery and `webhooks sign` says so.
    fn can_sign(&self) -> bool {
        true
    }

    /// Signs as the sender of a public-key scheme does, with the sender's
    /// `private_key` (`webhooks sign --private-key`): for trying a receiver
    /// with deliveries made the way the sender makes them. The schemes that
    /// sign with their configured secrets refuse (they have no private key).
    fn sign_with_private_key(&self, _input: &SignInput<'_>, _private_key: &Secret) -> Result<Signed, String> {
        Err("this scheme signs with its configured secrets, not a private key".into())
    }

    /// True for schemes that sign the public URL (Twilio, Square, HubSpot): only for them
    /// does ingest rebuild it, so the others pay nothing for it.
    fn signs_url(&self) -> bool {
        false
    }

    /// The names of the headers and query parameters a valid delivery
    /// carries (names only), for the refusal log's present/absent lists.
    /// By default those [`sign`](Self::sign) produces for an empty body;
    /// schemes that cannot sign name theirs.
    fn expected_names(&self) -> Signed {
        let signed = self.sign(&SignInput {
            body: b"",
            now: 0,
            id: "x",
            url: "https://localhost/",
        });
        Signed {
            headers: signed.headers.into_iter().map(|(n, _)| (n, String::new())).collect(),
            query: signed.query.into_iter().map(|(n, _)| (n, String::new())).collect(),
        }
    }
}

/// The configuration of a verifier, selected by `scheme` in the provider's
/// TOML table. Secrets are references (`env:NAME`, ...), never values.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerifierConfig {
    /// Generic HMAC: algorithm, encoding, header, prefix, optional timestamp.
    Hmac(HmacConfig),
    /// A static token or API key in a header or query parameter.
    Token(TokenConfig),
    /// HTTP basic auth.
    BasicAuth(BasicAuthConfig),
    /// Standard Webhooks (`webhook-id` / `webhook-timestamp` / `webhook-signature`,
    /// also Svix's `svix-*` names).
    StandardWebhooks(StandardWebhooksConfig),
    /// Stripe's `Stripe-Signature: t=...,v1=...`.
    Stripe(StripeConfig),
    /// GitHub's `X-Hub-Signature-256: sha256=...`.
    Github(GithubConfig),
    /// Shopify's `X-Shopify-Hmac-Sha256` (base64).
    Shopify(ShopifyConfig),
    /// Slack's `X-Slack-Signature: v0=...` with `X-Slack-Request-Timestamp`,
    /// and its `url_verification` challenge.
    Slack(SlackConfig),
    /// Meta / WhatsApp Cloud API: the `hub.*` GET handshake and
    /// `X-Hub-Signature-256` POSTs.
    Meta(MetaConfig),
    /// Mercado Pago's `x-signature: ts=...,v1=...` over a manifest.
    MercadoPago(MercadoPagoConfig),
    /// Twilio's `X-Twilio-Signature` over the public URL (and form parameters).
    Twilio(TwilioConfig),
    /// Square's `x-square-hmacsha256-signature` over the public URL and body.
    Square(SquareConfig),
    /// Paddle Billing's `Paddle-Signature: ts=...;h1=...`.
    Paddle(PaddleConfig),
    /// HubSpot's v3 `X-HubSpot-Signature-v3` over method, public URL, body
    /// and millisecond timestamp.
    Hubspot(HubspotConfig),
    /// Zoom's `x-zm-signature: v0=...`, and its `endpoint.url_validation`
    /// challenge.
    Zoom(ZoomConfig),
    /// dLocal's `Authorization: V2-HMAC-SHA256, Signature: ...` over
    /// X-Login, X-Date and body.
    Dlocal(DlocalConfig),
    /// Khipu's v3 `x-khipu-signature: t=...,s=...`.
    Khipu(KhipuConfig),
    /// A SHA-256 checksum inside the body over the body properties it lists,
    /// the body's timestamp and the secret (Wompi).
    PropertyChecksum(PropertyChecksumConfig),
    /// Ed25519 over an optional timestamp header + body (Discord).
    Ed25519(PublicKeyConfig),
    /// ECDSA P-256 / SHA-256 over an optional timestamp header + body
    /// (SendGrid's Event Webhook).
    EcdsaP256(PublicKeyConfig),
    /// RSA PKCS#1 v1.5 / SHA-256 over an optional timestamp header + body;
    /// generic, no preset uses it yet.
    RsaSha256(PublicKeyConfig),
}

impl VerifierConfig {
    /// Checks what can be checked without the secrets: a configuration that
    /// could never verify a delivery is a start-up error.
    pub fn check(&self) -> Result<(), String> {
        match self {
            VerifierConfig::Hmac(c) => c.check(),
            VerifierConfig::Ed25519(c) | VerifierConfig::EcdsaP256(c) | VerifierConfig::RsaSha256(c) => c.check(),
            _ => Ok(()),
        }
    }

    /// Resolves the secrets and builds the verifier. Fails naming the
    /// missing variable when the first secret is not set.
    pub fn build(&self, secrets: &dyn SecretResolver) -> Result<Box<dyn Verifier>, SecretError> {
        Ok(match self {
            VerifierConfig::Hmac(c) => Box::new(HmacVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Token(c) => Box::new(TokenVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::BasicAuth(c) => {
                Box::new(BasicAuthVerifier::new(c.clone(), resolve_all(&c.passwords, secrets)?))
            }
            VerifierConfig::StandardWebhooks(c) => Box::new(StandardWebhooksVerifier::new(
                c.clone(),
                standard_webhooks::resolve_keys(&c.secrets, secrets)?,
            )),
            VerifierConfig::Stripe(c) => Box::new(StripeVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Github(c) => Box::new(GithubVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Shopify(c) => Box::new(ShopifyVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Slack(c) => Box::new(SlackVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Meta(c) => Box::new(MetaVerifier::new(
                c.clone(),
                resolve_all(&c.secrets, secrets)?,
                resolve_all(&c.verify_tokens, secrets)?,
            )),
            VerifierConfig::MercadoPago(c) => {
                Box::new(MercadoPagoVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?))
            }
            VerifierConfig::Twilio(c) => Box::new(TwilioVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Square(c) => Box::new(SquareVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Paddle(c) => Box::new(PaddleVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Hubspot(c) => Box::new(HubspotVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Zoom(c) => Box::new(ZoomVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Dlocal(c) => Box::new(DlocalVerifier::new(
                c.clone(),
                resolve_all(&c.secrets, secrets)?,
                resolve_all(&c.logins, secrets)?,
            )),
            VerifierConfig::Khipu(c) => Box::new(KhipuVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::PropertyChecksum(c) => Box::new(PropertyChecksumVerifier::new(
                c.clone(),
                resolve_all(&c.secrets, secrets)?,
            )),
            VerifierConfig::Ed25519(c) => {
                Box::new(PublicKeyVerifier::build(public_key::Algorithm::Ed25519, c, secrets)?)
            }
            VerifierConfig::EcdsaP256(c) => {
                Box::new(PublicKeyVerifier::build(public_key::Algorithm::EcdsaP256, c, secrets)?)
            }
            VerifierConfig::RsaSha256(c) => {
                Box::new(PublicKeyVerifier::build(public_key::Algorithm::RsaSha256, c, secrets)?)
            }
        })
    }
}

/// Resolves a rotation list: the first reference (the current secret) must
/// resolve; later ones (previous secrets kept during a rotation) are skipped
/// when their variable is unset.
pub fn resolve_all(refs: &[String], resolver: &dyn SecretResolver) -> Result<Vec<Secret>, SecretError> {
    let mut out = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        match resolver.resolve(r) {
            Ok(s) => out.push(s),
            Err(SecretError::MissingEnv(_)) if i > 0 => {}
            Err(e) => return Err(e),
        }
    }
    if out.is_empty() {
        return Err(SecretError::NoneConfigured);
    }
    Ok(out)
}

/// Checks a signed timestamp against `now` with `tolerance` seconds both ways.
pub fn check_timestamp(ts: i64, now: i64, tolerance: i64) -> Result<(), VerifyError> {
    // Saturating: a sender may write any i64, and none may overflow here.
    if ts < now.saturating_sub(tolerance) {
        return Err(VerifyError::TimestampOutOfTolerance(format!(
            "{}s too old",
            now.saturating_sub(ts)
        )));
    }
    if ts > now.saturating_add(tolerance) {
        return Err(VerifyError::TimestampOutOfTolerance(format!(
            "{}s in the future",
            ts.saturating_sub(now)
        )));
    }
    Ok(())
}

/// The default tolerance of timestamped schemes: five minutes both ways.
pub(crate) fn default_tolerance() -> i64 {
    300
}

/// Parses a decimal Unix timestamp header value.
pub fn parse_timestamp(raw: &str) -> Result<i64, VerifyError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| VerifyError::Invalid("timestamp is not a number".into()))
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// Builds a request over owned parts for verifier tests.
    pub struct Owned {
        pub method: http::Method,
        pub headers: HeaderMap,
        pub query: Vec<(String, String)>,
        pub body: Vec<u8>,
        pub url: String,
        pub now: i64,
    }

    /// The property every body-signing verifier's tests run (the test
    /// kit's, over this crate's types): what `v` signs verifies once
    /// delivered, and the same delivery with one byte of its body changed
    /// is refused. `deliver` turns the body and what was signed into the
    /// request (most: [`Owned::post`] at the signing time).
    pub fn signed_passes_and_a_changed_byte_fails(
        v: &dyn Verifier,
        input: &SignInput<'_>,
        at: proptest::sample::Index,
        flip: u8,
        deliver: impl Fn(&[u8], &Signed) -> Owned,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let signed = v.sign(input);
        webhooks_testkit::verifier::signed_passes_and_a_changed_byte_fails(input.body, at, flip, |body| {
            // Delivered as signed, then the body swapped: the headers and
            // URL stay those of the original body.
            let mut delivery = deliver(input.body, &signed);
            delivery.body = body.to_vec();
            v.verify(&delivery.req()).map_err(|e| e.reason())
        })
    }

    /// A delivery of `body` with what was signed, at `now`.
    pub fn posted_at(now: i64) -> impl Fn(&[u8], &Signed) -> Owned {
        move |body, signed| Owned::post(body, now).with_signed(signed)
    }

    /// Secrets from literal values.
    pub fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|s| Secret::new(s.as_bytes().to_vec())).collect()
    }

    impl Owned {
        pub fn post(body: &[u8], now: i64) -> Self {
            Self {
                method: http::Method::POST,
                headers: HeaderMap::new(),
                query: vec![],
                body: body.to_vec(),
                url: "https://example.test/webhooks/x".into(),
                now,
            }
        }

        pub fn header(mut self, k: &str, v: &str) -> Self {
            self.headers.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                http::HeaderValue::from_str(v).expect("header value"),
            );
            self
        }

        /// A header whose value is raw bytes (not visible ASCII, not UTF-8).
        pub fn header_bytes(mut self, k: &str, v: &[u8]) -> Self {
            self.headers.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                http::HeaderValue::from_bytes(v).expect("header value"),
            );
            self
        }

        pub fn get(query: &[(&str, &str)], now: i64) -> Self {
            let mut o = Self::post(b"", now);
            o.method = http::Method::GET;
            o.query = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            o
        }

        pub fn url(mut self, url: &str) -> Self {
            self.url = url.to_string();
            self
        }

        pub fn with_signed(mut self, s: &Signed) -> Self {
            for (k, v) in &s.headers {
                self = self.header(k, v);
            }
            self.query.extend(s.query.iter().cloned());
            self
        }

        pub fn req(&self) -> Request<'_> {
            Request {
                method: &self.method,
                headers: &self.headers,
                query: &self.query,
                body: &self.body,
                url: &self.url,
                now: self.now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_their_own_reason_both_ways() {
        assert!(check_timestamp(1000, 1000, 300).is_ok());
        assert!(check_timestamp(700, 1000, 300).is_ok());
        let old = check_timestamp(699, 1000, 300).expect_err("rejected");
        assert_eq!(old.reason(), "timestamp_out_of_tolerance");
        let future = check_timestamp(1301, 1000, 300).expect_err("rejected");
        assert_eq!(future.reason(), "timestamp_out_of_tolerance");
        for extreme in [i64::MIN, i64::MAX] {
            let err = check_timestamp(extreme, 1000, 300).expect_err("rejected");
            assert_eq!(err.reason(), "timestamp_out_of_tolerance");
        }
    }

    /// Builds the verifier and checks that what it signs, it accepts (the
    /// body too, for schemes that sign inside it).
    fn round_trip(config: &VerifierConfig, r: &dyn SecretResolver) {
        let v = config.build(r).unwrap_or_else(|e| panic!("{config:?}: {e}"));
        let input = |body| SignInput {
            body,
            now: 1000,
            id: "evt_1",
            url: "https://example.test/webhooks/x",
        };
        let listed = br#"{"id":"evt_1","data":{"id":"evt_1"},"signature":{"properties":["id"]}}"#;
        let body = match v.sign_body(&input(listed)) {
            Some(body) => body.unwrap_or_else(|e| panic!("{config:?}: {e}")),
            None => br#"{"id":"evt_1"}"#.to_vec(),
        };
        let signed = v.sign(&input(&body));
        let mut o = test_support::Owned::post(&body, 1000).with_signed(&signed);
        if !signed.query.is_empty() {
            let q = serde_urlencoded::to_string(&signed.query).expect("query");
            o.url = format!("{}?{q}", o.url);
        }
        assert_eq!(v.verify(&o.req()), Ok(()), "{config:?}");
    }

    #[test]
    fn every_snippet_of_the_senders_doc_parses_and_round_trips() {
        struct AnySecret;
        impl SecretResolver for AnySecret {
            fn resolve(&self, _reference: &str) -> Result<Secret, SecretError> {
                Ok(Secret::new(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec()))
            }
        }
        let doc = include_str!("../../../../docs/senders.md");
        let mut schemes = std::collections::BTreeSet::new();
        for block in doc.split("```toml\n").skip(1) {
            let block = block.split("```").next().unwrap_or_default();
            let value: toml::Value = toml::from_str(block).unwrap_or_else(|e| panic!("{block}: {e}"));
            let providers = value.get("providers").and_then(|p| p.as_table()).expect("providers");
            for (name, table) in providers {
                let table = table.as_table().expect("a provider table");
                let table = toml::Value::Table(
                    crate::provider::presets::expand(name, table).unwrap_or_else(|e| panic!("{name}: {e}")),
                );
                let config: crate::provider::ProviderConfig =
                    table.clone().try_into().unwrap_or_else(|e| panic!("{name}: {e}"));
                match &config.verifier {
                    // Only the sender holds the private key: nothing to sign
                    // a round trip with, and the doc's key references hold
                    // no key here; the snippet must parse and pass `check`.
                    VerifierConfig::Ed25519(c) | VerifierConfig::EcdsaP256(c) | VerifierConfig::RsaSha256(c) => {
                        assert_eq!(c.check(), Ok(()), "{name}")
                    }
                    other => round_trip(other, &AnySecret),
                }
                let scheme = table["verifier"]["scheme"].as_str().unwrap_or_default().to_string();
                schemes.insert(scheme);
            }
        }
        let all = [
            "basic_auth",
            "dlocal",
            "github",
            "hmac",
            "mercado_pago",
            "meta",
            "property_checksum",
            "rsa_sha256",
            "shopify",
            "slack",
            "square",
            "standard_webhooks",
            "stripe",
            "token",
            "twilio",
        ];
        assert_eq!(schemes.into_iter().collect::<Vec<_>>(), all);
    }

    #[test]
    fn every_scheme_deserializes_and_builds() {
        #[derive(Deserialize)]
        struct T {
            verifier: VerifierConfig,
        }
        let r = crate::secret::MapResolver::default()
            .with("S", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .with("T", "verify-token");
        let tables = [
            r#"verifier = { scheme = "standard_webhooks", secrets = ["env:S", "env:S_PREVIOUS"] }"#,
            r#"verifier = { scheme = "standard_webhooks", secrets = ["env:S"], tolerance_secs = 60 }"#,
            r#"verifier = { scheme = "stripe", secrets = ["env:S"], tolerance_secs = 600 }"#,
            r#"verifier = { scheme = "github", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "shopify", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "slack", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "meta", secrets = ["env:S"], verify_tokens = ["env:T"] }"#,
            r#"verifier = { scheme = "mercado_pago", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "twilio", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "square", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "paddle", secrets = ["env:S"], tolerance_secs = 30 }"#,
            r#"verifier = { scheme = "hubspot", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "zoom", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "dlocal", secrets = ["env:S"], logins = ["env:T"] }"#,
            r#"verifier = { scheme = "khipu", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "property_checksum", secrets = ["env:S", "env:S_PREVIOUS"] }"#,
        ];
        for table in tables {
            let t: T = toml::from_str(table).unwrap_or_else(|e| panic!("{table}: {e}"));
            round_trip(&t.verifier, &r);
        }
        for bad in [
            r#"verifier = { scheme = "github", secrets = ["env:S"], header = "X" }"#,
            r#"verifier = { scheme = "meta", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "mercadopago", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "dlocal", secrets = ["env:S"] }"#,
            r#"verifier = { scheme = "zoom", secrets = ["env:S"], tolerance_secs = 300 }"#,
            r#"verifier = { scheme = "property_checksum", secrets = ["env:S"], header = "X" }"#,
        ] {
            assert!(toml::from_str::<T>(bad).is_err(), "{bad}");
        }
        let t: T = toml::from_str(r#"verifier = { scheme = "standard_webhooks", secrets = ["env:T"] }"#).expect("toml");
        let err = t.verifier.build(&r).expect_err("rejected");
        assert!(err.to_string().contains("env:T"), "{err}");
        let t: T = toml::from_str(r#"verifier = { scheme = "stripe", secrets = ["env:UNSET"] }"#).expect("toml");
        assert_eq!(
            t.verifier.build(&r).expect_err("rejected"),
            SecretError::MissingEnv("UNSET".into())
        );
    }

    #[test]
    fn parse_each_reads_every_value_of_a_repeated_header() {
        let parse = |v: &str| v.parse::<u8>().map_err(|_| VerifyError::Invalid(format!("bad {v}")));
        let o = test_support::Owned::post(b"", 0);
        assert_eq!(
            o.req().parse_each("X-N", parse),
            Err(VerifyError::Missing("X-N".into()))
        );
        let one = test_support::Owned::post(b"", 0).header("X-N", "7");
        assert_eq!(one.req().parse_each("x-n", parse), Ok(vec![7]));
        let unreadable = test_support::Owned::post(b"", 0).header_bytes("X-N", b"\xff");
        assert_eq!(
            unreadable.req().parse_each("X-N", parse),
            Err(VerifyError::Invalid("X-N is not visible ASCII".into())),
            "as require_header"
        );
        assert_eq!(
            unreadable.req().require_header("X-N"),
            Err(VerifyError::Invalid("X-N is not visible ASCII".into()))
        );
        let mixed = unreadable.header("X-N", "x").header("X-N", "9").header("x-n", "1");
        assert_eq!(mixed.req().parse_each("X-N", parse), Ok(vec![9, 1]));
        let none = test_support::Owned::post(b"", 0).header("X-N", "a").header("X-N", "b");
        assert_eq!(
            none.req().parse_each("X-N", parse),
            Err(VerifyError::Invalid("bad a".into())),
            "the first error"
        );
        assert_eq!(all_ok(Vec::<Result<u8, VerifyError>>::new()), Ok(vec![]));
    }

    #[test]
    fn rotation_list_skips_unset_previous_secrets() {
        let r = crate::secret::MapResolver::default().with("CUR", "a");
        let got = resolve_all(&["env:CUR".into(), "env:PREV".into()], &r).expect("ok");
        assert_eq!(got.len(), 1);
        let err = resolve_all(&["env:PREV".into(), "env:CUR".into()], &r).expect_err("rejected");
        assert_eq!(err, SecretError::MissingEnv("PREV".into()));
    }
}
