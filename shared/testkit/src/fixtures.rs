//! Events and claims as the tests write them.

use webhooks_core::event::{Event, EventState};
use webhooks_core::ports::store::Claim;

/// A sample event with a unique-enough id.
pub fn event(provider: &str, id: &str, event_type: &str) -> Event {
    Event {
        provider: provider.into(),
        id: id.into(),
        event_type: event_type.into(),
        received_at: 1_000,
        payload: webhooks_core::payload::Payload::from_text(format!(r#"{{"id":"{id}","type":"{event_type}"}}"#)),
        request_id: Some(format!("rq-{id}").into()),
        original: None,
    }
}

pub(crate) fn claim(ev: &Event, now: i64) -> Claim<'_> {
    claim_as(ev, EventState::Received, now, 7 * 86_400)
}

/// A claim of `ev` recorded in `state` at `now`, with a 30 s lease.
pub fn claim_as(ev: &Event, state: EventState, now: i64, ttl_secs: i64) -> Claim<'_> {
    Claim {
        event: ev,
        state,
        now,
        lease_secs: 30,
        ttl_secs,
    }
}
