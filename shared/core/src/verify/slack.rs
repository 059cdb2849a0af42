//! Slack: `X-Slack-Signature: v0=` + hex(HMAC-SHA256(signing secret,
//! `v0:{X-Slack-Request-Timestamp}:{body}`)), the timestamp within five
//! minutes both ways. A verified `{"type":"url_verification","challenge":..}`
//! POST (sent when the Events API URL is saved) is answered with the challenge.

use super::hmac_scheme::{decode_hex, hmac, verify_any};
use super::{
    all_ok, check_timestamp, default_tolerance, parse_timestamp, Algorithm, Handshake, Request, SignInput, Signed,
    Verifier, VerifyError,
};
use crate::secret::Secret;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
const VERSION: &str = "v0";

/// `scheme = "slack"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// References to the app's signing secret(s); the first is current.
    pub secrets: Vec<String>,
    /// Seconds the timestamp may be off, both ways (Slack says five minutes).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

/// Parses `v0=<64 hex digits>` into the 32 bytes.
pub fn parse_signature(value: &str) -> Result<Vec<u8>, VerifyError> {
    parse_v0(SIGNATURE_HEADER, value)
}

/// The `v0` scheme Slack and Zoom share: `v0=` + hex HMAC-SHA256 of
/// `v0:{timestamp}:{body}`. `header` only names the header in errors.
pub(crate) fn parse_v0(header: &str, value: &str) -> Result<Vec<u8>, VerifyError> {
    let hex_part = value
        .trim()
        .strip_prefix("v0=")
        .ok_or_else(|| VerifyError::Invalid(format!("{header} is not a v0= signature")))?;
    match decode_hex(hex_part) {
        Some(sig) if sig.len() == 32 => Ok(sig),
        _ => Err(VerifyError::Invalid(format!("{header} is not 64 hex digits"))),
    }
}

/// What a `v0` signature covers.
pub(crate) fn v0_content<'a>(timestamp: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
    [VERSION.as_bytes(), b":", timestamp.as_bytes(), b":", body]
}

/// The `v0=...` header value for `body` sent at `timestamp`.
pub(crate) fn v0_signature(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mac = hmac(Algorithm::Sha256, key, &v0_content(timestamp, body));
    format!("{VERSION}={}", hex::encode(mac))
}

/// Verifies Slack requests.
#[derive(Debug)]
pub struct SlackVerifier {
    config: SlackConfig,
    secrets: Vec<Secret>,
}

impl SlackVerifier {
    pub fn new(config: SlackConfig, secrets: Vec<Secret>) -> Self {
        Self { config, secrets }
    }
}

#[derive(Deserialize)]
struct UrlVerification {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
}

