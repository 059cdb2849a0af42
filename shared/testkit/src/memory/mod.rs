//! Adapters in process memory: nothing survives a restart.

pub mod queue;
pub mod store;

pub use queue::MemoryQueue;
pub use store::MemoryStore;
