//! Adapters in process memory: nothing survives a restart.

pub mod queue;
pub mod refusals;
pub mod store;

pub use queue::MemoryQueue;
pub use refusals::MemoryRefusals;
pub use store::MemoryStore;
