//! The event store on DynamoDB. One item per event, key `pk` =
//! `provider#event_id`; every check-and-write is one conditional request:
//!
//! - claim: one `PutItem` with `attribute_not_exists(pk) OR (#state =
//!   RECEIVED AND lease_until <= :now)` or a DONE / IGNORED item past
//!   `expires_at` (not yet deleted by TTL: it counts as gone) and
//!   `ReturnValuesOnConditionCheckFailure=ALL_OLD`, so a failed condition
//!   carries the existing item and tells a duplicate from an in-flight copy
//!   without a second read;
//! - settle / requeue: `UpdateItem` conditioned on the state they leave
//!   (PROCESSING / any existing record);
//! - lease: `UpdateItem` conditioned on RECEIVED, QUEUED whose retry is
//!   due, or an expired PROCESSING lease (again with ALL_OLD on failure);
//!   with no record, or one that counts as gone, a conditional `PutItem`
//!   creates it already leased;
//! - discard: `DeleteItem` conditioned on FAILED.
//!
//! `expires_at` is the table's TTL attribute: DynamoDB deletes expired items
//! itself (within a day or two of expiry); [`EventStore::purge_expired`]
//! exists for parity and for emulators. `list` is a `Query` on the
//! `by_state` index (partition key `state`, sort key `received_at`): one
//! per state asked for, merged newest first, never a table Scan.
//!
//! Refused deliveries ([`DynamoRefusals`], in `refusals.rs`) live in the same table as items
//! `pk = refused#<provider>#<time>#<random>` with `state = REFUSED`, so the
//! `by_state` index lists them newest first by Query, and `expires_at` lets
//! DynamoDB's TTL drop them after the retention. The event store's readers
//! never see them: `list` queries only the event states, `get` treats such
//! an item as no record, and the purge's filter names DONE and IGNORED only.
//!
//! The payload is kept on the record when the item stays within DynamoDB's
//! 400 KB limit with room for handler results; a larger one is left out and
//! the record says `payload_omitted = true` (the queue message still carries it).
//! A form event's original body (`Event::original`) is kept with it as
//! `original_type` (S) and `original_body` (B), and left out with it.
//! The attempt history is one string attribute, `history` (a JSON array of
//! at most `HISTORY_LIMIT` small entries), written whole by `settle`.

mod item;

pub use crate::refusals::{DynamoRefusals, REFUSED_STATE};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use item::record;
pub(crate) use item::{get_s, n, s, Item};
use std::collections::HashMap;
use tracing::debug;
use webhooks_core::event::{bound_history, history_to_json, Event, EventKey, EventRecord, EventState};
use webhooks_core::ports::store::{
    busy_until, counts_as_gone, Claim, ClaimOutcome, EventStore, LeaseOutcome, ListFilter, Requeue, Settlement,
    StoreError, RETRY_DUE_SLACK_SECS,
};

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Room kept free in an item for handler results, the last error and the
/// attempt history (at most `HISTORY_LIMIT` entries of a few hundred bytes:
/// about 12 KB).
pub const RESERVED_BYTES: usize = 64 * 1024;
/// The longest `last_error` kept on a record.
const MAX_ERROR_BYTES: usize = 4 * 1024;

/// DynamoDB-backed [`EventStore`].
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    payload_budget: usize,
}

/// Up to `limit` items of a Query, page after page (DynamoDB answers at most
/// 1 MB a request, before its filter), in the order the Query gives them.
pub(crate) async fn query_items(
    request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    limit: usize,
) -> Result<
    Vec<Item>,
    SdkError<aws_sdk_dynamodb::operation::query::QueryError, aws_sdk_dynamodb::config::http::HttpResponse>,
> {
    let mut items = Vec::new();
    let mut start: Option<Item> = None;
    loop {
        let out = request.clone().set_exclusive_start_key(start.take()).send().await?;
        items.extend(out.items().iter().cloned());
        match out.last_evaluated_key() {
            Some(k) if !k.is_empty() && items.len() < limit => start = Some(k.clone()),
            _ => break,
        }
    }
    items.truncate(limit);
    Ok(items)
}

