//! The refused-delivery log on DynamoDB, in the events table (the layout
//! is in [`crate::dynamodb`]'s documentation): items `pk =
//! refused#<provider>#<time>#<random>` with `state = REFUSED`, listed newest
//! first by a Query on the `by_state` index, dropped by TTL after the
//! retention, trimmed to the per-provider bound as they are written.

use crate::dynamodb::{get_s, n, query_items, s, Item, STATE_INDEX};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::Client;
use std::collections::{BTreeMap, HashMap};
use webhooks_core::ports::refusals::{capped, Refusal, RefusalBounds, RefusalError, RefusalLog};

/// The `state` of refusal items: a partition of the `by_state` index of
/// its own, which no event state shares.
pub const REFUSED_STATE: &str = "REFUSED";

/// The refusal log in the events table.
/// Each item holds the refusal as JSON (`refusal`) beside the attributes
/// queries use: `provider`, `reason`, `received_at`, `expires_at`.
///
/// The per-provider bound: listings never return more than the bound of a
/// provider, and every [`TRIM_EVERY`](Self::TRIM_EVERY)-th refusal a process
/// stores of a provider (every one when the bound is smaller) deletes that
/// provider's items beyond the bound: one Query on the index, keys only. With
/// ingest's sampler (at most one write a second per provider and process)
/// the table holds at most the bound plus a few hundred per provider, and
/// TTL removes whatever is older than the retention.
#[derive(Debug)]
pub struct DynamoRefusals {
    client: Client,
    table: String,
    bounds: RefusalBounds,
    stored: std::sync::Mutex<HashMap<String, u64>>,
}

fn refusal_unavailable<E: std::error::Error + 'static>(e: E) -> RefusalError {
    RefusalError::Unavailable(DisplayErrorContext(e).to_string())
}

impl DynamoRefusals {
    /// How many stored refusals of a provider between two trims, at most.
    pub const TRIM_EVERY: u64 = 100;

    pub fn new(client: Client, table: &str, bounds: RefusalBounds) -> Self {
        Self {
            client,
            table: table.to_string(),
            bounds,
            stored: Default::default(),
        }
    }

    /// Unexpired refusal items (of `provider`), newest first, up to `limit`,
    /// with only the attributes in `projection`.
    async fn newest(&self, provider: Option<&str>, limit: usize, projection: &str) -> Result<Vec<Item>, RefusalError> {
        let now = webhooks_core::time::unix_now();
        let mut filter = String::from("expires_at > :now");
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(STATE_INDEX)
            .key_condition_expression("#state = :state")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(REFUSED_STATE))
            .expression_attribute_values(":now", n(now))
            .projection_expression(projection)
            .scan_index_forward(false);
        if let Some(provider) = provider {
            filter.push_str(" AND provider = :provider");
            request = request.expression_attribute_values(":provider", s(provider));
        }
        request = request.filter_expression(filter);
        query_items(request, limit).await.map_err(refusal_unavailable)
    }

    /// Deletes `provider`'s items beyond the bound.
    async fn trim(&self, provider: &str) -> Result<(), RefusalError> {
        let keep = self.bounds.per_provider;
        let items = self.newest(Some(provider), usize::MAX, "pk").await?;
        for item in items.iter().skip(keep) {
            if let Some(pk) = get_s(item, "pk") {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .send()
                    .await
                    .map_err(refusal_unavailable)?;
            }
        }
        Ok(())
    }

    /// Whether this store of `provider` is one that trims.
    fn due_for_trim(&self, provider: &str) -> bool {
        let every = Self::TRIM_EVERY.min(self.bounds.per_provider as u64 / 10).max(1);
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        let count = stored.entry(provider.to_string()).or_insert(0);
        *count += 1;
        count.is_multiple_of(every)
    }
}

#[async_trait]
impl RefusalLog for DynamoRefusals {
    async fn record(&self, refusal: Refusal) -> Result<(), RefusalError> {
        let json = serde_json::to_string(&refusal).map_err(|e| RefusalError::Unavailable(e.to_string()))?;
        let pk = format!(
            "refused#{}#{}#{:016x}",
            refusal.provider,
            refusal.at,
            rand::random::<u64>()
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("state", s(REFUSED_STATE))
            .item("provider", s(&refusal.provider))
            .item("reason", s(&refusal.reason))
            .item("received_at", n(refusal.at))
            .item("expires_at", n(refusal.at + self.bounds.keep_secs))
            .item("refusal", s(json))
            .send()
            .await
            .map_err(refusal_unavailable)?;
        if self.due_for_trim(&refusal.provider) {
            self.trim(&refusal.provider).await?;
        }
        Ok(())
    }

    async fn list(&self, provider: Option<&str>, limit: usize) -> Result<Vec<Refusal>, RefusalError> {
        let limit = capped(provider, limit, self.bounds);
        let items = self.newest(provider, limit, "refusal").await?;
        items
            .iter()
            .map(|item| {
                let json = get_s(item, "refusal").unwrap_or_default();
                serde_json::from_str(json)
                    .map_err(|e| RefusalError::Unavailable(format!("a refusal item is corrupt: {e}")))
            })
            .collect()
    }

    async fn counts(&self, provider: Option<&str>) -> Result<BTreeMap<String, u64>, RefusalError> {
        let items = self.newest(provider, usize::MAX, "provider, reason").await?;
        // Each provider's newest `per_provider` only, as `list` shows them.
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut counts = BTreeMap::new();
        for item in &items {
            let seen = seen.entry(get_s(item, "provider").unwrap_or_default()).or_insert(0);
            *seen += 1;
            if *seen <= self.bounds.per_provider {
                *counts
                    .entry(get_s(item, "reason").unwrap_or_default().to_string())
                    .or_insert(0) += 1;
            }
        }
        Ok(counts)
    }
}
