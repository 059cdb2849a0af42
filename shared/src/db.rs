//! The embedded SQLite database shared by the SQLite event store, queue and
//! intake.
//!
//! One connection, owned by one thread that runs every operation. Operations
//! that arrive while the thread is busy are run together in one transaction,
//! each inside its own savepoint (so one failing operation undoes only its
//! own writes), and committed once: a group commit. Nobody gets an answer
//! before the commit that holds their writes, so an acknowledged claim and
//! enqueue are on disk; many requests share the cost of one commit (and, with
//! `Durability::Full`, of one fsync).
//!
//! WAL mode: a committed transaction survives a kill -9 of the process with
//! `synchronous=NORMAL`; `FULL` adds power-loss durability.

use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// How hard SQLite works to survive a power loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Survives a process crash (kill -9); the last commits may be lost on power loss.
    #[default]
    Normal,
    /// Survives power loss: fsync on every commit.
    Full,
}

/// Why the database could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database commit failed: {0}")]
    Commit(String),
    #[error("database thread has stopped")]
    Closed,
}

/// Most operations committed together.
const MAX_GROUP: usize = 512;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    pk              TEXT PRIMARY KEY,
    provider        TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    received_at     INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    lease_until     INTEGER,
    expires_at      INTEGER NOT NULL,
    payload         TEXT,
    payload_omitted INTEGER NOT NULL DEFAULT 0,
    results         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_by_received ON events(received_at);
CREATE INDEX IF NOT EXISTS events_by_expiry ON events(expires_at);
CREATE TABLE IF NOT EXISTS queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    body          TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    dead          INTEGER NOT NULL DEFAULT 0,
    dead_reason   TEXT,
    enqueued_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_ready ON queue(dead, visible_at_ms);
"#;

/// A handle to the database; cheap to clone. The thread ends, and the
/// connection closes, when the last handle is dropped.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating if needed) the database file and its schema.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, DbError> {
        let conn = Connection::open(path).map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::init(conn, durability)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, DbError> {
        Self::init(Connection::open_in_memory()?, Durability::Normal)
    }

    fn init(conn: Connection, durability: Durability) -> Result<Self, DbError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.execute_batch(SCHEMA)?;
        let (jobs, inbox) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("webhooks-db".into())
            .spawn(move || run(conn, inbox))
            .map_err(|e| DbError::Commit(format!("cannot start the database thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `f` on the database thread, inside a transaction shared with
    /// whatever else is waiting (its own savepoint: an error undoes only
    /// `f`'s writes). Answers after the commit.
    pub async fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call {
            f: Some(f),
            result: None,
            reply,
        });
        self.jobs.send(job).map_err(|_| DbError::Closed)?;
        answer.await.map_err(|_| DbError::Closed)?
    }
}

/// One operation: run inside the group transaction, answered after it ends.
trait Job: Send {
    /// Runs the operation; false when it failed (its savepoint is rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group transaction has committed (or not).
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

struct Call<T, F> {
    f: Option<F>,
    result: Option<Result<T, rusqlite::Error>>,
    reply: oneshot::Sender<Result<T, DbError>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.f.take() {
            Some(f) => f(conn),
            None => Err(rusqlite::Error::InvalidQuery),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), String>) {
        let answer = match (committed, self.result) {
            (Err(e), _) => Err(DbError::Commit(e)),
            (Ok(()), Some(result)) => result.map_err(DbError::Sql),
            (Ok(()), None) => Err(DbError::Closed),
        };
        // The caller may have gone away (its request was cancelled): fine.
        let _ = self.reply.send(answer);
    }
}

/// The database thread: takes what is waiting, runs it in one transaction,
/// commits, answers; until every handle is dropped.
fn run(conn: Connection, inbox: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = inbox.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let committed = run_group(&conn, &mut group);
        if committed.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for job in group {
            job.finish(committed.clone());
        }
    }
}

fn run_group(conn: &Connection, group: &mut [Box<dyn Job>]) -> Result<(), String> {
    let text = |e: rusqlite::Error| e.to_string();
    conn.execute_batch("BEGIN IMMEDIATE").map_err(text)?;
    for job in group.iter_mut() {
        conn.prepare_cached("SAVEPOINT job")
            .and_then(|mut s| s.execute([]))
            .map_err(text)?;
        // A panicking operation is a bug; it fails alone instead of taking
        // the database thread (and every later request) down with it.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn))).unwrap_or(false);
        if !ran {
            conn.prepare_cached("ROLLBACK TO job")
                .and_then(|mut s| s.execute([]))
                .map_err(text)?;
        }
        conn.prepare_cached("RELEASE job")
            .and_then(|mut s| s.execute([]))
            .map_err(text)?;
    }
    conn.prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .map_err(text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_operation_undoes_only_its_own_writes() {
        let db = Db::open_in_memory().expect("db");
        db.call(|c| c.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)"))
            .await
            .expect("create");
        let ok = db.call(|c| c.execute("INSERT INTO t VALUES (1)", []));
        let failing = db.call(|c| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            c.execute("INSERT INTO t VALUES (1)", []) // unique violation
        });
        let also_ok = db.call(|c| c.execute("INSERT INTO t VALUES (3)", []));
        let (ok, failing, also_ok) = tokio::join!(ok, failing, also_ok);
        assert!(ok.is_ok() && also_ok.is_ok());
        assert!(matches!(failing, Err(DbError::Sql(_))));
        let values: Vec<i64> = db
            .call(|c| {
                let mut s = c.prepare("SELECT v FROM t ORDER BY v")?;
                let rows = s.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .await
            .expect("select");
        assert_eq!(values, [1, 3]);
    }

    #[tokio::test]
    async fn many_concurrent_operations_are_all_committed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("g.db");
        let db = Db::open(&path, Durability::Normal).expect("db");
        db.call(|c| c.execute_batch("CREATE TABLE t (v INTEGER)"))
            .await
            .expect("create");
        let calls = (0..2000).map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.call(move |c| c.execute("INSERT INTO t VALUES (?1)", [i])).await })
        });
        for call in calls.collect::<Vec<_>>() {
            call.await.expect("join").expect("insert");
        }
        drop(db);
        let reopened = Db::open(&path, Durability::Normal).expect("reopen");
        let n: i64 = reopened
            .call(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .await
            .expect("count");
        assert_eq!(n, 2000);
    }
}
