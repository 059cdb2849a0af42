//! A checksum carried inside the JSON body over a list of the body's own
//! properties (Wompi's events):
//!
//! ```json
//! {"event": "transaction.updated",
//!  "data": {"transaction": {"id": "1234-...", "status": "APPROVED", "amount_in_cents": 5000}},
//!  "timestamp": 1530291411,
//!  "signature": {"properties": ["transaction.id", "transaction.status", "transaction.amount_in_cents"],
//!                "checksum": "8fb1e2fa..."}}
//! ```
//!
//! `checksum` = hex SHA-256 (plain, not HMAC) of the concatenation, with no
//! separator, of each listed property's value (in list order; a dotted path
//! resolved under `/data`), then `/timestamp`, then the secret as text. This
//! is what Wompi's own WooCommerce plugin (vlipco/woocommerce-wompi-plugin,
//! `is_valid_checksum`) computes; its test fixture is this module's vector.
//!
//! Unlike every other scheme, the proof is inside the body, so this verifier
//! must parse the body before it is authentic. It reads only the envelope
//! (`data`, `timestamp`, `signature`) and the listed values, as raw JSON
//! slices, so a number is hashed as the text the sender wrote (`5000`, as
//! PHP's string conversion gives for integers). Only the listed properties
//! and the timestamp are authenticated: `event`, `sent_at` and any unlisted
//! field could be changed in a captured delivery without breaking the
//! checksum; handlers should trust only the listed ones.
//!
//! The values are joined with no separator and the list comes from the body
//! itself, so a captured delivery could be re-split: digits moved from the
//! last value into the timestamp, or a shorter list whose one value holds
//! what the others held. Two settings close that, and the `wompi` preset
//! sets both: `tolerance_secs`, a window on `/timestamp` (a moved digit
//! puts it years away; the preset's 48 hours keep Wompi's retries, the last
//! 24 hours after the first), and `required_properties`, the properties that
//! must be listed whenever the list names their object (the first segment:
//! `transaction.id` for any `transaction.*`). Without them (the scheme's
//! defaults) it checks what Wompi's plugin checks, no more.

use super::{Request, SignInput, Signed, Verifier, VerifyError};
use crate::secret::Secret;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

pub const CHECKSUM: &str = "/signature/checksum";
pub const PROPERTIES: &str = "/signature/properties";
pub const TIMESTAMP: &str = "/timestamp";

/// `scheme = "property_checksum"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PropertyChecksumConfig {
    /// References to the events secret(s) (Wompi: `prod_events_...` or
    /// `test_events_...`), used as text; the first is current.
    pub secrets: Vec<String>,
    /// How far `/timestamp` may be from now, both ways; none when absent.
    #[serde(default)]
    pub tolerance_secs: Option<i64>,
    /// Properties that must be listed whenever the list names their object.
    #[serde(default)]
    pub required_properties: Vec<String>,
}

/// The top of the body: only what the checksum needs, kept as raw JSON.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    signature: Option<SignatureField<'a>>,
}

#[derive(Deserialize)]
struct SignatureField<'a> {
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
    #[serde(borrow, default)]
    checksum: Option<&'a RawValue>,
}

/// What a body claims: the text that was hashed, before the secret, and the
/// checksum it carries.
#[derive(Debug, PartialEq, Eq)]
pub struct Claim {
    pub signed: String,
    pub checksum: [u8; 32],
    /// The properties listed, in order.
    pub properties: Vec<String>,
    /// `/timestamp`, when it fits an i64.
    pub timestamp: Option<i64>,
}

