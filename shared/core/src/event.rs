//! The event envelope that travels from ingest to the processor, and the
//! states an event record moves through.

use crate::payload::{OriginalBody, Payload};
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// One event as it travels on the queue: who sent it, its id and type, when it
/// arrived, and its payload (form bodies are turned into a JSON object of
/// strings at ingest, so handlers see one shape).
///
/// On the wire (the queue message) it is the envelope
/// `{"provider","id","type","received_at","payload": <the JSON document>}`;
/// a payload that is not a JSON document travels as `"payload_text"` instead,
/// so the envelope is always valid JSON whatever the sender signed. An event
/// whose payload is not the body that arrived (a form body) also carries
/// that body as `"original"` (see [`OriginalBody`]); other envelopes have no
/// such field, and envelopes written before it existed read as `None`.
///
/// Its strings are reference-counted ([`ByteString`]): the copies ingest
/// makes of an event (the queue's message, the store's record, its key,
/// the ids in the answer) share them instead of allocating each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub provider: ByteString,
    pub id: ByteString,
    pub event_type: ByteString,
    /// Unix seconds.
    pub received_at: i64,
    pub payload: Payload,
    /// The id of the HTTP request that delivered it (`x-request-id`, or API
    /// Gateway's), carried on the queued message so the processor's log
    /// lines and metrics for this event can be joined with the ingest's.
    /// `None` for an event queued by a replay or by an earlier version.
    pub request_id: Option<ByteString>,
    /// The body as it arrived, when the payload is not that body (a form
    /// body turned into JSON): what a `forward:` handler sends. `None` for
    /// JSON deliveries, whose payload is the body or a batch element.
    pub original: Option<OriginalBody>,
}

impl Event {
    /// The record key, `provider#event_id`, shared by every store. Shares
    /// the event's strings: no copy.
    pub fn key(&self) -> EventKey {
        EventKey {
            provider: self.provider.clone(),
            id: self.id.clone(),
        }
    }

    /// The key as one string (`provider#event_id`), in one allocation.
    pub fn pk(&self) -> String {
        join_key(&self.provider, &self.id)
    }

    /// The payload parsed as a JSON value, for handlers (`Null` when it is
    /// not JSON; the processor fails such an event before any handler runs).
    pub fn payload_value(&self) -> serde_json::Value {
        self.payload.json().unwrap_or(serde_json::Value::Null)
    }
}

/// The envelope as written.
#[derive(Serialize)]
struct EnvelopeOut<'a> {
    provider: &'a str,
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    received_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original: Option<&'a OriginalBody>,
}

/// The envelope as read.
#[derive(Deserialize)]
struct EnvelopeIn {
    provider: ByteString,
    id: ByteString,
    #[serde(rename = "type")]
    event_type: ByteString,
    received_at: i64,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    payload_text: Option<String>,
    #[serde(default)]
    request_id: Option<ByteString>,
    #[serde(default)]
    original: Option<OriginalBody>,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = self.payload.as_raw_json();
        EnvelopeOut {
            provider: &self.provider,
            id: &self.id,
            event_type: &self.event_type,
            received_at: self.received_at,
            payload: raw,
            payload_text: raw.is_none().then(|| self.payload.as_str()),
            request_id: self.request_id.as_deref(),
            original: self.original.as_ref(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let e = EnvelopeIn::deserialize(deserializer)?;
        let payload = match (e.payload, e.payload_text) {
            (Some(raw), _) => Payload::from_text(String::from(Box::<str>::from(raw))),
            (None, Some(text)) => Payload::from_text(text),
            (None, None) => return Err(serde::de::Error::missing_field("payload")),
        };
        Ok(Event {
            provider: e.provider,
            id: e.id,
            event_type: e.event_type,
            received_at: e.received_at,
            payload,
            request_id: e.request_id,
            original: e.original,
        })
    }
}

/// `provider#event_id` in one allocation, without the formatting machinery
/// (it is built several times per event on the ingest path).
fn join_key(provider: &str, id: &str) -> String {
    let mut pk = String::with_capacity(provider.len() + 1 + id.len());
    pk.push_str(provider);
    pk.push('#');
    pk.push_str(id);
    pk
}

/// `provider#event_id`: the key of an event record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventKey {
    pub provider: ByteString,
    pub id: ByteString,
}

