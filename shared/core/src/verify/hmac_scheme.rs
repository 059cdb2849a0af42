//! Generic HMAC verification, and the HMAC primitives every HMAC-based
//! scheme shares (compute, constant-time check against several secrets and
//! several candidate signatures, hex/base64 codecs).

use super::{check_timestamp, parse_timestamp, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use std::borrow::Cow;

/// The hash under the HMAC.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

/// The longest MAC: HMAC-SHA512's 64 bytes.
pub const MAX_MAC_BYTES: usize = 64;

/// How the signature bytes are written in the header.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

impl Encoding {
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Hex => hex::encode(bytes),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// Decodes a signature into `buf` (no allocation); `None` when
    /// malformed or longer than `buf`.
    pub fn decode_into<'b>(self, text: &str, buf: &'b mut [u8; MAX_MAC_BYTES]) -> Option<&'b [u8]> {
        let text = text.trim();
        match self {
            // base16ct: strict (no `0x`), either case, branch-free, in
            // half the instructions `hex` takes for a 64-digit signature.
            Encoding::Hex => base16ct::mixed::decode(text, &mut buf[..]).ok(),
            Encoding::Base64 => {
                let n = base64::engine::general_purpose::STANDARD
                    .decode_slice(text, &mut buf[..])
                    .ok()?;
                Some(&buf[..n])
            }
        }
    }

    /// Decodes a signature; hex is case-insensitive. `None` when malformed.
    pub fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Encoding::Hex => decode_hex(text.trim()),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text.trim()).ok(),
        }
    }
}

/// Decodes hex digits (either case, nothing else: no `0x`, no spaces) with
/// `base16ct`, the one hex decoder every verifier uses.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    base16ct::mixed::decode_vec(text).ok()
}

/// HMAC of the concatenation of `parts`.
pub fn hmac(alg: Algorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().to_vec()
    }
    match alg {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, parts),
    }
}

/// True when any candidate equals the HMAC of `parts` under any secret.
/// Each comparison is constant time (`Mac::verify_slice`).
pub fn verify_any<C: AsRef<[u8]>>(alg: Algorithm, secrets: &[Secret], parts: &[&[u8]], candidates: &[C]) -> bool {
    fn run<M: Mac + Clone, C: AsRef<[u8]>>(keyed: impl Iterator<Item = M>, parts: &[&[u8]], candidates: &[C]) -> bool {
        let mut ok = false;
        for mut mac in keyed {
            for p in parts {
                mac.update(p);
            }
            for c in candidates {
                // Every pair is checked, so the time does not reveal which matched.
                ok |= mac.clone().verify_slice(c.as_ref()).is_ok();
            }
        }
        ok
    }
    fn keyed<M: Mac + hmac::digest::KeyInit>(secrets: &[Secret]) -> impl Iterator<Item = M> + '_ {
        secrets.iter().map(|s| {
            <M as hmac::digest::KeyInit>::new_from_slice(s.expose())
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
        })
    }
    match alg {
        Algorithm::Sha1 => run(keyed::<Hmac<sha1::Sha1>>(secrets), parts, candidates),
        // Keyed once per secret and cloned (see `Secret::hmac_sha256`).
        Algorithm::Sha256 => run(secrets.iter().map(Secret::hmac_sha256), parts, candidates),
        Algorithm::Sha512 => run(keyed::<Hmac<sha2::Sha512>>(secrets), parts, candidates),
    }
}

fn default_tolerance() -> i64 {
    300
}

/// A configurable HMAC scheme (gigstack is one: hex HMAC-SHA256 of the body
/// in `X-Gigstack-Signature`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// Header carrying the signature(s).
    pub header: String,
    #[serde(default)]
    pub algorithm: Algorithm,
    #[serde(default)]
    pub encoding: Encoding,
    /// Text before the signature, such as `sha256=`.
    #[serde(default)]
    pub prefix: String,
    /// When set, the header may hold several signatures split by this text.
    #[serde(default)]
    pub separator: Option<String>,
    /// Secret references; the first is current, the rest are previous ones.
    pub secrets: Vec<String>,
    /// Header carrying a Unix timestamp that is part of the signed content.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Header carrying a delivery id that is part of the signed content.
    #[serde(default)]
    pub id_header: Option<String>,
    /// What is signed, with `{body}`, `{timestamp}` and `{id}` placeholders.
    /// Default: `{body}`.
    #[serde(default)]
    pub signed_content: Option<String>,
    /// Seconds a timestamp may be off, both ways.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

