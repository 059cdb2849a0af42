//! The embedded database's schema, in one place: the `events` table (one row
//! per event record, keyed `provider#event_id`, in arrival order by rowid),
//! the `queue` table (one row per message; a message of an admitted event
//! refers to its record by `event_pk` instead of copying it) and the inbox
//! cursor (an admitted event's first message is a flag on its record until
//! a receive takes it: see [`crate::queue`]). Databases of earlier versions are
//! brought up to date by [`MIGRATIONS`] (tables added later, like
//! `refusals`, are created by the schema's `IF NOT EXISTS` on every open), recorded in `PRAGMA user_version`.
//! The file is an ordinary SQLite database: `sqlite3 webhooks.db` reads it.

use crate::writer::DbError;
use rusqlite::Connection;

/// Changes to databases made by earlier versions, applied in order and
/// recorded in `PRAGMA user_version`.
pub(crate) const MIGRATIONS: [&str; 6] = [
    // 1: queue messages may refer to their event record instead of copying it.
    "ALTER TABLE queue ADD COLUMN event_pk TEXT",
    // 2: events are listed newest first by rowid; one index less per write.
    "DROP INDEX IF EXISTS events_by_received",
    // 3: a message that refers to its record keeps the delivering request's id.
    "ALTER TABLE queue ADD COLUMN request_id TEXT",
    // 4: a record keeps its attempt history and when its next attempt is due.
    "ALTER TABLE events ADD COLUMN history TEXT NOT NULL DEFAULT '[]';
     ALTER TABLE events ADD COLUMN next_attempt_at INTEGER;",
    // 5: an admitted event's first queue message is folded into its record
    //    (the inbox, see crate::queue); the expiry index keeps finished
    //    records only (created by the schema). Messages already in `queue`
    //    stay there.
    //    The cursor starts past every record there is: their messages, if
    //    any, are `queue` rows already.
    "ALTER TABLE events ADD COLUMN inbox INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE events ADD COLUMN request_id TEXT;
     DROP INDEX IF EXISTS events_by_expiry;
     UPDATE inbox_cursor SET last_rowid = (SELECT IFNULL(MAX(rowid), 0) FROM events);",
    // 6: a form event keeps the body it arrived as, for forwards and replays.
    "ALTER TABLE events ADD COLUMN original_type TEXT;
     ALTER TABLE events ADD COLUMN original_body BLOB;",
];

pub(crate) const SCHEMA: &str = r#"
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
    results         TEXT NOT NULL DEFAULT '{}',
    -- The newest attempt entries, a JSON array, oldest first.
    history         TEXT NOT NULL DEFAULT '[]',
    -- While QUEUED after a retryable failure: when the retry is due.
    next_attempt_at INTEGER,
    -- 1: admitted with its first queue message folded in (the inbox): a
    -- message nobody has received while rowid > inbox_cursor.last_rowid.
    inbox           INTEGER NOT NULL DEFAULT 0,
    -- With inbox: the id of the request that delivered the event.
    request_id      TEXT,
    -- For an event whose payload is not the body that arrived (a form
    -- body): that body's content type and bytes. NULL otherwise.
    original_type   TEXT,
    original_body   BLOB
);
-- How far the queue has read the inbox (one row).
CREATE TABLE IF NOT EXISTS inbox_cursor (
    one        INTEGER PRIMARY KEY CHECK (one = 1),
    last_rowid INTEGER NOT NULL
);
INSERT OR IGNORE INTO inbox_cursor (one, last_rowid) VALUES (1, 0);
-- Only finished records expire, so only they are indexed by expiry: ingest,
-- which writes QUEUED records, leaves this index alone.
CREATE INDEX IF NOT EXISTS events_expiring ON events(expires_at) WHERE state IN ('DONE', 'IGNORED');
CREATE TABLE IF NOT EXISTS queue (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The envelope; empty when event_pk names the record that holds the event.
    body          TEXT NOT NULL,
    event_pk      TEXT,
    -- With event_pk: the id of the request that delivered the event.
    request_id    TEXT,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    dead          INTEGER NOT NULL DEFAULT 0,
    dead_reason   TEXT,
    enqueued_at   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_ready ON queue(dead, visible_at_ms);
-- Refused deliveries, newest by id; names and numbers only (see
-- webhooks_core::ports::refusals). Created here, not by a migration, so a
-- database of an earlier version gets it on open as well.
CREATE TABLE IF NOT EXISTS refusals (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    at       INTEGER NOT NULL,
    reason   TEXT NOT NULL,
    -- The refusal as JSON.
    refusal  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refusals_by_provider ON refusals(provider, id);
"#;

/// Creates the schema, or brings a database of an earlier version up to date.
pub(crate) fn migrate(conn: &Connection) -> Result<(), DbError> {
    let fresh: bool = conn.query_row("SELECT COUNT(*) = 0 FROM sqlite_master WHERE name = 'queue'", [], |r| {
        r.get(0)
    })?;
    conn.execute_batch(SCHEMA)?;
    let version: usize = if fresh {
        MIGRATIONS.len()
    } else {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))?
    };
    // Each step and its version number in one transaction: a crash in the
    // middle of a step leaves the database as it was before it.
    for (done, step) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {step}; PRAGMA user_version = {}; COMMIT;",
            done + 1
        ))?;
    }
    conn.pragma_update(None, "user_version", MIGRATIONS.len())?;
    Ok(())
}
