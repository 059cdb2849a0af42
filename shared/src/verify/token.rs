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
            KeyLocation::Header => req.header(&c.name),
            KeyLocation::Query => req.query_param(&c.name),
        }
        .ok_or_else(|| VerifyError::Missing(c.name.clone()))?;
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
        let raw = req
            .header("authorization")
            .ok_or_else(|| VerifyError::Missing("Authorization".into()))?;
        let encoded = raw
            .strip_prefix("Basic ")
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
}
