//! HubSpot, signature v3: `X-HubSpot-Signature-v3` = base64(HMAC-SHA256(app
//! client secret, method + URI + body + timestamp)), no separators, where
//! the timestamp is `X-HubSpot-Request-Timestamp` in **milliseconds** and
//! the URI is the full public URL (scheme, host, path, query) with the
//! percent-encodings of HubSpot's table decoded (`%3A` to `:`, `%2F` to
//! `/`, ...). HubSpot's docs say to reject a timestamp older than five
//! minutes; here it is five minutes both ways, as for every timestamped
//! scheme.
//!
//! HubSpot's Node SDK signs the URL as given, without that decoding; the
//! two only differ when the URL carries one of those encodings, and then
//! both forms are tried (each is the URL of this very request).
//!
//! The URL is [`Request::url`] (the provider's `public_url`, or rebuilt from
//! forwarded headers), as for Twilio and Square. The legacy v1/v2
//! signatures (plain SHA-256, no timestamp) are not accepted.

use super::hmac_scheme::{hmac, verify_any};
use super::{
    check_timestamp, default_tolerance, parse_timestamp, Algorithm, Request, SignInput, Signed, Verifier, VerifyError,
};
use crate::secret::Secret;
use base64::Engine;
use serde::Deserialize;

pub const SIGNATURE_HEADER: &str = "X-HubSpot-Signature-v3";
pub const TIMESTAMP_HEADER: &str = "X-HubSpot-Request-Timestamp";

/// The encodings HubSpot's request-validation docs say to decode, and only
/// those (written in upper case there).
const DECODED: [(&str, &str); 12] = [
    ("%3A", ":"),
    ("%2F", "/"),
    ("%3F", "?"),
    ("%40", "@"),
    ("%21", "!"),
    ("%24", "$"),
    ("%27", "'"),
    ("%28", "("),
    ("%29", ")"),
    ("%2A", "*"),
    ("%2C", ","),
    ("%3B", ";"),
];

/// `scheme = "hubspot"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    /// References to the app's client secret(s), used as text; the first
    /// is current.
    pub secrets: Vec<String>,
    /// Seconds the timestamp may be off, both ways (HubSpot says five
    /// minutes).
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

