//! Test support shared by every crate's tests, a dev-dependency only:
//!
//! - [`contract`]: the suites every adapter of a port must pass (store,
//!   queue, admission), run on the embedded adapters, the in-memory ones and,
//!   against an emulator, the AWS ones;
//! - [`memory`]: in-memory store and queue, for pipeline tests and
//!   benchmarks without I/O;
//! - [`faults`]: decorators that make a port fail on demand;
//! - [`http_sink`]: a real HTTP server that records requests and answers
//!   from a script, for handlers' outbound calls;
//! - [`fixtures`]: events and claims;
//! - [`verifier`]: the "sign, verify, change a byte" property every
//!   verifier's tests run.

#![allow(clippy::unwrap_used)]

pub mod contract;
pub mod faults;
pub mod fixtures;
pub mod http_sink;
pub mod memory;
pub mod verifier;
