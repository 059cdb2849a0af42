//! The event envelope that travels from ingest to the processor, and the
//! states an event record moves through.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// One event as it travels on the queue: who sent it, its id and type, when it
/// arrived, and its payload as JSON (form bodies are turned into a JSON object
/// of strings at ingest, so handlers see one shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub provider: String,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Unix seconds.
    pub received_at: i64,
    pub payload: Box<RawValue>,
}

impl Event {
    /// The record key, `provider#event_id`, shared by every store.
    pub fn key(&self) -> EventKey {
        EventKey::new(&self.provider, &self.id)
    }

    /// The payload parsed as a JSON value, for handlers.
    pub fn payload_value(&self) -> serde_json::Value {
        serde_json::from_str(self.payload.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// `provider#event_id`: the key of an event record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventKey {
    pub provider: String,
    pub id: String,
}

impl EventKey {
    pub fn new(provider: &str, id: &str) -> Self {
        Self {
            provider: provider.to_string(),
            id: id.to_string(),
        }
    }

    /// The single-string form used as a primary key.
    pub fn as_string(&self) -> String {
        format!("{}#{}", self.provider, self.id)
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.provider, self.id)
    }
}

/// Where an event is in its life. See DESIGN.md, "The event record and its states".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventState {
    /// Claimed at ingest, not yet on the queue.
    Received,
    /// On the queue, waiting for (or between) processing attempts.
    Queued,
    /// A processor holds the lease and is running handlers.
    Processing,
    /// Every handler succeeded.
    Done,
    /// A permanent error or too many attempts: the message is in the dead-letter queue.
    Failed,
    /// No handler is registered for its type: recorded and acknowledged only.
    Ignored,
}

impl EventState {
    pub const ALL: [EventState; 6] = [
        EventState::Received,
        EventState::Queued,
        EventState::Processing,
        EventState::Done,
        EventState::Failed,
        EventState::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Received => "RECEIVED",
            EventState::Queued => "QUEUED",
            EventState::Processing => "PROCESSING",
            EventState::Done => "DONE",
            EventState::Failed => "FAILED",
            EventState::Ignored => "IGNORED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for EventState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a store knows about an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub state: EventState,
    /// Processing attempts started so far.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub received_at: i64,
    pub updated_at: i64,
    /// While RECEIVED or PROCESSING: until when the holder owns the record.
    pub lease_until: Option<i64>,
    /// TTL: the record may be deleted after this (Unix seconds).
    pub expires_at: i64,
    /// The payload, when it fitted the store's item limit.
    pub payload: Option<String>,
    /// True when the payload was too large for the store and was left out.
    pub payload_omitted: bool,
    /// Results of the handlers that succeeded, by handler name.
    pub results: serde_json::Map<String, serde_json::Value>,
}

impl EventRecord {
    pub fn key(&self) -> EventKey {
        EventKey::new(&self.provider, &self.event_id)
    }

    /// Rebuilds the queue envelope from a stored record (for replay).
    pub fn to_event(&self) -> Option<Event> {
        let payload = RawValue::from_string(self.payload.clone()?).ok()?;
        Some(Event {
            provider: self.provider.clone(),
            id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            received_at: self.received_at,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for st in EventState::ALL {
            assert_eq!(EventState::parse(st.as_str()), Some(st));
            assert_eq!(EventState::parse(&st.as_str().to_lowercase()), Some(st));
        }
        assert_eq!(EventState::parse("nope"), None);
    }

    #[test]
    fn envelope_serializes_payload_verbatim() {
        let ev = Event {
            provider: "gigstack".into(),
            id: "evt_1".into(),
            event_type: "invoice.created".into(),
            received_at: 10,
            payload: RawValue::from_string(r#"{"a": 1}"#.into()).unwrap(),
        };
        let s = serde_json::to_string(&ev).unwrap();
        assert!(s.contains(r#""payload":{"a": 1}"#), "{s}");
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back.key().as_string(), "gigstack#evt_1");
    }
}
