//! The pipelines, over the ports only (no AWS, no SQLite, no HTTP framework):
//!
//! - [`ingest`]: one inbound request, as route -> verify -> extract -> admit;
//! - [`process`]: one queued message, as lease -> run handlers -> settle;
//! - [`replay`]: putting events back on the queue, record reset first;
//! - [`backoff`]: the retry delay;
//! - [`worker`]: the local loop that does what SQS and the processor Lambda
//!   do on AWS.

pub mod backoff;
pub mod ingest;
pub mod process;
pub mod replay;
pub mod worker;
