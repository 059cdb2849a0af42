//! The ingest function's tests, as one binary: the API Gateway events of
//! `events/` through the handler against moto, and the real binary under a
//! minimal Lambda Runtime API.

#![allow(clippy::unwrap_used, dead_code)]

mod binary;
mod events;
mod support;

/// The ingest stores no artifacts and its build links no S3 client (see
/// `webhooks-aws`'s `artifacts-s3` feature): no bucket to create.
pub async fn create_artifacts_bucket(_clients: &webhooks_aws::Clients, _bucket: &str) {}
