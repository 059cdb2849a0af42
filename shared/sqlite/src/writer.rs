//! The one writer of the embedded database, shared by the SQLite event
//! store, queue and admission.
//!
//! One connection, owned by one thread that runs every operation. Operations
//! that arrive while the thread is busy are run together in one transaction
//! and committed once: a group commit. Nobody gets an answer before the
//! commit that holds their writes, so an acknowledged claim and enqueue are
//! on disk; many requests share the cost of one commit (and, with
//! `Durability::Full`, of one fsync). Should an operation fail, the group is
//! rolled back and each operation is run again in a transaction of its own,
//! so one failure never undoes another caller's writes.
//!
//! WAL mode: a committed transaction survives a kill -9 of the process with
//! `synchronous=NORMAL`; `FULL` adds power-loss durability.
//!
//! Checkpoints run on a thread of their own, nudged after each commit (see
//! [`start_checkpointer`]). A passive checkpoint copies the WAL back into
//! the database but cannot make the WAL start over: only a write that
//! begins when every frame has been copied does, and under sustained load
//! the writer always has a few frames the checkpoint has not reached yet, so
//! the WAL grew without bound (437 MB in 20 s of load, as large as the
//! database). So after a commit that leaves the WAL file past
//! [`WAL_LIMIT_BYTES`], the writer runs one `RESTART` checkpoint itself,
//! between two groups: it copies what the checkpointer has not, the next
//! write starts the WAL over, and that write cuts the file back to the limit
//! (`journal_size_limit`, set on the writer's connection: the one that
//! restarts the WAL). The two take turns ([`Checkpoints::turn`]): a
//! `RESTART` that meets a running checkpoint gives up at once. Run from the
//! checkpointer's connection instead, a `RESTART` waited for the writer's
//! lock, which the writer takes again after every commit, and starved. A
//! reader that keeps an old snapshot (a `sqlite3` shell inside a
//! transaction) pins the WAL: the `RESTART` then waits at most
//! [`RESTART_PATIENCE`] and is not tried again for [`RESTART_RETRY`].

use rusqlite::Connection;
use std::path::Path;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
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
    #[error("the database is behind: {0} operations are waiting; try again")]
    Behind(usize),
}

/// Most operations committed together.
const MAX_GROUP: usize = 512;

/// The least time between two WAL checkpoints. They follow the commits
/// (the writer nudges the checkpointer after each one), so each copies
/// only a few milliseconds of writes: on a busy single core a long one would
/// hold the CPU for milliseconds. An idle database is not checkpointed.
const CHECKPOINT_GAP: std::time::Duration = std::time::Duration::from_millis(2);

/// The WAL size past which the writer makes the next write start the WAL
/// over, and what the file is cut back to when it does: a few seconds of
/// writes at full load, so the writer is held up (about 3 ms) every few
/// seconds.
const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Operations waiting for the database thread, at most. A request has one
/// waiting at a time, so only an overload reaches it (senders timing out
/// and sending again while their first copies still wait): the next one is
/// then refused at once ([`DbError::Behind`]; ingest answers 503 and the
/// sender retries) instead of queuing without end, each holding a delivery.
const MAX_WAITING: usize = 4_096;

/// How long a connection waits for another's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the writer's `RESTART` waits for a reader to leave the WAL.
const RESTART_PATIENCE: Duration = Duration::from_millis(10);

/// After a `RESTART` that a reader kept from finishing, the next try is no
/// sooner than this: the writer is held up at most 10 ms a second.
const RESTART_RETRY: Duration = Duration::from_secs(1);

/// A handle to the database; cheap to clone. The thread ends, and the
/// connection closes, when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Db {
    jobs: mpsc::SyncSender<Box<dyn Job>>,
    /// How many may wait (the channel's bound), for the error that says so.
    waiting_limit: usize,
}

