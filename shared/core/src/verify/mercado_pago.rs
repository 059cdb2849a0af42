//! Mercado Pago: `x-signature: ts=<ts>,v1=<hex>` and `x-request-id`. `v1`
//! is hex(HMAC-SHA256(the application's webhook secret, manifest)) where the
//! manifest is `id:{data.id};request-id:{x-request-id};ts:{ts};` with
//! `data.id` taken from the notification URL's QUERY string (`?data.id=...`,
//! Mercado Pago's `data.id_url`), lowercased when alphanumeric, as their
//! docs say; a part whose value is absent is left out of the manifest.
//!
//! The body is not covered by the signature: Mercado Pago's scheme signs
//! only the resource id, the request id and the time, and a receiver is
//! expected to fetch the resource from the API. A body whose `data.id` is
//! not the signed one is refused (see [`check_body_data_id`]). Mercado Pago documents no
//! timestamp tolerance; ours is configurable (300 s by default), and `ts` in
//! milliseconds (as some notifications send it) is understood.

use super::hmac_scheme::{decode_hex, hmac, verify_any};
use super::{check_timestamp, default_tolerance, Algorithm, Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use rand::Rng;
use serde::Deserialize;
use std::borrow::Cow;

pub const SIGNATURE_HEADER: &str = "x-signature";
pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const DATA_ID_PARAM: &str = "data.id";

/// `scheme = "mercado_pago"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MercadoPagoConfig {
    /// References to the webhook secret(s) of the application; the first is current.
    pub secrets: Vec<String>,
    /// Seconds `ts` may be off, both ways.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
}

/// A parsed `x-signature` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MercadoPagoSignature<'a> {
    /// `ts` exactly as sent (it is signed as text).
    pub ts: &'a str,
    /// Decoded `v1` signatures (entries that are not hex are left out).
    pub v1: Vec<Vec<u8>>,
}

impl MercadoPagoSignature<'_> {
    /// `ts` in Unix seconds; values too large for seconds are milliseconds.
    pub fn unix_seconds(&self) -> Result<i64, VerifyError> {
        let n: i64 = self
            .ts
            .parse()
            .map_err(|_| VerifyError::Invalid(format!("{SIGNATURE_HEADER} ts is not a number")))?;
        Ok(if n >= 100_000_000_000 { n / 1000 } else { n })
    }
}

/// Parses `ts=...,v1=...` (items split by `,`, keys and values trimmed,
/// unknown keys ignored). No `ts`, a repeated or non-numeric `ts`, or no
/// usable `v1` is [`VerifyError::Invalid`].
pub fn parse_header(value: &str) -> Result<MercadoPagoSignature<'_>, VerifyError> {
    let mut ts = None;
    let mut v1 = Vec::new();
    for item in value.split(',') {
        let Some((key, val)) = item.split_once('=') else {
            continue;
        };
        match key.trim() {
            "ts" => {
                let t = val.trim();
                if ts.is_some() || t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} ts is malformed")));
                }
                ts = Some(t);
            }
            "v1" => {
                if let Some(sig) = decode_hex(val.trim()) {
                    v1.push(sig);
                }
            }
            _ => {}
        }
    }
    let ts = ts.ok_or_else(|| VerifyError::Invalid(format!("{SIGNATURE_HEADER} has no ts")))?;
    if v1.is_empty() {
        return Err(VerifyError::Invalid(format!("{SIGNATURE_HEADER} has no v1 signature")));
    }
    Ok(MercadoPagoSignature { ts, v1 })
}

/// `data.id` as signed: lowercased when it is alphanumeric.
pub fn normalize_data_id(id: &str) -> Cow<'_, str> {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) && id.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(id.to_ascii_lowercase())
    } else {
        Cow::Borrowed(id)
    }
}

/// The signed manifest; absent (or empty) parts are left out.
pub fn manifest(data_id: Option<&str>, request_id: Option<&str>, ts: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(id) = data_id.filter(|s| !s.is_empty()) {
        out.push_str(&format!("id:{};", normalize_data_id(id)));
    }
    if let Some(r) = request_id.filter(|s| !s.is_empty()) {
        out.push_str(&format!("request-id:{r};"));
    }
    if let Some(t) = ts.filter(|s| !s.is_empty()) {
        out.push_str(&format!("ts:{t};"));
    }
    out
}

