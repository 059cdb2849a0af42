//! The ingest function's tests, as one binary: the API Gateway events of
//! `events/` through the handler against moto, and the real binary under a
//! minimal Lambda Runtime API.

#![allow(clippy::unwrap_used, dead_code)]

mod binary;
mod events;
mod support;