/// Verifies [`HmacConfig`] deliveries.
#[derive(Debug)]
pub struct HmacVerifier {
    config: HmacConfig,
    secrets: Vec<Secret>,
}

impl HmacConfig {
    /// A template that names a part whose header is not configured would
    /// sign an empty value: refused at start-up instead.
    pub fn check(&self) -> Result<(), String> {
        let Some(template) = &self.signed_content else {
            return Ok(());
        };
        if template.contains("{timestamp}") && self.timestamp_header.is_none() {
            return Err("signed_content uses {timestamp} but timestamp_header is not set".into());
        }
        if template.contains("{id}") && self.id_header.is_none() {
            return Err("signed_content uses {id} but id_header is not set".into());
        }
        Ok(())
    }
}

impl HmacVerifier {
    pub fn new(config: HmacConfig, secrets: Vec<Secret>) -> Self {
        Self { config, secrets }
    }

    /// The signed content, as the pieces to feed the HMAC in order: the
    /// template's text with its placeholders replaced, borrowed, so the body
    /// is never copied.
    fn content<'a>(&'a self, body: &'a &'a [u8], timestamp: &'a str, id: &'a str) -> Cow<'a, [&'a [u8]]> {
        let Some(template) = &self.config.signed_content else {
            // The common case, the body alone: no list to allocate.
            return Cow::Borrowed(std::slice::from_ref(body));
        };
        let mut out: Vec<&'a [u8]> = Vec::with_capacity(8);
        let mut rest = template.as_str();
        while let Some(start) = rest.find('{') {
            out.push(&rest.as_bytes()[..start]);
            let after = &rest[start..];
            let (value, len): (&[u8], usize) = if after.starts_with("{body}") {
                (body, 6)
            } else if after.starts_with("{timestamp}") {
                (timestamp.as_bytes(), 11)
            } else if after.starts_with("{id}") {
                (id.as_bytes(), 4)
            } else {
                (b"{", 1)
            };
            out.push(value);
            rest = &after[len..];
        }
        out.push(rest.as_bytes());
        Cow::Owned(out)
    }
}

