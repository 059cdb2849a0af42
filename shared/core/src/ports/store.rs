//! The event store port: claims (exactly-once at ingest), processing leases
//! (exactly-once at the processor), state transitions, listing and TTL.
//!
//! Adapters: `webhooks_sqlite::SqliteStore` (embedded default) and
//! `webhooks_aws::dynamodb::DynamoStore`. Both pass the same contract suite
//! (`webhooks_testkit::contract::store`).

use crate::event::{AttemptEntry, Event, EventKey, EventRecord, EventState};
use async_trait::async_trait;

/// Why the store could not answer. Every variant is a 503 at ingest and a
/// retry at the processor: the caller never guesses at state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    #[error("event store data is corrupt: {0}")]
    Corrupt(String),
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This caller made the record.
    Claimed,
    /// A record already exists past RECEIVED (or inside no lease): 200 duplicate.
    Duplicate(EventState),
    /// Another copy holds a live RECEIVED claim: answer 409 so the sender retries.
    InFlight,
}

/// A new claim.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub event: &'a Event,
    /// QUEUED for an event with handlers whose message is sent (RECEIVED,
    /// under a lease, for one whose message is yet to be sent), IGNORED for
    /// an unknown type.
    pub state: EventState,
    pub now: i64,
    pub lease_secs: i64,
    pub ttl_secs: i64,
}

/// Whether a stored record counts as gone: DONE or IGNORED and past its
/// expiry. DynamoDB deletes such a record up to two days after `expires_at`
/// and the embedded store at its next purge; until then every adapter's
/// claim and lease take it over as if there were none, so ingest and the
/// processor agree on when an event stops being a duplicate whatever the
/// moment it is deleted. (Otherwise a copy's message, sent before its
/// record, could be acknowledged against the old record, which then
/// vanishes, and the copy's record would say QUEUED with no message.)
pub fn counts_as_gone(state: EventState, expires_at: i64, now: i64) -> bool {
    matches!(state, EventState::Done | EventState::Ignored) && expires_at <= now
}

/// How long before its `next_attempt_at` a QUEUED record may already be
/// leased: times are whole seconds and the retry's is rounded up, so the
/// message that scheduled it can come back up to a second early.
pub const RETRY_DUE_SLACK_SECS: i64 = 1;

/// Until when a lease at `now` must wait for `record`, if it must: while
/// another processor holds a live lease (PROCESSING), or while the record
/// waits for a retry that is not due, beyond [`RETRY_DUE_SLACK_SECS`]
/// (QUEUED), so another message of the same event (a copy's) cannot run an
/// attempt before the backoff is over.
pub fn busy_until(record: &EventRecord, now: i64) -> Option<i64> {
    match record.state {
        EventState::Processing => record.lease_until.filter(|&until| until > now),
        EventState::Queued => record.next_attempt_at.filter(|&due| due > now + RETRY_DUE_SLACK_SECS),
        _ => None,
    }
}

/// What a processing lease found.
// The record is moved out at once, one per lease or replay: boxing it
// would cost an allocation and every match site for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseOutcome {
    /// This caller holds the lease; the record is as stored after the
    /// attempt counter was raised.
    Leased(EventRecord),
    /// Nothing to do: the record is DONE, FAILED or IGNORED.
    Finished(EventState),
    /// Another processor holds a live lease, or the record's retry is not
    /// due, until this time.
    Busy { until: i64 },
}

/// What a replay's reset found.
// The record is moved out at once, one per lease or replay: boxing it
// would cost an allocation and every match site for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Requeue {
    /// The record is QUEUED again, attempts at zero; as stored now.
    Requeued(EventRecord),
    /// There is no record under this key.
    Missing,
    /// A processor holds a live lease on it until this time.
    Busy { until: i64 },
}

