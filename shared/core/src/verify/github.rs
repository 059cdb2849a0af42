//! GitHub: `X-Hub-Signature-256: sha256=` + hex(HMAC-SHA256(webhook secret,
//! body)). The delivery id travels in `X-GitHub-Delivery` and the event in
//! `X-GitHub-Event` (read by the provider config, not here). The legacy
//! SHA-1 `X-Hub-Signature` is not accepted. Meta signs POSTs the same way
//! (see [`super::meta`]), so the header helpers live here.

use super::hmac_scheme::{decode_hex, hmac, verify_any};
use super::{Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
pub const DELIVERY_HEADER: &str = "X-GitHub-Delivery";
const PREFIX: &str = "sha256=";

/// `scheme = "github"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// References to webhook secrets; the first is current.
    pub secrets: Vec<String>,
}

/// Parses `sha256=<64 hex digits>` (hex in either case) into the 32 bytes.
pub fn parse_signature(value: &str) -> Result<Vec<u8>, VerifyError> {
    let hex_part = value
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| VerifyError::Invalid(format!("{SIGNATURE_HEADER} lacks the {PREFIX} prefix")))?;
    match decode_hex(hex_part) {
        Some(sig) if sig.len() == 32 => Ok(sig),
        _ => Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} is not 64 hex digits"))),
    }
}

/// Checks `X-Hub-Signature-256` against the body under any secret. GitHub
/// and Meta send one signature; a header repeated on the way (a proxy, a
/// rotation) is accepted when any of its values matches.
pub(crate) fn verify_hub_signature(req: &Request<'_>, secrets: &[Secret]) -> Result<(), VerifyError> {
    let sigs = req.parse_each(SIGNATURE_HEADER, parse_signature)?;
    if verify_any(Algorithm::Sha256, secrets, &[req.body], &sigs) {
        Ok(())
    } else {
        Err(VerifyError::Invalid("no signature matches".into()))
    }
}

/// The `X-Hub-Signature-256` header for `body` under the first secret.
pub(crate) fn hub_signature(secrets: &[Secret], body: &[u8]) -> (String, String) {
    let key = secrets.first().map(Secret::expose).unwrap_or_default();
    let mac = hmac(Algorithm::Sha256, key, &[body]);
    (SIGNATURE_HEADER.into(), format!("{PREFIX}{}", hex::encode(mac)))
}

/// Verifies GitHub deliveries.
#[derive(Debug)]
pub struct GithubVerifier {
    secrets: Vec<Secret>,
}

impl GithubVerifier {
    /// The config holds only the secret references, resolved into `secrets`.
    pub fn new(_config: GithubConfig, secrets: Vec<Secret>) -> Self {
        Self { secrets }
    }
}

impl Verifier for GithubVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        verify_hub_signature(req, &self.secrets)
    }

    /// Also sets `X-GitHub-Delivery` to the id, where GitHub carries it.
    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let mut headers = vec![hub_signature(&self.secrets, input.body)];
        if !input.id.is_empty() {
            headers.push((DELIVERY_HEADER.into(), input.id.to_string()));
        }
        Signed { headers, query: vec![] }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    // docs.github.com, "Validating webhook deliveries".
    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn verifier(keys: &[&str]) -> GithubVerifier {
        GithubVerifier::new(GithubConfig { secrets: vec![] }, secrets(keys))
    }

    fn delivery(body: &[u8], sig: &str) -> Owned {
        Owned::post(body, 0).header("X-Hub-Signature-256", sig)
    }

    #[test]
    fn documented_vector() {
        let v = verifier(&[SECRET]);
        assert_eq!(v.verify(&delivery(BODY, SIG).req()), Ok(()));
        assert_eq!(
            v.verify(&delivery(BODY, &SIG.to_uppercase().replace("SHA256=", "sha256=")).req()),
            Ok(())
        );
        let signed = v.sign(&SignInput {
            body: BODY,
            now: 0,
            id: "d1",
            url: "",
        });
        assert_eq!(signed.headers[0], ("X-Hub-Signature-256".to_string(), SIG.to_string()));
        assert_eq!(signed.headers[1], ("X-GitHub-Delivery".to_string(), "d1".to_string()));
    }

    #[test]
    fn tampering_wrong_and_rotated_secrets() {
        let v = verifier(&[SECRET]);
        assert!(matches!(
            v.verify(&delivery(b"Hello, World?", SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert!(matches!(
            verifier(&["not it"]).verify(&delivery(BODY, SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert_eq!(
            verifier(&["new one", SECRET]).verify(&delivery(BODY, SIG).req()),
            Ok(())
        );
    }

    #[test]
    fn missing_truncated_and_malformed() {
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(&Owned::post(BODY, 0).req()),
            Err(VerifyError::Missing("X-Hub-Signature-256".into()))
        );
        // The SHA-1 header alone does not do.
        let sha1_only = Owned::post(BODY, 0).header("X-Hub-Signature", "sha1=abc");
        assert_eq!(sha1_only.req().header("x-hub-signature"), Some("sha1=abc"));
        assert_eq!(
            v.verify(&sha1_only.req()).expect_err("rejected").reason(),
            "missing_signature"
        );
        for bad in [
            &SIG[..SIG.len() - 2],
            &SIG[..7],
            "",
            &SIG[7..],
            "sha1=757107ea",
            "sha256=zz",
            "sha512=00",
        ] {
            let err = v.verify(&delivery(BODY, bad).req()).expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{bad:?}");
        }
    }

    #[test]
    fn repeated_header_matches_on_any_value() {
        let v = verifier(&[SECRET]);
        let wrong = format!("sha256={}", "00".repeat(32));
        for [a, b] in [
            [SIG, wrong.as_str()],
            [wrong.as_str(), SIG],
            ["sha1=abc", SIG],
            [SIG, ""],
        ] {
            let r = delivery(BODY, a).header("X-Hub-Signature-256", b);
            assert_eq!(v.verify(&r.req()), Ok(()), "{a:?}, {b:?}");
        }
        let unreadable_then_right = Owned::post(BODY, 0)
            .header_bytes("X-Hub-Signature-256", b"\xff\xfe")
            .header("X-Hub-Signature-256", SIG);
        assert_eq!(v.verify(&unreadable_then_right.req()), Ok(()));
        // Rotation on both sides: the old secret's signature next to the new one's.
        let new_sig = hub_signature(&secrets(&["new"]), BODY).1;
        let both = delivery(BODY, &new_sig).header("X-Hub-Signature-256", SIG);
        assert_eq!(verifier(&[SECRET]).verify(&both.req()), Ok(()));
        assert_eq!(verifier(&["new"]).verify(&both.req()), Ok(()));
        // None matches: wrong, whatever the number of values.
        let none = delivery(b"Hello, World?", SIG).header("X-Hub-Signature-256", &wrong);
        assert_eq!(
            v.verify(&none.req()),
            Err(VerifyError::Invalid("no signature matches".into()))
        );
        // None parses: the first value's error; a lone unreadable value as before.
        let malformed = delivery(BODY, "sha256=zz").header("X-Hub-Signature-256", "nope");
        assert_eq!(
            v.verify(&malformed.req()),
            Err(parse_signature("sha256=zz").unwrap_err())
        );
        let unreadable = Owned::post(BODY, 0).header_bytes("X-Hub-Signature-256", b"\xff");
        assert_eq!(
            v.verify(&unreadable.req()),
            Err(VerifyError::Invalid("X-Hub-Signature-256 is not visible ASCII".into()))
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
            let input = SignInput { body: &body, now: 0, id: "x", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(0))?;
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = parse_signature(&s);
        }
    }
}
