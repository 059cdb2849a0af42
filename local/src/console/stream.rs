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
        // Oldest first, so the script's inserts at the top end newest first.
        for r in records.iter().rev() {
            let mark = (r.updated_at, r.state, r.attempts);
            let key = r.key().as_string();
            if r.updated_at >= self.after && self.seen.get(&key) != Some(&mark) {
                rows.push(Row::from(r));
            }
            self.seen.insert(key, mark);
        }
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
