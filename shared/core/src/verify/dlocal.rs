//! dLocal (payins notifications): `Authorization: V2-HMAC-SHA256,
//! Signature: <hex>` where the hex is HMAC-SHA256(secret key, X-Login +
//! X-Date + body), no separators. `X-Login` is the merchant's own API login
//! (configured here, like the secret key), `X-Date` the notification's
//! header (ISO 8601). dLocal documents no tolerance for `X-Date`, so none is
//! applied; the date is still signed.
//!
//! dLocal's Verifications and Platforms notifications carry the same HMAC
//! in a `Signature` header whose value format the docs do not show: not
//! accepted here.

use super::hmac_scheme::{decode_hex, hmac, verify_any};
use super::{Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "Authorization";
pub const DATE_HEADER: &str = "X-Date";
const PREFIX: &str = "V2-HMAC-SHA256,";

/// `scheme = "dlocal"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DlocalConfig {
    /// References to the merchant's secret key(s), used as text; the first
    /// is current.
    pub secrets: Vec<String>,
    /// References to the merchant's `X-Login`(s), the API login that starts
    /// the signed text; the first is current. Every login is tried with
    /// every secret, so a login and a key can be rotated together.
    pub logins: Vec<String>,
}

/// Parses `V2-HMAC-SHA256, Signature: <64 hex digits>` into the 32 bytes.
pub fn parse_signature(value: &str) -> Result<Vec<u8>, VerifyError> {
    let hex_part = value
        .trim()
        .strip_prefix(PREFIX)
        .map(str::trim_start)
        .and_then(|rest| rest.strip_prefix("Signature:"))
        .ok_or_else(|| VerifyError::Invalid(format!("{SIGNATURE_HEADER} is not a V2-HMAC-SHA256 signature")))?;
    match decode_hex(hex_part.trim()) {
        Some(sig) if sig.len() == 32 => Ok(sig),
        _ => Err(VerifyError::Invalid(format!(
            "{SIGNATURE_HEADER} signature is not 64 hex digits"
        ))),
    }
}

/// Verifies dLocal notifications.
#[derive(Debug)]
pub struct DlocalVerifier {
    secrets: Vec<Secret>,
    logins: Vec<Secret>,
}

impl DlocalVerifier {
    pub fn new(_config: DlocalConfig, secrets: Vec<Secret>, logins: Vec<Secret>) -> Self {
        Self { secrets, logins }
    }
}

impl Verifier for DlocalVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let sigs = req.parse_each(SIGNATURE_HEADER, parse_signature)?;
        let date = req.require_header(DATE_HEADER)?;
        let mut ok = false;
        for login in &self.logins {
            let parts: [&[u8]; 3] = [login.expose(), date.as_bytes(), req.body];
            ok |= verify_any(Algorithm::Sha256, &self.secrets, &parts, &sigs);
        }
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    /// Signs with `X-Date` set to `input.now` in ISO 8601.
    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let login = self.logins.first().map(Secret::expose).unwrap_or_default();
        let date = crate::time::iso8601(input.now);
        let mac = hmac(Algorithm::Sha256, key, &[login, date.as_bytes(), input.body]);
        Signed {
            headers: vec![
                (
                    SIGNATURE_HEADER.into(),
                    format!("V2-HMAC-SHA256, Signature: {}", hex::encode(mac)),
                ),
                (DATE_HEADER.into(), date),
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

    // dLocal publishes no vector with a key. The X-Date and X-Login are
    // the ones of its Security page's example request and the body is the
    // start of its example notification; the signature was computed
    // independently with Python's hmac over login + date + body.
    const LOGIN: &str = "sak223k2wdksdl2";
    const SECRET: &str = "dlocal_test_secret_key";
    const DATE: &str = "2018-02-20T15:44:42.310Z";
    const BODY: &str = r#"{"id":"D-4-be8eda8c-5fe7-49dd-8058-4ddaac00611b","amount":72.00,"status":"PAID"}"#;
    const SIG: &str = "V2-HMAC-SHA256, Signature: ed12c4011c53003fdd066fc2e6fcd7f37bd80f9f8f49e55cef36e0adc73f0ff6";

    fn verifier(keys: &[&str], logins: &[&str]) -> DlocalVerifier {
        DlocalVerifier::new(
            DlocalConfig {
                secrets: vec![],
                logins: vec![],
            },
            secrets(keys),
            secrets(logins),
        )
    }

    fn delivery(body: &str, sig: &str) -> Owned {
        Owned::post(body.as_bytes(), 0)
            .header(SIGNATURE_HEADER, sig)
            .header(DATE_HEADER, DATE)
    }

    #[test]
    fn the_vector_verifies_and_login_date_and_body_are_signed() {
        let v = verifier(&[SECRET], &[LOGIN]);
        assert_eq!(v.verify(&delivery(BODY, SIG).req()), Ok(()));
        let tampered = BODY.replace("PAID", "REJECTED");
        assert_eq!(
            v.verify(&delivery(&tampered, SIG).req()).map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        let other_date = Owned::post(BODY.as_bytes(), 0)
            .header(SIGNATURE_HEADER, SIG)
            .header(DATE_HEADER, "2018-02-20T15:44:43.310Z");
        assert_eq!(
            v.verify(&other_date.req()).map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        for wrong in [verifier(&["other"], &[LOGIN]), verifier(&[SECRET], &["other"])] {
            assert_eq!(
                wrong.verify(&delivery(BODY, SIG).req()).map_err(|e| e.reason()),
                Err("invalid_signature")
            );
        }
        assert_eq!(
            verifier(&["new", SECRET], &["new", LOGIN]).verify(&delivery(BODY, SIG).req()),
            Ok(()),
            "during a rotation"
        );
    }

    #[test]
    fn the_header_must_have_the_documented_shape() {
        let hex = &SIG["V2-HMAC-SHA256, Signature: ".len()..];
        assert_eq!(parse_signature(SIG).map(|s| s.len()), Ok(32));
        assert_eq!(
            parse_signature(&format!("V2-HMAC-SHA256,Signature:{hex}")).map(|s| s.len()),
            Ok(32)
        );
        for bad in [
            hex.to_string(),
            format!("V1-HMAC-SHA256, Signature: {hex}"),
            format!("V2-HMAC-SHA256, Signature: {}", &hex[2..]),
        ] {
            assert_eq!(
                parse_signature(&bad).map_err(|e| e.reason()),
                Err("invalid_signature"),
                "{bad}"
            );
        }
        let v = verifier(&[SECRET], &[LOGIN]);
        let no_date = Owned::post(BODY.as_bytes(), 0).header(SIGNATURE_HEADER, SIG);
        assert_eq!(v.verify(&no_date.req()), Err(VerifyError::Missing(DATE_HEADER.into())));
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&["k"], &["login"]);
            let input = SignInput { body: &body, now: 1_700_000_000, id: "", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(1_700_000_000))?;
        }
    }
}
