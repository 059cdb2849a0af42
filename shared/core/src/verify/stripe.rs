//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=...]`; each
//! `v1` is hex(HMAC-SHA256(signing secret as UTF-8 bytes, `{t}.{body}`)).
//! Several `v1` entries appear while a secret is being rolled; `v0` (test
//! mode legacy) and unknown keys are ignored, as Stripe's libraries do. The
//! timestamp must be within the tolerance (300 s by default) both ways.

use super::hmac_scheme::{hmac, verify_any};
use super::{check_timestamp, default_tolerance, Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use serde::Deserialize;
use smallvec::SmallVec;

pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// `scheme = "stripe"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    /// References to `whsec_...` endpoint signing secrets (used as UTF-8
    /// text, not decoded); the first is current.
    pub secrets: Vec<String>,
    /// Seconds the timestamp may be off, both ways.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
    /// The header carrying `t=...,v1=...`: `Stripe-Signature`, or another
    /// sender's name for the same format (Fintoc's `Fintoc-Signature`).
    #[serde(default = "default_header")]
    pub header: String,
}

fn default_header() -> String {
    SIGNATURE_HEADER.into()
}

/// A `v1` signature: the 32 bytes of an HMAC-SHA256.
pub type V1 = [u8; 32];

/// A parsed `Stripe-Signature` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSignature {
    pub timestamp: i64,
    /// Decoded `v1` signatures, inline for the one or two a header carries
    /// (two while a secret is rolled). An entry that is not 64 hex digits
    /// cannot match and is left out, as one that is not hex at all.
    pub v1: SmallVec<[V1; 2]>,
}

/// Parses `t=...,v1=...`. Items without `=` and unknown keys are ignored;
/// a missing or repeated `t`, a `t` that is not a number, or no usable
/// `v1` is [`VerifyError::Invalid`].
pub fn parse_header(value: &str) -> Result<StripeSignature, VerifyError> {
    let mut timestamp = None;
    let mut v1 = SmallVec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} repeats t")));
                }
                let t = val.trim();
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} t is not a number")));
                }
                timestamp = Some(
                    t.parse::<i64>()
                        .map_err(|_| VerifyError::Invalid(format!("{SIGNATURE_HEADER} t is out of range")))?,
                );
            }
            "v1" => {
                let mut sig: V1 = [0; 32];
                if base16ct::mixed::decode(val.trim(), &mut sig).is_ok_and(|d| d.len() == 32) {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| VerifyError::Invalid(format!("{SIGNATURE_HEADER} has no timestamp")))?;
    if v1.is_empty() {
        return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} has no v1 signature")));
    }
    Ok(StripeSignature { timestamp, v1 })
}

/// Verifies Stripe deliveries.
#[derive(Debug)]
pub struct StripeVerifier {
    config: StripeConfig,
    secrets: Vec<Secret>,
}

impl StripeVerifier {
    pub fn new(config: StripeConfig, secrets: Vec<Secret>) -> Self {
        Self { config, secrets }
    }
}

