//! Twilio: `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, content)).
//!
//! - Form posts (`application/x-www-form-urlencoded`): content is the full
//!   public URL (scheme, host, path, query) followed by every POST parameter,
//!   sorted by name (byte order; equal names by value), each written as
//!   name + value with no separators.
//! - JSON bodies: the URL carries `bodySHA256=<hex SHA-256 of the body>`,
//!   which must match the body; the content is the URL alone.
//!
//! The URL is [`Request::url`], the one the sender called (from the
//! provider's `public_url` or forwarded headers). As Twilio's own libraries
//! do, the URL is also tried without its port and with the scheme's default
//! port, since proxies add or drop `:443`.

use super::hmac_scheme::{decode_hex, hmac, verify_any};
use super::{Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
pub const BODY_HASH_PARAM: &str = "bodySHA256";

/// `scheme = "twilio"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// References to the account's auth token(s) (primary first, then the
    /// secondary during a rotation).
    pub secrets: Vec<String>,
}

/// Parses the base64 signature into its 20 bytes.
pub fn parse_signature(value: &str) -> Result<Vec<u8>, VerifyError> {
    match base64::engine::general_purpose::STANDARD.decode(value.trim()) {
        Ok(sig) if sig.len() == 20 => Ok(sig),
        _ => Err(VerifyError::Invalid(format!(
            "{SIGNATURE_HEADER} is not a base64 SHA-1 HMAC"
        ))),
    }
}

/// Decodes a form body into its parameters, sorted as Twilio signs them.
pub fn sorted_form_params(body: &[u8]) -> Result<Vec<(String, String)>, VerifyError> {
    let mut params: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| VerifyError::Invalid("body is not form data".into()))?;
    params.sort();
    Ok(params)
}