/// What a database may hold back: the WAL's size, the operations waiting.
#[derive(Debug, Clone, Copy)]
struct Limits {
    wal_bytes: u64,
    waiting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wal_bytes: WAL_LIMIT_BYTES,
            waiting: MAX_WAITING,
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating if needed) the database file and its schema.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, DbError> {
        Self::open_with(path, durability, Limits::default())
    }

    /// [`Db::open`], with its limits chosen (tests use small ones).
    fn open_with(path: &Path, durability: Durability, limits: Limits) -> Result<Self, DbError> {
        let wal_limit_bytes = limits.wal_bytes;
        let open = || {
            Connection::open(path).map_err(|source| DbError::Open {
                path: path.display().to_string(),
                source,
            })
        };
        let (nudge, nudged) = mpsc::sync_channel(1);
        let turn = Arc::new(Mutex::new(()));
        let writer = open()?;
        // The WAL is started over by the writer's connection: its limit is
        // the one that cuts the file back.
        writer.pragma_update(None, "journal_size_limit", wal_limit_bytes as i64)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let checkpoints = Checkpoints {
            nudge,
            turn: turn.clone(),
            wal: PathBuf::from(wal),
            wal_limit_bytes,
            next_restart: Instant::now(),
        };
        let db = Self::init(writer, durability, Some(checkpoints), limits.waiting)?;
        start_checkpointer(open()?, nudged, turn)?;
        Ok(db)
    }

    /// A private in-memory database, for tests.
    #[cfg(test)]
    pub fn open_in_memory() -> Result<Self, DbError> {
        Self::init(Connection::open_in_memory()?, Durability::Normal, None, MAX_WAITING)
    }

    /// `checkpoints`: nudged after every commit (none for in-memory databases).
    fn init(
        conn: Connection,
        durability: Durability,
        checkpoints: Option<Checkpoints>,
        max_waiting: usize,
    ) -> Result<Self, DbError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        // Checkpoints run on their own thread (see `start_checkpointer`).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Temporary structures in memory, and a 1 MiB page cache: the claim
        // path's hot pages are the key index's upper levels and the table's
        // tail, which fit; 4 MiB measured no faster under load and held
        // 3.5 MiB more of the process's memory.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "cache_size", -1_024)?;
        crate::schema::migrate(&conn)?;
        let (jobs, inbox) = mpsc::sync_channel::<Box<dyn Job>>(max_waiting);
        std::thread::Builder::new()
            .name("webhooks-db".into())
            .spawn(move || run(conn, inbox, checkpoints))
            .map_err(|e| DbError::Commit(format!("cannot start the database thread: {e}")))?;
        Ok(Self {
            jobs,
            waiting_limit: max_waiting,
        })
    }

    /// Runs `f` on the database thread, inside a transaction shared with
    /// whatever else is waiting; answers after the commit. `f` may run twice
    /// (the second time alone, if another operation of its group failed), so
    /// it must not consume what it captured.
    pub async fn call<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Call { f, result: None, reply });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => DbError::Behind(self.waiting_limit),
            mpsc::TrySendError::Disconnected(_) => DbError::Closed,
        })?;
        answer.await.map_err(|_| DbError::Closed)?
    }
}

