//! Square: `x-square-hmacsha256-signature` = base64(HMAC-SHA256(signature
//! key, notification URL + body)), no separator, no timestamp (Square's
//! Python SDK `square.utils.webhooks_helper.verify_signature`).
//!
//! The URL is [`Request::url`]: the provider's `public_url` (plus the
//! query, if any) or the URL rebuilt from forwarded headers, as for Twilio.
//! Square signs the notification URL exactly as saved in the subscription,
//! so `public_url` should be set to that text: unlike Twilio's libraries,
//! Square's try no port variants, and neither does this verifier.

use super::hmac_scheme::{hmac, verify_any};
use super::{Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use base64::Engine;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "x-square-hmacsha256-signature";

/// `scheme = "square"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SquareConfig {
    /// References to the subscription's signature key(s), used as UTF-8
    /// text; the first is current.
    pub secrets: Vec<String>,
}

/// Parses the base64 signature into its 32 bytes.
pub fn parse_signature(value: &str) -> Result<Vec<u8>, VerifyError> {
    match base64::engine::general_purpose::STANDARD.decode(value.trim()) {
        Ok(sig) if sig.len() == 32 => Ok(sig),
        _ => Err(VerifyError::Invalid(format!(
            "{SIGNATURE_HEADER} is not a base64 SHA-256 HMAC"
        ))),
    }
}

/// Verifies Square deliveries.
#[derive(Debug)]
pub struct SquareVerifier {
    secrets: Vec<Secret>,
}

impl SquareVerifier {
    /// The config holds only the key references, resolved into `secrets`.
    pub fn new(_config: SquareConfig, secrets: Vec<Secret>) -> Self {
        Self { secrets }
    }
}

impl Verifier for SquareVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        // One signature per header; a repeated header matches on any value.
        let candidates = req.parse_each(SIGNATURE_HEADER, parse_signature)?;
        if verify_any(
            Algorithm::Sha256,
            &self.secrets,
            &[req.url.as_bytes(), req.body],
            &candidates,
        ) {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    /// Only for Square does ingest rebuild the URL (it is signed).
    fn signs_url(&self) -> bool {
        true
    }

    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let mac = hmac(Algorithm::Sha256, key, &[input.url.as_bytes(), input.body]);
        Signed {
            headers: vec![(
                SIGNATURE_HEADER.into(),
                base64::engine::general_purpose::STANDARD.encode(mac),
            )],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    // Square's webhook sample code (the curl comment of its sample server),
    // as cited in docs/research/presets-global-a.md.
    const KEY: &str = "asdf1234";
    const URL: &str = "https://example.com/webhook";
    const BODY: &str = r#"{"hello":"world"}"#;
    const SIG: &str = "2kRE5qRU2tR+tBGlDwMEw2avJ7QM4ikPYD/PJ3bd9Og=";

    fn verifier(keys: &[&str]) -> SquareVerifier {
        SquareVerifier::new(SquareConfig { secrets: vec![] }, secrets(keys))
    }

    fn delivery(body: &str, url: &str, sig: &str) -> Owned {
        Owned::post(body.as_bytes(), 0).url(url).header(SIGNATURE_HEADER, sig)
    }

    #[test]
    fn square_sample_vector_verifies_and_the_url_is_signed() {
        let v = verifier(&["other", KEY]);
        assert_eq!(v.verify(&delivery(BODY, URL, SIG).req()), Ok(()));
        for (body, url) in [
            (r#"{"hello":"World"}"#, URL),
            (BODY, "https://example.com/webhooks"),
            (BODY, "https://example.com:443/webhook"),
        ] {
            assert_eq!(
                v.verify(&delivery(body, url, SIG).req()).map_err(|e| e.reason()),
                Err("invalid_signature"),
                "{body} at {url}"
            );
        }
        assert_eq!(
            verifier(&["asdf1235"])
                .verify(&delivery(BODY, URL, SIG).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        assert!(v.signs_url());
    }

    #[test]
    fn missing_and_malformed_signatures_are_told_apart() {
        let v = verifier(&[KEY]);
        let none = Owned::post(BODY.as_bytes(), 0).url(URL);
        assert_eq!(v.verify(&none.req()).map_err(|e| e.reason()), Err("missing_signature"));
        let short = delivery(BODY, URL, "c2hvcnQ=");
        assert_eq!(
            v.verify(&short.req()),
            Err(VerifyError::Invalid(format!(
                "{SIGNATURE_HEADER} is not a base64 SHA-256 HMAC"
            )))
        );
        let signed = v.sign(&SignInput {
            body: BODY.as_bytes(),
            now: 0,
            id: "",
            url: URL,
        });
        assert_eq!(signed.headers, vec![(SIGNATURE_HEADER.to_string(), SIG.to_string())]);
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&["k"]);
            let input = SignInput { body: &body, now: 0, id: "", url: URL };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, |body, signed| {
                Owned::post(body, 0).url(URL).with_signed(signed)
            })?;
        }
    }
}