impl Verifier for SlackVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        // One signature per header; a repeated header matches on any value.
        let raw_sigs = req.parse_each(SIGNATURE_HEADER, Ok)?;
        let timestamp = req.require_header(TIMESTAMP_HEADER)?;
        check_timestamp(parse_timestamp(timestamp)?, req.now, self.config.tolerance_secs)?;
        let sigs = all_ok(raw_sigs.into_iter().map(parse_signature))?;
        let parts = v0_content(timestamp, req.body);
        if verify_any(Algorithm::Sha256, &self.secrets, &parts, &sigs) {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    /// Answers `url_verification` with the challenge as text/plain. The body
    /// is only parsed once the request verifies (checked again here, so the
    /// answer never depends on the caller's order).
    fn challenge(&self, req: &Request<'_>) -> Option<Handshake> {
        self.verify(req).ok()?;
        let probe: UrlVerification = serde_json::from_slice(req.body).ok()?;
        (probe.kind == "url_verification").then_some(Handshake {
            status: 200,
            content_type: "text/plain",
            body: probe.challenge,
        })
    }

    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let ts = input.now.to_string();
        Signed {
            headers: vec![
                (SIGNATURE_HEADER.into(), v0_signature(key, &ts, input.body)),
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

    // api.slack.com, "Verifying requests from Slack".
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: i64 = 1531420618;
    const BODY: &str = concat!(
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V",
        "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=",
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN",
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    );
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn verifier(keys: &[&str]) -> SlackVerifier {
        SlackVerifier::new(
            SlackConfig {
                secrets: vec![],
                tolerance_secs: 300,
            },
            secrets(keys),
        )
    }

    fn delivery(body: &[u8], now: i64, ts: &str, sig: &str) -> Owned {
        Owned::post(body, now)
            .header("X-Slack-Signature", sig)
            .header("X-Slack-Request-Timestamp", ts)
    }

    #[test]
    fn documented_vector() {
        let v = verifier(&[SECRET]);
        let r = delivery(BODY.as_bytes(), TS + 60, &TS.to_string(), SIG);
        assert_eq!(v.verify(&r.req()), Ok(()));
        let signed = v.sign(&SignInput {
            body: BODY.as_bytes(),
            now: TS,
            id: "",
            url: "",
        });
        assert_eq!(signed.headers[0].1, SIG);
        // A slash command is not a challenge.
        assert_eq!(v.challenge(&r.req()), None);
    }

    #[test]
    fn tampering_wrong_and_rotated_secrets() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        let body = BODY.replace("foobar", "foobaz");
        assert!(matches!(
            v.verify(&delivery(body.as_bytes(), TS, &ts, SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        let moved = (TS + 1).to_string();
        assert!(matches!(
            v.verify(&delivery(BODY.as_bytes(), TS, &moved, SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert!(matches!(
            verifier(&["other"]).verify(&delivery(BODY.as_bytes(), TS, &ts, SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert_eq!(
            verifier(&["new", SECRET]).verify(&delivery(BODY.as_bytes(), TS, &ts, SIG).req()),
            Ok(())
        );
    }

    #[test]
    fn tolerance_both_ways() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        for now in [TS - 301, TS + 301] {
            let err = v
                .verify(&delivery(BODY.as_bytes(), now, &ts, SIG).req())
                .expect_err("rejected");
            assert_eq!(err.reason(), "timestamp_out_of_tolerance");
        }
    }

    #[test]
    fn missing_truncated_and_malformed() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        let only_ts = Owned::post(BODY.as_bytes(), TS).header("X-Slack-Request-Timestamp", &ts);
        assert_eq!(
            v.verify(&only_ts.req()),
            Err(VerifyError::Missing("X-Slack-Signature".into()))
        );
        let only_sig = Owned::post(BODY.as_bytes(), TS).header("X-Slack-Signature", SIG);
        assert_eq!(
            v.verify(&only_sig.req()),
            Err(VerifyError::Missing("X-Slack-Request-Timestamp".into()))
        );
        for bad in [&SIG[..SIG.len() - 1], &SIG[..3], "", &SIG[3..], "v1=a2114d57", "v0=zz"] {
            let err = v
                .verify(&delivery(BODY.as_bytes(), TS, &ts, bad).req())
                .expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{bad:?}");
        }
        let err = v
            .verify(&delivery(BODY.as_bytes(), TS, "soon", SIG).req())
            .expect_err("rejected");
        assert_eq!(err.reason(), "invalid_signature");
    }

    #[test]
    fn repeated_signature_header_matches_on_any_value() {
        let v = verifier(&[SECRET]);
        let ts = TS.to_string();
        let wrong = format!("v0={}", "00".repeat(32));
        for [a, b] in [[SIG, wrong.as_str()], [wrong.as_str(), SIG], ["v1=abc", SIG], [SIG, ""]] {
            let r = delivery(BODY.as_bytes(), TS, &ts, a).header("X-Slack-Signature", b);
            assert_eq!(v.verify(&r.req()), Ok(()), "{a:?}, {b:?}");
        }
        let unreadable_then_right = Owned::post(BODY.as_bytes(), TS)
            .header_bytes("X-Slack-Signature", b"\xff")
            .header("X-Slack-Signature", SIG)
            .header("X-Slack-Request-Timestamp", &ts);
        assert_eq!(v.verify(&unreadable_then_right.req()), Ok(()));
        let none = delivery(BODY.as_bytes(), TS, &ts, &wrong).header("X-Slack-Signature", &wrong);
        assert_eq!(
            v.verify(&none.req()),
            Err(VerifyError::Invalid("no signature matches".into()))
        );
        let malformed = delivery(BODY.as_bytes(), TS, &ts, "v0=zz").header("X-Slack-Signature", "v1=00");
        assert_eq!(v.verify(&malformed.req()), Err(parse_signature("v0=zz").unwrap_err()));
        // The timestamp is still checked before the signatures are parsed.
        let late = delivery(BODY.as_bytes(), TS + 301, &ts, "v0=zz").header("X-Slack-Signature", SIG);
        assert_eq!(
            v.verify(&late.req()).expect_err("rejected").reason(),
            "timestamp_out_of_tolerance"
        );
        let unreadable = Owned::post(BODY.as_bytes(), TS)
            .header_bytes("X-Slack-Signature", b"\xff")
            .header("X-Slack-Request-Timestamp", &ts);
        assert_eq!(
            v.verify(&unreadable.req()),
            Err(VerifyError::Invalid("X-Slack-Signature is not visible ASCII".into()))
        );
    }

    #[test]
    fn url_verification_is_answered_only_when_verified() {
        let v = verifier(&[SECRET]);
        let body = concat!(
            r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","#,
            r#""challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#
        )
        .as_bytes();
        let signed = v.sign(&SignInput {
            body,
            now: TS,
            id: "",
            url: "",
        });
        let ok = Owned::post(body, TS).with_signed(&signed);
        assert_eq!(v.verify(&ok.req()), Ok(()));
        assert_eq!(
            v.challenge(&ok.req()),
            Some(Handshake {
                status: 200,
                content_type: "text/plain",
                body: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into(),
            })
        );
        let forged = Owned::post(body, TS).with_signed(&verifier(&["forger"]).sign(&SignInput {
            body,
            now: TS,
            id: "",
            url: "",
        }));
        assert_eq!(v.challenge(&forged.req()), None);
        let event = br#"{"type":"event_callback","event_id":"Ev1"}"#;
        let signed = v.sign(&SignInput {
            body: event,
            now: TS,
            id: "",
            url: "",
        });
        assert_eq!(v.challenge(&Owned::post(event, TS).with_signed(&signed).req()), None);
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&[SECRET]);
            let input = SignInput { body: &body, now: TS, id: "", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(TS))?;
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = parse_signature(&s);
        }
    }
}