impl EventKey {
    pub fn new(provider: &str, id: &str) -> Self {
        Self {
            provider: provider.into(),
            id: id.into(),
        }
    }

    /// The single-string form used as a primary key.
    pub fn as_string(&self) -> String {
        join_key(&self.provider, &self.id)
    }
}

/// By provider, then id, as text.
impl Ord for EventKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&*self.provider, &*self.id).cmp(&(&*other.provider, &*other.id))
    }
}

impl PartialOrd for EventKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.provider, self.id)
    }
}

/// Where an event is in its life. See docs/design.md, "The event record and its states".
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
    /// Whether a record in this state is deleted once past its `expires_at`.
    /// Only finished records are: a dead letter (FAILED) stays until it is
    /// replayed or discarded, a queued event until it is processed.
    pub fn expires(self) -> bool {
        matches!(self, EventState::Done | EventState::Ignored)
    }

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
    pub provider: ByteString,
    pub event_id: ByteString,
    pub event_type: ByteString,
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
    pub payload: Option<Payload>,
    /// True when the payload was too large for the store and was left out.
    pub payload_omitted: bool,
    /// The body as it arrived, for an event that has one
    /// ([`Event::original`]): kept with the payload (and left out with it),
    /// so a replay forwards what the sender signed. A record written by an
    /// earlier version reads as `None`.
    #[serde(default)]
    pub original: Option<OriginalBody>,
    /// Results of the handlers that succeeded, by handler name.
    pub results: serde_json::Map<String, serde_json::Value>,
    /// The newest [`HISTORY_LIMIT`] attempt entries, oldest first: what each
    /// processing attempt did, handler by handler. Replay keeps it (it is the
    /// audit trail); a record written by an earlier version reads as empty.
    #[serde(default)]
    pub history: Vec<AttemptEntry>,
    /// While QUEUED after a retryable failure: when the retry is due (Unix
    /// seconds). Cleared when the record reaches DONE, FAILED or IGNORED.
    #[serde(default)]
    pub next_attempt_at: Option<i64>,
}

/// How many attempt entries a record keeps, the newest. 20 holds every
/// attempt of an event under the default retry settings (5 attempts) with up
/// to four handlers each, and a replay or two on top; yet 20 entries of at
/// most [`HISTORY_ERROR_CHARS`] characters of error stay near 12 KB, well
/// inside the room a DynamoDB item keeps beside its payload (its 400 KB
/// limit), so the history can never push a record over it.
pub const HISTORY_LIMIT: usize = 20;

/// The longest error text an attempt entry keeps (characters); the full
/// last error stays in `last_error`.
pub const HISTORY_ERROR_CHARS: usize = 500;

/// How one handler run (or an attempt that ran none) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    /// Failed with an error worth retrying (whether or not attempts were left).
    Retryable,
    /// Failed for good (or could not run: not registered, payload not JSON,
    /// the processor stopped on every attempt).
    Permanent,
    Panicked,
    /// No handler is configured for the event's type: nothing ran.
    Ignored,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retryable => "retryable",
            AttemptOutcome::Permanent => "permanent",
            AttemptOutcome::Panicked => "panicked",
            AttemptOutcome::Ignored => "ignored",
        }
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of an event's attempt history: a handler run, or (with no
/// `handler`) an attempt in which no handler ran and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptEntry {
    /// When the attempt started (Unix seconds).
    pub at: i64,
    /// The attempt number (the record's `attempts` when it ran).
    #[serde(default)]
    pub attempt: u32,
    /// The handler that ran; `None` when none did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    pub outcome: AttemptOutcome,
    #[serde(default)]
    pub duration_ms: u64,
    /// The error, as masked by the handler (like `last_error`), cut to
    /// [`HISTORY_ERROR_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AttemptEntry {
    /// An entry with its error text cut to [`HISTORY_ERROR_CHARS`] characters.
    pub fn new(
        at: i64,
        attempt: u32,
        handler: Option<&str>,
        outcome: AttemptOutcome,
        duration_ms: u64,
        error: Option<&str>,
    ) -> Self {
        Self {
            at,
            attempt,
            handler: handler.map(str::to_string),
            outcome,
            duration_ms,
            error: error.map(cut_error),
        }
    }
}

