//! Public-key signatures: the sender signs with a private key it keeps and
//! publishes the public key, so the receiver holds nothing that could forge
//! a delivery. Three schemes:
//!
//! - `ed25519`: Discord (`X-Signature-Ed25519`, hex, over
//!   `X-Signature-Timestamp` + body, public key in hex);
//! - `ecdsa_p256`: ECDSA P-256 with SHA-256, SendGrid's Event Webhook
//!   (`X-Twilio-Email-Event-Webhook-Signature`, base64 DER, over
//!   `X-Twilio-Email-Event-Webhook-Timestamp` + body, key base64 DER SPKI);
//! - `rsa_sha256`: RSA PKCS#1 v1.5 with SHA-256, generic (no preset: no
//!   sender's format is confirmed yet); keys PEM (PKCS#1 or SPKI) or base64
//!   DER.
//!
//! The signed content is the timestamp header's raw value followed by the
//! raw body (no separator) when `timestamp_header` is set, else the body.
//! Keys are references (`env:`, `secretsmanager:`, `ssm:`) whose value is
//! PEM, hex or base64 (raw key or DER SubjectPublicKeyInfo); the list is a
//! rotation list, any key verifies.
//!
//! Each scheme also signs, given the sender's private key
//! ([`PublicKeyVerifier::sign_with_private_key`], behind `webhooks sign
//! --private-key`), so a receiver can be tried with deliveries made the way
//! the sender makes them: one module owns each format both ways.

use super::{
    check_timestamp, parse_timestamp, resolve_all, Encoding, Handshake, Request, SignInput, Signed, Verifier,
    VerifyError,
};
use crate::secret::{Secret, SecretError, SecretResolver};
use base64::Engine;
use serde::Deserialize;

/// Discord's PING deliveries, answered by the receiver itself once verified.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Ping {
    /// Interactions endpoint: `{"type":1}` is a PING, answered 200
    /// `{"type":1}` (PONG).
    DiscordInteractions,
    /// Webhook Events endpoint: `{"type":0}` is a PING, answered 204.
    DiscordEvents,
}

/// The configuration shared by the public-key schemes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    /// Header carrying the signature.
    pub header: String,
    /// How the signature is written: `hex` (Discord) or `base64` (SendGrid,
    /// whose base64 holds a DER-encoded ECDSA signature).
    #[serde(default)]
    pub encoding: Encoding,
    /// Header whose raw value is signed before the body.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Seconds the timestamp may be off, both ways. Unset: not checked, for
    /// senders that define no tolerance (Discord and SendGrid document none,
    /// and a window they do not promise could refuse their retries).
    #[serde(default)]
    pub tolerance_secs: Option<i64>,
    /// Public key references; the first is current, later ones are kept
    /// during a rotation.
    pub public_keys: Vec<String>,
    /// A PING the receiver answers itself.
    #[serde(default)]
    pub ping: Option<Ping>,
}

impl PublicKeyConfig {
    /// A tolerance needs a timestamp to check.
    pub fn check(&self) -> Result<(), String> {
        if self.tolerance_secs.is_some() && self.timestamp_header.is_none() {
            return Err("tolerance_secs is set but timestamp_header is not".into());
        }
        Ok(())
    }
}

#[derive(Debug)]
enum Keys {
    Ed25519(Vec<ed25519_dalek::VerifyingKey>),
    P256(Vec<p256::ecdsa::VerifyingKey>),
    Rsa(Vec<RsaKey>),
}

type RsaKey = rsa::pkcs1v15::VerifyingKey<rsa::sha2::Sha256>;

/// The three algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    EcdsaP256,
    RsaSha256,
}

/// Verifies public-key signed deliveries.
#[derive(Debug)]
pub struct PublicKeyVerifier {
    config: PublicKeyConfig,
    keys: Keys,
}

/// A key's text: PEM, or the bytes hex or base64 spell.
enum KeyText<'a> {
    Pem(&'a str),
    Bytes(Vec<u8>),
}

fn key_text(text: &str) -> Result<KeyText<'_>, String> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return Ok(KeyText::Pem(t));
    }
    if let Ok(bytes) = base16ct::mixed::decode_vec(t) {
        return Ok(KeyText::Bytes(bytes));
    }
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .map(KeyText::Bytes)
        .map_err(|_| "neither PEM, hex nor base64".to_string())
}

fn ed25519_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, String> {
    use ed25519_dalek::pkcs8::DecodePublicKey;
    match key_text(text)? {
        KeyText::Pem(pem) => ed25519_dalek::VerifyingKey::from_public_key_pem(pem).map_err(|e| e.to_string()),
        KeyText::Bytes(b) => match <[u8; 32]>::try_from(b.as_slice()) {
            Ok(raw) => ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|e| e.to_string()),
            Err(_) => ed25519_dalek::VerifyingKey::from_public_key_der(&b).map_err(|e| e.to_string()),
        },
    }
}

fn p256_key(text: &str) -> Result<p256::ecdsa::VerifyingKey, String> {
    use p256::pkcs8::DecodePublicKey;
    match key_text(text)? {
        KeyText::Pem(pem) => p256::ecdsa::VerifyingKey::from_public_key_pem(pem).map_err(|e| e.to_string()),
        KeyText::Bytes(b) => p256::ecdsa::VerifyingKey::from_public_key_der(&b)
            .or_else(|_| p256::ecdsa::VerifyingKey::from_sec1_bytes(&b))
            .map_err(|e| e.to_string()),
    }
}

