//! Static credentials: a token or API key in a header or query parameter
//! (TusFacturas' `TF-WebhookToken`, Piriod's `?token=`), and HTTP basic auth.

use super::{Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use base64::Engine;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Where a static credential travels.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyLocation {
    #[default]
    Header,
    Query,
}

/// A static token compared in constant time.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Header or query parameter name.
    pub name: String,
    #[serde(default, rename = "in")]
    pub location: KeyLocation,
    /// Text before the token, such as `Bearer `.
    #[serde(default)]
    pub prefix: String,
    pub secrets: Vec<String>,
}

/// True when `given` equals any secret, checking every secret in constant time.
pub fn matches_any(given: &[u8], secrets: &[Secret]) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for s in secrets {
        ok |= given.ct_eq(s.expose());
    }
    ok.into()
}

/// Verifies [`TokenConfig`] deliveries.
#[derive(Debug)]
pub struct TokenVerifier {
    config: TokenConfig,
    secrets: Vec<Secret>,
}

impl TokenVerifier {
    pub fn new(config: TokenConfig, secrets: Vec<Secret>) -> Self {
        Self { config, secrets }
    }
}

impl Verifier for TokenVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let c = &self.config;
        let raw = match c.location {
            KeyLocation::Header => req.require_header(&c.name)?,
            KeyLocation::Query => req
                .query_param(&c.name)
                .ok_or_else(|| VerifyError::Missing(c.name.clone()))?,
        };
        let token = raw
            .strip_prefix(c.prefix.as_str())
            .ok_or_else(|| VerifyError::Invalid(format!("{} lacks its prefix", c.name)))?;
        if matches_any(token.as_bytes(), &self.secrets) {
            Ok(())
        } else {
            Err(VerifyError::Invalid("token does not match".into()))
        }
    }

    fn sign(&self, _input: &SignInput<'_>) -> Signed {
        let c = &self.config;
        let value = format!(
            "{}{}",
            c.prefix,
            self.secrets.first().map(Secret::expose_str).unwrap_or_default()
        );
        match c.location {
            KeyLocation::Header => Signed {
                headers: vec![(c.name.clone(), value)],
                query: vec![],
            },
            KeyLocation::Query => Signed {
                headers: vec![],
                query: vec![(c.name.clone(), value)],
            },
        }
    }
}

/// HTTP basic auth with a fixed user and a rotation list of passwords.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    pub username: String,
    pub passwords: Vec<String>,
}

/// Verifies [`BasicAuthConfig`] deliveries.
#[derive(Debug)]
pub struct BasicAuthVerifier {
    config: BasicAuthConfig,
    passwords: Vec<Secret>,
}

impl BasicAuthVerifier {
    pub fn new(config: BasicAuthConfig, passwords: Vec<Secret>) -> Self {
        Self { config, passwords }
    }
}