/// The URI as HubSpot signs it: the table's encodings decoded, in one pass
/// (a decoded `%` never starts another encoding).
pub fn decode_uri(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut rest = url;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        match DECODED
            .iter()
            .find(|(enc, _)| after.get(..3).is_some_and(|p| p == *enc))
        {
            Some((_, dec)) => {
                out.push_str(dec);
                rest = &after[3..];
            }
            None => {
                out.push('%');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses the base64 signature into its 32 bytes.
pub fn parse_signature(value: &str) -> Result<Vec<u8>, VerifyError> {
    match base64::engine::general_purpose::STANDARD.decode(value.trim()) {
        Ok(sig) if sig.len() == 32 => Ok(sig),
        _ => Err(VerifyError::Invalid(format!(
            "{SIGNATURE_HEADER} is not a base64 SHA-256 HMAC"
        ))),
    }
}

/// Verifies HubSpot v3 requests.
#[derive(Debug)]
pub struct HubspotVerifier {
    config: HubspotConfig,
    secrets: Vec<Secret>,
}

impl HubspotVerifier {
    pub fn new(config: HubspotConfig, secrets: Vec<Secret>) -> Self {
        Self { config, secrets }
    }
}

impl Verifier for HubspotVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let candidates = req.parse_each(SIGNATURE_HEADER, parse_signature)?;
        let timestamp = req.require_header(TIMESTAMP_HEADER)?;
        let tolerance_ms = self.config.tolerance_secs.saturating_mul(1000);
        check_timestamp(parse_timestamp(timestamp)?, req.now.saturating_mul(1000), tolerance_ms)
            .map_err(|_| VerifyError::TimestampOutOfTolerance(format!("{TIMESTAMP_HEADER} is too far from now")))?;
        let decoded = decode_uri(req.url);
        let mut uris = vec![decoded.as_str()];
        if decoded != req.url {
            uris.push(req.url);
        }
        let mut ok = false;
        for uri in uris {
            let parts: [&[u8]; 4] = [
                req.method.as_str().as_bytes(),
                uri.as_bytes(),
                req.body,
                timestamp.trim().as_bytes(),
            ];
            ok |= verify_any(Algorithm::Sha256, &self.secrets, &parts, &candidates);
        }
        if ok {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no signature matches".into()))
        }
    }

    /// Only for URL-signing schemes does ingest rebuild the URL.
    fn signs_url(&self) -> bool {
        true
    }

    /// Signs a POST to `input.url`, at `input.now` in milliseconds.
    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let ts = input.now.saturating_mul(1000).to_string();
        let uri = decode_uri(input.url);
        let mac = hmac(
            Algorithm::Sha256,
            key,
            &[b"POST", uri.as_bytes(), input.body, ts.as_bytes()],
        );
        Signed {
            headers: vec![
                (
                    SIGNATURE_HEADER.into(),
                    base64::engine::general_purpose::STANDARD.encode(mac),
                ),
                (TIMESTAMP_HEADER.into(), ts),
            ],
            query: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{secrets, signed_passes_and_a_changed_byte_fails, Owned};
    use super::*;
    use proptest::prelude::*;

    // HubSpot's documented v1 example body and client secret; the v3
    // signature over them (no published v3 vector) computed independently
    // with Python's hmac, as in docs/research/presets-global-b.md.
    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const URL: &str = "https://www.example.com/webhook_uri";
    const BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
    const TS: &str = "1700000000000";
    const SIG: &str = "/pXDSgWeGksQpwCsgqd43P0eY6gBIse9UX0tfkudUrE=";

    fn verifier(keys: &[&str]) -> HubspotVerifier {
        HubspotVerifier::new(
            HubspotConfig {
                secrets: vec![],
                tolerance_secs: 300,
            },
            secrets(keys),
        )
    }

    fn delivery(body: &str, url: &str, now: i64) -> Owned {
        Owned::post(body.as_bytes(), now)
            .url(url)
            .header(SIGNATURE_HEADER, SIG)
            .header(TIMESTAMP_HEADER, TS)
    }

    #[test]
    fn the_vector_verifies_within_five_minutes_of_its_millisecond_timestamp() {
        let v = verifier(&[SECRET]);
        assert_eq!(v.verify(&delivery(BODY, URL, 1_700_000_300).req()), Ok(()));
        assert_eq!(v.verify(&delivery(BODY, URL, 1_699_999_700).req()), Ok(()));
        for now in [1_700_000_301, 1_699_999_699] {
            assert_eq!(
                v.verify(&delivery(BODY, URL, now).req()).map_err(|e| e.reason()),
                Err("timestamp_out_of_tolerance"),
                "{now}"
            );
        }
        let tampered = BODY.replace("\"eventId\":1", "\"eventId\":2");
        for (body, url) in [(tampered.as_str(), URL), (BODY, "https://www.example.com/webhook_url")] {
            assert_eq!(
                v.verify(&delivery(body, url, 1_700_000_000).req())
                    .map_err(|e| e.reason()),
                Err("invalid_signature")
            );
        }
        let mut get = delivery(BODY, URL, 1_700_000_000);
        get.method = http::Method::PUT;
        assert_eq!(
            v.verify(&get.req()).map_err(|e| e.reason()),
            Err("invalid_signature"),
            "method signed"
        );
        let signed = v.sign(&SignInput {
            body: BODY.as_bytes(),
            now: 1_700_000_000,
            id: "",
            url: URL,
        });
        assert_eq!(
            signed.headers,
            vec![
                (SIGNATURE_HEADER.to_string(), SIG.to_string()),
                (TIMESTAMP_HEADER.to_string(), TS.to_string())
            ]
        );
    }

    #[test]
    fn only_the_documented_encodings_are_decoded() {
        assert_eq!(
            decode_uri("https://h.test/a%3Ab%2Fc?x=%40%21%24%27%28%29%2A%2C%3B%3F"),
            "https://h.test/a:b/c?x=@!$'()*,;?"
        );
        assert_eq!(
            decode_uri("/p?q=%20%3a%253A%"),
            "/p?q=%20%3a%253A%",
            "others stay, in one pass"
        );
        // A delivery to a URL with an encoded ':' verifies whether it was
        // signed over the decoded URI (the docs) or the raw one (Node SDK).
        let v = verifier(&[SECRET]);
        let raw = "https://h.test/hook?at=10%3A30";
        for signed_uri in [raw.to_string(), decode_uri(raw)] {
            let mac = hmac(
                Algorithm::Sha256,
                SECRET.as_bytes(),
                &[b"POST", signed_uri.as_bytes(), b"[]", TS.as_bytes()],
            );
            let o = Owned::post(b"[]", 1_700_000_000)
                .url(raw)
                .header(SIGNATURE_HEADER, &base64::engine::general_purpose::STANDARD.encode(mac))
                .header(TIMESTAMP_HEADER, TS);
            assert_eq!(v.verify(&o.req()), Ok(()), "{signed_uri}");
        }
    }

    proptest! {
        #[test]
        fn sign_then_verify_and_any_byte_change_fails(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let v = verifier(&["k"]);
            let input = SignInput { body: &body, now: 1_700_000_000, id: "", url: URL };
            signed_passes_and_a_changed_byte_fails(&v, &input, at, flip, |body, signed| {
                Owned::post(body, 1_700_000_060).url(URL).with_signed(signed)
            })?;
        }
    }
}
