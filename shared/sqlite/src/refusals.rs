//! The refusal log on the embedded database: the `refusals` table. Each
//! insert also deletes, in the same transaction, the provider's rows beyond
//! the per-provider bound and every row older than the retention, so the
//! table never holds more than the bounds allow.

use crate::writer::{Db, DbError};
use async_trait::async_trait;
use rusqlite::params;
use std::collections::BTreeMap;
use webhooks_core::ports::refusals::{capped, Refusal, RefusalBounds, RefusalError, RefusalLog};

/// SQLite-backed [`RefusalLog`].
#[derive(Debug, Clone)]
pub struct SqliteRefusals {
    db: Db,
    bounds: RefusalBounds,
}

impl SqliteRefusals {
    pub(crate) fn new(db: Db, bounds: RefusalBounds) -> Self {
        Self { db, bounds }
    }
}

impl From<DbError> for RefusalError {
    fn from(e: DbError) -> Self {
        RefusalError::Unavailable(e.to_string())
    }
}

fn corrupt(e: serde_json::Error) -> RefusalError {
    RefusalError::Unavailable(format!("a refusal row is corrupt: {e}"))
}

#[async_trait]
impl RefusalLog for SqliteRefusals {
    async fn record(&self, refusal: Refusal) -> Result<(), RefusalError> {
        let json = serde_json::to_string(&refusal).map_err(corrupt)?;
        let keep = self.bounds.per_provider as i64;
        let oldest = refusal.at - self.bounds.keep_secs;
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO refusals (provider, at, reason, refusal) VALUES (?1, ?2, ?3, ?4)",
                    params![refusal.provider, refusal.at, refusal.reason, json],
                )?;
                conn.execute(
                    "DELETE FROM refusals WHERE provider = ?1 AND id <= (
                         SELECT id FROM refusals WHERE provider = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    params![refusal.provider, keep],
                )?;
                conn.execute("DELETE FROM refusals WHERE at <= ?1", [oldest])?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn list(&self, provider: Option<&str>, limit: usize) -> Result<Vec<Refusal>, RefusalError> {
        let provider = provider.map(str::to_string);
        let limit = capped(provider.as_deref(), limit, self.bounds) as i64;
        let oldest = webhooks_core::time::unix_now() - self.bounds.keep_secs;
        let rows: Vec<String> = self
            .db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT refusal FROM refusals WHERE (?1 IS NULL OR provider = ?1) AND at > ?2
                     ORDER BY id DESC LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![provider, oldest, limit], |r| r.get(0))?;
                rows.collect()
            })
            .await?;
        rows.iter()
            .map(|json| serde_json::from_str(json).map_err(corrupt))
            .collect()
    }

    async fn counts(&self, provider: Option<&str>) -> Result<BTreeMap<String, u64>, RefusalError> {
        let provider = provider.map(str::to_string);
        let oldest = webhooks_core::time::unix_now() - self.bounds.keep_secs;
        let rows: Vec<(String, i64)> = self
            .db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT reason, COUNT(*) FROM refusals WHERE (?1 IS NULL OR provider = ?1) AND at > ?2
                     GROUP BY reason",
                )?;
                let rows = stmt.query_map(params![provider, oldest], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect()
            })
            .await?;
        Ok(rows.into_iter().map(|(reason, n)| (reason, n.max(0) as u64)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_refusal_contract() {
        let log = SqliteRefusals::new(
            Db::open_in_memory().unwrap(),
            webhooks_testkit::contract::refusals::BOUNDS,
        );
        webhooks_testkit::contract::refusals::run_all(&log).await;
    }

    #[tokio::test]
    async fn the_table_is_created_in_a_database_made_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            // A database as an earlier version left it: no refusals table.
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(crate::schema::SCHEMA).unwrap();
            conn.execute_batch("DROP TABLE refusals").unwrap();
            conn.pragma_update(None, "user_version", crate::schema::MIGRATIONS.len())
                .unwrap();
        }
        let db = Db::open(&path, crate::writer::Durability::Normal).unwrap();
        let log = SqliteRefusals::new(db, RefusalBounds::default());
        let refusal = Refusal {
            at: webhooks_core::time::unix_now(),
            provider: "p".into(),
            status: 401,
            reason: "missing_signature".into(),
            request_id: "r".into(),
            source_ip: None,
            body_bytes: 0,
            present: vec![],
            absent: vec![],
        };
        log.record(refusal.clone()).await.unwrap();
        assert_eq!(log.list(None, 10).await.unwrap(), [refusal]);
    }
}