/// The global secondary index the listing reads: partition key `state`,
/// sort key `received_at` (the SAM template and the test kit create it).
pub const STATE_INDEX: &str = "by_state";

impl DynamoStore {
    pub fn new(client: Client, table: &str) -> Self {
        Self {
            client,
            table: table.to_string(),
            payload_budget: MAX_ITEM_BYTES - RESERVED_BYTES,
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Up to `limit` records in `state` (of `provider`), newest first.
    async fn newest_in_state(
        &self,
        state: EventState,
        filter: &ListFilter,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        // `since` narrows the index's sort key, so older items are never
        // read; provider and type are filters on what the range returns.
        let key_condition = match filter.since {
            Some(_) => "#state = :state AND received_at >= :since",
            None => "#state = :state",
        };
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(STATE_INDEX)
            .key_condition_expression(key_condition)
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state.as_str()))
            .scan_index_forward(false);
        if let Some(since) = filter.since {
            request = request.expression_attribute_values(":since", n(since));
        }
        let mut conditions = Vec::new();
        if let Some(provider) = &filter.provider {
            conditions.push("provider = :provider");
            request = request.expression_attribute_values(":provider", s(provider));
        }
        if let Some(event_type) = &filter.event_type {
            conditions.push("event_type = :event_type");
            request = request.expression_attribute_values(":event_type", s(event_type));
        }
        if !conditions.is_empty() {
            request = request.filter_expression(conditions.join(" AND "));
        }
        let items = query_items(request, limit).await.map_err(unavailable)?;
        items.iter().map(record).collect()
    }

    /// The new item for `event` in `state`, within this store's payload budget.
    fn new_item(
        &self,
        event: &Event,
        state: EventState,
        attempts: u32,
        now: i64,
        lease_until: Option<i64>,
        ttl_secs: i64,
    ) -> Item {
        item::new_item(event, state, attempts, now, lease_until, ttl_secs, self.payload_budget)
    }

    /// Deletes the record only while it is in `state`: whether it was (a
    /// record in another state, or none, is left as it is).
    async fn delete_in_state(&self, key: &EventKey, state: EventState) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .condition_expression("#state = :state")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(state.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if delete_condition_failed(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Lowers the payload budget (tests of the omitted-payload path).
    pub fn with_payload_budget(mut self, bytes: usize) -> Self {
        self.payload_budget = bytes;
        self
    }

    fn key(key: &EventKey) -> Item {
        HashMap::from([("pk".to_string(), s(key.as_string()))])
    }

    /// Takes the processing lease on an existing record. `Ok(None)`: there is no record.
    async fn lease_existing(
        &self,
        key: &EventKey,
        now: i64,
        lease_secs: i64,
        ttl_secs: i64,
    ) -> Result<Option<LeaseOutcome>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .condition_expression(concat!(
                "attribute_exists(pk) AND (#state = :received",
                " OR (#state = :queued AND (attribute_not_exists(next_attempt_at) OR next_attempt_at <= :due))",
                " OR (#state = :processing AND lease_until <= :now))"
            ))
            .update_expression(
                "SET #state = :processing, attempts = if_not_exists(attempts, :zero) + :one, lease_until = :until, updated_at = :now, expires_at = :expires REMOVE next_attempt_at",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":received", s(EventState::Received.as_str()))
            .expression_attribute_values(":queued", s(EventState::Queued.as_str()))
            .expression_attribute_values(":processing", s(EventState::Processing.as_str()))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":until", n(now + lease_secs))
            .expression_attribute_values(":due", n(now + RETRY_DUE_SLACK_SECS))
            .expression_attribute_values(":expires", n(now + ttl_secs))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let item = out
                    .attributes()
                    .ok_or_else(|| StoreError::Corrupt("UpdateItem returned no attributes".into()))?;
                Ok(Some(LeaseOutcome::Leased(record(item)?)))
            }
            Err(e) => match update_condition_failed(&e) {
                Some(None) => Ok(None),
                Some(Some(old)) => {
                    let rec = record(old)?;
                    if counts_as_gone(rec.state, rec.expires_at, now) {
                        // As if there were none: the caller's conditional create takes it over.
                        return Ok(None);
                    }
                    Ok(Some(match rec.state {
                        // The condition failed on a live lease or a retry not due.
                        EventState::Processing | EventState::Queued => LeaseOutcome::Busy {
                            until: busy_until(&rec, now).unwrap_or(now),
                        },
                        other => LeaseOutcome::Finished(other),
                    }))
                }
                None => Err(unavailable(e)),
            },
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&e).to_string())
}

