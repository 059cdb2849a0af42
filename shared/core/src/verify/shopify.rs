//! Shopify: `X-Shopify-Hmac-Sha256` = base64(HMAC-SHA256(app client secret,
//! body)), one signature, no prefix, no timestamp. The delivery id travels in
//! `X-Shopify-Webhook-Id` and the topic in `X-Shopify-Topic` (read by the
//! provider config, not here).

use super::hmac_scheme::{hmac, verify_any};
use super::{Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use base64::Engine;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";
pub const WEBHOOK_ID_HEADER: &str = "X-Shopify-Webhook-Id";

/// `scheme = "shopify"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShopifyConfig {
    /// References to the app's client secret(s); the first is current.
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

/// Verifies Shopify deliveries.
#[derive(Debug)]
pub struct ShopifyVerifier {
    secrets: Vec<Secret>,
}

impl ShopifyVerifier {
    /// The config holds only the secret references, resolved into `secrets`.
    pub fn new(_config: ShopifyConfig, secrets: Vec<Secret>) -> Self {
        Self { secrets }
    }
}

impl Verifier for ShopifyVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        // One signature per header; a repeated header matches on any value.
        let sigs = req.parse_each(SIGNATURE_HEADER, parse_signature)?;
        if verify_any(Algorithm::Sha256, &self.secrets, &[req.body], &sigs) {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    /// Also sets `X-Shopify-Webhook-Id` to the id, where Shopify carries it.
    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let mac = hmac(Algorithm::Sha256, key, &[input.body]);
        let mut headers = vec![(
            SIGNATURE_HEADER.into(),
            base64::engine::general_purpose::STANDARD.encode(mac),
        )];
        if !input.id.is_empty() {
            headers.push((WEBHOOK_ID_HEADER.into(), input.id.to_string()));
        }
        Signed { headers, query: vec![] }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    // Shopify publishes no vector; computed independently with
    // `openssl dgst -sha256 -hmac shpss_test -binary | base64`.
    const SECRET: &str = "shpss_test";
    const BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@doe.ca"}"#;
    const SIG: &str = "cErMfPB2ezG5HfNhiWmAt2R4j9LvW1/VXSXb0Yuq62M=";

    fn verifier(keys: &[&str]) -> ShopifyVerifier {
        ShopifyVerifier::new(ShopifyConfig { secrets: vec![] }, secrets(keys))
    }

    fn delivery(body: &[u8], sig: &str) -> Owned {
        Owned::post(body, 0).header("X-Shopify-Hmac-Sha256", sig)
    }

    #[test]
    fn independently_computed_vector() {
        let v = verifier(&[SECRET]);
        assert_eq!(v.verify(&delivery(BODY, SIG).req()), Ok(()));
        let signed = v.sign(&SignInput {
            body: BODY,
            now: 0,
            id: "b54557e4",
            url: "",
        });
        assert_eq!(signed.headers[0].1, SIG);
        assert_eq!(
            signed.headers[1],
            ("X-Shopify-Webhook-Id".to_string(), "b54557e4".to_string())
        );
    }

    #[test]
    fn tampering_wrong_and_rotated_secrets() {
        let v = verifier(&[SECRET]);
        let mut body = BODY.to_vec();
        body[7] = b'9';
        assert!(matches!(
            v.verify(&delivery(&body, SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert!(matches!(
            verifier(&["shpss_other"]).verify(&delivery(BODY, SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert_eq!(
            verifier(&["shpss_new", SECRET]).verify(&delivery(BODY, SIG).req()),
            Ok(())
        );
    }

    #[test]
    fn missing_truncated_and_malformed() {
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(&Owned::post(BODY, 0).req()),
            Err(VerifyError::Missing("X-Shopify-Hmac-Sha256".into()))
        );
        let hex_form = hex::encode(base64::engine::general_purpose::STANDARD.decode(SIG).expect("b64"));
        for bad in [
            &SIG[..SIG.len() - 4],
            &SIG[..SIG.len() - 1],
            "",
            "!!!!",
            hex_form.as_str(),
            "AAAA",
        ] {
            let err = v.verify(&delivery(BODY, bad).req()).expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{bad:?}");
        }
    }

    #[test]
    fn repeated_header_matches_on_any_value() {
        let v = verifier(&[SECRET]);
        let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        for [a, b] in [[SIG, wrong.as_str()], [wrong.as_str(), SIG], ["!!!!", SIG], [SIG, ""]] {
            let r = delivery(BODY, a).header("X-Shopify-Hmac-Sha256", b);
            assert_eq!(v.verify(&r.req()), Ok(()), "{a:?}, {b:?}");
        }
        let unreadable_then_right = Owned::post(BODY, 0)
            .header_bytes("X-Shopify-Hmac-Sha256", b"\xff")
            .header("X-Shopify-Hmac-Sha256", SIG);
        assert_eq!(v.verify(&unreadable_then_right.req()), Ok(()));
        let none = delivery(BODY, &wrong).header("X-Shopify-Hmac-Sha256", &wrong);
        assert_eq!(
            v.verify(&none.req()),
            Err(VerifyError::Invalid("no signature matches".into()))
        );
        let malformed = delivery(BODY, "AAAA").header("X-Shopify-Hmac-Sha256", "!!!!");
        assert_eq!(
            v.verify(&malformed.req()).expect_err("rejected").reason(),
            "invalid_signature"
        );
        let unreadable = Owned::post(BODY, 0).header_bytes("X-Shopify-Hmac-Sha256", b"\xff");
        assert_eq!(
            v.verify(&unreadable.req()),
            Err(VerifyError::Invalid(
                "X-Shopify-Hmac-Sha256 is not visible ASCII".into()
            ))
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&[SECRET]);
            let input = SignInput { body: &body, now: 0, id: "", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(0))?;
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = parse_signature(&s);
        }
    }
}
