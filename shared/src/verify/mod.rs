//! Verifiers: one per signing scheme, pure functions over the raw request
//! (body bytes exactly as received, headers, query, public URL, secrets, now).
//!
//! A verifier never reads a parsed JSON body: it runs before parsing, so a
//! forged body never reaches the parser. Every comparison is constant time
//! (`hmac`'s `verify_slice` or `subtle`). Every secret-based verifier takes a
//! list of secrets so a secret can be rotated without downtime.

mod hmac_scheme;
mod token;

pub use hmac_scheme::{Algorithm, Encoding, HmacConfig, HmacVerifier};
pub use token::{BasicAuthConfig, KeyLocation, TokenConfig, TokenVerifier};

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

    /// The first query parameter with this name.
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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
    /// has none and the GET is answered 404.
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
}

impl VerifierConfig {
    /// Resolves the secrets and builds the verifier. Fails naming the
    /// missing variable when the first secret is not set.
    pub fn build(&self, secrets: &dyn SecretResolver) -> Result<Box<dyn Verifier>, SecretError> {
        Ok(match self {
            VerifierConfig::Hmac(c) => Box::new(HmacVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::Token(c) => Box::new(TokenVerifier::new(c.clone(), resolve_all(&c.secrets, secrets)?)),
            VerifierConfig::BasicAuth(c) => Box::new(token::BasicAuthVerifier::new(
                c.clone(),
                resolve_all(&c.passwords, secrets)?,
            )),
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
        return Err(SecretError::BadReference("(no secret configured)".into()));
    }
    Ok(out)
}

/// Checks a signed timestamp against `now` with `tolerance` seconds both ways.
pub fn check_timestamp(ts: i64, now: i64, tolerance: i64) -> Result<(), VerifyError> {
    if ts < now - tolerance {
        return Err(VerifyError::TimestampOutOfTolerance(format!("{}s too old", now - ts)));
    }
    if ts > now + tolerance {
        return Err(VerifyError::TimestampOutOfTolerance(format!("{}s in the future", ts - now)));
    }
    Ok(())
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
        let old = check_timestamp(699, 1000, 300).unwrap_err();
        assert_eq!(old.reason(), "timestamp_out_of_tolerance");
        let future = check_timestamp(1301, 1000, 300).unwrap_err();
        assert_eq!(future.reason(), "timestamp_out_of_tolerance");
    }

    #[test]
    fn rotation_list_skips_unset_previous_secrets() {
        let r = crate::secret::MapResolver::default().with("CUR", "a");
        let got = resolve_all(&["env:CUR".into(), "env:PREV".into()], &r).unwrap();
        assert_eq!(got.len(), 1);
        let err = resolve_all(&["env:PREV".into(), "env:CUR".into()], &r).unwrap_err();
        assert_eq!(err, SecretError::MissingEnv("PREV".into()));
    }
}
