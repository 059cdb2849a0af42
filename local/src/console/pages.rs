//! The console's views, rendered on the server. maud escapes every value
//! it interpolates, so a payload, an id or an error text (all of them
//! attacker-controlled) is shown as text, never run as markup.

use super::query::{Filters, Page, COUNT_CAP, SCAN_CAP};
use super::Console;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use std::sync::Arc;
use webhooks_core::event::{EventKey, EventRecord, EventState, HISTORY_LIMIT};
use webhooks_core::time::{iso8601, unix_now};

/// A path segment percent-encoded: event ids may hold `/`, `#`, `?` or spaces.
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where one event's view is.
pub fn event_href(provider: &str, id: &str) -> String {
    format!("/console/events/{}/{}", segment(provider), segment(id))
}

/// A time: UTC in the markup (and with JavaScript off), the reader's local
/// time once the script runs, UTC on hover.
pub fn time(secs: i64) -> Markup {
    let iso = iso8601(secs);
    html! { time datetime=(iso) title=(iso) { (iso) } }
}

pub fn pill(state: EventState) -> Markup {
    html! { span class={ "pill s-" (state.as_str().to_ascii_lowercase()) } { (state.as_str()) } }
}

/// When the next attempt is due, as far as the record knows: a retry's
/// backoff end (recorded by the processor when it settled the failure), or
/// a processing lease's end (a retry is due after it if the processor stops).
pub fn next_attempt(record: &EventRecord) -> Option<i64> {
    match record.state {
        EventState::Processing | EventState::Received => record.lease_until,
        EventState::Queued => record.next_attempt_at,
        _ => None,
    }
}

pub(super) fn layout(console: &Console, title: &str, body: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · webhooks console" }
                    link rel="stylesheet" href="/console/assets/console.css";
                    link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
                    script src="/console/assets/console.js" defer {}
                }
                body data-rendered=(unix_now()) {
                    header {
                        a.brand href="/console" { "webhooks" }
                        nav {
                            a href="/console" { "Events" }
                            a href="/console?state=FAILED" { "Dead letters" }
                            a href="/console/refused" { "Refused" }
                        }
                        span.source title="where this console reads" { (console.source) }
                    }
                    main { (body) }
                }
            }
        }
        .into_string(),
    )
}

fn unavailable(console: &Console, what: &str, error: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %error, "console: {what}");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        layout(
            console,
            "Unavailable",
            html! { p.notice.bad { "The event store did not answer (" (what) "). Reload to try again." } },
        ),
    )
        .into_response()
}

/// GET /console: the events, newest first, with counts per state.
pub async fn events(State(console): State<Arc<Console>>, Query(filters): Query<Filters>) -> Response {
    let parsed = filters.parse();
    let (page, counts) = match tokio::try_join!(
        parsed.page(console.store.as_ref()),
        parsed.counts(console.store.as_ref())
    ) {
        Ok(found) => found,
        Err(e) => return unavailable(&console, "listing events", &e),
    };
    let query = filters.query();
    let body = html! {
        section.counts aria-label="events per state" {
            @for (state, n) in &counts {
                a.count href={ "/console?" (state_query(&filters, *state)) } {
                    (pill(*state))
                    span.n { (n) @if *n >= COUNT_CAP { "+" } }
                }
            }
        }
        (filter_form(&filters))
        @for problem in &parsed.problems { p.notice.bad { (problem) } }
        (events_table(&page))
        nav.pager {
            @if parsed.page > 0 {
                a rel="prev" href={ "/console?" (with_page(&query, parsed.page - 1)) } { "← Newer" }
            }
            @if page.has_older {
                a rel="next" href={ "/console?" (with_page(&query, parsed.page + 1)) } { "Older →" }
            }
        }
        @if page.capped {
            p.notice { "Only the newest " (SCAN_CAP) " records were searched: narrow the time range to see older ones." }
        }
        p.actions {
            a.button href={ "/console/replay?" (query) } { "Replay every matching event…" }
        }
    };
    layout(&console, "Events", body).into_response()
}

