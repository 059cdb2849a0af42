//! Meta (Facebook, Instagram, WhatsApp Cloud API) webhooks.
//!
//! - Subscription check: a GET with `hub.mode=subscribe`,
//!   `hub.verify_token=<the token typed into the app dashboard>` and
//!   `hub.challenge=<n>` is answered 200 text/plain with the challenge when
//!   the token matches one of `verify_tokens` (constant time), else 403.
//! - Event notifications: POSTs signed with `X-Hub-Signature-256: sha256=` +
//!   hex(HMAC-SHA256(app secret, body)), the same construction as GitHub's.

use super::github::{hub_signature, verify_hub_signature};
use super::token::matches_any;
use super::{Handshake, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use serde::Deserialize;

/// `scheme = "meta"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetaConfig {
    /// References to the app secret(s) that sign POSTs; the first is current.
    pub secrets: Vec<String>,
    /// References to the verify token(s) of the GET subscription check.
    pub verify_tokens: Vec<String>,
}

/// Verifies Meta deliveries and answers the subscription check.
#[derive(Debug)]
pub struct MetaVerifier {
    secrets: Vec<Secret>,
    verify_tokens: Vec<Secret>,
}

impl MetaVerifier {
    /// The config holds only references, resolved into `secrets` (app
    /// secrets) and `verify_tokens`.
    pub fn new(_config: MetaConfig, secrets: Vec<Secret>, verify_tokens: Vec<Secret>) -> Self {
        Self { secrets, verify_tokens }
    }
}

impl Verifier for MetaVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        verify_hub_signature(req, &self.secrets)
    }

    fn handshake(&self, req: &Request<'_>) -> Option<Handshake> {
        let mode = req.query_param("hub.mode");
        let token = req.query_param("hub.verify_token").unwrap_or_default();
        let challenge = req.query_param("hub.challenge");
        // The token is compared even when other parameters are wrong, so the
        // time taken does not tell which one was.
        let token_ok = matches_any(token.as_bytes(), &self.verify_tokens);
        Some(match (mode, challenge) {
            (Some("subscribe"), Some(challenge)) if token_ok && !challenge.is_empty() => Handshake {
                status: 200,
                content_type: "text/plain",
                body: challenge.to_string(),
            },
            _ => Handshake {
                status: 403,
                content_type: "text/plain",
                body: "forbidden".into(),
            },
        })
    }

    fn sign(&self, input: &SignInput<'_>) -> Signed {
        Signed {
            headers: vec![hub_signature(&self.secrets, input.body)],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    const APP_SECRET: &str = "It's a Secret to Everybody";

    fn verifier(app: &[&str], tokens: &[&str]) -> MetaVerifier {
        MetaVerifier::new(
            MetaConfig {
                secrets: vec![],
                verify_tokens: vec![],
            },
            secrets(app),
            secrets(tokens),
        )
    }

    fn get(q: &[(&str, &str)]) -> Owned {
        Owned::get(q, 0)
    }

    #[test]
    fn handshake_answers_the_challenge_when_the_token_matches() {
        let v = verifier(&[APP_SECRET], &["tok-new", "tok-old"]);
        for token in ["tok-new", "tok-old"] {
            let r = get(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", token),
                ("hub.challenge", "1158201444"),
            ]);
            assert_eq!(
                v.handshake(&r.req()),
                Some(Handshake {
                    status: 200,
                    content_type: "text/plain",
                    body: "1158201444".into()
                })
            );
        }
    }

    #[test]
    fn handshake_refuses_everything_else() {
        let v = verifier(&[APP_SECRET], &["tok"]);
        let cases: [&[(&str, &str)]; 7] = [
            &[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", "tok2"),
                ("hub.challenge", "1"),
            ],
            &[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", "to"),
                ("hub.challenge", "1"),
            ],
            &[
                ("hub.mode", "unsubscribe"),
                ("hub.verify_token", "tok"),
                ("hub.challenge", "1"),
            ],
            &[("hub.verify_token", "tok"), ("hub.challenge", "1")],
            &[("hub.mode", "subscribe"), ("hub.verify_token", "tok")],
            &[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", "tok"),
                ("hub.challenge", ""),
            ],
            &[],
        ];
        for q in cases {
            let answer = v.handshake(&get(q).req()).expect("always answered");
            assert_eq!(answer.status, 403, "{q:?}");
            assert!(!answer.body.contains('1'));
        }
    }

    #[test]
    fn post_signature_like_github() {
        let v = verifier(&[APP_SECRET], &["tok"]);
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let ok = Owned::post(b"Hello, World!", 0).header("X-Hub-Signature-256", sig);
        assert_eq!(v.verify(&ok.req()), Ok(()));
        let tampered = Owned::post(b"Hello, World?", 0).header("X-Hub-Signature-256", sig);
        assert!(matches!(v.verify(&tampered.req()), Err(VerifyError::Invalid(_))));
        assert!(matches!(
            verifier(&["other"], &["tok"]).verify(&ok.req()),
            Err(VerifyError::Invalid(_))
        ));
        assert_eq!(verifier(&["new", APP_SECRET], &["tok"]).verify(&ok.req()), Ok(()));
        // The verify token is not an app secret.
        assert!(verifier(&["tok"], &[APP_SECRET]).verify(&ok.req()).is_err());
        assert_eq!(
            v.verify(&Owned::post(b"{}", 0).req()),
            Err(VerifyError::Missing("X-Hub-Signature-256".into()))
        );
        let truncated = Owned::post(b"Hello, World!", 0).header("X-Hub-Signature-256", &sig[..40]);
        assert_eq!(
            v.verify(&truncated.req()).expect_err("rejected").reason(),
            "invalid_signature"
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&[APP_SECRET], &["tok"]);
            let input = SignInput { body: &body, now: 0, id: "", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(0))?;
        }

        #[test]
        fn handshake_never_panics_and_only_the_token_opens(
            mode in ".*", token in ".*", challenge in ".*",
        ) {
            let v = verifier(&[APP_SECRET], &["tok"]);
            let r = get(&[("hub.mode", &mode), ("hub.verify_token", &token), ("hub.challenge", &challenge)]);
            let answer = v.handshake(&r.req()).expect("always answered");
            prop_assert_eq!(answer.status == 200, mode == "subscribe" && token == "tok" && !challenge.is_empty());
        }
    }
}
