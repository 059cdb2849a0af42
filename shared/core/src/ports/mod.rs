//! The ports: what the pipelines need from the outside world, each a small
//! async trait with an embedded adapter (`webhooks-sqlite`, or a local
//! directory for artifacts) and an AWS one (`webhooks-aws`). Every adapter
//! of a port passes the same contract suite (`webhooks-testkit`).
//!
//! - [`store`]: event records: the exactly-once claim, processing leases,
//!   state transitions, listing and expiry;
//! - [`queue`]: at-least-once messages with visibility, receive counts,
//!   backoff and a dead-letter queue;
//! - [`admission`]: the claim and enqueue of one delivery's events, before
//!   the sender is answered;
//! - [`artifacts`]: files handlers keep (invoice PDFs);
//! - [`refusals`]: the last refused deliveries, bounded and sampled, with
//!   names and reason codes only.

pub mod admission;
pub mod artifacts;
pub mod queue;
pub mod refusals;
pub mod store;