/// What is signed: the URL, then each parameter's name and value.
pub fn signed_content(url: &str, sorted_params: &[(String, String)]) -> Vec<u8> {
    let mut out = url.as_bytes().to_vec();
    for (k, v) in sorted_params {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// The URL as given, without its port, and with the scheme's default port
/// (when it had none), without duplicates.
pub fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some(scheme_end) = url.find("://") else {
        return out;
    };
    let scheme = &url[..scheme_end];
    let auth_start = scheme_end + 3;
    let auth_end = url[auth_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| auth_start + i);
    let authority = &url[auth_start..auth_end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    // A port is the digits after the last ':' that follows any IPv6 `]`.
    let port_colon = host_port
        .rfind(':')
        .filter(|&i| !host_port[i..].contains(']') && host_port[i + 1..].bytes().all(|b| b.is_ascii_digit()));
    let (before, after) = (&url[..auth_start + host_start], &url[auth_end..]);
    match port_colon {
        Some(i) => out.push(format!("{before}{}{after}", &host_port[..i])),
        None => {
            let default = match scheme.to_ascii_lowercase().as_str() {
                "https" => Some(443),
                "http" => Some(80),
                _ => None,
            };
            if let Some(port) = default {
                out.push(format!("{before}{host_port}:{port}{after}"));
            }
        }
    }
    out.dedup();
    out
}

/// Verifies Twilio requests.
#[derive(Debug)]
pub struct TwilioVerifier {
    secrets: Vec<Secret>,
}

impl TwilioVerifier {
    /// The config holds only the token references, resolved into `secrets`.
    pub fn new(_config: TwilioConfig, secrets: Vec<Secret>) -> Self {
        Self { secrets }
    }
}

impl Verifier for TwilioVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        // One signature per header; a repeated header matches on any value.
        let candidates = req.parse_each(SIGNATURE_HEADER, parse_signature)?;
        let params = match req.query_param(BODY_HASH_PARAM) {
            Some(claimed) => {
                let actual = Sha256::digest(req.body);
                let claimed = decode_hex(claimed.trim()).unwrap_or_default();
                if !bool::from(claimed.as_slice().ct_eq(actual.as_slice())) {
                    return Err(VerifyError::Invalid(format!(
                        "{BODY_HASH_PARAM} does not match the body"
                    )));
                }
                vec![]
            }
            None => sorted_form_params(req.body)?,
        };
        let mut ok = false;
        for url in url_variants(req.url) {
            ok |= verify_any(
                Algorithm::Sha1,
                &self.secrets,
                &[&signed_content(&url, &params)],
                &candidates,
            );
        }
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    fn signs_url(&self) -> bool {
        true
    }

    /// Signs as Twilio does for JSON bodies: `bodySHA256` is added to
    /// `input.url`'s query (returned in `query`, to be appended with `&` or
    /// `?`) and the signature covers that URL.
    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let hash = hex::encode(Sha256::digest(input.body));
        let sep = if input.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}{BODY_HASH_PARAM}={hash}", input.url);
        let mac = hmac(Algorithm::Sha1, key, &[url.as_bytes()]);
        Signed {
            headers: vec![(
                SIGNATURE_HEADER.into(),
                base64::engine::general_purpose::STANDARD.encode(mac),
            )],
            query: vec![(BODY_HASH_PARAM.into(), hash)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    // twilio-python tests/unit/test_request_validator.py (the helper
    // library's fixture for the example on Twilio's security page).
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const FORM: &str =
        "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
    const FORM_SIG: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    const JSON: &str = r#"{"property": "value", "boolean": true}"#;
    const JSON_HASH: &str = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    const JSON_SIG: &str = "a9nBmqA0ju/hNViExpshrM61xv4=";

    fn verifier(keys: &[&str]) -> TwilioVerifier {
        TwilioVerifier::new(TwilioConfig { secrets: vec![] }, secrets(keys))
    }

    fn form(body: &str, url: &str, sig: &str) -> Owned {
        Owned::post(body.as_bytes(), 0)
            .url(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", sig)
    }

    fn json(body: &str, url: &str, sig: &str) -> Owned {
        let mut o = Owned::post(body.as_bytes(), 0)
            .url(url)
            .header("Content-Type", "application/json")
            .header("X-Twilio-Signature", sig);
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        o.query = serde_urlencoded::from_str(query).expect("query");
        o
    }

    #[test]
    fn library_vector_form_post() {
        let v = verifier(&[TOKEN]);
        assert_eq!(v.verify(&form(FORM, URL, FORM_SIG).req()), Ok(()));
        // Parameter order in the body does not matter.
        let shuffled =
            "To=%2B18005551212&Digits=1234&CallSid=CA1234567890ABCDE&From=%2B14158675309&Caller=%2B14158675309";
        assert_eq!(v.verify(&form(shuffled, URL, FORM_SIG).req()), Ok(()));
    }

    #[test]
    fn library_vector_json_body() {
        assert_eq!(hex::encode(Sha256::digest(JSON.as_bytes())), JSON_HASH);
        let v = verifier(&[TOKEN]);
        let url = format!("{URL}&bodySHA256={JSON_HASH}");
        assert_eq!(v.verify(&json(JSON, &url, JSON_SIG).req()), Ok(()));
        let other = r#"{"property": "value", "boolean": false}"#;
        let err = v.verify(&json(other, &url, JSON_SIG).req()).expect_err("rejected");
        assert!(err.to_string().contains("bodySHA256"), "{err}");
    }

    #[test]
    fn library_vectors_with_ports() {
        let v = verifier(&[TOKEN]);
        // Signed without a port, received with one (and the reverse).
        let with_port = URL.replace(".com", ".com:1234");
        assert_eq!(v.verify(&form(FORM, &with_port, FORM_SIG).req()), Ok(()));
        // "hash of uri with port 443", received without it.
        assert_eq!(v.verify(&form(FORM, URL, "kvajT1Ptam85bY51eRf/AJRuM3w=").req()), Ok(()));
        // "hash of uri with port 80", over http.
        let http = URL.replace("https", "http");
        assert_eq!(
            v.verify(&form(FORM, &http, "0ZXoZLH/DfblKGATFgpif+LLRf4=").req()),
            Ok(())
        );
        assert_eq!(
            url_variants("https://h.test/p?q=1"),
            vec!["https://h.test/p?q=1".to_string(), "https://h.test:443/p?q=1".into()]
        );
        assert_eq!(
            url_variants("http://u:p@[::1]:8080"),
            vec!["http://u:p@[::1]:8080".to_string(), "http://u:p@[::1]".into()]
        );
        assert_eq!(url_variants("not a url"), vec!["not a url".to_string()]);
    }

    #[test]
    fn duplicate_names_sort_by_value() {
        // twilio-python test_compute_signature_duplicate_multi_dict.
        let v = verifier(&[TOKEN]);
        let body = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234";
        assert_eq!(v.verify(&form(body, URL, "IK+Dwps556ElfBT0I3Rgjkr1wJU=").req()), Ok(()));
    }

    #[test]
    fn tampering_wrong_and_rotated_tokens() {
        let v = verifier(&[TOKEN]);
        let changed = FORM.replace("Digits=1234", "Digits=1235");
        assert!(matches!(
            v.verify(&form(&changed, URL, FORM_SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        let other_url = URL.replace("foo=1", "foo=2");
        assert!(matches!(
            v.verify(&form(FORM, &other_url, FORM_SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert!(matches!(
            verifier(&["54321"]).verify(&form(FORM, URL, FORM_SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        assert_eq!(
            verifier(&["secondary", TOKEN]).verify(&form(FORM, URL, FORM_SIG).req()),
            Ok(())
        );
    }

    #[test]
    fn missing_truncated_and_malformed() {
        let v = verifier(&[TOKEN]);
        let mut none = form(FORM, URL, FORM_SIG);
        none.headers.remove("X-Twilio-Signature");
        assert_eq!(
            v.verify(&none.req()),
            Err(VerifyError::Missing("X-Twilio-Signature".into()))
        );
        for bad in [
            &FORM_SIG[..FORM_SIG.len() - 1],
            &FORM_SIG[..8],
            "",
            "***",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=AA==",
        ] {
            let err = v.verify(&form(FORM, URL, bad).req()).expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{bad:?}");
        }
        let url = format!("{URL}&bodySHA256=zz");
        assert!(matches!(
            v.verify(&json(JSON, &url, JSON_SIG).req()),
            Err(VerifyError::Invalid(_))
        ));
        let body = [0xffu8, 0xfe];
        let not_form = Owned::post(&body, 0).url(URL).header("X-Twilio-Signature", FORM_SIG);
        assert!(matches!(v.verify(&not_form.req()), Err(VerifyError::Invalid(_))));
    }

    #[test]
    fn repeated_header_matches_on_any_value() {
        let v = verifier(&[TOKEN]);
        let wrong = base64::engine::general_purpose::STANDARD.encode([0u8; 20]);
        for [a, b] in [
            [FORM_SIG, wrong.as_str()],
            [wrong.as_str(), FORM_SIG],
            ["***", FORM_SIG],
            [FORM_SIG, ""],
        ] {
            let r = form(FORM, URL, a).header("X-Twilio-Signature", b);
            assert_eq!(v.verify(&r.req()), Ok(()), "{a:?}, {b:?}");
        }
        let mut unreadable_then_right = form(FORM, URL, FORM_SIG);
        unreadable_then_right.headers.remove("X-Twilio-Signature");
        let unreadable_then_right = unreadable_then_right
            .header_bytes("X-Twilio-Signature", b"\xff")
            .header("X-Twilio-Signature", FORM_SIG);
        assert_eq!(v.verify(&unreadable_then_right.req()), Ok(()));
        let url = format!("{URL}&bodySHA256={JSON_HASH}");
        assert_eq!(
            v.verify(&json(JSON, &url, &wrong).header("X-Twilio-Signature", JSON_SIG).req()),
            Ok(())
        );
        let none = form(FORM, URL, &wrong).header("X-Twilio-Signature", &wrong);
        assert_eq!(
            v.verify(&none.req()),
            Err(VerifyError::Invalid("no signature matches".into()))
        );
        let malformed = form(FORM, URL, "***").header("X-Twilio-Signature", "AAAA");
        assert_eq!(v.verify(&malformed.req()), Err(parse_signature("***").unwrap_err()));
        let mut unreadable = form(FORM, URL, FORM_SIG);
        unreadable.headers.remove("X-Twilio-Signature");
        let unreadable = unreadable.header_bytes("X-Twilio-Signature", b"\xff");
        assert_eq!(
            v.verify(&unreadable.req()),
            Err(VerifyError::Invalid("X-Twilio-Signature is not visible ASCII".into()))
        );
    }

    fn delivered(body: &[u8], signed: &Signed, url: &str) -> Owned {
        let query = serde_urlencoded::to_string(&signed.query).expect("query");
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut o = Owned::post(body, 0)
            .url(&format!("{url}{sep}{query}"))
            .with_signed(signed);
        let all = o.url.split_once('?').map(|(_, q)| q.to_string()).unwrap_or_default();
        o.query = serde_urlencoded::from_str(&all).expect("query");
        o
    }

    #[test]
    fn sign_matches_the_library_vector() {
        let v = verifier(&[TOKEN]);
        let signed = v.sign(&SignInput {
            body: JSON.as_bytes(),
            now: 0,
            id: "",
            url: URL,
        });
        assert_eq!(signed.headers[0].1, JSON_SIG);
        assert_eq!(signed.query, vec![("bodySHA256".to_string(), JSON_HASH.to_string())]);
        assert_eq!(v.verify(&delivered(JSON.as_bytes(), &signed, URL).req()), Ok(()));
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&[TOKEN]);
            let url = "https://hooks.example.test/webhooks/twilio";
            let input = SignInput { body: &body, now: 0, id: "", url };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, |body, signed| delivered(body, signed, url))?;
        }

        #[test]
        fn parsers_never_panic(s in ".*", b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_signature(&s);
            let _ = url_variants(&s);
            if let Ok(p) = sorted_form_params(&b) {
                let _ = signed_content(&s, &p);
            }
        }
    }
}
