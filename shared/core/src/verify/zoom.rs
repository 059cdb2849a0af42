//! Zoom: `x-zm-signature: v0=` + hex(HMAC-SHA256(webhook secret token,
//! `v0:{x-zm-request-timestamp}:{body}`)) (Zoom's official
//! `zoom/webhook-sample`). A verified `endpoint.url_validation` POST (sent
//! when the endpoint is saved, and every 72 hours) is answered 200 with
//! `{"plainToken": .., "encryptedToken": hex(HMAC-SHA256(secret token,
//! plainToken))}`, as Slack's `url_verification` is answered; unlike Zoom's
//! sample, only once the request's own signature verifies.
//!
//! No timestamp tolerance is applied: Zoom documents neither the unit of
//! `x-zm-request-timestamp` nor a window, and a guessed unit would refuse
//! every delivery. The timestamp is still signed, and a replayed body is
//! the same event (the preset keys Zoom events by the body's hash).

use super::hmac_scheme::{hmac, verify_any};
use super::{all_ok, Algorithm, Handshake, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "x-zm-signature";
pub const TIMESTAMP_HEADER: &str = "x-zm-request-timestamp";
const URL_VALIDATION: &str = "endpoint.url_validation";

/// `scheme = "zoom"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoomConfig {
    /// References to the app's webhook secret token(s), used as text; the
    /// first is current.
    pub secrets: Vec<String>,
}

/// Parses `v0=<64 hex digits>` into the 32 bytes.
pub fn parse_signature(value: &str) -> Result<Vec<u8>, VerifyError> {
    super::slack::parse_v0(SIGNATURE_HEADER, value)
}

/// Verifies Zoom deliveries.
#[derive(Debug)]
pub struct ZoomVerifier {
    secrets: Vec<Secret>,
}

impl ZoomVerifier {
    /// The config holds only the token references, resolved into `secrets`.
    pub fn new(_config: ZoomConfig, secrets: Vec<Secret>) -> Self {
        Self { secrets }
    }

    /// The secret that signed the request, if any (the challenge is
    /// answered with that one, so a rotation keeps validating).
    fn signer(&self, req: &Request<'_>) -> Result<&Secret, VerifyError> {
        let sigs = all_ok(req.parse_each(SIGNATURE_HEADER, Ok)?.into_iter().map(parse_signature))?;
        let timestamp = req.require_header(TIMESTAMP_HEADER)?;
        let parts = super::slack::v0_content(timestamp, req.body);
        self.secrets
            .iter()
            .find(|s| verify_any(Algorithm::Sha256, std::slice::from_ref(*s), &parts, &sigs))
            .ok_or_else(|| VerifyError::Invalid("no signature matches".into()))
    }
}

#[derive(Deserialize)]
struct UrlValidation {
    event: String,
    payload: UrlValidationPayload,
}

#[derive(Deserialize)]
struct UrlValidationPayload {
    #[serde(rename = "plainToken")]
    plain_token: String,
}

impl Verifier for ZoomVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        self.signer(req).map(|_| ())
    }

    /// Answers `endpoint.url_validation` with the plain token and its HMAC.
    /// The body is only parsed once the request verifies.
    fn challenge(&self, req: &Request<'_>) -> Option<Handshake> {
        let secret = self.signer(req).ok()?;
        let probe: UrlValidation = serde_json::from_slice(req.body).ok()?;
        if probe.event != URL_VALIDATION {
            return None;
        }
        let encrypted = hex::encode(hmac(
            Algorithm::Sha256,
            secret.expose(),
            &[probe.payload.plain_token.as_bytes()],
        ));
        let body = serde_json::json!({
            "plainToken": probe.payload.plain_token,
            "encryptedToken": encrypted,
        });
        Some(Handshake {
            status: 200,
            content_type: "application/json",
            body: body.to_string(),
        })
    }

    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let ts = input.now.to_string();
        Signed {
            headers: vec![
                (
                    SIGNATURE_HEADER.into(),
                    super::slack::v0_signature(key, &ts, input.body),
                ),
                (TIMESTAMP_HEADER.into(), ts),
            ],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    // Computed independently with Python's hmac following Zoom's sample
    // (docs/research/presets-global-b.md); Zoom publishes no vector.
    const SECRET: &str = "zoom_secret";
    const BODY: &str = r#"{"event":"meeting.started","payload":{"account_id":"a"},"event_ts":1700000000000}"#;
    const SIG: &str = "v0=854f1f3337cc0c5efd42533552e3d5bcd58fd814ac93e8a8282dfd8034dc7ede";

    fn verifier(keys: &[&str]) -> ZoomVerifier {
        ZoomVerifier::new(ZoomConfig { secrets: vec![] }, secrets(keys))
    }

    fn delivery(body: &str, sig: &str) -> Owned {
        Owned::post(body.as_bytes(), 0)
            .header(SIGNATURE_HEADER, sig)
            .header(TIMESTAMP_HEADER, "1700000000")
    }

    #[test]
    fn the_vector_verifies_and_changes_are_refused() {
        let v = verifier(&[SECRET]);
        assert_eq!(v.verify(&delivery(BODY, SIG).req()), Ok(()));
        assert_eq!(v.challenge(&delivery(BODY, SIG).req()), None, "an event");
        let tampered = BODY.replace("started", "ended");
        assert_eq!(
            v.verify(&delivery(&tampered, SIG).req()).map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        let other_ts = Owned::post(BODY.as_bytes(), 0)
            .header(SIGNATURE_HEADER, SIG)
            .header(TIMESTAMP_HEADER, "1700000001");
        assert_eq!(
            v.verify(&other_ts.req()).map_err(|e| e.reason()),
            Err("invalid_signature"),
            "the timestamp is signed"
        );
        assert_eq!(
            verifier(&["other"])
                .verify(&delivery(BODY, SIG).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        assert_eq!(
            v.verify(&Owned::post(BODY.as_bytes(), 0).req()).map_err(|e| e.reason()),
            Err("missing_signature")
        );
    }

    #[test]
    fn url_validation_is_answered_with_the_signing_secret_only_when_verified() {
        let body = r#"{"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1700000000000}"#;
        let signed = verifier(&[SECRET]).sign(&SignInput {
            body: body.as_bytes(),
            now: 1_700_000_000,
            id: "",
            url: "",
        });
        // The secret being rotated out still signs: it answers.
        let v = verifier(&["new_secret", SECRET]);
        let o = Owned::post(body.as_bytes(), 0).with_signed(&signed);
        let answer = v.challenge(&o.req()).expect("answered");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type, "application/json");
        let json: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
                // From docs/research/presets-global-b.md.
                "encryptedToken": "46a324cfb7c2ec760e4cd561586a53aadb6fc7561eb8d626d6ee1b71d808b3c0",
            })
        );
        let mut forged = Owned::post(body.as_bytes(), 0).with_signed(&signed);
        forged.body[10] ^= 1;
        assert_eq!(v.challenge(&forged.req()), None);
        let unsigned = Owned::post(body.as_bytes(), 0).header(TIMESTAMP_HEADER, "1700000000");
        assert_eq!(v.challenge(&unsigned.req()), None);
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&["k"]);
            let input = SignInput { body: &body, now: 1_700_000_000, id: "", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(1_700_000_000))?;
        }
    }
}
