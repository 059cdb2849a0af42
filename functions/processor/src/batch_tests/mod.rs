//! The batch handler fed real messages received from moto's queue. Beside
//! the code, not in `tests/`, because some of them replace the per-message
//! step (`BatchHandler::with_runner`, a test-only hook) to inject panics and
//! dispositions. The support module is the ingest tests' own.

#![allow(clippy::unwrap_used, dead_code)]

mod batches;
#[path = "../../../ingest/tests/it/support/mod.rs"]
mod support;

#[path = "../../tests/it/artifacts.rs"]
mod artifacts;
pub use artifacts::create_artifacts_bucket;