/// An RSA public key: PEM `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY`
/// (PKCS#1), or the DER of either in base64 (or hex).
fn rsa_key(text: &str) -> Result<RsaKey, String> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let key = match key_text(text)? {
        KeyText::Pem(pem) if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") => {
            rsa::PublicKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())?
        }
        KeyText::Pem(pem) => rsa::PublicKey::from_public_key_pem(pem).map_err(|e| e.to_string())?,
        KeyText::Bytes(b) => rsa::PublicKey::from_public_key_der(&b)
            .or_else(|_| rsa::PublicKey::from_pkcs1_der(&b))
            .map_err(|e| e.to_string())?,
    };
    Ok(RsaKey::new(key))
}

/// An Ed25519 private key: PEM PKCS#8 (`PRIVATE KEY`, as `openssl genpkey
/// -algorithm ed25519` writes it), or in hex or base64 the 32-byte seed
/// (PyNaCl's `SigningKey.encode()`), the 64-byte seed + public key
/// (libsodium's secret key, checked against its public half), or PKCS#8 DER.
fn ed25519_private(text: &str) -> Result<ed25519_dalek::SigningKey, String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    match key_text(text)? {
        KeyText::Pem(pem) => ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string()),
        KeyText::Bytes(b) => {
            if let Ok(seed) = <[u8; 32]>::try_from(b.as_slice()) {
                return Ok(ed25519_dalek::SigningKey::from_bytes(&seed));
            }
            if let Ok(pair) = <[u8; 64]>::try_from(b.as_slice()) {
                return ed25519_dalek::SigningKey::from_keypair_bytes(&pair).map_err(|e| e.to_string());
            }
            ed25519_dalek::SigningKey::from_pkcs8_der(&b).map_err(|e| e.to_string())
        }
    }
}

/// A P-256 private key: PEM PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE
/// KEY`, as `openssl ecparam -genkey` writes it), or in hex or base64 the
/// 32-byte scalar or either DER.
fn p256_private(text: &str) -> Result<p256::ecdsa::SigningKey, String> {
    use p256::pkcs8::DecodePrivateKey;
    match key_text(text)? {
        KeyText::Pem(pem) if pem.starts_with("-----BEGIN EC PRIVATE KEY-----") => p256::SecretKey::from_sec1_pem(pem)
            .map(Into::into)
            .map_err(|e| e.to_string()),
        KeyText::Pem(pem) => p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|e| e.to_string()),
        KeyText::Bytes(b) if b.len() == 32 => p256::ecdsa::SigningKey::from_slice(&b).map_err(|e| e.to_string()),
        KeyText::Bytes(b) => p256::ecdsa::SigningKey::from_pkcs8_der(&b)
            .or_else(|_| p256::SecretKey::from_sec1_der(&b).map(Into::into))
            .map_err(|e| e.to_string()),
    }
}

/// An RSA private key: PEM PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE
/// KEY`), or the DER of either in base64 (or hex).
fn rsa_private(text: &str) -> Result<rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = match key_text(text)? {
        KeyText::Pem(pem) if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") => {
            rsa::PrivateKey::from_pkcs1_pem(pem).map_err(|e| e.to_string())?
        }
        KeyText::Pem(pem) => rsa::PrivateKey::from_pkcs8_pem(pem).map_err(|e| e.to_string())?,
        KeyText::Bytes(b) => rsa::PrivateKey::from_pkcs8_der(&b)
            .or_else(|_| rsa::PrivateKey::from_pkcs1_der(&b))
            .map_err(|e| e.to_string())?,
    };
    Ok(rsa::pkcs1v15::SigningKey::new(key))
}

/// Resolves a rotation list of key references and parses each (the first
/// must resolve; a later unset variable is skipped). A key that does not
/// parse is named by its reference, never its text.
fn resolve_keys<K>(
    refs: &[String],
    resolver: &dyn SecretResolver,
    parse: impl Fn(&str) -> Result<K, String>,
    kind: &str,
) -> Result<Vec<K>, SecretError> {
    let mut keys = Vec::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        let secret = match resolve_all(std::slice::from_ref(r), resolver) {
            Ok(mut one) => one.remove(0),
            Err(SecretError::MissingEnv(_)) if i > 0 => continue,
            Err(e) => return Err(e),
        };
        let text = std::str::from_utf8(secret.expose()).map_err(|_| SecretError::BadKey {
            name: r.clone(),
            reason: format!("not a {kind} public key: not text"),
        })?;
        keys.push(parse(text).map_err(|reason| SecretError::BadKey {
            name: r.clone(),
            reason: format!("not a {kind} public key: {reason}"),
        })?);
    }
    if keys.is_empty() {
        return Err(SecretError::NoneConfigured);
    }
    Ok(keys)
}

impl PublicKeyVerifier {
    /// Resolves and parses the configured keys.
    pub fn build(
        algorithm: Algorithm,
        config: &PublicKeyConfig,
        resolver: &dyn SecretResolver,
    ) -> Result<Self, SecretError> {
        let keys = match algorithm {
            Algorithm::Ed25519 => Keys::Ed25519(resolve_keys(&config.public_keys, resolver, ed25519_key, "Ed25519")?),
            Algorithm::EcdsaP256 => Keys::P256(resolve_keys(&config.public_keys, resolver, p256_key, "P-256")?),
            Algorithm::RsaSha256 => Keys::Rsa(resolve_keys(&config.public_keys, resolver, rsa_key, "RSA")?),
        };
        Ok(Self {
            config: config.clone(),
            keys,
        })
    }

    /// The signed content: the timestamp header's value, when one is
    /// signed, followed by the body.
    fn message(&self, timestamp: &str, body: &[u8]) -> Vec<u8> {
        let timestamp = if self.config.timestamp_header.is_some() {
            timestamp
        } else {
            ""
        };
        [timestamp.as_bytes(), body].concat()
    }
}