impl Verifier for BasicAuthVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let raw = req.require_header("Authorization")?;
        // The scheme name is case-insensitive (RFC 7617, RFC 9110 11.1).
        let encoded = raw
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Basic"))
            .map(|(_, credentials)| credentials)
            .ok_or_else(|| VerifyError::Invalid("Authorization is not Basic".into()))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| VerifyError::Invalid("Authorization is not base64".into()))?;
        let (user, pass) = match decoded.iter().position(|b| *b == b':') {
            Some(i) => (&decoded[..i], &decoded[i + 1..]),
            None => return Err(VerifyError::Invalid("Authorization lacks a colon".into())),
        };
        let user_ok: bool = user.ct_eq(self.config.username.as_bytes()).into();
        if matches_any(pass, &self.passwords) & user_ok {
            Ok(())
        } else {
            Err(VerifyError::Invalid("credentials do not match".into()))
        }
    }

    fn sign(&self, _input: &SignInput<'_>) -> Signed {
        let pass = self.passwords.first().map(Secret::expose_str).unwrap_or_default();
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.config.username, pass));
        Signed {
            headers: vec![("Authorization".into(), format!("Basic {cred}"))],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Owned;
    use super::*;
    use proptest::prelude::*;

    fn secrets(v: &[&str]) -> Vec<Secret> {
        v.iter().map(|s| Secret::new(s.as_bytes().to_vec())).collect()
    }

    #[test]
    fn header_token() {
        let v = TokenVerifier::new(
            TokenConfig {
                name: "TF-WebhookToken".into(),
                location: KeyLocation::Header,
                prefix: String::new(),
                secrets: vec![],
            },
            secrets(&["tok", "older"]),
        );
        assert_eq!(
            v.verify(&Owned::post(b"", 0).header("TF-WebhookToken", "tok").req()),
            Ok(())
        );
        assert_eq!(
            v.verify(&Owned::post(b"", 0).header("TF-WebhookToken", "older").req()),
            Ok(())
        );
        let bad = Owned::post(b"", 0).header("TF-WebhookToken", "tok2");
        assert_eq!(
            v.verify(&bad.req()).expect_err("rejected").reason(),
            "invalid_signature"
        );
        assert_eq!(
            v.verify(&Owned::post(b"", 0).req()).expect_err("rejected").reason(),
            "missing_signature"
        );
    }

    #[test]
    fn query_token_signs_and_verifies() {
        let v = TokenVerifier::new(
            TokenConfig {
                name: "token".into(),
                location: KeyLocation::Query,
                prefix: String::new(),
                secrets: vec![],
            },
            secrets(&["q"]),
        );
        let signed = v.sign(&SignInput {
            body: b"",
            now: 0,
            id: "",
            url: "",
        });
        assert_eq!(signed.query, vec![("token".to_string(), "q".to_string())]);
        assert_eq!(v.verify(&Owned::post(b"", 0).with_signed(&signed).req()), Ok(()));
    }

    #[test]
    fn basic_auth() {
        let v = BasicAuthVerifier::new(
            BasicAuthConfig {
                username: "piriod".into(),
                passwords: vec![],
            },
            secrets(&["pw"]),
        );
        let signed = v.sign(&SignInput {
            body: b"",
            now: 0,
            id: "",
            url: "",
        });
        assert_eq!(v.verify(&Owned::post(b"", 0).with_signed(&signed).req()), Ok(()));
        let wrong_user = Owned::post(b"", 0).header("Authorization", "Basic eDpwdw=="); // x:pw
        assert_eq!(
            v.verify(&wrong_user.req()).expect_err("rejected").reason(),
            "invalid_signature"
        );
    }

    fn basic(user: &str, passwords: &[&str]) -> BasicAuthVerifier {
        BasicAuthVerifier::new(
            BasicAuthConfig {
                username: user.into(),
                passwords: vec![],
            },
            secrets(passwords),
        )
    }

    fn token(location: KeyLocation, prefix: &str, tokens: &[&str]) -> TokenVerifier {
        TokenVerifier::new(
            TokenConfig {
                name: "X-Token".into(),
                location,
                prefix: prefix.into(),
                secrets: vec![],
            },
            secrets(tokens),
        )
    }

    #[test]
    fn unreadable_token_header_is_invalid_and_absent_one_missing() {
        let v = token(KeyLocation::Header, "", &["tok"]);
        for garbled in [&b"tok\xff"[..], b"\x80\x81", "tök".as_bytes()] {
            let r = Owned::post(b"", 0).header_bytes("X-Token", garbled);
            assert_eq!(
                v.verify(&r.req()),
                Err(VerifyError::Invalid("X-Token is not visible ASCII".into())),
                "{garbled:?}"
            );
        }
        assert_eq!(
            v.verify(&Owned::post(b"", 0).req()),
            Err(VerifyError::Missing("X-Token".into()))
        );
        // In the query, only the named parameter counts.
        let q = token(KeyLocation::Query, "", &["tok"]);
        let mut other = Owned::post(b"", 0).header("X-Token", "tok");
        other.query = vec![("tokenx".into(), "tok".into())];
        assert_eq!(q.verify(&other.req()), Err(VerifyError::Missing("X-Token".into())));
    }

    #[test]
    fn unreadable_authorization_is_invalid_and_absent_one_missing() {
        let v = basic("piriod", &["pw"]);
        for garbled in [&b"Basic \xff\xfe"[..], b"\x80", "Basic cGlyaW9kOnB3é".as_bytes()] {
            let r = Owned::post(b"", 0).header_bytes("Authorization", garbled);
            assert_eq!(
                v.verify(&r.req()),
                Err(VerifyError::Invalid("Authorization is not visible ASCII".into())),
                "{garbled:?}"
            );
        }
        assert_eq!(
            v.verify(&Owned::post(b"", 0).req()),
            Err(VerifyError::Missing("Authorization".into()))
        );
        // Malformed but readable is invalid too.
        for bad in ["Bearer cGlyaW9kOnB3", "Basic !!", "Basic cGlyaW9kcHc=", "Basic "] {
            let r = Owned::post(b"", 0).header("Authorization", bad);
            assert_eq!(
                v.verify(&r.req()).expect_err("rejected").reason(),
                "invalid_signature",
                "{bad}"
            );
        }
        assert_eq!(
            v.verify(&Owned::post(b"", 0).header("Authorization", "Basic cGlyaW9kOnB3").req()),
            Ok(())
        );
        assert_eq!(
            v.verify(&Owned::post(b"", 0).header("Authorization", "bAsIc cGlyaW9kOnB3").req()),
            Ok(()),
            "the scheme name in any case"
        );
    }

    /// `value` with the byte at `at` replaced by a different visible ASCII byte.
    /// The credential schemes keep this change rather than the test kit's
    /// XOR (`webhooks_testkit::verifier`): a credential travels in a header,
    /// and a byte XORed into a control character would make the delivery
    /// unsendable rather than wrong.
    fn change_one_byte(value: &str, at: prop::sample::Index, to: u8) -> String {
        let mut bytes = value.as_bytes().to_vec();
        let i = at.index(bytes.len());
        // 94 visible ASCII bytes besides space; `to` picks one that differs.
        let mut b = b'!' + to % 94;
        if b == bytes[i] {
            b = if b == b'~' { b'!' } else { b + 1 };
        }
        bytes[i] = b;
        String::from_utf8(bytes).expect("ASCII")
    }

    proptest! {
        #[test]
        fn token_sign_then_verify_and_any_byte_change_fails(
            tok in "[!-~]{1,48}",
            in_query in any::<bool>(),
            bearer in any::<bool>(),
            at in any::<prop::sample::Index>(),
            to in any::<u8>(),
        ) {
            let location = if in_query { KeyLocation::Query } else { KeyLocation::Header };
            let prefix = if bearer { "Bearer " } else { "" };
            let v = token(location, prefix, &[tok.as_str(), "an-older-token"]);
            let signed = v.sign(&SignInput { body: b"{}", now: 0, id: "", url: "" });
            prop_assert_eq!(v.verify(&Owned::post(b"{}", 0).with_signed(&signed).req()), Ok(()));
            // The credential as sent, prefix included, with one byte changed.
            let sent = format!("{prefix}{tok}");
            let changed = change_one_byte(&sent, at, to);
            prop_assume!(changed != format!("{prefix}an-older-token"));
            let mut bad = Owned::post(b"{}", 0);
            if in_query {
                bad.query = vec![("X-Token".into(), changed)];
            } else {
                bad = bad.header("X-Token", &changed);
            }
            prop_assert_eq!(v.verify(&bad.req()).map_err(|e| e.reason()), Err("invalid_signature"));
        }

        #[test]
        fn basic_sign_then_verify_and_any_byte_change_fails(
            user in "[!-9;-~]{1,24}",
            pass in "[ -~]{0,32}",
            at in any::<prop::sample::Index>(),
            to in any::<u8>(),
            flip in 1u8..=255,
        ) {
            let v = basic(&user, &[pass.as_str()]);
            let signed = v.sign(&SignInput { body: b"", now: 0, id: "", url: "" });
            prop_assert_eq!(v.verify(&Owned::post(b"", 0).with_signed(&signed).req()), Ok(()));
            // One byte of `user:password` changed, re-encoded.
            let mut credential = format!("{user}:{pass}").into_bytes();
            let i = at.index(credential.len());
            credential[i] ^= flip;
            let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(&credential));
            let bad = Owned::post(b"", 0).header("Authorization", &header);
            prop_assert_eq!(v.verify(&bad.req()).map_err(|e| e.reason()), Err("invalid_signature"));
            // One byte of the encoded credential as sent changed. The scheme
            // name is left alone: it is case-insensitive (RFC 7235), so
            // `Basic` → `BAsic` is rightly accepted.
            let encoded = signed.headers[0].1.strip_prefix("Basic ").expect("Basic scheme");
            let changed = format!("Basic {}", change_one_byte(encoded, at, to));
            let bad = Owned::post(b"", 0).header("Authorization", &changed);
            prop_assert_eq!(v.verify(&bad.req()).map_err(|e| e.reason()), Err("invalid_signature"));
        }
    }
}