impl Verifier for StripeVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let parsed = parse_header(req.require_header(&self.config.header)?)?;
        check_timestamp(parsed.timestamp, req.now, self.config.tolerance_secs)?;
        // Printed as Stripe's libraries print it, on the stack.
        let mut digits = itoa::Buffer::new();
        let t = digits.format(parsed.timestamp);
        if verify_any(
            Algorithm::Sha256,
            &self.secrets,
            &[t.as_bytes(), b".", req.body],
            &parsed.v1,
        ) {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let t = input.now.to_string();
        let mac = hmac(Algorithm::Sha256, key, &[t.as_bytes(), b".", input.body]);
        Signed {
            headers: vec![(self.config.header.clone(), format!("t={t},v1={}", hex::encode(mac)))],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "whsec_test_secret";
    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","object":"event","type":"invoice.paid"}"#;
    // hex(HMAC-SHA256("whsec_test_secret", "1700000000." + BODY)), computed
    // independently with `openssl dgst -sha256 -hmac`.
    const SIG: &str = "dfb4777aaaec4ea29ff455dd4df7fe6b2ef71096ad3a93a158db7e100109ea91";

    fn verifier(keys: &[&str]) -> StripeVerifier {
        StripeVerifier::new(
            StripeConfig {
                secrets: vec![],
                tolerance_secs: 300,
                header: SIGNATURE_HEADER.into(),
            },
            secrets(keys),
        )
    }

    fn delivery(body: &[u8], now: i64, header: &str) -> Owned {
        Owned::post(body, now).header("Stripe-Signature", header)
    }

    #[test]
    fn independently_computed_vector() {
        let v = verifier(&[SECRET]);
        let header = format!("t={NOW},v1={SIG}");
        assert_eq!(v.verify(&delivery(BODY, NOW, &header).req()), Ok(()));
        let signed = v.sign(&SignInput {
            body: BODY,
            now: NOW,
            id: "",
            url: "",
        });
        assert_eq!(signed.headers, vec![("Stripe-Signature".to_string(), header)]);
    }

    #[test]
    fn several_v1_v0_and_unknown_keys() {
        let v = verifier(&[SECRET]);
        let header = format!(
            "t={NOW},v1={},v1={SIG},v0={},foo=bar,flag",
            "00".repeat(32),
            "11".repeat(32)
        );
        assert_eq!(v.verify(&delivery(BODY, NOW, &header).req()), Ok(()));
        // The right value under v0 only is not accepted.
        let v0 = format!("t={NOW},v0={SIG}");
        assert!(matches!(
            v.verify(&delivery(BODY, NOW, &v0).req()),
            Err(VerifyError::Invalid(_))
        ));
    }

    #[test]
    fn a_v1_that_is_not_32_bytes_is_left_out() {
        let v = verifier(&[SECRET]);
        let short = &SIG[..62];
        let long = format!("{SIG}00");
        let beside = format!("t={NOW},v1={short},v1={long},v1={SIG}");
        assert_eq!(v.verify(&delivery(BODY, NOW, &beside).req()), Ok(()));
        assert_eq!(parse_header(&beside).map(|p| p.v1.len()), Ok(1));
        for alone in [format!("t={NOW},v1={short}"), format!("t={NOW},v1={long}")] {
            let err = v.verify(&delivery(BODY, NOW, &alone).req()).expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{alone}");
        }
    }

    #[test]
    fn tampering_wrong_and_rotated_secrets() {
        let header = format!("t={NOW},v1={SIG}");
        let v = verifier(&[SECRET]);
        let mut body = BODY.to_vec();
        body[8] = b'2';
        assert!(matches!(
            v.verify(&delivery(&body, NOW, &header).req()),
            Err(VerifyError::Invalid(_))
        ));
        let moved = format!("t={},v1={SIG}", NOW + 1);
        assert!(matches!(
            v.verify(&delivery(BODY, NOW, &moved).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert!(matches!(
            verifier(&["whsec_other"]).verify(&delivery(BODY, NOW, &header).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert_eq!(
            verifier(&["whsec_new", SECRET]).verify(&delivery(BODY, NOW, &header).req()),
            Ok(())
        );
    }

    #[test]
    fn tolerance_both_ways_and_configurable() {
        let header = format!("t={NOW},v1={SIG}");
        let v = verifier(&[SECRET]);
        assert_eq!(v.verify(&delivery(BODY, NOW + 300, &header).req()), Ok(()));
        for now in [NOW - 301, NOW + 301] {
            let err = v.verify(&delivery(BODY, now, &header).req()).expect_err("rejected");
            assert_eq!(err.reason(), "timestamp_out_of_tolerance");
        }
        let mut wide = verifier(&[SECRET]);
        wide.config.tolerance_secs = 600;
        assert_eq!(wide.verify(&delivery(BODY, NOW + 599, &header).req()), Ok(()));
    }

    #[test]
    fn missing_truncated_and_malformed() {
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(&Owned::post(BODY, NOW).req()),
            Err(VerifyError::Missing("Stripe-Signature".into()))
        );
        let full = format!("t={NOW},v1={SIG}");
        for bad in [
            &full[..full.len() - 1],
            &full[..20],
            "",
            "t=",
            "v1=abc",
            &format!("v1={SIG}"),
            &format!("t=abc,v1={SIG}"),
            &format!("t=-5,v1={SIG}"),
            &format!("t={NOW},t={NOW},v1={SIG}"),
            &format!("t={NOW}"),
            &format!("t={NOW},v1=zz"),
            &format!("t=99999999999999999999,v1={SIG}"),
        ] {
            let err = v.verify(&delivery(BODY, NOW, bad).req()).expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{bad:?}");
        }
        assert_eq!(
            parse_header(&full),
            Ok(StripeSignature {
                timestamp: NOW,
                v1: smallvec::smallvec![<V1>::try_from(hex::decode(SIG).expect("hex")).expect("32 bytes")]
            })
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
            let input = SignInput { body: &body, now: NOW, id: "", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(NOW))?;
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = parse_header(&s);
        }
    }
}
