//! The processor function's tests, as one binary: the real binary under a
//! minimal Lambda Runtime API (the batch handler's own tests are beside it in
//! `src/batch_tests/`).
//! The support module is the ingest tests' own.

#![allow(clippy::unwrap_used, dead_code)]

mod binary;
#[path = "../../../ingest/tests/it/support/mod.rs"]
mod support;

/// The bucket the processor's handlers store artifacts in.
pub async fn create_artifacts_bucket(clients: &webhooks_aws::Clients, bucket: &str) {
    clients
        .s3
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
}
