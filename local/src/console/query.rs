//! The events view's filters, read from the query string, and the page of
//! records they select.
//!
//! The store lists newest first with a limit; a page `n` of `PAGE` rows is
//! rows `n*PAGE..(n+1)*PAGE` of one listing of `(n+1)*PAGE + 1`, so paging
//! needs no cursor in the port. Filters the port does not have (an upper
//! time bound, text in the id) are applied to a listing of up to
//! [`SCAN_CAP`] records, and the page says when that cap was reached.

use serde::Deserialize;
use webhooks_core::event::{EventRecord, EventState};
use webhooks_core::ports::store::{EventStore, ListFilter, StoreError};
use webhooks_core::time::parse_time;

/// Rows on one page.
pub const PAGE: usize = 50;
/// The most records one filtered view reads.
pub const SCAN_CAP: usize = 5000;
/// Counts per state above this are shown as "N+".
pub const COUNT_CAP: usize = 1000;

/// The filters as typed (the form's fields), kept to refill the form and
/// build links.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default, rename = "type")]
    pub event_type: String,
    /// Received at or after (Unix seconds, `YYYY-MM-DD` or ISO-8601 UTC).
    #[serde(default)]
    pub from: String,
    /// Received at or before; a date alone means its whole day.
    #[serde(default)]
    pub to: String,
    /// Text the event id contains (any case).
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub page: usize,
}

/// The filters understood, or what is wrong with them.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    pub state: Option<EventState>,
    pub provider: Option<String>,
    pub event_type: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub q: Option<String>,
    pub page: usize,
    /// Fields that could not be read; the view says so and ignores them.
    pub problems: Vec<String>,
}

fn given(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

impl Filters {
    pub fn parse(&self) -> Parsed {
        let mut problems = Vec::new();
        let state = given(&self.state).and_then(|s| {
            let parsed = EventState::parse(&s.to_ascii_uppercase());
            if parsed.is_none() {
                problems.push(format!("state {s:?} is not one of the states"));
            }
            parsed
        });
        let mut time = |field: &str, text: &str, end_of_day: bool| {
            given(text).and_then(|t| match parse_time(&t) {
                Some(secs) if end_of_day && !t.contains('T') && t.contains('-') => Some(secs + 86_399),
                Some(secs) => Some(secs),
                None => {
                    problems.push(format!(
                        "{field} {t:?} is not a time (Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)"
                    ));
                    None
                }
            })
        };
        let from = time("from", &self.from, false);
        let to = time("to", &self.to, true);
        Parsed {
            state,
            provider: given(&self.provider),
            event_type: given(&self.event_type),
            from,
            to,
            q: given(&self.q).map(|q| q.to_lowercase()),
            page: self.page.min(SCAN_CAP / PAGE),
            problems,
        }
    }

    /// The query string of these filters (without the page), for links.
    pub fn query(&self) -> String {
        let pairs = [
            ("state", &self.state),
            ("provider", &self.provider),
            ("type", &self.event_type),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
        ];
        serde_urlencoded::to_string(
            pairs
                .iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| (*k, v.trim()))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default()
    }
}

/// One page of records.
pub struct Page {
    pub rows: Vec<EventRecord>,
    pub has_older: bool,
    /// The filtered view read [`SCAN_CAP`] records and may have missed older ones.
    pub capped: bool,
}

impl Parsed {
    fn list_filter(&self, state: Option<EventState>, limit: usize) -> ListFilter {
        ListFilter {
            state,
            provider: self.provider.clone(),
            event_type: self.event_type.clone(),
            since: self.from,
            limit,
        }
    }

    /// What the port cannot filter.
    pub fn keeps(&self, record: &EventRecord) -> bool {
        self.to.is_none_or(|t| record.received_at <= t)
            && self
                .q
                .as_deref()
                .is_none_or(|q| record.event_id.to_lowercase().contains(q))
    }

    fn filters_in_memory(&self) -> bool {
        self.to.is_some() || self.q.is_some()
    }

    /// Every record the filters select, newest first, up to `cap`.
    pub async fn matching(&self, store: &dyn EventStore, cap: usize) -> Result<(Vec<EventRecord>, bool), StoreError> {
        let listed = store.list(&self.list_filter(self.state, cap)).await?;
        let capped = listed.len() >= cap;
        Ok((listed.into_iter().filter(|r| self.keeps(r)).collect(), capped))
    }

    pub async fn page(&self, store: &dyn EventStore) -> Result<Page, StoreError> {
        let wanted = (self.page + 1) * PAGE + 1;
        let limit = if self.filters_in_memory() { SCAN_CAP } else { wanted };
        let (rows, capped) = self.matching(store, limit).await?;
        let has_older = rows.len() > (self.page + 1) * PAGE;
        Ok(Page {
            rows: rows.into_iter().skip(self.page * PAGE).take(PAGE).collect(),
            has_older,
            capped: capped && self.filters_in_memory(),
        })
    }

    /// How many records are in each state under the other filters (the
    /// state filter aside), each counted up to [`COUNT_CAP`].
    pub async fn counts(&self, store: &dyn EventStore) -> Result<Vec<(EventState, usize)>, StoreError> {
        let mut counts = Vec::new();
        for state in EventState::ALL {
            let listed = store.list(&self.list_filter(Some(state), COUNT_CAP)).await?;
            counts.push((state, listed.iter().filter(|r| self.keeps(r)).count()));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_what_a_person_types_and_name_what_they_cannot() {
        let f = Filters {
            state: "failed".into(),
            provider: " gigstack ".into(),
            from: "2026-12-01".into(),
            to: "2026-12-01".into(),
            q: "EVT_".into(),
            ..Filters::default()
        };
        let p = f.parse();
        assert_eq!(p.state, Some(EventState::Failed));
        assert_eq!(p.provider.as_deref(), Some("gigstack"));
        assert_eq!(p.from, parse_time("2026-12-01"));
        assert_eq!(
            p.to,
            parse_time("2026-12-01T23:59:59Z"),
            "a date alone is its whole day"
        );
        assert_eq!(p.q.as_deref(), Some("evt_"));
        assert!(p.problems.is_empty());
        let bad = Filters {
            state: "LOST".into(),
            from: "yesterday".into(),
            ..Filters::default()
        }
        .parse();
        assert_eq!(bad.problems.len(), 2, "{:?}", bad.problems);
        assert_eq!((bad.state, bad.from), (None, None));
    }

    #[test]
    fn the_query_string_keeps_only_given_filters() {
        let f = Filters {
            state: "FAILED".into(),
            q: "a b&c".into(),
            page: 3,
            ..Filters::default()
        };
        assert_eq!(f.query(), "state=FAILED&q=a+b%26c");
    }
}
