//! Paddle Billing: `Paddle-Signature: ts=<unix s>;h1=<hex>[;h1=<hex>...]`;
//! each `h1` is hex(HMAC-SHA256(endpoint secret key as UTF-8 text,
//! `{ts}:{body}`)). Several `h1` appear while a secret is being rotated.
//! Paddle's docs and SDKs reject a timestamp more than five seconds off
//! ("manual implementations should apply the same check"), so that is the
//! default tolerance, both ways as in the Python SDK's `Verifier`.
//!
//! Paddle's Python SDK raises on keys other than `ts` and `h1`; here they
//! are ignored (as Stripe's `v0` is), since a delivery still needs an `h1`
//! that matches.

use super::hmac_scheme::{decode_hex, hmac, verify_any};
use super::{check_timestamp, Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "Paddle-Signature";

/// `scheme = "paddle"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PaddleConfig {
    /// References to the notification destination's secret key(s)
    /// (`pdl_ntfset_...`, used as text); the first is current.
    pub secrets: Vec<String>,
    /// Seconds the timestamp may be off, both ways (Paddle says five).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

fn default_tolerance() -> i64 {
    5
}

/// A parsed `Paddle-Signature` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaddleSignature {
    /// The `ts` digits as sent (they are what was signed).
    pub timestamp: String,
    /// Decoded `h1` signatures (entries that are not hex are left out).
    pub h1: Vec<Vec<u8>>,
}

/// Parses `ts=...;h1=...`: a missing, repeated or non-numeric `ts`, or no
/// usable `h1`, is [`VerifyError::Invalid`].
pub fn parse_header(value: &str) -> Result<PaddleSignature, VerifyError> {
    let mut timestamp: Option<&str> = None;
    let mut h1 = Vec::new();
    for item in value.split(';') {
        let Some((key, val)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            "ts" => {
                let t = val.trim();
                if timestamp.replace(t).is_some() {
                    return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} repeats ts")));
                }
                if t.is_empty() || t.len() > 18 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} ts is not a number")));
                }
            }
            "h1" => {
                if let Some(sig) = decode_hex(val.trim()) {
                    h1.push(sig);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| VerifyError::Invalid(format!("{SIGNATURE_HEADER} has no ts")))?;
    if h1.is_empty() {
        return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} has no h1 signature")));
    }
    Ok(PaddleSignature {
        timestamp: timestamp.to_string(),
        h1,
    })
}

/// Verifies Paddle Billing deliveries.
#[derive(Debug)]
pub struct PaddleVerifier {
    config: PaddleConfig,
    secrets: Vec<Secret>,
}

impl PaddleVerifier {
    pub fn new(config: PaddleConfig, secrets: Vec<Secret>) -> Self {
        Self { config, secrets }
    }
}

impl Verifier for PaddleVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let parsed = parse_header(req.require_header(SIGNATURE_HEADER)?)?;
        // At most 18 digits, checked by the parser: always an i64.
        let ts = parsed.timestamp.parse::<i64>().unwrap_or(i64::MAX);
        check_timestamp(ts, req.now, self.config.tolerance_secs)?;
        if verify_any(
            Algorithm::Sha256,
            &self.secrets,
            &[parsed.timestamp.as_bytes(), b":", req.body],
            &parsed.h1,
        ) {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let ts = input.now.to_string();
        let mac = hmac(Algorithm::Sha256, key, &[ts.as_bytes(), b":", input.body]);
        Signed {
            headers: vec![(SIGNATURE_HEADER.into(), format!("ts={ts};h1={}", hex::encode(mac)))],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    /// Produced by Paddle's Python SDK (tests/data/paddle_sdk_vector.py).
    fn sdk_vector() -> (String, String, String) {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/paddle_sdk_vector.json")).expect("json");
        let s = |k: &str| v[k].as_str().expect(k).to_string();
        (s("secret"), s("paddle_signature"), s("body"))
    }

    fn verifier(keys: &[&str]) -> PaddleVerifier {
        PaddleVerifier::new(
            PaddleConfig {
                secrets: vec![],
                tolerance_secs: 5,
            },
            secrets(keys),
        )
    }

    #[test]
    fn the_sdk_vector_verifies_within_five_seconds_only() {
        let (secret, header, body) = sdk_vector();
        let v = verifier(&["pdl_ntfset_old", &secret]);
        let at = |now: i64, body: &str| Owned::post(body.as_bytes(), now).header(SIGNATURE_HEADER, &header);
        assert_eq!(v.verify(&at(1_700_000_005, &body).req()), Ok(()));
        assert_eq!(v.verify(&at(1_699_999_995, &body).req()), Ok(()));
        for now in [1_700_000_006, 1_699_999_994] {
            assert_eq!(
                v.verify(&at(now, &body).req()).map_err(|e| e.reason()),
                Err("timestamp_out_of_tolerance"),
                "{now}"
            );
        }
        let tampered = body.replacen("completed", "canceled", 1);
        assert_eq!(
            v.verify(&at(1_700_000_000, &tampered).req()).map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        let signed = verifier(&[&secret]).sign(&SignInput {
            body: body.as_bytes(),
            now: 1_700_000_000,
            id: "",
            url: "",
        });
        assert_eq!(
            signed.headers,
            vec![(SIGNATURE_HEADER.to_string(), header)],
            "as the SDK"
        );
    }

    #[test]
    fn the_header_is_parsed_strictly_where_it_matters() {
        let sig = "ab".repeat(32);
        let ok = parse_header(&format!("ts=17;h1=zz;h1={sig};h2=x")).expect("parses");
        assert_eq!(ok.timestamp, "17");
        assert_eq!(ok.h1.len(), 1, "the non-hex h1 is left out");
        for bad in [
            format!("h1={sig}"),
            format!("ts=1;ts=1;h1={sig}"),
            format!("ts=-1;h1={sig}"),
            format!("ts={};h1={sig}", "9".repeat(19)),
            "ts=1;h1=zz".to_string(),
        ] {
            assert_eq!(
                parse_header(&bad).map_err(|e| e.reason()),
                Err("invalid_signature"),
                "{bad}"
            );
        }
        let v = verifier(&["k"]);
        assert_eq!(
            v.verify(&Owned::post(b"{}", 0).req()).map_err(|e| e.reason()),
            Err("missing_signature")
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&["pdl_ntfset_k"]);
            let input = SignInput { body: &body, now: 1_700_000_000, id: "", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(1_700_000_003))?;
        }
    }
}