fn state_query(filters: &Filters, state: EventState) -> String {
    Filters {
        state: state.as_str().to_string(),
        page: 0,
        ..filters.clone()
    }
    .query()
}

fn with_page(query: &str, page: usize) -> String {
    if query.is_empty() {
        format!("page={page}")
    } else {
        format!("{query}&page={page}")
    }
}

fn filter_form(f: &Filters) -> Markup {
    html! {
        form.filters method="get" action="/console" {
            label { "State "
                select name="state" {
                    option value="" selected[f.state.is_empty()] { "any" }
                    @for s in EventState::ALL {
                        option value=(s.as_str()) selected[f.state.eq_ignore_ascii_case(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "Provider " input name="provider" value=(f.provider) size="12"; }
            label { "Type " input name="type" value=(f.event_type) size="16"; }
            label { "From " input name="from" value=(f.from) placeholder="YYYY-MM-DD" size="12"; }
            label { "To " input name="to" value=(f.to) placeholder="YYYY-MM-DD" size="12"; }
            label { "Id contains " input name="q" value=(f.q) type="search" size="14"; }
            button type="submit" { "Filter" }
            label.live hidden { input #live type="checkbox"; " Live" }
        }
    }
}

fn events_table(page: &Page) -> Markup {
    html! {
        div.scroll {
            table.events {
                thead { tr {
                    th { "Received" } th { "Provider" } th { "Type" } th { "Event id" }
                    th { "State" } th { "Attempts" } th { "Next attempt" } th { "Last error" }
                } }
                tbody #events {
                    @for r in &page.rows {
                        tr data-key=(r.key().as_string()) {
                            td { (time(r.received_at)) }
                            td { (r.provider) }
                            td { (r.event_type) }
                            td.id { a href=(event_href(&r.provider, &r.event_id)) { (r.event_id) } }
                            td { (pill(r.state)) }
                            td.num { (r.attempts) }
                            td { @match next_attempt(r) { Some(t) => (time(t)), None => "—" } }
                            td.error { (r.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if page.rows.is_empty() { p #empty.notice { "No events match." } }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    #[serde(default)]
    done: String,
}

/// What an action's redirect says, from a fixed list (nothing of the
/// query string is echoed).
fn outcome(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "replayed" => (
            "good",
            "Replayed: the event is back on the queue with its attempts at zero.",
        ),
        "replayed-dlq" => ("good", "Replayed: its dead letter was moved back to the queue."),
        "discarded" => ("good", "Discarded: the dead letter and its record are gone."),
        "refused-done" => ("bad", "Not replayed: the event is DONE, and no handler runs twice."),
        "refused-busy" => (
            "bad",
            "Not replayed: a processor holds it right now; try after its lease.",
        ),
        "no-payload" => ("bad", "Not replayed: its payload was too large to keep."),
        "not-failed" => ("bad", "Not discarded: only a dead letter (FAILED) can be discarded."),
        "missing" => ("bad", "There is no such event (any more)."),
        "error" => (
            "bad",
            "The store or the queue did not answer; nothing was changed. Try again.",
        ),
        _ => return None,
    })
}

/// GET /console/events/{provider}/{id}: one event.
pub async fn event(
    State(console): State<Arc<Console>>,
    Path((provider, id)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> Response {
    let key = EventKey::new(&provider, &id);
    let record = match console.store.get(&key).await {
        Ok(r) => r,
        Err(e) => return unavailable(&console, "reading the event", &e),
    };
    let notice = outcome(&done.done);
    let Some(r) = record else {
        let body = html! {
            @if let Some((class, text)) = notice { p class={ "notice " (class) } { (text) } }
            p.notice.bad { "No event " code { (key.as_string()) } "." }
            p { a href="/console" { "All events" } }
        };
        return (StatusCode::NOT_FOUND, layout(&console, "No such event", body)).into_response();
    };
    let href = event_href(&r.provider, &r.event_id);
    let payload = r.payload.as_ref().map(|p| match p.json() {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| p.as_str().to_string()),
        Err(_) => p.as_str().to_string(),
    });
    let body = html! {
        @if let Some((class, text)) = notice { p class={ "notice " (class) } role="status" { (text) } }
        h1 { (r.provider) " · " code { (r.event_id) } " " (pill(r.state)) }
        dl.record {
            dt { "Type" } dd { (r.event_type) }
            dt { "Received" } dd { (time(r.received_at)) }
            dt { "Updated" } dd { (time(r.updated_at)) }
            dt { "Attempts" } dd { (r.attempts) }
            @if let Some(t) = next_attempt(&r) { dt { "Next attempt" } dd { (time(t)) } }
            dt { "Last error" } dd.error { (r.last_error.as_deref().unwrap_or("—")) }
            dt { "Expires" } dd { (time(r.expires_at)) }
        }
        section.actions {
            @if r.state != EventState::Done {
                form method="post" action={ (href) "/replay" } {
                    input type="hidden" name="csrf" value=(console.csrf());
                    button type="submit" { "Replay" }
                }
            }
            @if r.state == EventState::Failed {
                form method="post" action={ (href) "/discard" } {
                    input type="hidden" name="csrf" value=(console.csrf());
                    button.danger type="submit" { "Discard dead letter" }
                }
            }
        }
        h2 { "Attempts" }
        @if r.history.is_empty() {
            p { "No attempt recorded yet." }
        } @else {
            div.scroll { table.attempts {
                thead { tr { th { "Time" } th { "#" } th { "Handler" } th { "Outcome" } th { "Duration" } th { "Error" } } }
                tbody {
                    // Newest first; the record keeps the newest entries only.
                    @for e in r.history.iter().rev() {
                        tr {
                            td { (time(e.at)) }
                            td { (e.attempt) }
                            td { @match &e.handler { Some(h) => (h), None => em { "no handler ran" } } }
                            td { span class={ "outcome o-" (e.outcome.as_str()) } { (e.outcome.as_str()) } }
                            td { (e.duration_ms) " ms" }
                            td.error { (e.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
            p.hint { "The newest " (HISTORY_LIMIT) " entries are kept." }
        }
        h2 { "Handler results" }
        @if r.results.is_empty() {
            p { "No handler has succeeded yet." }
        } @else {
            div.scroll { table.results {
                thead { tr { th { "Handler" } th { "Result" } } }
                tbody {
                    @for (name, value) in &r.results {
                        tr { td { (name) } td { pre { (serde_json::to_string_pretty(value).unwrap_or_default()) } } }
                    }
                }
            } }
        }
        details.payload open {
            summary { "Payload" }
            @match &payload {
                Some(text) => {
                    button.copy type="button" data-copy="payload-text" hidden { "Copy" }
                    pre #payload-text { (text) }
                }
                None => p { "Not kept: it was larger than the store's item limit." },
            }
        }
        p { a href="/console" { "← All events" } }
    };
    layout(&console, &format!("{} {}", r.provider, r.event_id), body).into_response()
}

/// GET /console/replay: how many events the filters select, and a button
/// to replay them (nothing changes before that POST).
pub async fn confirm_replay(State(console): State<Arc<Console>>, Query(filters): Query<Filters>) -> Response {
    let parsed = filters.parse();
    let (rows, capped) = match parsed.matching(console.store.as_ref(), SCAN_CAP).await {
        Ok(found) => found,
        Err(e) => return unavailable(&console, "counting events", &e),
    };
    let done = rows.iter().filter(|r| r.state == EventState::Done).count();
    let replayable = rows.len() - done;
    let body = html! {
        h1 { "Replay matching events" }
        @for problem in &parsed.problems { p.notice.bad { (problem) } }
        p {
            strong { (replayable) } " event(s) match and would be replayed"
            @if done > 0 { "; " (done) " DONE event(s) match and would be left alone (no handler runs twice)" }
            "."
            @if capped { " (Only the newest " (SCAN_CAP) " records were read.)" }
        }
        @if replayable > 0 {
            form method="post" action="/console/replay" {
                input type="hidden" name="csrf" value=(console.csrf());
                input type="hidden" name="state" value=(filters.state);
                input type="hidden" name="provider" value=(filters.provider);
                input type="hidden" name="type" value=(filters.event_type);
                input type="hidden" name="from" value=(filters.from);
                input type="hidden" name="to" value=(filters.to);
                input type="hidden" name="q" value=(filters.q);
                input type="hidden" name="expected" value=(replayable);
                button type="submit" { "Replay " (replayable) " event(s)" }
            }
        }
        p { a href={ "/console?" (filters.query()) } { "← Back to the events" } }
    };
    layout(&console, "Replay", body).into_response()
}

/// The result page of a bulk replay.
pub fn replayed_page(console: &Console, filters: &Filters, summary: &super::actions::Summary) -> Html<String> {
    let body = html! {
        h1 { "Replay finished" }
        p.notice.good role="status" {
            "Replayed " (summary.replayed) "; skipped " (summary.done) " DONE, "
            (summary.busy) " being processed, " (summary.gone) " gone meanwhile; "
            (summary.failed) " failed."
        }
        @if summary.failed > 0 { p.notice.bad { "Some replays failed (the store or the queue did not answer): run it again for those." } }
        p { a href={ "/console?" (filters.query()) } { "← Back to the events" } }
    };
    layout(console, "Replay finished", body)
}

/// The page a refused action shows (a stale form, a missing CSRF token).
pub fn refused_page(console: &Console, why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        layout(
            console,
            "Refused",
            html! { p.notice.bad { (why) } p { a href="/console" { "Reload the console" } } },
        ),
    )
        .into_response()
}

/// GET /console/login.
pub async fn login() -> Html<String> {
    login_page(None)
}

pub fn login_page(error: Option<&str>) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { "Log in · webhooks console" }
                    link rel="stylesheet" href="/console/assets/console.css";
                    link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml";
                }
                body { main.login {
                    h1 { "webhooks console" }
                    @if let Some(e) = error { p.notice.bad { (e) } }
                    form method="post" action="/console/login" {
                        label { "Console token " input type="password" name="token" autocomplete="current-password" required; }
                        button type="submit" { "Log in" }
                    }
                    p.hint { "The token is the value of WEBHOOKS_CONSOLE_TOKEN where the console runs." }
                } }
            }
        }
        .into_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_one_path_segment() {
        assert_eq!(segment("evt_1"), "evt_1");
        assert_eq!(segment("a/b#c d?"), "a%2Fb%23c%20d%3F");
        assert_eq!(
            event_href("piriod", "invoice.created:inv_1@1796549400"),
            "/console/events/piriod/invoice.created%3Ainv_1%401796549400"
        );
    }

    #[test]
    fn only_known_outcomes_are_said() {
        assert!(outcome("replayed").is_some());
        assert!(outcome("<script>alert(1)</script>").is_none());
    }

    #[test]
    fn the_next_attempt_is_a_retrys_due_time_or_a_leases_end() {
        let record = |state: &str| -> EventRecord {
            serde_json::from_value(serde_json::json!({
                "provider": "p", "event_id": "e", "event_type": "t", "state": state, "attempts": 1,
                "last_error": null, "received_at": 1, "updated_at": 2, "lease_until": 30,
                "expires_at": 9, "payload": null, "payload_omitted": false, "results": {},
                "next_attempt_at": 50
            }))
            .expect("record")
        };
        assert_eq!(next_attempt(&record("QUEUED")), Some(50), "a retry's due time");
        assert_eq!(next_attempt(&record("PROCESSING")), Some(30), "a live lease's end");
        assert_eq!(next_attempt(&record("DONE")), None);
    }

    #[test]
    fn interpolated_text_is_escaped() {
        let markup = html! { td { ("<script>alert(1)</script>") } };
        assert_eq!(markup.into_string(), "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>");
    }
}
