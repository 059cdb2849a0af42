//! An event's payload: the body the sender signed, kept as the bytes that
//! arrived (UTF-8 checked, never re-encoded), shared without copying from
//! the HTTP request to the store and the queue.
//!
//! Ingest reads only the fields it needs (id and type) and does not parse
//! the rest: a receiver has milliseconds to answer, and the signature has
//! already proved the body is the sender's. The full document is parsed
//! where it is used: [`Payload::json`] for handlers, and the queue envelope
//! embeds it as JSON when it is JSON. A signed body that is not JSON past
//! the fields ingest read is carried as text and fails its handlers
//! permanently, with the parse error as the reason.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use bytestring::ByteString;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use std::fmt;

/// A payload: UTF-8 text, usually a JSON document.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(ByteString);

/// Why bytes cannot be a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body is not UTF-8 text")]
pub struct NotUtf8;

impl Payload {
    /// The received bytes, without copying; they must be UTF-8.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, NotUtf8> {
        ByteString::try_from(bytes).map(Self).map_err(|_| NotUtf8)
    }

    /// Text built at ingest (a form body rendered as JSON) or read back from a store.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self(ByteString::from(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bytes, shared with the payload (no copy): what a forward sends.
    pub fn to_bytes(&self) -> Bytes {
        self.0.as_bytes().clone()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The whole document parsed, for handlers.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }

    /// The payload as a borrowed raw JSON value (validated, not copied),
    /// or `None` when it is not a JSON document.
    pub fn as_raw_json(&self) -> Option<&RawValue> {
        serde_json::from_str::<&RawValue>(self.as_str()).ok()
    }

    /// Checks that the whole payload is one JSON document, without building
    /// it; the error says where it stops being JSON.
    pub fn check_json(&self) -> Result<(), serde_json::Error> {
        serde_json::from_str::<IgnoredAny>(self.as_str()).map(|_| ())
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads can be large and personal: debug output shows the size only.
        write!(f, "Payload({} bytes)", self.len())
    }
}

impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from_text)
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Self::from_text(s)
    }
}

/// The body a delivery arrived with, kept beside an event whose payload is
/// not that body: a form body, which handlers see as a JSON object of
/// strings. A `forward:` handler sends it instead of the payload, so the
/// destination receives what the sender signed, with its content type.
///
/// A single JSON event needs none (its payload is the body, byte for byte),
/// and neither does an element of a JSON batch (its own bytes are the only
/// honest body it has); events carry `None` then, keeping the queue message
/// and the record small.
///
/// Serialized as `{"content_type", "body"}`, or `"body_base64"` instead of
/// `"body"` when the bytes are not UTF-8 (ingest parses form bodies leniently,
/// so they may not be).
#[derive(Clone, PartialEq, Eq)]
pub struct OriginalBody {
    /// The `content-type` the delivery carried, as it arrived.
    pub content_type: String,
    pub body: Bytes,
}

impl fmt::Debug for OriginalBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies can be personal: the size only, like a payload's.
        write!(f, "OriginalBody({}, {} bytes)", self.content_type, self.body.len())
    }
}

#[derive(serde::Serialize)]
struct OriginalOut<'a> {
    content_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

#[derive(serde::Deserialize)]
struct OriginalIn {
    content_type: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_base64: Option<String>,
}

impl serde::Serialize for OriginalBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = std::str::from_utf8(&self.body).ok();
        OriginalOut {
            content_type: &self.content_type,
            body: text,
            body_base64: text.is_none().then(|| BASE64.encode(&self.body)),
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for OriginalBody {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let o = OriginalIn::deserialize(deserializer)?;
        let body = match (o.body, o.body_base64) {
            (Some(text), _) => Bytes::from(text),
            (None, Some(b64)) => Bytes::from(BASE64.decode(b64).map_err(serde::de::Error::custom)?),
            (None, None) => return Err(serde::de::Error::missing_field("body")),
        };
        Ok(Self {
            content_type: o.content_type,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_bytes_without_copying_and_rejects_non_utf8() {
        let body = Bytes::from_static(br#"{"id":"e1"}"#);
        let p = Payload::from_bytes(body.clone()).expect("utf-8");
        assert_eq!(p.as_str().as_ptr(), body.as_ptr(), "no copy");
        assert_eq!(Payload::from_bytes(Bytes::from_static(&[0xff, 0xfe])), Err(NotUtf8));
    }

    #[test]
    fn json_views() {
        let p = Payload::from(r#"{"a": [1, 2]}"#);
        assert!(p.check_json().is_ok());
        assert_eq!(p.json().expect("json")["a"][1], 2);
        assert_eq!(p.as_raw_json().map(RawValue::get), Some(r#"{"a": [1, 2]}"#));
        let broken = Payload::from(r#"{"id":"e1","type":"t", "rest": [1,"#);
        assert!(broken.check_json().is_err() && broken.as_raw_json().is_none() && broken.json().is_err());
        assert_eq!(format!("{broken:?}"), "Payload(34 bytes)");
    }

    #[test]
    fn an_original_body_round_trips_as_text_or_base64() {
        let form = OriginalBody {
            content_type: "application/x-www-form-urlencoded".into(),
            body: Bytes::from_static(b"a=1&b=%20x"),
        };
        let text = serde_json::to_string(&form).unwrap();
        assert_eq!(
            text,
            r#"{"content_type":"application/x-www-form-urlencoded","body":"a=1&b=%20x"}"#
        );
        assert_eq!(serde_json::from_str::<OriginalBody>(&text).unwrap(), form);
        let binary = OriginalBody {
            content_type: "application/x-www-form-urlencoded".into(),
            body: Bytes::from_static(b"a=\xff\xfe"),
        };
        let text = serde_json::to_string(&binary).unwrap();
        assert!(text.contains(r#""body_base64":"YT3//g==""#), "{text}");
        assert_eq!(serde_json::from_str::<OriginalBody>(&text).unwrap(), binary);
        assert!(serde_json::from_str::<OriginalBody>(r#"{"content_type":"x"}"#).is_err());
        assert_eq!(
            format!("{binary:?}"),
            "OriginalBody(application/x-www-form-urlencoded, 4 bytes)"
        );
    }
}
