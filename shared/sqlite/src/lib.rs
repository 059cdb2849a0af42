//! The embedded backend: the event store, the queue and admission on one
//! SQLite database file, the default a new user starts with.
//!
//! - [`writer`]: one connection owned by one thread; operations that arrive
//!   together share one transaction and one commit (group commit), and
//!   nobody is answered before the commit that holds their writes;
//! - [`schema`]: the two tables and their migrations;
//! - [`store::SqliteStore`], [`queue::SqliteQueue`]: the ports over them;
//! - [`refusals::SqliteRefusals`]: the last refused deliveries, bounded;
//! - [`admission::SqliteAdmission`]: claim and enqueue of a delivery in one
//!   savepoint, so a delivery is never claimed but not queued.
//!
//! [`SqliteBackend`] opens the file and hands out the adapters; the writer
//! and the SQL stay inside this crate.

pub mod admission;
pub mod queue;
pub mod refusals;
mod schema;
pub mod store;
mod writer;

pub use admission::SqliteAdmission;
pub use queue::SqliteQueue;
pub use refusals::SqliteRefusals;
pub use store::SqliteStore;
pub use writer::{DbError, Durability};

use std::path::Path;
use std::sync::Arc;
use webhooks_core::app::Ports;
use webhooks_core::ports::artifacts::ArtifactStore;
use webhooks_core::ports::refusals::RefusalBounds;

/// One open database and the adapters over it; cheap to clone. The
/// database thread ends when the last clone (and adapter) is dropped.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    db: writer::Db,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database file and its schema.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, DbError> {
        Ok(Self {
            db: writer::Db::open(path, durability)?,
        })
    }

    pub fn store(&self) -> Arc<SqliteStore> {
        Arc::new(SqliteStore::new(self.db.clone()))
    }

    pub fn queue(&self) -> Arc<SqliteQueue> {
        Arc::new(SqliteQueue::new(self.db.clone()))
    }

    /// The refusal log, with the default bounds.
    pub fn refusals(&self) -> Arc<SqliteRefusals> {
        self.refusals_with(RefusalBounds::default())
    }

    /// The refusal log with other bounds (tests use small ones).
    pub fn refusals_with(&self, bounds: RefusalBounds) -> Arc<SqliteRefusals> {
        Arc::new(SqliteRefusals::new(self.db.clone(), bounds))
    }

    pub fn admission(&self) -> Arc<SqliteAdmission> {
        Arc::new(SqliteAdmission::new(self.db.clone()))
    }

    /// The app's ports on this database: its store, queue and refusal log,
    /// and the one-transaction admission instead of send-then-record.
    pub fn ports(&self, artifacts: Arc<dyn ArtifactStore>) -> Ports {
        Ports::new(self.store(), self.queue(), artifacts)
            .with_admission(self.admission())
            .with_refusals(self.refusals())
    }
}
