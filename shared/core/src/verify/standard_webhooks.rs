//! Standard Webhooks (standardwebhooks.com), the format Svix sends and many
//! senders adopted: headers `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` (Svix's `svix-id`, `svix-timestamp`, `svix-signature`
//! are accepted too); signed content `{id}.{timestamp}.{body}`; the key is the
//! base64 text after `whsec_`; the header is a space-separated list of
//! `v1,<base64 HMAC-SHA256>` entries (other versions, such as the asymmetric
//! `v1a`, are ignored); the timestamp must be within five minutes both ways.

use super::hmac_scheme::{hmac, verify_any};
use super::resolve_all;
use super::{
    check_timestamp, default_tolerance, parse_timestamp, Algorithm, Request, SignInput, Signed, Verifier, VerifyError,
};
use crate::secret::{Secret, SecretError, SecretResolver};
use base64::Engine;
use serde::Deserialize;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";
const SVIX_ID_HEADER: &str = "svix-id";
const SVIX_TIMESTAMP_HEADER: &str = "svix-timestamp";
const SVIX_SIGNATURE_HEADER: &str = "svix-signature";
const SECRET_PREFIX: &str = "whsec_";

/// `scheme = "standard_webhooks"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StandardWebhooksConfig {
    /// References to `whsec_...` secrets; the first is current.
    pub secrets: Vec<String>,
    /// Seconds the timestamp may be off, both ways (the standard says 300).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

/// The key bytes of a `whsec_<base64>` secret (the prefix is optional, as in
/// the reference libraries). `None` when the text is not base64.
pub fn decode_secret(raw: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?.trim();
    let b64 = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Resolves a rotation list of `whsec_` secrets (as [`resolve_all`] does)
/// and decodes each into key bytes, naming the reference of a bad one (never
/// its value).
pub fn resolve_keys(refs: &[String], resolver: &dyn SecretResolver) -> Result<Vec<Secret>, SecretError> {
    if refs.is_empty() {
        return resolve_all(refs, resolver);
    }
    let mut keys = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        let secret = match resolve_all(std::slice::from_ref(r), resolver) {
            Ok(mut one) => one.remove(0),
            Err(SecretError::MissingEnv(_)) if i > 0 => continue,
            Err(e) => return Err(e),
        };
        let key = decode_secret(secret.expose()).ok_or_else(|| SecretError::Source {
            name: r.clone(),
            reason: "not a Standard Webhooks secret (whsec_ followed by base64)".into(),
        })?;
        keys.push(Secret::new(key));
    }
    Ok(keys)
}

/// The `v1` signatures of a `webhook-signature` value, decoded. Entries of
/// other versions and undecodable entries are skipped; an empty list means
/// nothing usable was sent.
pub fn parse_signatures(value: &str) -> Vec<Vec<u8>> {
    value
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| base64::engine::general_purpose::STANDARD.decode(sig).ok())
        .collect()
}

/// The `webhook-signature` value (`v1,<base64 HMAC-SHA256>`) for `body`
/// sent as message `id` at `timestamp` (the header's text), with decoded
/// `key` bytes. One function for the verifier's test signing and the
/// forwarding handler, so what we send is what we accept.
pub fn signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac(
        Algorithm::Sha256,
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac))
}

/// Verifies Standard Webhooks deliveries.
#[derive(Debug)]
pub struct StandardWebhooksVerifier {
    config: StandardWebhooksConfig,
    /// Decoded key bytes, current first.
    keys: Vec<Secret>,
}

impl StandardWebhooksVerifier {
    /// `keys` are decoded key bytes (see [`decode_secret`]), not `whsec_` text.
    pub fn new(config: StandardWebhooksConfig, keys: Vec<Secret>) -> Self {
        Self { config, keys }
    }
}

/// The unbranded header, else Svix's; missing names the unbranded one.
fn either<'a>(req: &Request<'a>, name: &str, svix: &str) -> Result<&'a str, VerifyError> {
    match req.require_header(name) {
        Err(VerifyError::Missing(_)) => req.require_header(svix).map_err(|e| match e {
            VerifyError::Missing(_) => VerifyError::Missing(name.to_string()),
            other => other,
        }),
        other => other,
    }
}