/// Reads one member of a JSON object, as raw JSON, without building the
/// object: `None` when absent; an error when `raw` is not an object or the
/// member repeats (parsers disagree on which copy wins, so the value signed
/// and the value a handler reads could differ).
struct Member<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for Member<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Member<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 {
                if found.replace(map.next_value::<&'de RawValue>()?).is_some() {
                    return Err(de::Error::custom("repeated member"));
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The text of one listed property (`transaction.id`) under `data`:
/// strings unescaped, numbers as written; anything else (absent, an object,
/// a list, `true`, `null`) is [`VerifyError::Invalid`], since the sender's
/// text for it is not defined.
fn property_text(data: Option<&RawValue>, path: &str) -> Result<String, VerifyError> {
    let not_found = || VerifyError::Invalid(format!("property {path} is not in /data"));
    let mut at = data.ok_or_else(not_found)?;
    for key in path.split('.') {
        let mut object = serde_json::Deserializer::from_str(at.get());
        at = Member(key)
            .deserialize(&mut object)
            .map_err(|e| VerifyError::Invalid(format!("property {path}: {e}")))?
            .ok_or_else(not_found)?;
    }
    let raw = at.get();
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(raw).map_err(|_| not_found()),
        Some(b'-' | b'0'..=b'9') => Ok(raw.to_string()),
        _ => Err(VerifyError::Invalid(format!(
            "property {path} is not a string or a number"
        ))),
    }
}

/// Reads the claim of a body: [`VerifyError::Missing`] when the checksum,
/// the property list or the timestamp is absent, [`VerifyError::Invalid`]
/// when the body or any of them is malformed.
pub fn claim(body: &[u8]) -> Result<Claim, VerifyError> {
    let invalid = |what: &str| VerifyError::Invalid(what.to_string());
    let text = std::str::from_utf8(body).map_err(|_| invalid("body is not UTF-8"))?;
    // serde would also read a struct from a JSON array.
    if !text.trim_start().starts_with('{') {
        return Err(invalid("body is not a JSON object"));
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|_| invalid("body is not a JSON object"))?;
    let signature = envelope
        .signature
        .ok_or_else(|| VerifyError::Missing(CHECKSUM.into()))?;
    let checksum = signature
        .checksum
        .ok_or_else(|| VerifyError::Missing(CHECKSUM.into()))?;
    let checksum: String =
        serde_json::from_str(checksum.get()).map_err(|_| invalid("/signature/checksum is not text"))?;
    let mut digest = [0u8; 32];
    hex::decode_to_slice(checksum.trim(), &mut digest)
        .map_err(|_| invalid("/signature/checksum is not a hex SHA-256"))?;
    let properties = signature
        .properties
        .ok_or_else(|| VerifyError::Missing(PROPERTIES.into()))?;
    let properties: Vec<String> =
        serde_json::from_str(properties.get()).map_err(|_| invalid("/signature/properties is not a list of names"))?;
    if properties.is_empty() {
        // A checksum over the timestamp alone would vouch for no data.
        return Err(invalid("/signature/properties is empty"));
    }
    let timestamp = envelope
        .timestamp
        .ok_or_else(|| VerifyError::Missing(TIMESTAMP.into()))?
        .get();
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("/timestamp is not an integer"));
    }
    let mut signed = String::new();
    for path in &properties {
        signed.push_str(&property_text(envelope.data, path)?);
    }
    signed.push_str(timestamp);
    Ok(Claim {
        signed,
        checksum: digest,
        timestamp: timestamp.parse().ok(),
        properties,
    })
}

/// SHA-256 of the signed text followed by the secret.
pub fn checksum(signed: &str, secret: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(signed.as_bytes())
        .chain_update(secret)
        .finalize()
        .into()
}

/// Verifies a checksum carried in the body.
#[derive(Debug)]
pub struct PropertyChecksumVerifier {
    secrets: Vec<Secret>,
    tolerance_secs: Option<i64>,
    required_properties: Vec<String>,
}

impl PropertyChecksumVerifier {
    /// `secrets`: the config's references, resolved.
    pub fn new(config: PropertyChecksumConfig, secrets: Vec<Secret>) -> Self {
        Self {
            secrets,
            tolerance_secs: config.tolerance_secs,
            required_properties: config.required_properties,
        }
    }

    /// A required property left out of a list that names its object.
    fn missing_required<'r>(&'r self, listed: &[String]) -> Option<&'r str> {
        let object = |path: &str| path.split('.').next().map(str::to_string);
        self.required_properties
            .iter()
            .filter(|required| listed.iter().any(|p| object(p) == object(required)))
            .find(|required| !listed.contains(required))
            .map(String::as_str)
    }
}

impl Verifier for PropertyChecksumVerifier {
    fn verify(&self, req: &Request<'_>) -> Result<(), VerifyError> {
        let claim = claim(req.body)?;
        if let Some(required) = self.missing_required(&claim.properties) {
            return Err(VerifyError::Invalid(format!(
                "/signature/properties leaves out {required}"
            )));
        }
        if let Some(tolerance) = self.tolerance_secs {
            let ts = claim
                .timestamp
                .ok_or_else(|| VerifyError::Invalid("/timestamp is out of range".into()))?;
            super::check_timestamp(ts, req.now, tolerance)?;
        }
        let mut ok = subtle::Choice::from(0);
        // Every secret is tried, so the time does not reveal which matched.
        for secret in &self.secrets {
            ok |= checksum(&claim.signed, secret.expose()).ct_eq(&claim.checksum);
        }
        if bool::from(ok) {
            Ok(())
        } else {
            Err(VerifyError::Invalid("no secret matches the checksum".into()))
        }
    }

