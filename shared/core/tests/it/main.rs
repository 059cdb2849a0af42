//! webhooks-core's integration tests: the pipelines and the router over the
//! embedded SQLite adapters and the in-memory ones, as one test binary.

#![allow(clippy::unwrap_used, dead_code)]

mod fidelity;
mod forward;
mod handshakes;
mod harness;
mod http_answers;
mod load_exactly_once;
mod presets;
mod process;
mod processor_fixture;
mod refusals;
mod replay;
mod sender_libraries;
mod worker;