/// How a processing attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// DONE, QUEUED (retry later), FAILED (dead letter) or IGNORED (no
    /// handler is configured any more).
    pub state: EventState,
    pub error: Option<String>,
    /// Results of the handlers that succeeded so far, merged into the record.
    pub results: serde_json::Map<String, serde_json::Value>,
    /// The record's whole attempt history after this attempt (the leased
    /// record's, with this attempt's entries appended), oldest first. It
    /// replaces the stored one in the same conditional write as the state:
    /// the lease makes the processor the only writer, and a whole list is
    /// one attribute in DynamoDB where appending and trimming are not.
    /// Adapters store [`bound_history`](crate::event::bound_history) of it.
    pub history: Vec<AttemptEntry>,
    /// With QUEUED: when the retry is due. Adapters store `None` for any
    /// other state.
    pub next_attempt_at: Option<i64>,
    pub now: i64,
}

impl Settlement {
    /// The `next_attempt_at` to store: only a QUEUED record waits for one.
    pub fn stored_next_attempt_at(&self) -> Option<i64> {
        self.next_attempt_at.filter(|_| self.state == EventState::Queued)
    }
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<EventState>,
    pub provider: Option<String>,
    /// Only this event type (exact).
    pub event_type: Option<String>,
    /// Only records received at or after this Unix time.
    pub since: Option<i64>,
    /// At most this many, newest first (0 means 100). Received times are
    /// whole seconds: within one second the embedded store keeps arrival
    /// order, DynamoDB's index orders by last update.
    pub limit: usize,
}

impl ListFilter {
    /// Whether `record` passes every filter but the limit, for adapters that
    /// filter in memory.
    pub fn matches(&self, record: &EventRecord) -> bool {
        self.state.is_none_or(|s| record.state == s)
            && self.provider.as_deref().is_none_or(|p| record.provider == p)
            && self.event_type.as_deref().is_none_or(|t| record.event_type == t)
            && self.since.is_none_or(|t| record.received_at >= t)
    }
}

/// The event store.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Creates the record unless one exists; takes over an existing RECEIVED
    /// record whose lease has expired (its claimant, of a version that
    /// recorded before it sent, died before enqueueing) and one that
    /// [`counts_as_gone`]. One atomic conditional write.
    async fn claim(&self, claim: Claim<'_>) -> Result<ClaimOutcome, StoreError>;

    /// Takes the processing lease: from RECEIVED, from QUEUED unless its
    /// retry is not due, or from PROCESSING whose lease expired (otherwise
    /// busy, until [`busy_until`]). Raises `attempts`. With no record
    /// (its ingest sent the message and then failed to record it, or it
    /// expired) or one that [`counts_as_gone`], the record is created from
    /// the envelope and leased: a later retry of the same delivery then
    /// finds it and is a duplicate. Every lease sets `expires_at` to
    /// `now + ttl_secs`: a record's retention runs from its last attempt, so
    /// one replayed and finished after its first expiry is not gone at once.
    /// Clears `next_attempt_at` (the attempt it announced is this one) and
    /// keeps the history.
    async fn lease(&self, event: &Event, now: i64, lease_secs: i64, ttl_secs: i64) -> Result<LeaseOutcome, StoreError>;

    /// Ends an attempt (only while PROCESSING): state, error, results,
    /// history and next attempt time in one conditional write.
    async fn settle(&self, key: &EventKey, settlement: Settlement) -> Result<(), StoreError>;

    /// Puts a record back to QUEUED with its attempt counter reset, for a
    /// replay, unless a processor holds a live lease on it (resetting it then
    /// would let a second processor run its handlers at the same time).
    /// The history is kept (it is the audit trail); `next_attempt_at` is
    /// cleared (the replayed message is due at once).
    async fn requeue(&self, key: &EventKey, now: i64) -> Result<Requeue, StoreError>;

    /// Deletes a dead letter's record (FAILED only) for good; `Ok(false)`
    /// when there is no FAILED record under the key (gone, or replayed).
    async fn discard(&self, key: &EventKey) -> Result<bool, StoreError>;

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError>;

    /// Newest first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<EventRecord>, StoreError>;

    /// Deletes finished records (DONE, IGNORED) past their TTL; returns how
    /// many. Dead letters and queued events are kept whatever their age.
    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError>;
}
