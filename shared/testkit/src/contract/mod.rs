//! The port contracts: each `run_all` panics with the rule that broke.

pub mod admission;
pub mod queue;
pub mod refusals;
pub mod store;