impl Verifier for HmacVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let c = &self.config;
        let raw = req.require_header(&c.header)?;
        let timestamp = match &c.timestamp_header {
            Some(h) => {
                let t = req.require_header(h)?;
                check_timestamp(parse_timestamp(t)?, req.now, c.tolerance_secs)?;
                t
            }
            None => "",
        };
        let id = match &c.id_header {
            Some(h) => req.require_header(h)?,
            None => "",
        };
        let content = self.content(&req.body, timestamp, id);
        let matched = match &c.separator {
            Some(sep) if !sep.is_empty() => {
                let decode = |p: &str| c.encoding.decode(p.trim().strip_prefix(c.prefix.as_str())?);
                let candidates: Vec<Vec<u8>> = raw.split(sep.as_str()).filter_map(decode).collect();
                (!candidates.is_empty()).then(|| verify_any(c.algorithm, &self.secrets, &content, &candidates))
            }
            // One signature, the common case: decoded on the stack.
            _ => {
                let mut buf = [0u8; MAX_MAC_BYTES];
                raw.trim()
                    .strip_prefix(c.prefix.as_str())
                    .and_then(|p| c.encoding.decode_into(p, &mut buf))
                    .map(|sig| verify_any(c.algorithm, &self.secrets, &content, &[sig]))
            }
        };
        let Some(matched) = matched else {
            return Err(VerifyError::Invalid(format!("{} is malformed", c.header)));
        };
        if matched {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let c = &self.config;
        let ts = input.now.to_string();
        let content = self.content(&input.body, &ts, input.id);
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let sig = format!("{}{}", c.prefix, c.encoding.encode(&hmac(c.algorithm, key, &content)));
        let mut headers = vec![(c.header.clone(), sig)];
        if let Some(h) = &c.timestamp_header {
            headers.push((h.clone(), ts));
        }
        if let Some(h) = &c.id_header {
            headers.push((h.clone(), input.id.to_string()));
        }
        Signed { headers, query: vec![] }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{posted_at, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    fn gigstack(secrets: &[&str]) -> HmacVerifier {
        let config = HmacConfig {
            header: "X-Gigstack-Signature".into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: String::new(),
            separator: None,
            secrets: vec![],
            timestamp_header: None,
            id_header: None,
            signed_content: None,
            tolerance_secs: 300,
        };
        HmacVerifier::new(
            config,
            secrets.iter().map(|s| Secret::new(s.as_bytes().to_vec())).collect(),
        )
    }

    #[test]
    fn signatures_decode_on_the_stack_up_to_sha512() {
        let mut buf = [0u8; MAX_MAC_BYTES];
        let mac = [0xabu8; 64];
        let b64 = Encoding::Base64.encode(&mac);
        assert_eq!(Encoding::Base64.decode_into(&b64, &mut buf), Some(&mac[..]));
        let upper = Encoding::Hex.encode(&mac).to_uppercase();
        assert_eq!(Encoding::Hex.decode_into(&upper, &mut buf), Some(&mac[..]));
        assert_eq!(Encoding::Hex.decode_into("abc", &mut buf), None, "odd length");
        assert_eq!(
            Encoding::Hex.decode_into(&"ab".repeat(65), &mut buf),
            None,
            "longer than any MAC"
        );
        assert_eq!(Encoding::Base64.decode_into("not base64!", &mut buf), None);
    }

    #[test]
    fn github_documented_vector_as_generic_hmac() {
        // GitHub's documented example, configured as a generic HMAC.
        let mut v = gigstack(&["It's a Secret to Everybody"]);
        v.config.header = "X-Hub-Signature-256".into();
        v.config.prefix = "sha256=".into();
        let r = Owned::post(b"Hello, World!", 0).header(
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        );
        assert_eq!(v.verify(&r.req()), Ok(()));
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let v = gigstack(&["s3cret"]);
        let body = br#"{"id":"evt_1","type":"invoice.created"}"#;
        let signed = v.sign(&SignInput {
            body,
            now: 0,
            id: "",
            url: "",
        });
        let ok = Owned::post(body, 0).with_signed(&signed);
        assert_eq!(v.verify(&ok.req()), Ok(()));
        let mut tampered = Owned::post(body, 0).with_signed(&signed);
        tampered.body[5] ^= 1;
        assert_eq!(
            v.verify(&tampered.req()).expect_err("rejected").reason(),
            "invalid_signature"
        );
    }

    #[test]
    fn missing_is_told_apart_from_wrong_and_malformed() {
        let v = gigstack(&["s3cret"]);
        assert_eq!(
            v.verify(&Owned::post(b"{}", 0).req()).expect_err("rejected").reason(),
            "missing_signature"
        );
        let wrong = Owned::post(b"{}", 0).header("X-Gigstack-Signature", &"0".repeat(64));
        assert_eq!(
            v.verify(&wrong.req()).expect_err("rejected").reason(),
            "invalid_signature"
        );
        let malformed = Owned::post(b"{}", 0).header("X-Gigstack-Signature", "zz");
        assert_eq!(
            v.verify(&malformed.req()).expect_err("rejected").reason(),
            "invalid_signature"
        );
    }

    #[test]
    fn unreadable_headers_are_invalid_and_absent_ones_missing() {
        let mut v = gigstack(&["s3cret"]);
        v.config.timestamp_header = Some("X-Ts".into());
        v.config.id_header = Some("X-Id".into());
        v.config.signed_content = Some("{id}.{timestamp}.{body}".into());
        let signed = v.sign(&SignInput {
            body: b"{}",
            now: 1000,
            id: "msg_1",
            url: "",
        });
        assert_eq!(v.verify(&Owned::post(b"{}", 1000).with_signed(&signed).req()), Ok(()));
        let value = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .expect("signed header")
        };
        let names = ["X-Gigstack-Signature", "X-Ts", "X-Id"];
        for garbled in names {
            // Present but not visible ASCII (here not even UTF-8): invalid.
            let mut r = Owned::post(b"{}", 1000).header_bytes(garbled, b"\xff\xfe sig \x80");
            for other in names.iter().filter(|n| **n != garbled) {
                r = r.header(other, &value(other));
            }
            let err = v.verify(&r.req()).expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{garbled}: {err}");
            assert_eq!(err, VerifyError::Invalid(format!("{garbled} is not visible ASCII")));
            // Absent: missing, naming the header.
            let mut r = Owned::post(b"{}", 1000);
            for other in names.iter().filter(|n| **n != garbled) {
                r = r.header(other, &value(other));
            }
            assert_eq!(v.verify(&r.req()), Err(VerifyError::Missing(garbled.to_string())));
        }
        // Readable UTF-8 that is not ASCII is not a signature either.
        let r = Owned::post(b"{}", 1000)
            .header_bytes("X-Gigstack-Signature", "é".as_bytes())
            .header("X-Ts", &value("X-Ts"))
            .header("X-Id", &value("X-Id"));
        assert_eq!(v.verify(&r.req()).expect_err("rejected").reason(), "invalid_signature");
    }

    #[test]
    fn rotated_secrets_and_several_signatures() {
        let old = gigstack(&["old"]);
        let both = {
            let mut v = gigstack(&["new", "old"]);
            v.config.separator = Some(",".into());
            v
        };
        let body = b"{}";
        let old_sig = old.sign(&SignInput {
            body,
            now: 0,
            id: "",
            url: "",
        });
        assert_eq!(both.verify(&Owned::post(body, 0).with_signed(&old_sig).req()), Ok(()));
        let two = format!("{},{}", "ab".repeat(32), old_sig.headers[0].1);
        assert_eq!(
            both.verify(&Owned::post(body, 0).header("X-Gigstack-Signature", &two).req()),
            Ok(())
        );
    }

    #[test]
    fn timestamped_template_checks_tolerance() {
        let mut v = gigstack(&["k"]);
        v.config.timestamp_header = Some("X-Ts".into());
        v.config.signed_content = Some("v0:{timestamp}:{body}".into());
        v.config.algorithm = Algorithm::Sha512;
        v.config.encoding = Encoding::Base64;
        let signed = v.sign(&SignInput {
            body: b"hi",
            now: 1000,
            id: "",
            url: "",
        });
        assert_eq!(v.verify(&Owned::post(b"hi", 1100).with_signed(&signed).req()), Ok(()));
        let late = Owned::post(b"hi", 1400).with_signed(&signed);
        assert_eq!(
            v.verify(&late.req()).expect_err("rejected").reason(),
            "timestamp_out_of_tolerance"
        );
        assert_eq!(v.content(&&b"B"[..], "T", "I").concat(), b"v0:T:B".to_vec());
    }

    /// Every shape of generic HMAC: algorithm, encoding, prefix, separator,
    /// and what is signed (the body; timestamp and body; id, timestamp and body).
    fn any_config() -> impl Strategy<Value = HmacConfig> {
        let algorithm = prop_oneof![Just(Algorithm::Sha1), Just(Algorithm::Sha256), Just(Algorithm::Sha512)];
        let encoding = prop_oneof![Just(Encoding::Hex), Just(Encoding::Base64)];
        let prefix = prop_oneof![Just(""), Just("sha256="), Just("v1=")];
        let separator = prop_oneof![Just(None), Just(Some(",")), Just(Some(" "))];
        let template = prop_oneof![
            Just(None),
            Just(Some("{timestamp}.{body}")),
            Just(Some("{id}.{timestamp}.{body}"))
        ];
        (algorithm, encoding, prefix, separator, template).prop_map(|(algorithm, encoding, prefix, sep, template)| {
            HmacConfig {
                header: "X-Signature".into(),
                algorithm,
                encoding,
                prefix: prefix.into(),
                separator: sep.map(str::to_string),
                secrets: vec![],
                timestamp_header: template.map(|_| "X-Timestamp".to_string()),
                id_header: template.filter(|t| t.contains("{id}")).map(|_| "X-Id".to_string()),
                signed_content: template.map(str::to_string),
                tolerance_secs: 300,
            }
        })
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            config in any_config(),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = HmacVerifier::new(config, vec![Secret::new(b"s3cret".to_vec())]);
            let input = SignInput { body: &body, now: 1_700_000_000, id: "msg_1", url: "" };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, posted_at(1_700_000_000 + 60))?;
            let signed = v.sign(&input);
            let delivered = || Owned::post(&body, 1_700_000_000 + 60).with_signed(&signed);
            if let Some(sep) = &v.config.separator {
                // Several signatures in one header: one that matches is enough.
                let decoy = format!("{}{}", v.config.prefix, v.config.encoding.encode(&[7u8; 32]));
                let mut several = delivered();
                let sig = signed.headers[0].1.clone();
                several.headers.insert("x-signature", format!("{decoy}{sep}{sig}").parse().expect("value"));
                prop_assert_eq!(v.verify(&several.req()), Ok(()));
            }
        }
    }
}