/// The body's `data.id`, when the body is a JSON object that has one (a
/// string or a number, as text).
fn body_data_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        data: Option<Data>,
    }
    #[derive(Deserialize)]
    struct Data {
        id: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Body>(body).ok()?.data?.id? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Mercado Pago signs the query's `data.id`, not the body: a body naming
/// another resource than the signed id is refused, so a captured signature
/// cannot carry another body within the time window. What stays unsigned is
/// the rest of the body (the handler fetches the resource by its id).
fn check_body_data_id(body: &[u8], signed_id: Option<&str>) -> Result<(), VerifyError> {
    let Some(in_body) = body_data_id(body) else {
        return Ok(());
    };
    match signed_id {
        Some(signed) if normalize_data_id(signed) == normalize_data_id(&in_body) => Ok(()),
        Some(_) => Err(VerifyError::Invalid(
            "the body's data.id is not the signed data.id".into(),
        )),
        None => Err(VerifyError::Invalid(format!(
            "the body's data.id is not signed (no {DATA_ID_PARAM} in the query)"
        ))),
    }
}

/// A random request id in the UUID v4 layout Mercado Pago uses.
fn random_request_id() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Verifies Mercado Pago notifications.
#[derive(Debug)]
pub struct MercadoPagoVerifier {
    config: MercadoPagoConfig,
    secrets: Vec<Secret>,
}

impl MercadoPagoVerifier {
    pub fn new(config: MercadoPagoConfig, secrets: Vec<Secret>) -> Self {
        Self { config, secrets }
    }
}

impl Verifier for MercadoPagoVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let parsed = parse_header(req.require_header(SIGNATURE_HEADER)?)?;
        check_timestamp(parsed.unix_seconds()?, req.now, self.config.tolerance_secs)?;
        let request_id = match req.require_header(REQUEST_ID_HEADER) {
            Ok(r) => Some(r),
            Err(VerifyError::Missing(_)) => None,
            Err(e) => return Err(e),
        };
        let signed_id = req.query_param(DATA_ID_PARAM).filter(|s| !s.is_empty());
        let m = manifest(signed_id, request_id, Some(parsed.ts));
        if !verify_any(Algorithm::Sha256, &self.secrets, &[m.as_bytes()], &parsed.v1) {
            return Err(VerifyError::Invalid("no signature matches".into()));
        }
        check_body_data_id(req.body, signed_id)
    }

    /// `input.id` becomes the `data.id` query parameter; the request id is random.
    fn sign(&self, input: &SignInput<'_>) -> Signed {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        let ts = input.now.to_string();
        let request_id = random_request_id();
        let data_id = Some(input.id).filter(|s| !s.is_empty());
        let m = manifest(data_id, Some(&request_id), Some(&ts));
        let mac = hmac(Algorithm::Sha256, key, &[m.as_bytes()]);
        Signed {
            headers: vec![
                (SIGNATURE_HEADER.into(), format!("ts={ts},v1={}", hex::encode(mac))),
                (REQUEST_ID_HEADER.into(), request_id),
            ],
            query: data_id
                .map(|id| vec![(DATA_ID_PARAM.to_string(), id.to_string())])
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{secrets, Owned};
    use super::*;
    use proptest::prelude::*;

    /// A captured signature (over data.id 123456) carrying a body about
    /// another resource is refused; the matching body, a numeric id and a
    /// body without data.id pass.
    #[test]
    fn the_body_must_name_the_signed_data_id() {
        let v = verifier(&[SECRET]);
        let signed = v.sign(&SignInput {
            body: b"",
            now: TS,
            id: "123456",
            url: "",
        });
        let with_body = |body: &[u8]| Owned::post(body, TS).with_signed(&signed);
        assert_eq!(v.verify(&with_body(br#"{"data":{"id":"123456"}}"#).req()), Ok(()));
        assert_eq!(v.verify(&with_body(br#"{"data":{"id":123456}}"#).req()), Ok(()));
        assert_eq!(v.verify(&with_body(br#"{"action":"x"}"#).req()), Ok(()));
        let forged = v.verify(&with_body(br#"{"action":"payment.updated","data":{"id":"999999"}}"#).req());
        assert_eq!(forged.map_err(|e| e.reason()), Err("invalid_signature"));
        let unsigned = v.sign(&SignInput {
            body: b"",
            now: TS,
            id: "",
            url: "",
        });
        let carried = Owned::post(br#"{"data":{"id":"123456"}}"#, TS).with_signed(&unsigned);
        assert_eq!(
            v.verify(&carried.req()).map_err(|e| e.reason()),
            Err("invalid_signature")
        );
    }

    const SECRET: &str = "mp-webhook-secret";
    const TS: i64 = 1704908010;
    const REQUEST_ID: &str = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e";
    // hex(HMAC-SHA256(SECRET, "id:123456;request-id:<REQUEST_ID>;ts:1704908010;")),
    // computed independently with `openssl dgst -sha256 -hmac`.
    const SIG: &str = "82b907dfa85f7f1f8e561068fa2dc1667b3eea1c02313b91ca86bf6f19946e5a";
    // The same for data.id "ORD01JQ4S4KY8HWQ6NA5PXB65B3D3" signed lowercased.
    const SIG_ALNUM: &str = "9380c5648acfac08443fc1622cadd6b4d859dd7990413c8bbff595c5a67a247c";

    fn verifier(keys: &[&str]) -> MercadoPagoVerifier {
        MercadoPagoVerifier::new(
            MercadoPagoConfig {
                secrets: vec![],
                tolerance_secs: 300,
            },
            secrets(keys),
        )
    }

    /// A notification about `data_id` (query and body agree), or one with
    /// neither when it is `None`.
    fn delivery(now: i64, data_id: Option<&str>, request_id: Option<&str>, sig: &str) -> Owned {
        let body = match data_id {
            Some(id) => format!(r#"{{"action":"payment.updated","data":{{"id":"{id}"}}}}"#),
            None => r#"{"action":"payment.updated"}"#.to_string(),
        };
        let mut o = Owned::post(body.as_bytes(), now).header("x-signature", sig);
        if let Some(r) = request_id {
            o = o.header("x-request-id", r);
        }
        if let Some(id) = data_id {
            o.query = vec![("type".into(), "payment".into()), ("data.id".into(), id.into())];
        }
        o
    }

    #[test]
    fn manifest_layout_and_lowercasing() {
        assert_eq!(
            manifest(Some("123456"), Some(REQUEST_ID), Some("1704908010")),
            format!("id:123456;request-id:{REQUEST_ID};ts:1704908010;")
        );
        assert_eq!(manifest(None, Some("r"), Some("1")), "request-id:r;ts:1;");
        assert_eq!(manifest(Some("A1"), None, Some("1")), "id:a1;ts:1;");
        assert_eq!(manifest(Some(""), Some(""), Some("1")), "ts:1;");
        assert_eq!(normalize_data_id("ORD01ABC"), "ord01abc");
        // Not alphanumeric: signed as sent.
        assert_eq!(normalize_data_id("A-1"), "A-1");
    }

    #[test]
    fn independently_computed_vectors() {
        let v = verifier(&[SECRET]);
        let header = format!("ts={TS},v1={SIG}");
        assert_eq!(
            v.verify(&delivery(TS, Some("123456"), Some(REQUEST_ID), &header).req()),
            Ok(())
        );
        let header = format!("ts={TS},v1={SIG_ALNUM}");
        let alnum = delivery(TS, Some("ORD01JQ4S4KY8HWQ6NA5PXB65B3D3"), Some(REQUEST_ID), &header);
        assert_eq!(v.verify(&alnum.req()), Ok(()));
        // Milliseconds are understood.
        let ms = format!("ts={}", TS * 1000);
        let signed = manifest(Some("1"), Some(REQUEST_ID), Some(&(TS * 1000).to_string()));
        let sig = hex::encode(hmac(Algorithm::Sha256, SECRET.as_bytes(), &[signed.as_bytes()]));
        let r = delivery(TS + 10, Some("1"), Some(REQUEST_ID), &format!("{ms},v1={sig}"));
        assert_eq!(v.verify(&r.req()), Ok(()));
    }

    #[test]
    fn missing_parts_are_left_out() {
        let v = verifier(&[SECRET]);
        let m = manifest(None, None, Some(&TS.to_string()));
        let sig = hex::encode(hmac(Algorithm::Sha256, SECRET.as_bytes(), &[m.as_bytes()]));
        let bare = delivery(TS, None, None, &format!("ts={TS},v1={sig}"));
        assert_eq!(v.verify(&bare.req()), Ok(()));
        // Adding a part the signer did not sign breaks it.
        let with_id = delivery(TS, Some("123456"), None, &format!("ts={TS},v1={sig}"));
        assert!(matches!(v.verify(&with_id.req()), Err(VerifyError::Invalid(_))));
    }

    #[test]
    fn tampering_wrong_and_rotated_secrets() {
        let v = verifier(&[SECRET]);
        let header = format!("ts={TS},v1={SIG}");
        for r in [
            delivery(TS, Some("123457"), Some(REQUEST_ID), &header),
            delivery(TS, Some("123456"), Some("bb56a2f1"), &header),
            delivery(TS, Some("123456"), None, &header),
            delivery(TS, None, Some(REQUEST_ID), &header),
            delivery(TS, Some("123456"), Some(REQUEST_ID), &format!("ts={},v1={SIG}", TS + 1)),
        ] {
            assert!(matches!(v.verify(&r.req()), Err(VerifyError::Invalid(_))));
        }
        let ok = delivery(TS, Some("123456"), Some(REQUEST_ID), &header);
        assert!(matches!(
            verifier(&["other"]).verify(&ok.req()),
            Err(VerifyError::Invalid(_))
        ));
        assert_eq!(verifier(&["new", SECRET]).verify(&ok.req()), Ok(()));
        // Several v1 entries: any may match.
        let two = format!("ts={TS},v1={},v1={SIG}", "ab".repeat(32));
        assert_eq!(
            v.verify(&delivery(TS, Some("123456"), Some(REQUEST_ID), &two).req()),
            Ok(())
        );
    }

    #[test]
    fn tolerance_both_ways() {
        let v = verifier(&[SECRET]);
        let header = format!("ts={TS},v1={SIG}");
        for now in [TS - 301, TS + 301] {
            let err = v
                .verify(&delivery(now, Some("123456"), Some(REQUEST_ID), &header).req())
                .expect_err("rejected");
            assert_eq!(err.reason(), "timestamp_out_of_tolerance");
        }
    }

    #[test]
    fn missing_truncated_and_malformed() {
        let v = verifier(&[SECRET]);
        let mut none = delivery(TS, Some("123456"), Some(REQUEST_ID), "x");
        none.headers.remove("x-signature");
        assert_eq!(v.verify(&none.req()), Err(VerifyError::Missing("x-signature".into())));
        let full = format!("ts={TS},v1={SIG}");
        for bad in [
            &full[..full.len() - 1],
            &full[..14],
            "",
            &format!("v1={SIG}"),
            &format!("ts=,v1={SIG}"),
            &format!("ts=1x,v1={SIG}"),
            &format!("ts={TS},ts={TS},v1={SIG}"),
            &format!("ts={TS},v1=zz"),
            &format!("ts={TS}"),
        ] {
            let err = v
                .verify(&delivery(TS, Some("123456"), Some(REQUEST_ID), bad).req())
                .expect_err("rejected");
            assert_eq!(err.reason(), "invalid_signature", "{bad:?}");
        }
        // Spaces around items, as some senders write them.
        let spaced = format!("ts={TS}, v1={SIG}");
        assert_eq!(
            v.verify(&delivery(TS, Some("123456"), Some(REQUEST_ID), &spaced).req()),
            Ok(())
        );
    }

    #[test]
    fn sign_puts_data_id_in_the_query() {
        let v = verifier(&[SECRET]);
        let signed = v.sign(&SignInput {
            body: b"{}",
            now: TS,
            id: "PAY123",
            url: "",
        });
        assert_eq!(signed.query, vec![("data.id".to_string(), "PAY123".to_string())]);
        let r = Owned::post(b"{}", TS).with_signed(&signed);
        assert_eq!(v.verify(&r.req()), Ok(()));
        let rid = &signed.headers[1].1;
        assert_eq!((rid.len(), rid.matches('-').count()), (36, 4));
    }

    proptest! {
        // The body is not signed by this scheme; what is signed (data.id,
        // request id, ts) must not change by one byte.
        #[test]
        fn sign_then_verify_and_any_signed_byte_change_fails(
            id in "[A-Za-z0-9_-]{1,24}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=127,
        ) {
            let v = verifier(&[SECRET]);
            let signed = v.sign(&SignInput { body: &body, now: TS, id: &id, url: "" });
            // A change the scheme rightly reads as the same id (its case is
            // normalized) is no change.
            if let Some(changed) = webhooks_testkit::verifier::changed_byte(id.as_bytes(), at, flip) {
                let changed = String::from_utf8(changed).expect("ascii");
                prop_assume!(normalize_data_id(&changed) != normalize_data_id(&id));
            }
            webhooks_testkit::verifier::signed_passes_and_a_changed_byte_fails(id.as_bytes(), at, flip, |signed_id| {
                let mut delivery = Owned::post(&body, TS).with_signed(&signed);
                delivery.query = vec![("data.id".into(), String::from_utf8_lossy(signed_id).into_owned())];
                v.verify(&delivery.req()).map_err(|e| e.reason())
            })?;
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            if let Ok(p) = parse_header(&s) {
                let _ = p.unix_seconds();
            }
        }
    }
}
