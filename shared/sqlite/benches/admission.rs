//! `cargo bench -p webhooks-sqlite --bench admission`: what a new event
//! costs the embedded database, against SQLite's own floor for the same row.
//!
//! - `admission/groups_of_32`: 32 deliveries of 1 KiB admitted at once
//!   through [`SqliteAdmission`], as 32 connections' requests reach the
//!   writer under load: they wait together, share one transaction and one
//!   commit, and are answered after it. The time is what the callers wait,
//!   per event: the writer's work and, run on one core (`taskset -c 0`, as
//!   `bench-load` pins `webhooks serve`), the checkpointer's share and the
//!   wake-ups of the answers too.
//! - `raw_insert/groups_of_32`: the same row written by the same `INSERT`
//!   straight through rusqlite on one connection, 32 to a transaction: no
//!   thread, no channel, no answers. The difference is what the group
//!   commit around SQLite costs.
//!
//! Both write into a file under `$TMPDIR`; the backend's WAL is
//! checkpointed by its own thread, the raw one's not at all (it only
//! grows, which a disk takes better than a tmpfs, whose every new page is
//! memory to clear). Figures, not assertions: see README.md, "Performance".

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rusqlite::{params, Connection};
use std::sync::Arc;
use std::time::{Duration, Instant};
use webhooks_core::event::{Event, EventState};
use webhooks_core::payload::Payload;
use webhooks_core::ports::admission::{Admission, AdmissionBatch};
use webhooks_sqlite::{Durability, SqliteBackend};

const GROUP: u64 = 32;
const NOW: i64 = 1_795_000_000;
/// Time to live of the records written, as the default configuration's.
const TTL_SECS: i64 = 7 * 86_400;

/// A gigstack `invoice.created` body of about 1 KiB with its id.
fn body(id: &str) -> String {
    let mut s = format!(r#"{{"id":"{id}","type":"invoice.created","created":1732380000,"data":{{"object":{{"items":["#);
    let mut i = 0;
    while s.len() < 1_000 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(r#"{{"sku":"SKU-{i:05}","qty":{},"price":123.45}}"#, i % 7));
        i += 1;
    }
    s.push_str("]}}}");
    s
}

fn event(n: u64) -> Event {
    let id = format!("evt_{n:012}");
    Event {
        provider: "gigstack".into(),
        event_type: "invoice.created".into(),
        received_at: NOW,
        payload: Payload::from_text(body(&id)),
        id: id.into(),
        request_id: Some("00c0ffee00c0ffee".into()),
        original: None,
    }
}

/// Runs `iters` events through `write` in groups of up to [`GROUP`], each
/// group numbered on from `next`; `write(first, n)` answers the time its
/// timed part took. The sum of those times.
fn in_groups(iters: u64, next: &mut u64, mut write: impl FnMut(u64, u64) -> Duration) -> Duration {
    let mut timed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = GROUP.min(iters - done);
        timed += write(*next, n);
        *next += n;
        done += n;
    }
    timed
}

/// Benchmark `name/groups_of_32`, per event: criterion's iterations run
/// through `write` in [`in_groups`], numbered on across its samples.
fn bench_groups_of_32(c: &mut Criterion, name: &str, mut write: impl FnMut(u64, u64) -> Duration) {
    let mut next = 0u64;
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("groups_of_32", |b| {
        b.iter_custom(|iters| in_groups(iters, &mut next, &mut write))
    });
    group.finish();
}

fn bench_admission(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = SqliteBackend::open(&dir.path().join("bench.db"), Durability::Normal).expect("open");
    let admission = backend.admission();
    bench_groups_of_32(c, "admission", |first, n| {
        // Made outside the timed part: only the database's work counts.
        let batches: Vec<AdmissionBatch> = (first..first + n)
            .map(|i| AdmissionBatch {
                events: Arc::from(vec![(event(i), EventState::Received)]),
                now: NOW,
                claim_lease_secs: 30,
                ttl_secs: TTL_SECS,
            })
            .collect();
        rt.block_on(async {
            let start = Instant::now();
            let admitted = futures::future::join_all(batches.into_iter().map(|batch| admission.admit(batch))).await;
            let elapsed = start.elapsed();
            assert!(admitted.iter().all(Result::is_ok), "every event admitted");
            elapsed
        })
    });
}

/// The row [`SqliteAdmission`] writes for a new event, by the statement it
/// uses (`webhooks_sqlite::store`), on a database the backend created.
const INSERT: &str = "INSERT INTO events (pk, provider, event_id, event_type, state, attempts, received_at, updated_at,
                                       lease_until, expires_at, payload, inbox, request_id, original_type, original_body, rowid)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
             MAX(IFNULL((SELECT MAX(rowid) FROM events), 0), (SELECT last_rowid FROM inbox_cursor)) + 1)
     ON CONFLICT(pk) DO NOTHING";

fn bench_raw_insert(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("raw.db");
    // The backend creates the schema, then lets go of the file.
    drop(SqliteBackend::open(&path, Durability::Normal).expect("open"));
    let conn = Connection::open(&path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL").expect("WAL");
    conn.pragma_update(None, "synchronous", "NORMAL").expect("synchronous");
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .expect("no checkpoints");
    conn.pragma_update(None, "cache_size", -1_024).expect("cache");
    bench_groups_of_32(c, "raw_insert", |first, n| {
        let events: Vec<Event> = (first..first + n).map(event).collect();
        let start = Instant::now();
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        for e in &events {
            let written = conn
                .prepare_cached(INSERT)
                .and_then(|mut insert| {
                    insert.execute(params![
                        e.pk(),
                        &*e.provider,
                        &*e.id,
                        &*e.event_type,
                        EventState::Queued.as_str(),
                        0,
                        NOW,
                        None::<i64>,
                        NOW + TTL_SECS,
                        e.payload.as_str(),
                        true,
                        e.request_id.as_deref(),
                        None::<&str>,
                        None::<&[u8]>,
                    ])
                })
                .expect("insert");
            assert_eq!(written, 1, "a new row");
        }
        conn.execute_batch("COMMIT").expect("commit");
        start.elapsed()
    });
}

criterion_group!(benches, bench_admission, bench_raw_insert);
criterion_main!(benches);