/// Copies the WAL back into the database file after commits, at most every
/// [`CHECKPOINT_GAP`], on a connection and a thread of its own, so no
/// request waits for it (with `synchronous=NORMAL` a checkpoint is where the
/// fsync happens). A passive checkpoint never blocks the writer. Ends, with
/// a final checkpoint that empties the WAL file, when the database thread
/// does. Checkpoints take turns with the writer's `RESTART` (`turn`).
fn start_checkpointer(conn: Connection, nudged: mpsc::Receiver<()>, turn: Arc<Mutex<()>>) -> Result<(), DbError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    std::thread::Builder::new()
        .name("webhooks-checkpoint".into())
        .spawn(move || {
            let in_turn = |mode: &str| {
                let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
                checkpoint(&conn, mode);
            };
            while nudged.recv().is_ok() {
                in_turn("PASSIVE");
                std::thread::sleep(CHECKPOINT_GAP);
            }
            in_turn("TRUNCATE");
        })
        .map_err(|e| DbError::Commit(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

/// Runs a checkpoint in `mode`; whether it finished. It does not when
/// another checkpoint holds the lock (a `RESTART` then gives up at once,
/// whatever the busy timeout), or a reader or writer is in the way.
fn checkpoint(conn: &Connection, mode: &str) -> bool {
    match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get::<_, i64>(0)) {
        Ok(busy) => busy == 0,
        Err(e) => {
            tracing::warn!(error = %e, mode, "WAL checkpoint failed; the next one retries");
            false
        }
    }
}

/// The writer's side of the checkpoints.
struct Checkpoints {
    /// Wakes the checkpointer after a commit.
    nudge: mpsc::SyncSender<()>,
    /// Held by whichever of the checkpointer and the writer checkpoints.
    turn: Arc<Mutex<()>>,
    /// The WAL file, whose length is checked after each commit.
    wal: PathBuf,
    wal_limit_bytes: u64,
    /// No `RESTART` before this.
    next_restart: Instant,
}

impl Checkpoints {
    /// After a commit, once its callers are answered: past the limit, the
    /// `RESTART` that makes the next write start the WAL over (see the
    /// module docs); then the checkpointer's nudge.
    fn after_commit(&mut self, conn: &Connection) {
        let past_limit = std::fs::metadata(&self.wal).is_ok_and(|m| m.len() > self.wal_limit_bytes);
        if past_limit && Instant::now() >= self.next_restart {
            let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
            let started = Instant::now();
            let patience = conn.busy_timeout(RESTART_PATIENCE);
            let restarted = patience.is_ok() && checkpoint(conn, "RESTART");
            if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
                tracing::warn!(error = %e, "could not restore the database's busy timeout");
            }
            let held_ms = started.elapsed().as_secs_f64() * 1000.0;
            if restarted {
                tracing::debug!(held_ms, "WAL copied back in full; the next write starts it over");
            } else {
                self.next_restart = Instant::now() + RESTART_RETRY;
                tracing::debug!(
                    held_ms,
                    "WAL not started over (a reader holds it, or the checkpoint failed); trying again in a second"
                );
            }
        }
        // Full means a checkpoint is already due: nothing to add.
        let _ = self.nudge.try_send(());
    }
}

/// One operation: run inside the group transaction, answered after it ends.
trait Job: Send {
    /// Runs the operation; false when it failed.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once its transaction has committed (or not).
    fn finish(self: Box<Self>, committed: Result<(), String>);
}

