//! The refusal log port: the last deliveries ingest did not accept (401,
//! 403, 400, 404, 413, 503), kept so that whoever sets up a provider can see
//! *why* ("every delivery is a 401: the signature header is absent").
//!
//! A [`Refusal`] holds names and numbers only: never a body, a header
//! value, a signature or a secret, so the log can be shown to anyone who
//! may see the console.
//!
//! Bounded twice: adapters keep at most [`RefusalBounds::per_provider`]
//! refusals of each provider and none older than
//! [`RefusalBounds::keep_secs`]; and ingest stores only what the
//! [`RefusalSampler`] lets through (a flood of bad requests costs one write
//! a second per provider, not one per request). Every refusal, stored or
//! not, is counted in the metrics (`rejected_total`).
//!
//! Adapters: `webhooks_sqlite::SqliteRefusals`,
//! `webhooks_aws::dynamodb::DynamoRefusals`, and the memory one of the test
//! kit; all pass `webhooks_testkit::contract::refusals`. [`NoRefusals`]
//! keeps nothing, for compositions without a log.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

/// The provider name of a refusal whose path names no configured provider.
/// The path's name itself is not kept: anyone can make up names, and each
/// would be a row and a sampler bucket of its own.
pub const UNKNOWN_PROVIDER: &str = "unknown";

/// One refused delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Unix seconds.
    pub at: i64,
    /// The provider, or [`UNKNOWN_PROVIDER`].
    pub provider: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The stable reason code answered (`invalid_signature`, ...).
    pub reason: String,
    pub request_id: String,
    /// The sender's address as far as it is known (API Gateway's source IP,
    /// else `X-Forwarded-For`'s first entry, else the peer address).
    pub source_ip: Option<String>,
    /// The body's size in bytes (the declared size when it was not read).
    pub body_bytes: u64,
    /// The names of the headers and query parameters the provider's scheme
    /// expects that the request carried (`?name` for a query parameter).
    pub present: Vec<String>,
    /// The expected names it did not carry.
    pub absent: Vec<String>,
}

/// How much adapters keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalBounds {
    /// At most this many per provider: the newest.
    pub per_provider: usize,
    /// None older than this.
    pub keep_secs: i64,
}

impl Default for RefusalBounds {
    /// 1,000 per provider, 7 days.
    fn default() -> Self {
        Self {
            per_provider: 1_000,
            keep_secs: 7 * 24 * 3600,
        }
    }
}

/// Why the log could not answer. Ingest logs it and answers as it would
/// have anyway: storing a refusal never changes the answer.
#[derive(Debug, thiserror::Error)]
pub enum RefusalError {
    #[error("refusal log unavailable: {0}")]
    Unavailable(String),
}

/// The refusal log.
#[async_trait]
pub trait RefusalLog: Send + Sync {
    /// Keeps `refusal`, dropping whatever falls outside the bounds.
    async fn record(&self, refusal: Refusal) -> Result<(), RefusalError>;

    /// Newest first, at most `limit` (for one provider, at most its bound),
    /// of one provider or of all; nothing older than the bounds allow.
    async fn list(&self, provider: Option<&str>, limit: usize) -> Result<Vec<Refusal>, RefusalError>;

    /// How many of the kept refusals (of one provider or of all) have each
    /// reason code.
    async fn counts(&self, provider: Option<&str>) -> Result<BTreeMap<String, u64>, RefusalError>;
}

/// The limit of a listing: for one provider, no more than its bound.
pub fn capped(provider: Option<&str>, limit: usize, bounds: RefusalBounds) -> usize {
    match provider {
        Some(_) => limit.min(bounds.per_provider),
        None => limit,
    }
}

/// Counts `refusals` by reason: for adapters that count what they listed.
pub fn count_reasons<'a>(refusals: impl IntoIterator<Item = &'a Refusal>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for r in refusals {
        *counts.entry(r.reason.clone()).or_insert(0) += 1;
    }
    counts
}

/// Keeps nothing: the log of compositions that have none.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRefusals;

#[async_trait]
impl RefusalLog for NoRefusals {
    async fn record(&self, _refusal: Refusal) -> Result<(), RefusalError> {
        Ok(())
    }
    async fn list(&self, _provider: Option<&str>, _limit: usize) -> Result<Vec<Refusal>, RefusalError> {
        Ok(Vec::new())
    }
    async fn counts(&self, _provider: Option<&str>) -> Result<BTreeMap<String, u64>, RefusalError> {
        Ok(BTreeMap::new())
    }
}

/// Decides which refusals are stored: a token bucket per provider, in
/// memory, of [`RefusalSampler::BURST`] tokens refilled at one per
/// [`RefusalSampler::REFILL_SECS`] / `BURST` seconds: at most 10 stored per
/// provider per 10 s (after a quiet spell, a burst of 10 at once), the
/// rest only counted in the metrics. A flood of bad requests thus costs at
/// most one write a second per provider and process, and leaves the
/// earliest refusals of a burst (the informative ones) in the log. Buckets
/// are keyed by configured provider names and [`UNKNOWN_PROVIDER`] only, so
/// the map cannot grow with what senders make up.
#[derive(Debug, Default)]
pub struct RefusalSampler {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RefusalSampler {
    /// Tokens of a full bucket.
    pub const BURST: f64 = 10.0;
    /// Seconds to refill an empty bucket.
    pub const REFILL_SECS: f64 = 10.0;

    /// Whether a refusal of `provider` seen at `now` is stored (takes a token).
    pub fn admit(&self, provider: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(provider.to_string()).or_insert(Bucket {
            tokens: Self::BURST,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * Self::BURST / Self::REFILL_SECS).min(Self::BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sampler_stores_ten_per_provider_per_ten_seconds() {
        let sampler = RefusalSampler::default();
        let t0 = Instant::now();
        let stored = (0..100).filter(|_| sampler.admit("gigstack", t0)).count();
        assert_eq!(stored, 10);
        // Another provider has its own bucket.
        assert!(sampler.admit("piriod", t0));
        // One token back per second.
        assert!(!sampler.admit("gigstack", t0 + Duration::from_millis(500)));
        assert!(sampler.admit("gigstack", t0 + Duration::from_millis(1_100)));
        assert!(!sampler.admit("gigstack", t0 + Duration::from_millis(1_200)));
        // A long quiet spell refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(3_600);
        assert_eq!((0..100).filter(|_| sampler.admit("gigstack", later)).count(), 10);
    }

    #[test]
    fn counts_by_reason() {
        let r = |reason: &str| Refusal {
            at: 1,
            provider: "p".into(),
            status: 401,
            reason: reason.into(),
            request_id: "r".into(),
            source_ip: None,
            body_bytes: 0,
            present: vec![],
            absent: vec![],
        };
        let list = [r("invalid_signature"), r("missing_signature"), r("invalid_signature")];
        let counts = count_reasons(&list);
        assert_eq!(counts.get("invalid_signature"), Some(&2));
        assert_eq!(counts.get("missing_signature"), Some(&1));
    }
}
