//! The processor function's tests, as one binary: the real binary under a
//! minimal Lambda Runtime API (the batch handler's own tests are beside it in
//! `src/batch_tests/`).
//! The support module is the ingest tests' own.

#![allow(clippy::unwrap_used, dead_code)]

mod binary;
#[path = "../../../ingest/tests/it/support/mod.rs"]
mod support;

#[path = "artifacts.rs"]
mod artifacts;
pub use artifacts::create_artifacts_bucket;
