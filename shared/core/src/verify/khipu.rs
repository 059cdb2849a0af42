//! Khipu, notification API 3.0: `x-khipu-signature: t=<t>,s=<base64>` where
//! `s` is base64(HMAC-SHA256(collection account secret, `{t}.{body}`))
//! (Khipu's own Magento plugin, `Controller/Payment/Callback.php`). Each
//! item is split on its first `=` only, since base64 ends in `=` (the
//! plugin's `explode` drops that padding; it is kept here).
//!
//! Khipu documents no tolerance, and `t` looks like milliseconds in the
//! one example seen, so no window is applied; `t` is still signed.

use super::hmac_scheme::{hmac, verify_any};
use super::{Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use base64::Engine;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "x-khipu-signature";

/// `scheme = "khipu"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KhipuConfig {
    /// References to the collection account's secret(s), used as text; the
    /// first is current.
    pub secrets: Vec<String>,
}

/// A parsed `x-khipu-signature` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KhipuSignature {
    /// `t` as sent (it is what was signed).
    pub t: String,
    pub s: Vec<u8>,
}

/// Parses `t=...,s=...`: both are required, once each, `t` digits and `s`
/// a base64 SHA-256 HMAC; anything else is [`VerifyError::Invalid`].
pub fn parse_header(value: &str) -> Result<KhipuSignature, VerifyError> {
    let invalid = |what: &str| VerifyError::Invalid(format!("{SIGNATURE_HEADER} {what}"));
    let (mut t, mut s) = (None, None);
    for item in value.split(',') {
        let Some((key, val)) = item.split_once('=') else {
            continue;
        };
        let slot = match key.trim() {
            "t" => &mut t,
            "s" => &mut s,
            _ => continue,
        };
        if slot.replace(val.trim()).is_some() {
            return Err(invalid("repeats a key"));
        }
    }
    let t = t.ok_or_else(|| invalid("has no t"))?;
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("t is not a number"));
    }
    let s = s.ok_or_else(|| invalid("has no s"))?;
    match base64::engine::general_purpose::STANDARD.decode(s) {
        Ok(sig) if sig.len() == 32 => Ok(KhipuSignature {
            t: t.to_string(),
            s: sig,
        }),
        _ => Err(invalid("s is not a base64 SHA-256 HMAC")),
    }
}

/// Verifies Khipu v3 notifications.
#[derive(Debug)]
pub struct KhipuVerifier {
    secrets: Vec<Secret>,
}

impl KhipuVerifier {
    /// The config holds only the secret references, resolved into `secrets`.
    pub fn new(_config: KhipuConfig, secrets: Vec<Secret>) -> Self {
        Self { secrets }
    }
}

impl Verifier for KhipuVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let sigs = req.parse_each(SIGNATURE_HEADER, parse_header)?;
        let mut ok = false;
        for sig in &sigs {
            let parts: [&[u8]; 3] = [sig.t.as_bytes(), b".", req.body];
            ok |= verify_any(Algorithm::Sha256, &self.secrets, &parts, &[&sig.s]);
        }
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    /// Signs with `t` = `input.now` in milliseconds, as Khipu's example.
    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let t = input.now.saturating_mul(1000).to_string();
        let mac = hmac(Algorithm::Sha256, key, &[t.as_bytes(), b".", input.body]);
        let s = base64::engine::general_purpose::STANDARD.encode(mac);
        Signed {
            headers: vec![(SIGNATURE_HEADER.into(), format!("t={t},s={s}"))],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    // Khipu publishes no vector with a secret: the fields are those the
    // official plugin reads, the `t` that of the header example, and the
    // signature computed independently with Python's hmac.
    const SECRET: &str = "khipu_test_secret";
    const BODY: &str = r#"{"payment_id":"9xlgpyxqbzcl","receiver_id":"985","amount":"1000.0000","currency":"CLP"}"#;
    const HEADER: &str = "t=1711965600393,s=NCMAYxIRO7DdmaLlWvwEOGD5HQzw+7CjqFpDqz5q32w=";

    fn verifier(keys: &[&str]) -> KhipuVerifier {
        KhipuVerifier::new(KhipuConfig { secrets: vec![] }, secrets(keys))
    }

    fn delivery(body: &str, header: &str) -> Owned {
        Owned::post(body.as_bytes(), 0).header(SIGNATURE_HEADER, header)
    }

    #[test]
    fn the_vector_verifies_and_t_and_body_are_signed() {
        let v = verifier(&["old", SECRET]);
        assert_eq!(v.verify(&delivery(BODY, HEADER).req()), Ok(()));
        let tampered = BODY.replace("1000", "1");
        let other_t = HEADER.replace("393", "394");
        for (body, header) in [(tampered.as_str(), HEADER), (BODY, other_t.as_str())] {
            assert_eq!(
                v.verify(&delivery(body, header).req()).map_err(|e| e.reason()),
                Err("invalid_signature")
            );
        }
        assert_eq!(
            verifier(&["other"])
                .verify(&delivery(BODY, HEADER).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        let signed = verifier(&[SECRET]).sign(&SignInput {
            body: BODY.as_bytes(),
            now: 1_711_965_600,
            id: "",
            url: "",
        });
        assert_eq!(
            signed.headers[0].1,
            "t=1711965600000,s=NaGCRj+Ine4ntqTUpwfFPW4SIbtAuigdTKFWVHhWivI="
        );
    }

    #[test]
    fn the_header_is_split_on_the_first_equals_sign() {
        let parsed = parse_header(" s=NCMAYxIRO7DdmaLlWvwEOGD5HQzw+7CjqFpDqz5q32w= , t=17").expect("parses");
        assert_eq!(parsed.t, "17");
        assert_eq!(parsed.s.len(), 32, "the padding is kept");
        for bad in [
            "t=1",
            "s=NCMAYxIRO7DdmaLlWvwEOGD5HQzw+7CjqFpDqz5q32w=",
            "t=x,s=NCMAYxIRO7DdmaLlWvwEOGD5HQzw+7CjqFpDqz5q32w=",
            "t=1,t=1,s=NCMAYxIRO7DdmaLlWvwEOGD5HQzw+7CjqFpDqz5q32w=",
            "t=1,s=NCMAYxIRO7DdmaLlWvwEOGD5HQzw+7CjqFpDqz5q32w",
        ] {
            assert_eq!(
                parse_header(bad).map_err(|e| e.reason()),
                Err("invalid_signature"),
                "{bad}"
            );
        }
        assert_eq!(
            verifier(&[SECRET])
                .verify(&Owned::post(b"{}", 0).req())
                .map_err(|e| e.reason()),
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
            let v = verifier(&["k"]);
            let input = SignInput { body: &body, now: 1_700_000_000, id: "", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(1_700_000_000))?;
        }
    }
}
