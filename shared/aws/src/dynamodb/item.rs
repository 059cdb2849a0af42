//! The event record as a DynamoDB item, both ways: the attribute names and
//! types one place decides (`pk`, `state`, numbers as `N`, the payload and a
//! form's original body kept or left out together), shared by the event
//! store and the refusal log.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use tracing::debug;
use webhooks_core::event::{history_from_json, Event, EventRecord, EventState};
use webhooks_core::ports::store::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The new item for `event` in `state`. The payload is included when it
/// fits `payload_budget` (with its original body, if any, or neither).
pub(super) fn new_item(
    event: &Event,
    state: EventState,
    attempts: u32,
    now: i64,
    lease_until: Option<i64>,
    ttl_secs: i64,
    payload_budget: usize,
) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(event.pk()));
    item.insert("provider".into(), s(&*event.provider));
    item.insert("event_id".into(), s(&*event.id));
    item.insert("event_type".into(), s(&*event.event_type));
    item.insert("state".into(), s(state.as_str()));
    item.insert("attempts".into(), n(attempts));
    item.insert("received_at".into(), n(now));
    item.insert("updated_at".into(), n(now));
    if let Some(until) = lease_until {
        item.insert("lease_until".into(), n(until));
    }
    item.insert("expires_at".into(), n(now + ttl_secs));
    item.insert("results".into(), s("{}"));
    let payload = event.payload.as_str();
    let original_bytes = event.original.as_ref().map_or(0, |o| {
        "original_type".len() + o.content_type.len() + "original_body".len() + o.body.len()
    });
    if item_size(&item) + "payload".len() + payload.len() + original_bytes <= payload_budget {
        item.insert("payload".into(), s(payload));
        item.insert("payload_omitted".into(), AttributeValue::Bool(false));
        // Never one without the other: a replay must not forward the
        // JSON rendering of a form body as if the sender had sent it.
        if let Some(original) = &event.original {
            item.insert("original_type".into(), s(&original.content_type));
            item.insert(
                "original_body".into(),
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(original.body.to_vec())),
            );
        }
    } else {
        debug!(event_id = %event.id, bytes = payload.len(), "payload too large for the record; omitted");
        item.insert("payload_omitted".into(), AttributeValue::Bool(true));
    }
    item
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// DynamoDB's size of an item: attribute names plus values (numbers counted
/// generously).
pub(super) fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(x) => x.len(),
                    AttributeValue::N(x) => x.len() / 2 + 2,
                    AttributeValue::B(x) => x.as_ref().len(),
                    AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
                    _ => 64,
                }
        })
        .sum()
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

pub(super) fn get_n(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("{name} = {v} is not an integer"))),
        Some(_) => Err(StoreError::Corrupt(format!("{name} is not a number"))),
    }
}

fn required_s(item: &Item, name: &str) -> Result<String, StoreError> {
    get_s(item, name)
        .map(str::to_string)
        .ok_or_else(|| StoreError::Corrupt(format!("record has no {name}")))
}

/// An item as a record.
pub(super) fn record(item: &Item) -> Result<EventRecord, StoreError> {
    let state = required_s(item, "state")?;
    Ok(EventRecord {
        provider: required_s(item, "provider")?.into(),
        event_id: required_s(item, "event_id")?.into(),
        event_type: required_s(item, "event_type")?.into(),
        state: EventState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("unknown state {state}")))?,
        attempts: get_n(item, "attempts")?.unwrap_or(0).max(0) as u32,
        last_error: get_s(item, "last_error").map(str::to_string),
        received_at: get_n(item, "received_at")?.unwrap_or(0),
        updated_at: get_n(item, "updated_at")?.unwrap_or(0),
        lease_until: get_n(item, "lease_until")?,
        expires_at: get_n(item, "expires_at")?.unwrap_or(0),
        payload: get_s(item, "payload").map(webhooks_core::payload::Payload::from),
        payload_omitted: matches!(item.get("payload_omitted"), Some(AttributeValue::Bool(true))),
        original: match (get_s(item, "original_type"), item.get("original_body")) {
            (Some(content_type), Some(AttributeValue::B(body))) => Some(webhooks_core::payload::OriginalBody {
                content_type: content_type.to_string(),
                body: body.as_ref().to_vec().into(),
            }),
            _ => None,
        },
        results: get_s(item, "results")
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or_default(),
        history: get_s(item, "history").map(history_from_json).unwrap_or_default(),
        next_attempt_at: get_n(item, "next_attempt_at")?,
    })
}