/// `text` cut to [`HISTORY_ERROR_CHARS`] characters, marked with an ellipsis.
fn cut_error(text: &str) -> String {
    match text.char_indices().nth(HISTORY_ERROR_CHARS) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// `history` with `entries` appended, keeping the newest [`HISTORY_LIMIT`]
/// (oldest dropped).
pub fn extend_history(
    mut history: Vec<AttemptEntry>,
    entries: impl IntoIterator<Item = AttemptEntry>,
) -> Vec<AttemptEntry> {
    history.extend(entries);
    bound_history(history)
}

/// The newest [`HISTORY_LIMIT`] of `history` (oldest first), every error cut
/// to [`HISTORY_ERROR_CHARS`]: what an adapter stores, whatever it is given.
pub fn bound_history(mut history: Vec<AttemptEntry>) -> Vec<AttemptEntry> {
    let excess = history.len().saturating_sub(HISTORY_LIMIT);
    history.drain(..excess);
    for entry in &mut history {
        if let Some(e) = &entry.error {
            if e.chars().count() > HISTORY_ERROR_CHARS + 1 {
                entry.error = Some(cut_error(e));
            }
        }
    }
    history
}

/// The history as stored in a text column or attribute (a JSON array).
pub fn history_to_json(history: &[AttemptEntry]) -> String {
    serde_json::to_string(history).unwrap_or_else(|_| "[]".to_string())
}

/// A stored history back; text that is not one reads as empty (an audit
/// trail that cannot be read must not make the record unreadable).
pub fn history_from_json(text: &str) -> Vec<AttemptEntry> {
    serde_json::from_str(text).unwrap_or_default()
}

impl EventRecord {
    pub fn key(&self) -> EventKey {
        EventKey::new(&self.provider, &self.event_id)
    }

    /// Rebuilds the queue envelope from a stored record (for replay).
    pub fn to_event(&self) -> Option<Event> {
        Some(Event {
            provider: self.provider.clone(),
            id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            received_at: self.received_at,
            payload: self.payload.clone()?,
            request_id: None,
            original: self.original.clone(),
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

    fn entry(at: i64) -> AttemptEntry {
        AttemptEntry::new(at, 1, Some("h"), AttemptOutcome::Succeeded, 3, None)
    }

    #[test]
    fn history_keeps_the_newest_entries_in_order() {
        let history = extend_history((0..15).map(entry).collect(), (15..30).map(entry));
        assert_eq!(history.len(), HISTORY_LIMIT);
        let ats: Vec<i64> = history.iter().map(|e| e.at).collect();
        assert_eq!(
            ats,
            (30 - HISTORY_LIMIT as i64..30).collect::<Vec<_>>(),
            "oldest dropped, order kept"
        );
    }

    #[test]
    fn history_errors_are_cut_on_char_boundaries() {
        let long = "é".repeat(HISTORY_ERROR_CHARS * 2);
        let e = AttemptEntry::new(1, 1, None, AttemptOutcome::Permanent, 0, Some(&long));
        let cut = e.error.as_deref().unwrap();
        assert_eq!(cut.chars().count(), HISTORY_ERROR_CHARS + 1);
        assert!(cut.ends_with('…'));
        let mut raw = entry(1);
        raw.error = Some(long);
        let bounded = bound_history(vec![raw]);
        assert_eq!(bounded[0].error.as_deref(), Some(cut));
        let back = history_from_json(&history_to_json(&bounded));
        assert_eq!(back, bounded);
        assert!(history_from_json("not json").is_empty());
    }

    #[test]
    fn a_record_without_history_still_reads() {
        let rec: EventRecord = serde_json::from_str(
            r#"{"provider":"p","event_id":"e","event_type":"t","state":"DONE","attempts":1,"last_error":null,
                "received_at":1,"updated_at":2,"lease_until":null,"expires_at":3,"payload":null,
                "payload_omitted":false,"results":{}}"#,
        )
        .unwrap();
        assert!(rec.history.is_empty());
        assert_eq!(rec.next_attempt_at, None);
        assert_eq!(rec.original, None);
    }

    #[test]
    fn envelope_serializes_payload_verbatim() {
        let ev = Event {
            provider: "gigstack".into(),
            id: "evt_1".into(),
            event_type: "invoice.created".into(),
            received_at: 10,
            payload: Payload::from(r#"{"a": 1}"#),
            request_id: Some("rq-7".into()),
            original: None,
        };
        let s = serde_json::to_string(&ev).unwrap();
        assert!(s.contains(r#""payload":{"a": 1}"#), "{s}");
        assert!(s.contains(r#""request_id":"rq-7""#), "the request id travels: {s}");
        assert!(!s.contains("original"), "a JSON event carries no second copy: {s}");
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn an_envelope_without_a_request_id_still_reads() {
        // What an earlier version queued, or a replay sends.
        let ev: Event =
            serde_json::from_str(r#"{"provider":"p","id":"e","type":"t","received_at":1,"payload":{}}"#).unwrap();
        assert_eq!(ev.request_id, None);
        assert_eq!(ev.original, None);
        assert!(!serde_json::to_string(&ev).unwrap().contains("request_id"));
    }

    #[test]
    fn a_payload_that_is_not_json_travels_as_text() {
        let ev = Event {
            provider: "p".into(),
            id: "e".into(),
            event_type: "t".into(),
            received_at: 10,
            payload: Payload::from(r#"{"id":"e","type":"t"} trailing, "provider":"x""#),
            request_id: None,
            original: None,
        };
        let s = serde_json::to_string(&ev).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s).expect("the envelope is JSON");
        assert_eq!(v["provider"], "p");
        assert!(v.get("payload").is_none());
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back, ev);
        assert!(serde_json::from_str::<Event>(r#"{"provider":"p","id":"e","type":"t","received_at":1}"#).is_err());
    }

    #[test]
    fn a_form_event_carries_its_original_body_in_the_envelope_and_the_record() {
        let original = OriginalBody {
            content_type: "application/x-www-form-urlencoded; charset=utf-8".into(),
            body: bytes::Bytes::from_static(b"MessageSid=SM1&Body=hi%21"),
        };
        let ev = Event {
            provider: "twilio".into(),
            id: "SM1".into(),
            event_type: "sms".into(),
            received_at: 10,
            payload: Payload::from(r#"{"MessageSid":"SM1","Body":"hi!"}"#),
            request_id: None,
            original: Some(original.clone()),
        };
        let s = serde_json::to_string(&ev).unwrap();
        assert!(s.contains(r#""body":"MessageSid=SM1&Body=hi%21""#), "{s}");
        let back: Event = serde_json::from_str(&s).unwrap();
        assert_eq!(back.original.as_ref(), Some(&original));
        let rec = EventRecord {
            provider: ev.provider.clone(),
            event_id: ev.id.clone(),
            event_type: ev.event_type.clone(),
            state: EventState::Failed,
            attempts: 1,
            last_error: None,
            received_at: 10,
            updated_at: 11,
            lease_until: None,
            expires_at: 100,
            payload: Some(ev.payload.clone()),
            payload_omitted: false,
            original: Some(original),
            results: serde_json::Map::new(),
            history: Vec::new(),
            next_attempt_at: None,
        };
        assert_eq!(rec.to_event().unwrap().original, ev.original, "a replay keeps it");
    }
}