struct Call<T, F> {
    f: F,
    result: Option<Result<T, rusqlite::Error>>,
    reply: oneshot::Sender<Result<T, DbError>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send + 'static,
    F: Fn(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        // A panicking operation is a bug; it fails alone instead of taking
        // the database thread (and every later request) down with it.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.f)(conn)))
            .unwrap_or(Err(rusqlite::Error::InvalidQuery));
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
fn run(conn: Connection, inbox: mpsc::Receiver<Box<dyn Job>>, mut checkpoints: Option<Checkpoints>) {
    while let Ok(first) = inbox.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match inbox.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match run_in_transaction(&conn, &mut group) {
            Outcome::Committed => {
                group.into_iter().for_each(|job| job.finish(Ok(())));
                if let Some(checkpoints) = checkpoints.as_mut() {
                    checkpoints.after_commit(&conn);
                }
            }
            // Nothing of the group was kept; each operation runs again
            // alone, so only the failing one fails.
            Outcome::JobFailed if group.len() > 1 => {
                for mut job in group {
                    let alone = run_in_transaction(&conn, std::slice::from_mut(&mut job));
                    job.finish(alone.into_result());
                }
            }
            outcome => {
                let result = outcome.into_result();
                group.into_iter().for_each(|job| job.finish(result.clone()));
            }
        }
    }
}

/// How a transaction ended.
enum Outcome {
    Committed,
    /// An operation failed (its error is in its result); rolled back.
    JobFailed,
    /// BEGIN or COMMIT failed; rolled back.
    Failed(String),
}

impl Outcome {
    /// What the operations of this transaction are told: their own result
    /// stands unless the transaction itself failed.
    fn into_result(self) -> Result<(), String> {
        match self {
            Outcome::Committed | Outcome::JobFailed => Ok(()),
            Outcome::Failed(e) => Err(e),
        }
    }
}

fn run_in_transaction(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Outcome {
    let step = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map_err(|e| e.to_string())
    };
    if let Err(e) = step("BEGIN IMMEDIATE") {
        return Outcome::Failed(e);
    }
    for job in jobs.iter_mut() {
        if !job.run(conn) {
            let _ = step("ROLLBACK");
            return Outcome::JobFailed;
        }
    }
    match step("COMMIT") {
        Ok(_) => Outcome::Committed,
        Err(e) => {
            let _ = step("ROLLBACK");
            Outcome::Failed(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::MIGRATIONS;

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
    async fn a_database_of_the_first_version_is_migrated_and_keeps_its_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v0.db");
        {
            let old = Connection::open(&path).expect("open");
            old.execute_batch(
                "CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL,
                     visible_at_ms INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0,
                     dead INTEGER NOT NULL DEFAULT 0, dead_reason TEXT, enqueued_at INTEGER NOT NULL);
                 CREATE TABLE events (pk TEXT PRIMARY KEY, provider TEXT NOT NULL, event_id TEXT NOT NULL,
                     event_type TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
                     last_error TEXT, received_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
                     lease_until INTEGER, expires_at INTEGER NOT NULL, payload TEXT,
                     payload_omitted INTEGER NOT NULL DEFAULT 0, results TEXT NOT NULL DEFAULT '{}');
                 CREATE INDEX events_by_received ON events(received_at);
                 INSERT INTO queue (body, visible_at_ms, enqueued_at) VALUES
                     ('{\"provider\":\"p\",\"id\":\"e1\",\"type\":\"t\",\"received_at\":1,\"payload\":{}}', 0, 0);
                 INSERT INTO events (pk, provider, event_id, event_type, state, attempts, received_at, updated_at, expires_at)
                     VALUES ('p#old', 'p', 'old', 't', 'DONE', 1, 1, 2, 3);",
            )
            .expect("old schema");
        }
        let db = Db::open(&path, Durability::Normal).expect("migrates");
        let queue = crate::queue::SqliteQueue::new(db.clone());
        let got = webhooks_core::ports::queue::Queue::receive(&queue, 10, std::time::Duration::from_secs(30))
            .await
            .expect("receive");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event.id, "e1");
        let store = crate::store::SqliteStore::new(db.clone());
        let old =
            webhooks_core::ports::store::EventStore::get(&store, &webhooks_core::event::EventKey::new("p", "old"))
                .await
                .expect("an old record reads")
                .expect("kept");
        assert!(old.history.is_empty(), "an old record has an empty history");
        assert_eq!(old.original, None, "and no original body");
        assert_eq!(old.next_attempt_at, None);
        let (version, old_index): (i64, i64) = db
            .call(|c| {
                Ok((
                    c.pragma_query_value(None, "user_version", |r| r.get(0))?,
                    c.query_row(
                        "SELECT COUNT(*) FROM sqlite_master WHERE name = 'events_by_received'",
                        [],
                        |r| r.get(0),
                    )?,
                ))
            })
            .await
            .expect("version");
        assert_eq!((version, old_index), (MIGRATIONS.len() as i64, 0));
    }

    /// Under writes that never pause, the WAL is still started over: without
    /// the writer's `RESTART` it grew by everything written (here 24 MiB).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_near_its_limit_under_sustained_writes() {
        const LIMIT: u64 = 1024 * 1024;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal.db");
        let wal = dir.path().join("wal.db-wal");
        let db = blob_table(&path, LIMIT).await;
        // 24 MiB in 3,000 writes of 8 KiB, 64 in flight at a time: the writer
        // always has the next group waiting.
        let mut largest = 0;
        write_blobs(&db, 3_000, 64, || {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        })
        .await;
        let largest_mib = largest as f64 / 1_048_576.0;
        assert!(
            largest_mib < 8.0,
            "the WAL reached {largest_mib:.1} MiB with a 1 MiB limit"
        );
        let n: i64 = db
            .call(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .await
            .expect("count");
        assert_eq!(n, 3_000, "nothing was lost to the restarts");
    }

    /// A database at `path` whose WAL is limited to `wal_bytes`, with a
    /// table `t` of blobs.
    async fn blob_table(path: &Path, wal_bytes: u64) -> Db {
        let limits = Limits {
            wal_bytes,
            ..Limits::default()
        };
        let db = Db::open_with(path, Durability::Normal, limits).expect("db");
        db.call(|c| c.execute_batch("CREATE TABLE t (v BLOB)"))
            .await
            .expect("create");
        db
    }

    /// `n` writes of 8 KiB into `t`, `in_flight` at a time; `each` runs as
    /// each one is answered.
    async fn write_blobs(db: &Db, n: usize, in_flight: usize, mut each: impl FnMut()) {
        let mut writes: tokio::task::JoinSet<Result<usize, DbError>> = tokio::task::JoinSet::new();
        for _ in 0..n {
            if writes.len() >= in_flight {
                writes
                    .join_next()
                    .await
                    .expect("a write")
                    .expect("join")
                    .expect("insert");
                each();
            }
            let db = db.clone();
            writes.spawn(async move {
                db.call(|c| c.execute("INSERT INTO t VALUES (zeroblob(8192))", []))
                    .await
            });
        }
        while let Some(done) = writes.join_next().await {
            done.expect("join").expect("insert");
            each();
        }
    }

    /// A reader inside a transaction keeps its snapshot, so the WAL cannot
    /// start over; the writer's `RESTART` waits for it only briefly, and
    /// once a second at most (waiting the full busy timeout on every
    /// commit, these writes took minutes). Once the reader leaves, the WAL
    /// is cut back (which takes the size limit on the writer's connection:
    /// on the checkpointer's, the file stayed at its largest).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_holding_the_wal_does_not_hold_the_writer_up() {
        const LIMIT: u64 = 256 * 1024;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pinned.db");
        let wal_len = || {
            std::fs::metadata(dir.path().join("pinned.db-wal"))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let db = blob_table(&path, LIMIT).await;
        let reader = Connection::open(&path).expect("reader");
        reader.execute_batch("BEGIN").expect("begin");
        let seen: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("read");
        assert_eq!(seen, 0);
        tokio::time::timeout(Duration::from_secs(30), write_blobs(&db, 400, 16, || {}))
            .await
            .expect("the writes go on while the reader holds the WAL");
        let pinned = wal_len();
        assert!(
            pinned > 2 * LIMIT,
            "the reader kept the WAL from starting over: {pinned} bytes"
        );
        reader.execute_batch("COMMIT").expect("the reader leaves");
        tokio::time::sleep(RESTART_RETRY).await;
        write_blobs(&db, 200, 16, || {}).await;
        let after = wal_len();
        assert!(
            after < pinned,
            "the WAL was cut back: {after} bytes, {pinned} while pinned"
        );
    }

    /// With the database thread held up, operations wait up to the limit;
    /// the next is refused at once instead of queuing, and the waiting ones
    /// all commit once the thread is free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_overloaded_database_refuses_at_once_past_its_waiting_limit() {
        const WAITING: usize = 8;
        // Polls once: a call sends its operation then, and waits for the answer.
        fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            std::pin::Pin::new(f).poll(&mut cx)
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = Limits {
            waiting: WAITING,
            ..Limits::default()
        };
        let db = Db::open_with(&dir.path().join("busy.db"), Durability::Normal, limits).expect("db");
        db.call(|c| c.execute_batch("CREATE TABLE t (v INTEGER)"))
            .await
            .expect("create");
        // An operation that holds the thread until released.
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started_tx, released) = (Mutex::new(started_tx), Mutex::new(released));
        let holder = {
            let db = db.clone();
            tokio::spawn(async move {
                db.call(move |_| {
                    let _ = started_tx.lock().map(|tx| tx.send(()));
                    let _ = released.lock().map(|rx| rx.recv_timeout(Duration::from_secs(20)));
                    Ok(())
                })
                .await
            })
        };
        started.recv_timeout(Duration::from_secs(20)).expect("the holder runs");
        // Each call is sent on its first poll, and then waits for its answer.
        let mut waiting = Vec::new();
        for i in 0..WAITING {
            let mut call = Box::pin(db.call(move |c| c.execute("INSERT INTO t VALUES (?1)", [i as i64])));
            assert!(poll_once(&mut call).is_pending(), "call {i} waits");
            waiting.push(call);
        }
        let refused = poll_once(&mut Box::pin(db.call(|c| c.execute("INSERT INTO t VALUES (-1)", []))));
        assert!(
            matches!(refused, std::task::Poll::Ready(Err(DbError::Behind(WAITING)))),
            "refused at once: {refused:?}"
        );
        release.send(()).expect("release");
        holder.await.expect("join").expect("the holder commits");
        for call in waiting {
            call.await.expect("each waiting call commits");
        }
        let n: i64 = db
            .call(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .await
            .expect("count");
        assert_eq!(n, WAITING as i64);
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