impl Verifier for StandardWebhooksVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let id = either(req, ID_HEADER, SVIX_ID_HEADER)?;
        let timestamp = either(req, TIMESTAMP_HEADER, SVIX_TIMESTAMP_HEADER)?;
        let signature = either(req, SIGNATURE_HEADER, SVIX_SIGNATURE_HEADER)?;
        let ts = parse_timestamp(timestamp)?;
        check_timestamp(ts, req.now, self.config.tolerance_secs)?;
        let candidates = parse_signatures(signature);
        if candidates.is_empty() {
            return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} has no v1 signature")));
        }
        // Signed as the header's text, as received (not the number re-printed).
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", req.body];
        if verify_any(Algorithm::Sha256, &self.keys, &parts, &candidates) {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.keys.first().map(Secret::expose).unwrap_or_default();
        let ts = input.now.to_string();
        let sig = signature(key, input.id, &ts, input.body);
        Signed {
            headers: vec![
                (ID_HEADER.into(), input.id.to_string()),
                (TIMESTAMP_HEADER.into(), ts),
                (SIGNATURE_HEADER.into(), sig),
            ],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    fn verifier(whsecs: &[&str]) -> StandardWebhooksVerifier {
        let config = StandardWebhooksConfig {
            secrets: vec![],
            tolerance_secs: 300,
        };
        let keys = whsecs
            .iter()
            .map(|s| Secret::new(decode_secret(s.as_bytes()).expect("whsec")))
            .collect();
        StandardWebhooksVerifier::new(config, keys)
    }

    fn delivery(body: &[u8], now: i64, id: &str, ts: &str, sig: &str) -> Owned {
        Owned::post(body, now)
            .header("webhook-id", id)
            .header("webhook-timestamp", ts)
            .header("webhook-signature", sig)
    }

    // Svix / Standard Webhooks reference libraries (e.g. the PHP library's
    // testSignFunctionWorks).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn reference_library_vector() {
        let v = verifier(&[SECRET]);
        let signed = v.sign(&SignInput {
            body: BODY,
            now: TS,
            id: MSG_ID,
            url: "",
        });
        assert_eq!(signed.headers[2].1, EXPECTED);
        let r = delivery(BODY, TS, MSG_ID, &TS.to_string(), EXPECTED);
        assert_eq!(v.verify(&r.req()), Ok(()));
    }

    #[test]
    fn rust_reference_library_vector() {
        // standard-webhooks/libraries/rust test_sign.
        let v = verifier(&["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]);
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let r = delivery(
            body,
            1649367553,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        );
        assert_eq!(v.verify(&r.req()), Ok(()));
    }

    #[test]
    fn svix_header_names_are_accepted() {
        let v = verifier(&[SECRET]);
        let r = Owned::post(BODY, TS)
            .header("svix-id", MSG_ID)
            .header("svix-timestamp", &TS.to_string())
            .header("svix-signature", EXPECTED);
        assert_eq!(v.verify(&r.req()), Ok(()));
    }

    #[test]
    fn secret_without_prefix_is_the_same_key() {
        let v = verifier(&["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
        let r = delivery(BODY, TS, MSG_ID, &TS.to_string(), EXPECTED);
        assert_eq!(v.verify(&r.req()), Ok(()));
        assert!(decode_secret(b"whsec_not base64!").is_none());
        let r = crate::secret::MapResolver::default()
            .with("CUR", SECRET)
            .with("BAD", "whsec_%%%");
        let refs = ["env:CUR".to_string(), "env:UNSET".into(), "env:BAD".into()];
        let err = resolve_keys(&refs, &r).expect_err("rejected");
        assert!(err.to_string().contains("env:BAD"), "{err}");
        assert!(!err.to_string().contains("%%%"));
        assert_eq!(resolve_keys(&refs[..2], &r).expect("keys").len(), 1);
        assert_eq!(
            resolve_keys(&["env:UNSET".into()], &r).expect_err("rejected"),
            SecretError::MissingEnv("UNSET".into())
        );
    }

    #[test]
    fn several_signatures_and_other_versions() {
        let v = verifier(&[SECRET]);
        let list = format!("v1a,Zm9v v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= {EXPECTED} v2,abc");
        assert_eq!(
            v.verify(&delivery(BODY, TS, MSG_ID, &TS.to_string(), &list).req()),
            Ok(())
        );
        let without = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q=";
        let err = v.verify(&delivery(BODY, TS, MSG_ID, &TS.to_string(), without).req());
        assert_eq!(err.expect_err("rejected").reason(), "invalid_signature");
        // The right signature under another version is not accepted.
        let other = EXPECTED.replacen("v1,", "v2,", 1);
        let err = v.verify(&delivery(BODY, TS, MSG_ID, &TS.to_string(), &other).req());
        assert!(matches!(err, Err(VerifyError::Invalid(_))));
    }

    #[test]
    fn tampering_and_wrong_or_rotated_secret() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        let body = br#"{"test": 2432232315}"#;
        assert!(matches!(
            v.verify(&delivery(body, TS, MSG_ID, &ts, EXPECTED).req()),
            Err(VerifyError::Invalid(_))
        ));
        let other_id = delivery(BODY, TS, "msg_other", &ts, EXPECTED);
        assert!(matches!(v.verify(&other_id.req()), Err(VerifyError::Invalid(_))));
        // A timestamp moved within tolerance no longer matches the signature.
        let moved = delivery(BODY, TS, MSG_ID, &(TS + 1).to_string(), EXPECTED);
        assert!(matches!(v.verify(&moved.req()), Err(VerifyError::Invalid(_))));
        let wrong = verifier(&["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]);
        assert!(matches!(
            wrong.verify(&delivery(BODY, TS, MSG_ID, &ts, EXPECTED).req()),
            Err(VerifyError::Invalid(_))
        ));
        let rotated = verifier(&["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", SECRET]);
        assert_eq!(rotated.verify(&delivery(BODY, TS, MSG_ID, &ts, EXPECTED).req()), Ok(()));
    }

    /// The signed content holds the timestamp header's text as received:
    /// a sender that writes it with a leading zero signs those bytes.
    #[test]
    fn the_timestamp_is_signed_as_its_header_text() {
        let v = verifier(&[SECRET]);
        let text = format!("0{TS}");
        let key = v.keys[0].expose().to_vec();
        let mac = super::super::hmac_scheme::hmac(
            Algorithm::Sha256,
            &key,
            &[MSG_ID.as_bytes(), b".", text.as_bytes(), b".", BODY],
        );
        let sig = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac));
        assert_eq!(v.verify(&delivery(BODY, TS, MSG_ID, &text, &sig).req()), Ok(()));
    }

    #[test]
    fn timestamp_tolerance_both_ways() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        for now in [TS - 300, TS + 300] {
            assert_eq!(v.verify(&delivery(BODY, now, MSG_ID, &ts, EXPECTED).req()), Ok(()));
        }
        for now in [TS - 301, TS + 301] {
            let err = v
                .verify(&delivery(BODY, now, MSG_ID, &ts, EXPECTED).req())
                .expect_err("rejected");
            assert_eq!(err.reason(), "timestamp_out_of_tolerance");
        }
    }

    #[test]
    fn missing_truncated_and_malformed_headers() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        let full = delivery(BODY, TS, MSG_ID, &ts, EXPECTED);
        for name in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            let mut r = delivery(BODY, TS, MSG_ID, &ts, EXPECTED);
            r.headers.remove(name);
            assert_eq!(v.verify(&r.req()), Err(VerifyError::Missing(name.into())));
        }
        assert_eq!(v.verify(&full.req()), Ok(()));
        for bad in [
            &EXPECTED[..20],
            "v1,",
            "v1",
            "",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,***",
        ] {
            let err = v
                .verify(&delivery(BODY, TS, MSG_ID, &ts, bad).req())
                .expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{bad:?}");
        }
        let err = v
            .verify(&delivery(BODY, TS, MSG_ID, "16142653x", EXPECTED).req())
            .expect_err("rejected");
        assert_eq!(err.reason(), "invalid_signature");
        for extreme in [i64::MIN, i64::MAX] {
            let r = delivery(BODY, TS, MSG_ID, &extreme.to_string(), EXPECTED);
            let err = v.verify(&r.req()).expect_err("rejected");
            assert_eq!(err.reason(), "timestamp_out_of_tolerance");
        }
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&[SECRET]);
            let input = SignInput { body: &body, now: TS, id: MSG_ID, url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(TS))?;
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = parse_signatures(&s);
        }
    }
}