impl Verifier for PublicKeyVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let c = &self.config;
        let raw = req.require_header(&c.header)?;
        let timestamp = match &c.timestamp_header {
            Some(h) => {
                let t = req.require_header(h)?;
                if let Some(tolerance) = c.tolerance_secs {
                    check_timestamp(parse_timestamp(t)?, req.now, tolerance)?;
                }
                t
            }
            None => "",
        };
        let malformed = || VerifyError::Invalid(format!("{} is malformed", c.header));
        let sig = c.encoding.decode(raw).ok_or_else(malformed)?;
        let mut message = Vec::with_capacity(timestamp.len() + req.body.len());
        message.extend_from_slice(timestamp.as_bytes());
        message.extend_from_slice(req.body);
        let verified = match &self.keys {
            Keys::Ed25519(keys) => {
                use ed25519_dalek::Verifier as _;
                let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|_| malformed())?;
                keys.iter().any(|k| k.verify(&message, &sig).is_ok())
            }
            Keys::P256(keys) => {
                use p256::ecdsa::signature::Verifier as _;
                let sig = p256::ecdsa::DerSignature::try_from(sig.as_slice()).map_err(|_| malformed())?;
                keys.iter().any(|k| k.verify(&message, &sig).is_ok())
            }
            Keys::Rsa(keys) => {
                use rsa::signature::Verifier as _;
                use rsa::traits::PublicKeyParts;
                // A PKCS#1 v1.5 signature is exactly as long as the modulus:
                // any other length is no signature at all, told apart from
                // one that fails to verify.
                if !keys.iter().any(|k| k.as_ref().size() == sig.len()) {
                    return Err(malformed());
                }
                let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).map_err(|_| malformed())?;
                keys.iter().any(|k| k.verify(&message, &sig).is_ok())
            }
        };
        if verified {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no public key verifies the signature".into()))
        }
    }

    fn challenge(&self, req: &Request<'_>) -> Option<Handshake> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "type")]
            kind: i64,
        }
        let ping = self.config.ping?;
        self.verify(req).ok()?;
        let probe: Probe = serde_json::from_slice(req.body).ok()?;
        match (ping, probe.kind) {
            (Ping::DiscordInteractions, 1) => Some(Handshake {
                status: 200,
                content_type: "application/json",
                body: r#"{"type":1}"#.into(),
            }),
            (Ping::DiscordEvents, 0) => Some(Handshake {
                status: 204,
                content_type: "text/plain",
                body: String::new(),
            }),
            _ => None,
        }
    }

    /// Only the sender holds the private key: nothing is signed without it
    /// (see [`sign_with_private_key`](Verifier::sign_with_private_key)).
    fn sign(&self, _input: &SignInput<'_>) -> Signed {
        Signed::default()
    }

    fn can_sign(&self) -> bool {
        false
    }

    /// Signs as the sender does: the timestamp header (when the scheme
    /// signs one) is `input.now` in seconds, and the signature is over that
    /// value followed by the body, in the configured encoding (an ECDSA
    /// signature as DER, as SendGrid sends it). The key is not checked
    /// against `public_keys`: a wrong key makes a delivery the receiver
    /// refuses, which is worth trying too. Errors name the expected kind of
    /// key, never its text.
    fn sign_with_private_key(&self, input: &SignInput<'_>, private_key: &Secret) -> Result<Signed, String> {
        let text = std::str::from_utf8(private_key.expose()).map_err(|_| "the private key is not text".to_string())?;
        let timestamp = input.now.to_string();
        let message = self.message(&timestamp, input.body);
        let signature = match &self.keys {
            Keys::Ed25519(_) => {
                use ed25519_dalek::Signer as _;
                let key = ed25519_private(text).map_err(|e| format!("not an Ed25519 private key: {e}"))?;
                key.sign(&message).to_bytes().to_vec()
            }
            Keys::P256(_) => {
                use p256::ecdsa::signature::Signer as _;
                let key = p256_private(text).map_err(|e| format!("not a P-256 private key: {e}"))?;
                let sig: p256::ecdsa::Signature = key.sign(&message);
                sig.to_der().as_bytes().to_vec()
            }
            Keys::Rsa(_) => {
                use rsa::signature::{SignatureEncoding as _, Signer as _};
                let key = rsa_private(text).map_err(|e| format!("not an RSA private key: {e}"))?;
                key.try_sign(&message)
                    .map_err(|e| format!("RSA signing failed: {e}"))?
                    .to_vec()
            }
        };
        let mut headers = vec![(self.config.header.clone(), self.config.encoding.encode(&signature))];
        if let Some(ts) = &self.config.timestamp_header {
            headers.push((ts.clone(), timestamp));
        }
        Ok(Signed { headers, query: vec![] })
    }

    /// The signature header and, when signed, the timestamp header.
    fn expected_names(&self) -> Signed {
        let mut headers = vec![(self.config.header.clone(), String::new())];
        if let Some(ts) = &self.config.timestamp_header {
            headers.push((ts.clone(), String::new()));
        }
        Signed { headers, query: vec![] }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Owned;
    use super::*;
    use crate::secret::MapResolver;

    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const DISCORD_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn discord(keys: &[&str], ping: Option<Ping>) -> PublicKeyVerifier {
        let mut r = MapResolver::default();
        let mut refs = vec![];
        for (i, k) in keys.iter().enumerate() {
            r = r.with(&format!("K{i}"), k);
            refs.push(format!("env:K{i}"));
        }
        let config = PublicKeyConfig {
            header: "X-Signature-Ed25519".into(),
            encoding: Encoding::Hex,
            timestamp_header: Some("X-Signature-Timestamp".into()),
            tolerance_secs: None,
            public_keys: refs,
            ping,
        };
        PublicKeyVerifier::build(Algorithm::Ed25519, &config, &r).expect("builds")
    }

    fn ed25519_sign(seed: [u8; 32], ts: &str, body: &[u8]) -> String {
        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let mut msg = ts.as_bytes().to_vec();
        msg.extend_from_slice(body);
        hex::encode(key.sign(&msg).to_bytes())
    }

    fn seed() -> [u8; 32] {
        hex::decode(SEED).expect("hex").try_into().expect("32 bytes")
    }

    fn discord_post(body: &[u8], ts: &str, sig: &str) -> Owned {
        Owned::post(body, 0)
            .header("X-Signature-Ed25519", sig)
            .header("X-Signature-Timestamp", ts)
    }

    #[test]
    fn ed25519_vectors_from_the_notes_verify_and_the_rfc_key_reproduces_them() {
        // RFC 8032 test 1's key pair, signing Discord's PING as the research
        // notes did; our signer must give the same bytes (Ed25519 is
        // deterministic), and the receiver accept them.
        let body = br#"{"type":1}"#;
        let sig = "1695961a47c91a1ec033b819b7e87e3dbc583dd0cee6d1fd0216f58ac87b6228ae531ddbf91fb7bc28d7edf7f08604da16f54624f38a6bc0614e4dc13cd47f0f";
        assert_eq!(ed25519_sign(seed(), "1700000000", body), sig);
        let v = discord(&[DISCORD_PUBLIC], None);
        assert_eq!(v.verify(&discord_post(body, "1700000000", sig).req()), Ok(()));
        let body = br#"{"version":1,"application_id":"1","type":0}"#;
        let sig = "5812398128348740ec94d688faff1bd1d0deb2a59b2190f14e6ce4078dd759f201447dbcd6ffd7013f39f37f6a8726fc6da497cdc03390c4b99639518c17b004";
        assert_eq!(v.verify(&discord_post(body, "1700000000", sig).req()), Ok(()));
    }

    #[test]
    fn ed25519_refuses_a_flipped_byte_a_wrong_key_and_tells_missing_from_malformed() {
        let body = br#"{"id":"1","type":2}"#;
        let sig = ed25519_sign(seed(), "1700000000", body);
        let v = discord(&[DISCORD_PUBLIC], None);
        assert_eq!(v.verify(&discord_post(body, "1700000000", &sig).req()), Ok(()));
        let mut flipped = body.to_vec();
        flipped[3] ^= 1;
        let err = v
            .verify(&discord_post(&flipped, "1700000000", &sig).req())
            .expect_err("refused");
        assert_eq!(err.reason(), "invalid_signature");
        let err = v
            .verify(&discord_post(body, "1700000001", &sig).req())
            .expect_err("timestamp is signed");
        assert_eq!(err.reason(), "invalid_signature");
        let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let wrong = discord(&[&hex::encode(other.verifying_key().to_bytes())], None);
        let err = wrong
            .verify(&discord_post(body, "1700000000", &sig).req())
            .expect_err("wrong key");
        assert_eq!(err, VerifyError::Invalid("no public key verifies the signature".into()));
        let missing = Owned::post(body, 0).header("X-Signature-Timestamp", "1700000000");
        assert_eq!(
            v.verify(&missing.req()),
            Err(VerifyError::Missing("X-Signature-Ed25519".into()))
        );
        let no_ts = Owned::post(body, 0).header("X-Signature-Ed25519", &sig);
        assert_eq!(
            v.verify(&no_ts.req()),
            Err(VerifyError::Missing("X-Signature-Timestamp".into()))
        );
        for bad in ["zz", "abcd"] {
            let err = v
                .verify(&discord_post(body, "1700000000", bad).req())
                .expect_err("malformed");
            assert_eq!(
                err,
                VerifyError::Invalid("X-Signature-Ed25519 is malformed".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn any_key_of_the_rotation_list_verifies_and_keys_read_as_pem_hex_or_base64() {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        let body = b"{}";
        let sig = ed25519_sign(seed(), "1", body);
        let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let ours =
            ed25519_dalek::VerifyingKey::from_bytes(&hex::decode(DISCORD_PUBLIC).expect("hex").try_into().expect("32"))
                .expect("key");
        let pem = ours.to_public_key_pem(Default::default()).expect("pem");
        let b64 = base64::engine::general_purpose::STANDARD.encode(ours.to_bytes());
        let der_b64 =
            base64::engine::general_purpose::STANDARD.encode(ours.to_public_key_der().expect("der").as_bytes());
        for form in [pem.as_str(), &b64, &der_b64, &DISCORD_PUBLIC.to_uppercase()] {
            let v = discord(&[&hex::encode(other.to_bytes()), form], None);
            assert_eq!(v.verify(&discord_post(body, "1", &sig).req()), Ok(()), "{form}");
        }
        let mut r = MapResolver::default().with("K", "not a key!");
        let config = PublicKeyConfig {
            header: "X".into(),
            encoding: Encoding::Hex,
            timestamp_header: None,
            tolerance_secs: None,
            public_keys: vec!["env:K".into()],
            ping: None,
        };
        let err = PublicKeyVerifier::build(Algorithm::Ed25519, &config, &r).expect_err("bad key");
        assert!(
            err.to_string().contains("env:K") && !err.to_string().contains("not a key!"),
            "names the reference, never the text: {err}"
        );
        r = r.with("K", DISCORD_PUBLIC);
        assert!(
            PublicKeyVerifier::build(Algorithm::EcdsaP256, &config, &r).is_err(),
            "an Ed25519 key is no P-256 key"
        );
    }

    #[test]
    fn a_tolerance_when_set_is_checked_both_ways() {
        let mut v = discord(&[DISCORD_PUBLIC], None);
        v.config.tolerance_secs = Some(300);
        let body = b"{}";
        let sig = ed25519_sign(seed(), "1000", body);
        let at = |now: i64| {
            let mut o = discord_post(body, "1000", &sig);
            o.now = now;
            v.verify(&o.req()).map_err(|e| e.reason())
        };
        assert_eq!(at(1300), Ok(()));
        assert_eq!(at(1301), Err("timestamp_out_of_tolerance"));
        assert_eq!(at(699), Err("timestamp_out_of_tolerance"));
    }

    #[test]
    fn discord_pings_are_answered_once_verified() {
        let ping = br#"{"type":1}"#;
        let sig = ed25519_sign(seed(), "5", ping);
        let v = discord(&[DISCORD_PUBLIC], Some(Ping::DiscordInteractions));
        let pong = v.challenge(&discord_post(ping, "5", &sig).req()).expect("pong");
        assert_eq!(
            (pong.status, pong.content_type, pong.body.as_str()),
            (200, "application/json", r#"{"type":1}"#)
        );
        assert_eq!(
            v.challenge(&discord_post(ping, "6", &sig).req()),
            None,
            "unverified: no answer"
        );
        let command = br#"{"type":2,"id":"9"}"#;
        let sig2 = ed25519_sign(seed(), "5", command);
        assert_eq!(
            v.challenge(&discord_post(command, "5", &sig2).req()),
            None,
            "an interaction is an event"
        );
        let events = discord(&[DISCORD_PUBLIC], Some(Ping::DiscordEvents));
        let event_ping = br#"{"version":1,"application_id":"1","type":0}"#;
        let sig3 = ed25519_sign(seed(), "5", event_ping);
        let ack = events
            .challenge(&discord_post(event_ping, "5", &sig3).req())
            .expect("ack");
        assert_eq!((ack.status, ack.body.as_str()), (204, ""));
        assert_eq!(
            events.challenge(&discord_post(ping, "5", &sig).req()),
            None,
            "type 1 is an event there"
        );
    }

    fn sendgrid(key: &str) -> PublicKeyVerifier {
        let r = MapResolver::default().with("K", key);
        let config = PublicKeyConfig {
            header: "X-Twilio-Email-Event-Webhook-Signature".into(),
            encoding: Encoding::Base64,
            timestamp_header: Some("X-Twilio-Email-Event-Webhook-Timestamp".into()),
            tolerance_secs: None,
            public_keys: vec!["env:K".into()],
            ping: None,
        };
        PublicKeyVerifier::build(Algorithm::EcdsaP256, &config, &r).expect("builds")
    }

    fn sendgrid_post(body: &[u8], ts: &str, sig: &str) -> Owned {
        Owned::post(body, 0)
            .header("X-Twilio-Email-Event-Webhook-Signature", sig)
            .header("X-Twilio-Email-Event-Webhook-Timestamp", ts)
    }

    /// sendgrid-python's `test/unit/test_eventwebhook.py`, exactly.
    const SG_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const SG_SIG: &str =
        "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const SG_BODY: &str = "[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";

    #[test]
    fn sendgrid_published_vectors_verify_and_their_negatives_fail() {
        let v = sendgrid(SG_KEY);
        assert_eq!(
            v.verify(&sendgrid_post(SG_BODY.as_bytes(), "1600112502", SG_SIG).req()),
            Ok(())
        );
        let trimmed = SG_BODY.trim_end();
        let err = v
            .verify(&sendgrid_post(trimmed.as_bytes(), "1600112502", SG_SIG).req())
            .expect_err("CRLF is signed");
        assert_eq!(err.reason(), "invalid_signature");
        let wrong_key = sendgrid("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==");
        assert_eq!(
            wrong_key
                .verify(&sendgrid_post(SG_BODY.as_bytes(), "1600112502", SG_SIG).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        let wrong_sig =
            "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";
        assert_eq!(
            v.verify(&sendgrid_post(SG_BODY.as_bytes(), "1600112502", wrong_sig).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        // sendgrid-nodejs's spec vector: no trailing newline.
        let node = sendgrid("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==");
        let body = br#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
        let sig = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
        assert_eq!(node.verify(&sendgrid_post(body, "1588788367", sig).req()), Ok(()));
        assert_eq!(
            node.verify(&sendgrid_post(body, "timestamp", sig).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        assert_eq!(
            node.verify(&sendgrid_post(b"payload", "1588788367", sig).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
    }

    #[test]
    fn p256_signed_with_a_generated_key_verifies_and_tampering_fails() {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::EncodePublicKey;
        let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).expect("scalar");
        let body = br#"[{"sg_event_id":"e1","event":"delivered"}]"#;
        let sig: p256::ecdsa::Signature = key.sign(&[b"77".as_slice(), body].concat());
        let sig = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
        let pem = key.verifying_key().to_public_key_pem(Default::default()).expect("pem");
        let v = sendgrid(&pem);
        assert_eq!(v.verify(&sendgrid_post(body, "77", &sig).req()), Ok(()));
        let mut flipped = body.to_vec();
        flipped[5] ^= 0x20;
        assert_eq!(
            v.verify(&sendgrid_post(&flipped, "77", &sig).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        assert_eq!(
            sendgrid(SG_KEY)
                .verify(&sendgrid_post(body, "77", &sig).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        let missing = Owned::post(body, 0).header("X-Twilio-Email-Event-Webhook-Timestamp", "77");
        assert_eq!(
            v.verify(&missing.req()).map_err(|e| e.reason()),
            Err("missing_signature")
        );
        assert_eq!(
            v.verify(&sendgrid_post(body, "77", "bm90IGRlcg==").req()),
            Err(VerifyError::Invalid(
                "X-Twilio-Email-Event-Webhook-Signature is malformed".into()
            ))
        );
        assert!(
            !v.can_sign()
                && v.sign(&SignInput {
                    body,
                    now: 0,
                    id: "",
                    url: ""
                }) == Signed::default()
        );
    }

    /// Two RSA-2048 key pairs generated once with `openssl genrsa` (A in
    /// PKCS#1, B in PKCS#8): generating one in a debug test is slow.
    const RSA_A: &str = include_str!("../../tests/data/rsa_test_key_a.pem");
    const RSA_B: &str = include_str!("../../tests/data/rsa_test_key_b.pem");
    /// `openssl dgst -sha256 -sign rsa_test_key_a.pem` over [`RSA_BODY`],
    /// base64: a signature made by another implementation.
    const RSA_OPENSSL_SIG: &str = "kmHCQamT2iUEPUvq+01bC7oA5rb10z6WnipcgGUhvKfUQ2hRmY2YaiViKIZrbant9M+B8oZ6lkSzz88+ssrEBywlB7XfopFumyCMlFcbH+sybLLW73arAyZb8Lua3fmkEkY+dKSiqsKNs3DJX6IpxKPiC13h3RSJ2KCsLbaEUWA68DcoDcJlifI+Vt373giVY3GJL+AcEqntJgOuoio+l0a5/lUcH10rO/yJI9D2fNU391+u+UoypiYyW2rXvSUlNsp/a3j7g3CyHknQ7+ytGo07sOjasFQKvHFjMVyTVd0zk+lEdejwgqsxZXTjTMIZJQBhItgIDSNX11aoxHZpjw==";
    const RSA_BODY: &[u8] = br#"{"id":"evt_1","type":"order.paid"}"#;

    fn rsa_private(pem: &str) -> rsa::PrivateKey {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        rsa::PrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::PrivateKey::from_pkcs8_pem(pem))
            .expect("test key")
    }

    fn rsa_sign(pem: &str, message: &[u8]) -> String {
        use rsa::signature::{SignatureEncoding, Signer};
        let key = rsa::pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new(rsa_private(pem));
        base64::engine::general_purpose::STANDARD.encode(key.sign(message).to_bytes())
    }

    fn rsa_verifier(keys: &[String], timestamp_header: Option<&str>, encoding: Encoding) -> PublicKeyVerifier {
        let mut r = MapResolver::default();
        let mut refs = vec![];
        for (i, k) in keys.iter().enumerate() {
            r = r.with(&format!("K{i}"), k);
            refs.push(format!("env:K{i}"));
        }
        let config = PublicKeyConfig {
            header: "X-Signature".into(),
            encoding,
            timestamp_header: timestamp_header.map(Into::into),
            tolerance_secs: None,
            public_keys: refs,
            ping: None,
        };
        PublicKeyVerifier::build(Algorithm::RsaSha256, &config, &r).expect("builds")
    }

    fn rsa_public_pem(pem: &str) -> String {
        use rsa::pkcs8::EncodePublicKey;
        rsa_private(pem)
            .to_public_key()
            .to_public_key_pem(Default::default())
            .expect("pem")
    }

    #[test]
    fn rsa_sha256_verifies_openssl_and_our_signatures_and_refuses_tampering() {
        let v = rsa_verifier(&[rsa_public_pem(RSA_A)], None, Encoding::Base64);
        let post = |body: &[u8], sig: &str| Owned::post(body, 0).header("X-Signature", sig);
        assert_eq!(v.verify(&post(RSA_BODY, RSA_OPENSSL_SIG).req()), Ok(()));
        assert_eq!(
            rsa_sign(RSA_A, RSA_BODY),
            RSA_OPENSSL_SIG,
            "PKCS#1 v1.5 is deterministic"
        );
        let mut flipped = RSA_BODY.to_vec();
        flipped[2] ^= 1;
        assert_eq!(
            v.verify(&post(&flipped, RSA_OPENSSL_SIG).req()),
            Err(VerifyError::Invalid("no public key verifies the signature".into()))
        );
        let by_b = rsa_sign(RSA_B, RSA_BODY);
        assert_eq!(
            v.verify(&post(RSA_BODY, &by_b).req()).map_err(|e| e.reason()),
            Err("invalid_signature"),
            "signed by another key"
        );
        assert_eq!(
            v.verify(&Owned::post(RSA_BODY, 0).req()),
            Err(VerifyError::Missing("X-Signature".into()))
        );
        assert_eq!(
            v.verify(&Owned::post(RSA_BODY, 0).req()).map_err(|e| e.reason()),
            Err("missing_signature")
        );
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 255]);
        for bad in ["%%% not base64", "", short.as_str()] {
            assert_eq!(
                v.verify(&post(RSA_BODY, bad).req()),
                Err(VerifyError::Invalid("X-Signature is malformed".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn rsa_keys_read_as_pkcs1_or_spki_pem_or_der_and_rotate() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        use rsa::pkcs8::EncodePublicKey;
        let public = rsa_private(RSA_A).to_public_key();
        let pkcs1_pem = public.to_pkcs1_pem(Default::default()).expect("pem");
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let spki_der = b64(public.to_public_key_der().expect("der").as_bytes());
        let pkcs1_der = b64(public.to_pkcs1_der().expect("der").as_bytes());
        assert!(pkcs1_pem.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        for form in [rsa_public_pem(RSA_A), pkcs1_pem, spki_der, pkcs1_der] {
            // B is current, A still in the rotation list.
            let v = rsa_verifier(&[rsa_public_pem(RSA_B), form.clone()], None, Encoding::Base64);
            let req = Owned::post(RSA_BODY, 0).header("X-Signature", RSA_OPENSSL_SIG);
            assert_eq!(v.verify(&req.req()), Ok(()), "{form}");
        }
        let r = MapResolver::default().with("K", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----");
        let config = PublicKeyConfig {
            header: "X".into(),
            encoding: Encoding::Base64,
            timestamp_header: None,
            tolerance_secs: None,
            public_keys: vec!["env:K".into()],
            ping: None,
        };
        let err = PublicKeyVerifier::build(Algorithm::RsaSha256, &config, &r).expect_err("bad key");
        assert!(
            err.to_string().contains("env:K") && err.to_string().contains("RSA"),
            "{err}"
        );
        let p256 = MapResolver::default().with("K", SG_KEY);
        assert!(
            PublicKeyVerifier::build(Algorithm::RsaSha256, &config, &p256).is_err(),
            "a P-256 key is no RSA key"
        );
    }

    #[test]
    fn rsa_hex_signatures_and_a_signed_timestamp_prefix() {
        let v = rsa_verifier(&[rsa_public_pem(RSA_A)], Some("X-Timestamp"), Encoding::Hex);
        let sig_b64 = rsa_sign(RSA_A, &[b"1700000000".as_slice(), RSA_BODY].concat());
        let sig = hex::encode(base64::engine::general_purpose::STANDARD.decode(sig_b64).expect("b64"));
        let post = |ts: &str| {
            Owned::post(RSA_BODY, 0)
                .header("X-Signature", &sig)
                .header("X-Timestamp", ts)
        };
        assert_eq!(v.verify(&post("1700000000").req()), Ok(()));
        assert_eq!(
            v.verify(&post("1700000001").req()).map_err(|e| e.reason()),
            Err("invalid_signature"),
            "the timestamp is signed"
        );
        let no_ts = Owned::post(RSA_BODY, 0).header("X-Signature", &sig);
        assert_eq!(v.verify(&no_ts.req()), Err(VerifyError::Missing("X-Timestamp".into())));
    }

    #[test]
    fn rsa_sha256_is_a_scheme_a_provider_table_selects() {
        let toml = r#"
            scheme = "rsa_sha256"
            header = "X-Signature"
            encoding = "base64"
            public_keys = ["env:RSA_KEY"]
        "#;
        let config: super::super::VerifierConfig = toml::from_str(toml).expect("parses");
        assert_eq!(config.check(), Ok(()));
        let r = MapResolver::default().with("RSA_KEY", &rsa_public_pem(RSA_A));
        let v = config.build(&r).expect("builds");
        let req = Owned::post(RSA_BODY, 0).header("X-Signature", RSA_OPENSSL_SIG);
        assert_eq!(v.verify(&req.req()), Ok(()));
        assert!(!v.can_sign());
    }

    /// An Ed25519 key made by `openssl genpkey -algorithm ed25519`, its
    /// public half (`openssl pkey -pubout`), and its signature over
    /// `1700000000{"type":1}` (`openssl pkeyutl -sign -rawin`).
    const OPENSSL_ED25519: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIER4UJJO4fPCZShAMKMVy5GE/SsNAfD7KAPFFWl55yX2\n-----END PRIVATE KEY-----\n";
    const OPENSSL_ED25519_PUBLIC: &str =
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAvapwSDOmo1abcm8VpPSM+GgdJkHvp/vuWBfE3APREhI=\n-----END PUBLIC KEY-----\n";
    const OPENSSL_ED25519_SIG: &str = "b01be180c13cea256e90761e81dba0bdf8731d102111a1c4f76a55efac9995e42dd0ddc7778eb6f1d18acfcc89e7934d68085a4ed6d3ee989155877937541502";

    fn input(body: &[u8], now: i64) -> SignInput<'_> {
        SignInput {
            body,
            now,
            id: "",
            url: "",
        }
    }

    /// Signs with `key` and turns the headers into a request.
    fn signed_post(v: &PublicKeyVerifier, key: &str, body: &[u8], now: i64) -> Owned {
        let signed = v
            .sign_with_private_key(&input(body, now), &Secret::new(key.as_bytes()))
            .expect("signs");
        signed
            .headers
            .iter()
            .fold(Owned::post(body, 0), |o, (n, val)| o.header(n, val))
    }

    #[test]
    fn ed25519_signs_as_discord_with_any_accepted_private_key_form() {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let body = br#"{"type":1}"#;
        let v = discord(&[DISCORD_PUBLIC], None);
        let signed = v
            .sign_with_private_key(&input(body, 1_700_000_000), &Secret::new(SEED))
            .expect("signs");
        // The RFC 8032 key's signature of the notes' PING, exactly.
        assert_eq!(
            signed.headers,
            vec![
                (
                    "X-Signature-Ed25519".to_string(),
                    ed25519_sign(seed(), "1700000000", body)
                ),
                ("X-Signature-Timestamp".to_string(), "1700000000".to_string()),
            ]
        );
        let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        let key = ed25519_dalek::SigningKey::from_bytes(&seed());
        let pem = key.to_pkcs8_pem(Default::default()).expect("pem");
        for form in [
            SEED.to_string(),
            b64(&seed()),
            format!("{SEED}{DISCORD_PUBLIC}"),
            pem.to_string(),
            b64(key.to_pkcs8_der().expect("der").as_bytes()),
        ] {
            assert_eq!(v.verify(&signed_post(&v, &form, body, 5).req()), Ok(()), "{form}");
        }
        // openssl's key reads, and our signature is openssl's byte for byte.
        let openssl = discord(&[OPENSSL_ED25519_PUBLIC], None);
        let signed = openssl
            .sign_with_private_key(&input(body, 1_700_000_000), &Secret::new(OPENSSL_ED25519))
            .expect("signs");
        assert_eq!(signed.headers[0].1, OPENSSL_ED25519_SIG);
        assert_eq!(
            openssl.verify(&signed_post(&openssl, OPENSSL_ED25519, body, 9).req()),
            Ok(())
        );
        // Another key signs, and the receiver refuses what it signed.
        let wrong = hex::encode([7u8; 32]);
        assert_eq!(
            v.verify(&signed_post(&v, &wrong, body, 5).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        // A pair whose halves do not match is refused.
        let mismatched = format!("{SEED}{}", hex::encode([1u8; 32]));
        assert!(v
            .sign_with_private_key(&input(body, 5), &Secret::new(mismatched))
            .is_err());
    }

    #[test]
    fn p256_signs_as_sendgrid_with_pkcs8_sec1_or_a_raw_scalar() {
        /// `openssl ecparam -name prime256v1 -genkey -noout` (SEC1), the same
        /// key through `openssl pkcs8 -topk8 -nocrypt`, and its public half.
        const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKxj6uUkt7qNnPVQCG46dYBoKoZsGAZcz8i87pKeW2I0oAoGCCqGSM49\nAwEHoUQDQgAEWsMfeoS3l51lkaODoOZxzyhsXMeMvWN76orX50NBYxmGYvaWhslE\nZnKwnW6lkUL7HxGylOVfGFVBkDQVRxM3sg==\n-----END EC PRIVATE KEY-----\n";
        const PKCS8: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrGPq5SS3uo2c9VAI\nbjp1gGgqhmwYBlzPyLzukp5bYjShRANCAARawx96hLeXnWWRo4Og5nHPKGxcx4y9\nY3vqitfnQ0FjGYZi9paGyURmcrCdbqWRQvsfEbKU5V8YVUGQNBVHEzey\n-----END PRIVATE KEY-----\n";
        const PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWsMfeoS3l51lkaODoOZxzyhsXMeMvWN76orX50NBYxmGYvaWhslEZnKwnW6lkUL7HxGylOVfGFVBkDQVRxM3sg==";
        let body = br#"[{"sg_event_id":"e1","event":"delivered"}]"#;
        let v = sendgrid(PUBLIC);
        let scalar = "ac63eae524b7ba8d9cf550086e3a7580682a866c18065ccfc8bcee929e5b6234";
        for form in [SEC1, PKCS8, scalar] {
            let req = signed_post(&v, form, body, 1_600_000_000);
            assert_eq!(v.verify(&req.req()), Ok(()), "{form}");
            let ts = req.headers.get("X-Twilio-Email-Event-Webhook-Timestamp").expect("ts");
            assert_eq!(ts, "1600000000");
            let sig = req.headers.get("X-Twilio-Email-Event-Webhook-Signature").expect("sig");
            let der = base64::engine::general_purpose::STANDARD
                .decode(sig.to_str().expect("ascii"))
                .expect("base64");
            assert!(
                p256::ecdsa::DerSignature::try_from(der.as_slice()).is_ok(),
                "DER, as SendGrid sends"
            );
        }
        let mut tampered = signed_post(&v, PKCS8, body, 7);
        tampered.body = br#"[{"sg_event_id":"e1","event":"bounce"}]"#.to_vec();
        assert_eq!(
            v.verify(&tampered.req()).map_err(|e| e.reason()),
            Err("invalid_signature")
        );
        let other = hex::encode([0x42u8; 32]);
        assert_eq!(
            v.verify(&signed_post(&v, &other, body, 7).req())
                .map_err(|e| e.reason()),
            Err("invalid_signature"),
            "another key's signature"
        );
        // An Ed25519 key is no P-256 key; the error never shows the key.
        let err = v
            .sign_with_private_key(&input(body, 7), &Secret::new(OPENSSL_ED25519))
            .expect_err("wrong kind");
        assert!(err.starts_with("not a P-256 private key"), "{err}");
        assert!(!err.contains("MC4CAQAw"), "{err}");
    }

    #[test]
    fn rsa_sha256_signs_as_openssl_does_with_pkcs1_or_pkcs8_keys() {
        let v = rsa_verifier(&[rsa_public_pem(RSA_A)], None, Encoding::Base64);
        let signed = v
            .sign_with_private_key(&input(RSA_BODY, 3), &Secret::new(RSA_A))
            .expect("signs");
        assert_eq!(
            signed.headers,
            vec![("X-Signature".to_string(), RSA_OPENSSL_SIG.to_string())],
            "no timestamp header: the body alone, as openssl signed it"
        );
        let by_b = signed_post(&v, RSA_B, RSA_BODY, 3);
        assert_eq!(v.verify(&by_b.req()).map_err(|e| e.reason()), Err("invalid_signature"));
        let b = rsa_verifier(&[rsa_public_pem(RSA_B)], Some("X-Timestamp"), Encoding::Hex);
        let req = signed_post(&b, RSA_B, RSA_BODY, 1_700_000_000);
        assert_eq!(b.verify(&req.req()), Ok(()));
        assert_eq!(req.headers.get("X-Timestamp").expect("ts"), "1700000000");
        let err = b
            .sign_with_private_key(&input(RSA_BODY, 3), &Secret::new("not a key"))
            .expect_err("garbage");
        assert!(err.starts_with("not an RSA private key"), "{err}");
    }

    #[test]
    fn secret_signed_schemes_take_no_private_key() {
        let config: super::super::VerifierConfig =
            toml::from_str("scheme = \"github\"\nsecrets = [\"env:G\"]").expect("parses");
        let v = config.build(&MapResolver::default().with("G", "s")).expect("builds");
        assert!(v.sign_with_private_key(&input(b"{}", 1), &Secret::new(SEED)).is_err());
    }
}
