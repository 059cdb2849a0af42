//! The receiver itself, with no AWS and no SQLite crate in it.
//!
//! - the domain: [`event`] (records, keys, states), [`payload`], [`time`];
//! - [`config`] and [`secret`]: the TOML configuration and the secret
//!   references it holds (parsed by one type, [`secret::SecretRef`]);
//! - [`verify`]: one verifier per signature scheme, pure functions over the
//!   raw request; [`provider`]: a provider's verifier, event id and type
//!   extraction and batch split, built from its config;
//! - [`ports`]: the event store, queue, admission and artifact storage as
//!   small traits; adapters live in `webhooks-sqlite` and `webhooks-aws`;
//! - [`pipeline`]: ingest (route, verify, extract, admit), process (lease,
//!   run handlers, settle), replay, backoff and the local worker loop;
//! - [`handlers`]: the business actions run for each event type;
//! - [`http`]: the one axum router, and the one map from an ingest outcome
//!   to its HTTP answer;
//! - [`app`]: the composition root both entry points build through.
//!
//! The Lambda functions and the local `webhooks` command only wire these parts
//! together; no verification, claiming, dispatch or retry logic lives in them.

pub mod app;
pub mod config;
pub mod event;
pub mod handlers;
pub mod http;
pub mod payload;
pub mod pipeline;
pub mod ports;
pub mod provider;
pub mod secret;
pub mod telemetry;
pub mod time;
pub mod verify;
