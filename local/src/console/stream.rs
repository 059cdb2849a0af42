//! The live tail: server-sent events that add (or update) rows of the
//! events table as records arrive or change, without a reload.
//!
//! Each connection polls the store once a second for the newest records
//! under the page's filters and sends those that are new or changed since
//! it last looked (or, on its first look, changed since the page was
//! rendered, so nothing that arrived in between is missed). Rows travel as
//! JSON data; the page's script writes them with `textContent`, never as
//! markup.

use super::pages::{event_href, next_attempt};
use super::query::Filters;
use super::Console;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use webhooks_core::event::{EventRecord, EventState};
use webhooks_core::time::iso8601;

/// How often a tail looks at the store.
const POLL: Duration = Duration::from_secs(1);
/// The newest records one look reads.
const WINDOW: usize = 100;

#[derive(Deserialize)]
pub struct TailQuery {
    #[serde(flatten)]
    filters: Filters,
    /// The page's render time (Unix seconds): changes from then on are sent.
    #[serde(default)]
    after: String,
}

/// One row of the events table, as the script renders it.
#[derive(Debug, Serialize)]
pub struct Row {
    key: String,
    href: String,
    received: String,
    provider: String,
    event_type: String,
    event_id: String,
    state: &'static str,
    attempts: u32,
    next_attempt: Option<String>,
    last_error: String,
}

impl From<&EventRecord> for Row {
    fn from(r: &EventRecord) -> Self {
        Self {
            key: r.key().as_string(),
            href: event_href(&r.provider, &r.event_id),
            received: iso8601(r.received_at),
            provider: r.provider.to_string(),
            event_type: r.event_type.to_string(),
            event_id: r.event_id.to_string(),
            state: r.state.as_str(),
            attempts: r.attempts,
            next_attempt: next_attempt(r).map(iso8601),
            last_error: r.last_error.clone().unwrap_or_default(),
        }
    }
}

/// What a tail has already sent, by key.
type Seen = HashMap<String, (i64, EventState, u32)>;

struct Tail {
    console: Arc<Console>,
    filters: super::query::Parsed,
    after: i64,
    seen: Seen,
}

impl Tail {
    /// The rows new or changed since the last look.
    async fn look(&mut self) -> Vec<Row> {
        let records = match self.filters.matching(self.console.store.as_ref(), WINDOW).await {
            Ok((records, _)) => records,
            Err(e) => {
                tracing::debug!(error = %e, "console tail: store unavailable; next look in a second");
                return Vec::new();
            }
        };
        let mut rows = Vec::new();
        // Only this window is remembered: a tail open for hours under load
        // kept every key it had ever shown (about 10 KB a second per open
        // page). A record that leaves the window and comes back (older ones
        // deleted) is sent again; the page updates its row in place.
        let mut window = Seen::with_capacity(records.len());
        // Oldest first, so the script's inserts at the top end newest first.
        for r in records.iter().rev() {
            let mark = (r.updated_at, r.state, r.attempts);
            let key = r.key().as_string();
            if r.updated_at >= self.after && self.seen.get(&key) != Some(&mark) {
                rows.push(Row::from(r));
            }
            window.insert(key, mark);
        }
        self.seen = window;
        rows
    }
}

/// GET /console/stream.
pub async fn tail(
    State(console): State<Arc<Console>>,
    Query(q): Query<TailQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let tail = Tail {
        console,
        filters: q.filters.parse(),
        // The page was rendered in this second or later: a second's margin.
        after: q.after.trim().parse::<i64>().map(|t| t - 1).unwrap_or(0),
        seen: Seen::new(),
    };
    let stream = futures::stream::unfold((tail, true), |(mut tail, first)| async move {
        if !first {
            tokio::time::sleep(POLL).await;
        }
        let rows = tail.look().await;
        let event = if rows.is_empty() {
            Event::default().comment("no change")
        } else {
            Event::default()
                .event("rows")
                .json_data(&rows)
                .unwrap_or_else(|_| Event::default().comment("unencodable rows"))
        };
        Some((Ok(event), (tail, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::guard::Access;
    use webhooks_core::event::Event as Delivery;
    use webhooks_core::payload::Payload;
    use webhooks_core::ports::store::{Claim, EventStore};

    #[tokio::test]
    async fn a_tail_remembers_only_the_rows_in_its_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = webhooks_sqlite::SqliteBackend::open(&dir.path().join("tail.db"), webhooks_sqlite::Durability::Normal)
            .expect("db");
        let store = db.store();
        let console = Console::new(store.clone(), db.queue(), Access::Loopback, "test".into());
        let mut tail = Tail {
            console: Arc::new(console),
            filters: Filters::default().parse(),
            after: 0,
            seen: Seen::new(),
        };
        for round in 0..3 {
            for i in 0..WINDOW {
                let id = format!("evt_{round}_{i}");
                let event = Delivery {
                    provider: "gigstack".into(),
                    id: id.as_str().into(),
                    event_type: "invoice.created".into(),
                    received_at: 1_000 + round as i64,
                    payload: Payload::from_text(format!(r#"{{"id":"{id}"}}"#)),
                    request_id: None,
                    original: None,
                };
                let claim = Claim {
                    event: &event,
                    state: EventState::Ignored,
                    now: 1_000 + round as i64,
                    lease_secs: 60,
                    ttl_secs: 86_400,
                };
                store.claim(claim).await.expect("claim");
            }
            let rows = tail.look().await;
            assert_eq!(rows.len(), WINDOW, "round {round}: the window's new rows are sent");
            assert_eq!(tail.seen.len(), WINDOW, "round {round}: only the window is remembered");
            assert!(tail.look().await.is_empty(), "round {round}: nothing is sent twice");
        }
    }
}
