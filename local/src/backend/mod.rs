//! The store and queue the operating commands (`events`, `replay`,
//! `dead-letters`) work on: the embedded SQLite file, or a deployed stack's
//! DynamoDB table and SQS queues. Both are the same two ports, so every
//! command, its rules (replay resets the record before the message moves,
//! refuses DONE and a live lease) and its output are one code path.

#[cfg(feature = "aws")]
mod aws;

use crate::cli::{BackendArgs, BackendKind, DurabilityArg};
use crate::context;
use std::sync::Arc;
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::refusals::RefusalLog;
use webhooks_core::ports::store::EventStore;

/// An opened backend. Keep it for as long as its ports are used: the
/// embedded one owns the database's writer thread.
pub struct Backend {
    pub store: Arc<dyn EventStore>,
    pub queue: Arc<dyn Queue>,
    /// The refused deliveries ingest kept (the console shows them).
    pub refusals: Arc<dyn RefusalLog>,
    _sqlite: Option<webhooks_sqlite::SqliteBackend>,
}

/// Opens the backend the flags name, or says what is missing.
pub async fn open(args: &BackendArgs) -> anyhow::Result<Backend> {
    match args.kind() {
        BackendKind::Sqlite => {
            if let Some(flag) = aws_only_flag(args) {
                anyhow::bail!("{flag} names an AWS resource: use it with --backend aws");
            }
            let db = context::open_db(&args.store, DurabilityArg::Normal)?;
            Ok(Backend {
                store: db.store(),
                queue: db.queue(),
                refusals: db.refusals(),
                _sqlite: Some(db),
            })
        }
        BackendKind::Aws => open_aws(args).await,
    }
}

/// The first AWS-only flag given, for the error when the backend is SQLite.
fn aws_only_flag(args: &BackendArgs) -> Option<&'static str> {
    [
        (args.stack.is_some(), "--stack"),
        (args.table.is_some(), "--table"),
        (args.queue_url.is_some(), "--queue-url"),
        (args.dlq_url.is_some(), "--dlq-url"),
    ]
    .into_iter()
    .find_map(|(given, flag)| given.then_some(flag))
}

#[cfg(feature = "aws")]
async fn open_aws(args: &BackendArgs) -> anyhow::Result<Backend> {
    let (store, queue, refusals) = aws::open(args).await?;
    Ok(Backend {
        store,
        queue,
        refusals,
        _sqlite: None,
    })
}

#[cfg(not(feature = "aws"))]
async fn open_aws(_: &BackendArgs) -> anyhow::Result<Backend> {
    anyhow::bail!(
        "this `webhooks` was built without the AWS backend; build it with the `aws` feature: \
         `cargo install --path local --features aws`, or `cargo run --release --features aws -- …`"
    )
}