/// `Some(old item, if returned)` when the request failed only its condition.
fn put_condition_failed<R>(e: &SdkError<PutItemError, R>) -> Option<Option<&Item>> {
    match e.as_service_error() {
        Some(PutItemError::ConditionalCheckFailedException(c)) => Some(c.item()),
        _ => None,
    }
}

fn update_condition_failed<R>(e: &SdkError<UpdateItemError, R>) -> Option<Option<&Item>> {
    match e.as_service_error() {
        Some(UpdateItemError::ConditionalCheckFailedException(c)) => Some(c.item()),
        _ => None,
    }
}

fn delete_condition_failed<R>(e: &SdkError<DeleteItemError, R>) -> bool {
    matches!(
        e.as_service_error(),
        Some(DeleteItemError::ConditionalCheckFailedException(_))
    )
}

/// The condition that a stored record [`counts_as_gone`], for a conditional
/// write that takes such a record over (names `#state`; values `:now`,
/// `:done`, `:ignored`). A macro so the expressions stay `&'static str`.
macro_rules! gone_condition {
    () => {
        "(#state IN (:done, :ignored) AND (attribute_not_exists(expires_at) OR expires_at <= :now))"
    };
}

#[async_trait]
impl EventStore for DynamoStore {
    async fn claim(&self, claim: Claim<'_>) -> Result<ClaimOutcome, StoreError> {
        let lease_until = (claim.state == EventState::Received).then_some(claim.now + claim.lease_secs);
        let item = self.new_item(claim.event, claim.state, 0, claim.now, lease_until, claim.ttl_secs);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(concat!(
                "attribute_not_exists(pk) OR (#state = :received AND lease_until <= :now) OR ",
                gone_condition!()
            ))
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":received", s(EventState::Received.as_str()))
            .expression_attribute_values(":now", n(claim.now))
            .expression_attribute_values(":done", s(EventState::Done.as_str()))
            .expression_attribute_values(":ignored", s(EventState::Ignored.as_str()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let e = match result {
            Ok(_) => return Ok(ClaimOutcome::Claimed),
            Err(e) => e,
        };
        let existing = match put_condition_failed(&e) {
            None => return Err(unavailable(e)),
            Some(Some(old)) => record(old)?,
            // Every current DynamoDB returns the item; an older emulator may
            // not, and then one consistent read tells the same.
            Some(None) => match self.get(&claim.event.key()).await? {
                Some(r) => r,
                None => {
                    return Err(StoreError::Unavailable(
                        "the record vanished between the claim and its read; retry".into(),
                    ))
                }
            },
        };
        Ok(match existing.state {
            EventState::Received => ClaimOutcome::InFlight,
            other => ClaimOutcome::Duplicate(other),
        })
    }

    async fn discard(&self, key: &EventKey) -> Result<bool, StoreError> {
        self.delete_in_state(key, EventState::Failed).await
    }

    async fn lease(&self, event: &Event, now: i64, lease_secs: i64, ttl_secs: i64) -> Result<LeaseOutcome, StoreError> {
        let key = event.key();
        // Two rounds at most: the record may appear (or vanish) between the
        // conditional update and the conditional create.
        for _ in 0..3 {
            if let Some(outcome) = self.lease_existing(&key, now, lease_secs, ttl_secs).await? {
                return Ok(outcome);
            }
            let item = self.new_item(event, EventState::Processing, 1, now, Some(now + lease_secs), ttl_secs);
            let created = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .condition_expression(concat!("attribute_not_exists(pk) OR ", gone_condition!()))
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":done", s(EventState::Done.as_str()))
                .expression_attribute_values(":ignored", s(EventState::Ignored.as_str()))
                .send()
                .await;
            match created {
                Ok(_) => return Ok(LeaseOutcome::Leased(record(&item)?)),
                Err(e) if put_condition_failed(&e).is_some() => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Unavailable(format!("lease on {key} kept racing; retry")))
    }

    async fn settle(&self, key: &EventKey, settlement: Settlement) -> Result<(), StoreError> {
        let next_attempt_at = settlement.stored_next_attempt_at();
        let history = history_to_json(&bound_history(settlement.history));
        let results = serde_json::Value::Object(settlement.results).to_string();
        let mut set = String::from("SET #state = :state, results = :results, updated_at = :now, history = :history");
        let mut remove = String::from(" REMOVE lease_until");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .condition_expression("#state = :processing")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":processing", s(EventState::Processing.as_str()))
            .expression_attribute_values(":state", s(settlement.state.as_str()))
            .expression_attribute_values(":results", s(results))
            .expression_attribute_values(":history", s(history))
            .expression_attribute_values(":now", n(settlement.now));
        if let Some(error) = &settlement.error {
            set.push_str(", last_error = :error");
            request = request.expression_attribute_values(":error", s(truncate(error, MAX_ERROR_BYTES)));
        }
        match next_attempt_at {
            Some(at) => {
                set.push_str(", next_attempt_at = :next");
                request = request.expression_attribute_values(":next", n(at));
            }
            None => remove.push_str(", next_attempt_at"),
        }
        set.push_str(&remove);
        match request.update_expression(set).send().await {
            Ok(_) => Ok(()),
            // The lease was lost (taken over after it expired): the new holder settles.
            Err(e) if update_condition_failed(&e).is_some() => {
                debug!(key = %key, "settle skipped: record is no longer PROCESSING");
                Ok(())
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn requeue(&self, key: &EventKey, now: i64) -> Result<Requeue, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .condition_expression("attribute_exists(pk) AND NOT (#state = :processing AND lease_until > :now)")
            .update_expression(
                "SET #state = :queued, attempts = :zero, updated_at = :now REMOVE lease_until, next_attempt_at",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":queued", s(EventState::Queued.as_str()))
            .expression_attribute_values(":processing", s(EventState::Processing.as_str()))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match result {
            Ok(out) => {
                let item = out
                    .attributes()
                    .ok_or_else(|| StoreError::Corrupt("UpdateItem returned no attributes".into()))?;
                return Ok(Requeue::Requeued(record(item)?));
            }
            Err(e) => match update_condition_failed(&e) {
                Some(Some(old)) => Some(record(old)?),
                // Emulators may leave the old item out: read it.
                Some(None) => self.get(key).await?,
                None => return Err(unavailable(e)),
            },
        };
        Ok(match old {
            None => Requeue::Missing,
            Some(rec) => Requeue::Busy {
                until: rec.lease_until.unwrap_or(now),
            },
        })
    }

    async fn get(&self, key: &EventKey) -> Result<Option<EventRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        // A refusal's item is no event record (its key cannot be an event's
        // unless a provider were named `refused`).
        out.item()
            .filter(|item| get_s(item, "state") != Some(REFUSED_STATE))
            .map(record)
            .transpose()
    }

    /// Newest first, by Queries on the `by_state` index (state, then
    /// received time descending), never a Scan: one Query for a state
    /// filter, one per state otherwise, merged. The index is eventually
    /// consistent: a listing may trail the last writes by a moment.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<EventRecord>, StoreError> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let states: Vec<EventState> = match filter.state {
            Some(state) => vec![state],
            None => EventState::ALL.to_vec(),
        };
        let queries = states
            .into_iter()
            .map(|state| self.newest_in_state(state, filter, limit));
        let mut records: Vec<EventRecord> = Vec::new();
        for found in futures::future::join_all(queries).await {
            records.extend(found?);
        }
        records.sort_by(|a, b| {
            (b.received_at, b.updated_at, b.key().as_string()).cmp(&(a.received_at, a.updated_at, a.key().as_string()))
        });
        records.truncate(limit);
        Ok(records)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("expires_at <= :now AND #state IN (:done, :ignored)")
                .projection_expression("pk")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":done", s(EventState::Done.as_str()))
                .expression_attribute_values(":ignored", s(EventState::Ignored.as_str()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            keys.extend(out.items().iter().filter_map(|i| get_s(i, "pk").map(str::to_string)));
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        let deletes = keys.into_iter().map(|pk| {
            let client = self.client.clone();
            let table = self.table.clone();
            async move {
                let result = client
                    .delete_item()
                    .table_name(table)
                    .key("pk", s(pk))
                    .condition_expression("expires_at <= :now AND #state IN (:done, :ignored)")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":now", n(now))
                    .expression_attribute_values(":done", s(EventState::Done.as_str()))
                    .expression_attribute_values(":ignored", s(EventState::Ignored.as_str()))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(1u64),
                    Err(e) if delete_condition_failed(&e) => Ok(0),
                    Err(e) => Err(unavailable(e)),
                }
            }
        });
        let counts: Vec<Result<u64, StoreError>> = futures::stream::iter(deletes).buffer_unordered(8).collect().await;
        counts.into_iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::item::item_size;
    use super::*;

    #[test]
    fn item_round_trips_and_large_payloads_are_omitted() {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let store = DynamoStore::new(Client::from_conf(conf), "t");
        let ev = webhooks_testkit::fixtures::event("p", "e1", "t");
        let item = store.new_item(&ev, EventState::Received, 0, 100, Some(130), 1000);
        let rec = record(&item).expect("test value");
        assert_eq!(rec.state, EventState::Received);
        assert_eq!(rec.lease_until, Some(130));
        assert_eq!(rec.expires_at, 1100);
        assert_eq!(rec.payload.as_ref().map(|p| p.as_str()), Some(ev.payload.as_str()));
        assert!(!rec.payload_omitted);
        let small = store.with_payload_budget(50);
        let rec = record(&small.new_item(&ev, EventState::Received, 0, 100, None, 1000)).expect("test value");
        assert!(rec.payload.is_none() && rec.payload_omitted);
    }

    #[test]
    fn an_original_body_is_kept_with_the_payload_and_left_out_with_it() {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let store = DynamoStore::new(Client::from_conf(conf), "t");
        let mut ev = webhooks_testkit::fixtures::event("p", "e1", "t");
        ev.original = Some(webhooks_core::payload::OriginalBody {
            content_type: "application/x-www-form-urlencoded".into(),
            body: bytes::Bytes::from(vec![b'a', b'='].into_iter().chain([0xff; 200]).collect::<Vec<u8>>()),
        });
        let rec = record(&store.new_item(&ev, EventState::Received, 0, 100, None, 1000)).expect("test value");
        assert_eq!(rec.original, ev.original);
        assert_eq!(rec.to_event().expect("replayable").original, ev.original);
        // Room for the payload alone, not for both: both are left out.
        let budget = item_size(&store.new_item(
            &webhooks_testkit::fixtures::event("p", "e1", "t"),
            EventState::Received,
            0,
            100,
            None,
            1000,
        ));
        let tight = store.with_payload_budget(budget + 10);
        let rec = record(&tight.new_item(&ev, EventState::Received, 0, 100, None, 1000)).expect("test value");
        assert!(rec.payload_omitted && rec.payload.is_none() && rec.original.is_none());
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ñandú", 2), "ñ");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
