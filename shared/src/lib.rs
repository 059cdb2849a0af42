//! Everything that is not an entry point: verifiers, providers, the ingest and
//! processor pipelines, and the ports (event store, queue, artifact storage)
//! with their embedded SQLite adapters and, behind the `aws` feature, their
//! DynamoDB / SQS / S3 adapters.
//!
//! The Lambda functions and the local `webhooks` command only wire these parts
//! together; no verification, claiming, dispatch or retry logic lives in them.

pub mod app;
pub mod artifacts;
#[cfg(feature = "aws")]
pub mod aws;
pub mod backoff;
pub mod config;
pub mod db;
pub mod event;
pub mod handlers;
pub mod http;
pub mod ingest;
pub mod intake;
pub mod payload;
pub mod process;
pub mod provider;
pub mod queue;
pub mod replay;
pub mod secret;
pub mod store;
pub mod time;
pub mod verify;
pub mod worker;