    /// Nothing goes in headers or the query: the proof is in the body (see
    /// [`Verifier::sign_body`]).
    fn sign(&self, _input: &SignInput<'_>) -> Signed {
        Signed::default()
    }

    /// The body with `/signature/checksum` computed with the first secret
    /// over the properties it lists; `/timestamp` is set to `now` when
    /// absent. The body is re-serialized (its values are kept, not its
    /// spacing or key order). A body that is not a JSON object, or lists no
    /// properties, cannot be signed.
    fn sign_body(&self, input: &SignInput<'_>) -> Option<Result<Vec<u8>, String>> {
        Some(self.fill_checksum(input))
    }
}

impl PropertyChecksumVerifier {
    fn fill_checksum(&self, input: &SignInput<'_>) -> Result<Vec<u8>, String> {
        let mut body: serde_json::Value =
            serde_json::from_slice(input.body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let object = body.as_object_mut().ok_or("the body is not a JSON object")?;
        object.entry("timestamp").or_insert(input.now.into());
        let signature = object
            .get_mut("signature")
            .and_then(serde_json::Value::as_object_mut)
            .filter(|s| s.contains_key("properties"))
            .ok_or("the body has no /signature/properties: list the /data properties the checksum covers")?;
        // A placeholder of the final form, so that claim() reads the body
        // exactly as it will be sent.
        signature.insert("checksum".into(), hex::encode([0u8; 32]).into());
        let placeholder = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let claim = claim(&placeholder).map_err(|e| e.to_string())?;
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        body["signature"]["checksum"] = hex::encode(checksum(&claim.signed, key)).into();
        serde_json::to_vec(&body).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{secrets, Owned};
    use super::*;
    use proptest::prelude::*;

    /// Wompi's WooCommerce plugin's fixture (`tests/unit-tests/responses/
    /// response.txt`, fields the checksum does not cover trimmed) and the
    /// events secret its test bootstrap configures.
    const VECTOR: &str = r#"{"event":"transaction.updated","data":{"transaction":{"id":"11128-1578502783-84081","created_at":"2020-01-08T16:59:43.138Z","amount_in_cents":5000,"reference":"12345","customer_email":"admin@example.org","currency":"COP","payment_method_type":"CARD","status":"APPROVED","status_message":null}},"timestamp":1530291411,"signature":{"properties":["transaction.id","transaction.status","transaction.amount_in_cents"],"checksum":"8fb1e2fa0c36f9bbe1088a4b28fb19dfc04ccdb7b8ced48438ac2bee39e503f6"},"sent_at":"2020-01-08T16:59:43Z"}"#;
    const SECRET: &str = "test_events_XXXXXXXXXXXX";

    fn verifier(keys: &[&str]) -> PropertyChecksumVerifier {
        PropertyChecksumVerifier::new(
            PropertyChecksumConfig {
                secrets: vec![],
                tolerance_secs: None,
                required_properties: vec![],
            },
            secrets(keys),
        )
    }

    fn reason(v: &PropertyChecksumVerifier, body: &str) -> Result<(), &'static str> {
        v.verify(&Owned::post(body.as_bytes(), 0).req()).map_err(|e| e.reason())
    }

    /// The two forgeries a captured delivery allows without them: digits
    /// moved from the last value into the timestamp, and a shorter list
    /// whose one value holds what the others held. Both keep the checksum.
    #[test]
    fn the_window_and_the_required_list_refuse_a_resplit_delivery() {
        let guarded = PropertyChecksumVerifier::new(
            PropertyChecksumConfig {
                secrets: vec![],
                tolerance_secs: Some(172_800),
                required_properties: vec![
                    "transaction.id".into(),
                    "transaction.status".into(),
                    "transaction.amount_in_cents".into(),
                ],
            },
            secrets(&[SECRET]),
        );
        let at = |body: &str, now: i64| {
            guarded
                .verify(&Owned::post(body.as_bytes(), now).req())
                .map_err(|e| e.reason())
        };
        let now = 1_530_291_411 + 3_600;
        assert_eq!(at(VECTOR, now), Ok(()), "the genuine delivery, an hour later");
        assert_eq!(
            at(VECTOR, now + 172_800),
            Err("timestamp_out_of_tolerance"),
            "three days later"
        );
        // 5000 + 1530291411 becomes 50001 + 530291411: the same text hashed.
        let moved = VECTOR
            .replace("\"amount_in_cents\":5000", "\"amount_in_cents\":50001")
            .replace("\"timestamp\":1530291411", "\"timestamp\":530291411");
        assert_eq!(
            reason(&verifier(&[SECRET]), &moved),
            Ok(()),
            "without a window it verifies"
        );
        assert_eq!(at(&moved, now), Err("timestamp_out_of_tolerance"));
        // One property holding all three values: the same text hashed.
        let shortened = VECTOR
            .replace(
                "[\"transaction.id\",\"transaction.status\",\"transaction.amount_in_cents\"]",
                "[\"transaction.id\"]",
            )
            .replace("\"11128-1578502783-84081\"", "\"11128-1578502783-84081APPROVED5000\"");
        assert_eq!(
            reason(&verifier(&[SECRET]), &shortened),
            Ok(()),
            "without the list it verifies"
        );
        assert_eq!(at(&shortened, now), Err("invalid_signature"));
        // An object the required list does not name is not held to it.
        assert_eq!(guarded.missing_required(&["payout.id".into()]), None);
    }

    #[test]
    fn the_plugins_vector_verifies_with_rotation_and_either_case() {
        assert_eq!(
            claim(VECTOR.as_bytes()).expect("claim").signed,
            "11128-1578502783-84081APPROVED50001530291411"
        );
        let v = verifier(&["prod_events_new", SECRET]);
        assert_eq!(reason(&v, VECTOR), Ok(()), "the previous secret still verifies");
        let upper = VECTOR.replace(
            "8fb1e2fa0c36f9bbe1088a4b28fb19dfc04ccdb7b8ced48438ac2bee39e503f6",
            "8FB1E2FA0C36F9BBE1088A4B28FB19DFC04CCDB7B8CED48438AC2BEE39E503F6",
        );
        assert_eq!(reason(&v, &upper), Ok(()), "Wompi's docs write it in capitals");
        assert_eq!(reason(&verifier(&["other"]), VECTOR), Err("invalid_signature"));
    }

    #[test]
    fn each_signed_value_and_the_timestamp_are_covered_but_other_fields_are_not() {
        let v = verifier(&[SECRET]);
        for (from, to) in [
            ("84081", "84082"),
            ("APPROVED", "DECLINED"),
            (":5000", ":50000"),
            ("1530291411", "1530291412"),
            (
                r#""transaction.status","transaction.amount_in_cents""#,
                r#""transaction.amount_in_cents","transaction.status""#,
            ),
        ] {
            assert_eq!(reason(&v, &VECTOR.replace(from, to)), Err("invalid_signature"), "{to}");
        }
        assert_eq!(
            reason(&v, &VECTOR.replace("12345", "99999")),
            Ok(()),
            "the reference is not listed, so not covered"
        );
        let spaced = VECTOR.replace(",\"", ", \"").replace(":{", ": {");
        assert_eq!(reason(&v, &spaced), Ok(()), "values, not bytes, are signed");
    }

    #[test]
    fn missing_and_malformed_parts_have_their_reasons() {
        let v = verifier(&[SECRET]);
        let missing = [
            VECTOR.replace(r#""checksum":"#, r#""sum":"#),
            VECTOR.replace(r#""signature":"#, r#""sig":"#),
            VECTOR.replace(r#""properties":"#, r#""props":"#),
            VECTOR.replace(r#""timestamp":"#, r#""ts":"#),
        ];
        for body in &missing {
            assert_eq!(reason(&v, body), Err("missing_signature"), "{body}");
        }
        let invalid = [
            VECTOR.replace("transaction.status\"", "transaction.state\""),
            VECTOR.replace(r#""status":"APPROVED""#, r#""status":{"code":"APPROVED"}"#),
            VECTOR.replace(r#""status":"APPROVED""#, r#""status":["APPROVED"]"#),
            VECTOR.replace(r#""status":"APPROVED""#, r#""status":true"#),
            VECTOR.replace(r#""status":"APPROVED""#, r#""status":null"#),
            VECTOR.replace("\"transaction.id\",", "\"transaction.id.x\","),
            VECTOR.replace(r#""data":{"#, r#""datum":{"#),
            VECTOR.replace(r#""status":"APPROVED""#, r#""status":"DECLINED","status":"APPROVED""#),
            VECTOR.replace(r#""transaction":{"#, r#""transaction":{},"transaction":{"#),
            VECTOR
                .replace(r#"{"transaction":{"#, r#"["transaction",{"#)
                .replace(r#"null}},"#, r#"null}],"#),
            VECTOR.replace("8fb1e2fa0c", "8fb1e2fa0z"),
            VECTOR.replace("8fb1e2fa0c", "8fb1e2fa"),
            VECTOR.replace(r#""checksum":"8"#, r#""checksum":8"#),
            VECTOR.replace("1530291411", "\"1530291411\""),
            VECTOR.replace("1530291411", "-1530291411"),
            VECTOR.replace("1530291411", "1530291411.5"),
            VECTOR.replace(
                r#"["transaction.id","transaction.status","transaction.amount_in_cents"]"#,
                "[]",
            ),
            VECTOR.replace(r#""transaction.id","#, "1,"),
            format!("[{VECTOR}]"),
            "not json".into(),
            VECTOR[..100].to_string(),
        ];
        for body in &invalid {
            assert_eq!(reason(&v, body), Err("invalid_signature"), "{body}");
        }
        assert_eq!(
            v.verify(&Owned::post(b"\xff{", 0).req()).map_err(|e| e.reason()),
            Err("invalid_signature")
        );
    }

    #[test]
    fn signing_fills_the_checksum_and_refuses_a_body_without_properties() {
        let v = verifier(&[SECRET, "old"]);
        let stale = VECTOR.replace("8fb1e2fa0c", "0000000000");
        fn input(body: &[u8]) -> SignInput<'_> {
            SignInput {
                body,
                now: 1_700_000_000,
                id: "",
                url: "",
            }
        }
        let signed = v
            .sign_body(&input(stale.as_bytes()))
            .expect("signs in the body")
            .expect("ok");
        let value: serde_json::Value = serde_json::from_slice(&signed).expect("json");
        assert_eq!(
            value["signature"]["checksum"], "8fb1e2fa0c36f9bbe1088a4b28fb19dfc04ccdb7b8ced48438ac2bee39e503f6",
            "the plugin's checksum, with the first secret"
        );
        assert_eq!(v.sign(&input(stale.as_bytes())), Signed::default());

        let no_ts = br#"{"event":"payout.updated","data":{"payout":{"id":"p1","status":"PAID"}},"signature":{"properties":["payout.id","payout.status"]}}"#;
        let signed = v.sign_body(&input(no_ts)).expect("some").expect("ok");
        let value: serde_json::Value = serde_json::from_slice(&signed).expect("json");
        assert_eq!(value["timestamp"], 1_700_000_000);
        assert_eq!(reason(&v, std::str::from_utf8(&signed).expect("utf-8")), Ok(()));

        for (body, needle) in [
            (&br#"{"data":{"a":1}}"#[..], "/signature/properties"),
            (&b"[1]"[..], "not a JSON object"),
            (&b"{"[..], "not JSON"),
            (&br#"{"data":{},"signature":{"properties":["a"]}}"#[..], "property a"),
        ] {
            let err = v.sign_body(&input(body)).expect("some").expect_err("refused");
            assert!(err.contains(needle), "{err}");
        }
    }

    proptest! {
        /// Whatever the listed values (text or integers), what `sign_body`
        /// makes verifies, and changing one listed value is refused.
        #[test]
        fn signed_bodies_verify_and_a_changed_value_fails(
            values in proptest::collection::vec(prop_oneof![
                any::<String>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
            ], 1..5),
            ts in 0i64..=i64::MAX,
            which in any::<prop::sample::Index>(),
        ) {
            let v = verifier(&["k"]);
            let names: Vec<String> = (0..values.len()).map(|i| format!("o.p{i}")).collect();
            let inner: serde_json::Map<String, serde_json::Value> =
                names.iter().map(|n| n[2..].to_string()).zip(values.iter().cloned()).collect();
            let body = serde_json::json!({"data": {"o": inner}, "timestamp": ts, "signature": {"properties": names}});
            let raw = serde_json::to_vec(&body).expect("json");
            let input = SignInput { body: &raw, now: 0, id: "", url: "" };
            let signed = v.sign_body(&input).expect("some").expect("signs");
            prop_assert_eq!(v.verify(&Owned::post(&signed, 0).req()), Ok(()));
            let mut changed: serde_json::Value = serde_json::from_slice(&signed).expect("json");
            let i = which.index(values.len());
            let field = &mut changed["data"]["o"][format!("p{i}")];
            *field = match field.take() {
                serde_json::Value::String(s) => format!("{s}x").into(),
                other => (other.as_i64().unwrap_or(0).wrapping_add(1)).into(),
            };
            let changed = serde_json::to_vec(&changed).expect("json");
            prop_assert_eq!(
                v.verify(&Owned::post(&changed, 0).req()).map_err(|e| e.reason()),
                Err("invalid_signature")
            );
        }
    }
}
