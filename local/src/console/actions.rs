//! The console's actions: replay one event, replay every event a filter
//! selects, discard one dead letter. Each is a POST with the page's CSRF
//! token, goes through the same replay rules as `webhooks replay`, and
//! ends in a redirect (or a result page) that says what happened.

use super::pages::{event_href, refused_page, replayed_page};
use super::query::{Filters, SCAN_CAP};
use super::{guard, Console};
use async_trait::async_trait;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::{info, warn};
use webhooks_core::event::{Event, EventKey, EventState};
use webhooks_core::pipeline::replay::{replay_event, ReplayError, Replayed};
use webhooks_core::ports::queue::{Redrive, RedriveGate};
use webhooks_core::ports::store::EventStore;
use webhooks_core::time::unix_now;

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

const STALE: &str = "This form is stale or did not come from this console (its CSRF token does not match): reload the page and try again.";

/// The redirect back to the event's view, saying how the action ended.
fn back(provider: &str, id: &str, code: &str) -> Response {
    Redirect::to(&format!("{}?done={code}", event_href(provider, id))).into_response()
}

/// POST /console/events/{provider}/{id}/replay.
pub async fn replay_one(
    State(console): State<Arc<Console>>,
    Path((provider, id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !guard::csrf_ok(&console, &form.csrf) {
        return refused_page(&console, STALE);
    }
    let key = EventKey::new(&provider, &id);
    let code = match replay_event(console.store.as_ref(), console.queue.as_ref(), &key, unix_now()).await {
        Ok(Replayed::FromDeadLetters) => "replayed-dlq",
        Ok(Replayed::Sent) => "replayed",
        Err(e) => refusal_code(&key, &e),
    };
    info!(event = %key, outcome = code, "console: replay");
    back(&provider, &id, code)
}

fn refusal_code(key: &EventKey, e: &ReplayError) -> &'static str {
    match e {
        ReplayError::NotFound(_) => "missing",
        ReplayError::AlreadyDone(_) => "refused-done",
        ReplayError::Busy { .. } => "refused-busy",
        ReplayError::NoPayload(_) => "no-payload",
        ReplayError::Store(_) | ReplayError::Queue(_) => {
            warn!(event = %key, error = %e, "console: replay failed");
            "error"
        }
    }
}

/// Lets exactly one event's dead letter go (its record deleted first), and
/// keeps every other.
struct DiscardOne<'a> {
    store: &'a dyn EventStore,
    key: EventKey,
    found: AtomicBool,
}

#[async_trait]
impl RedriveGate for DiscardOne<'_> {
    async fn decide(&self, event: &Event) -> Redrive {
        if event.key() != self.key || self.found.load(Ordering::SeqCst) {
            return Redrive::Keep;
        }
        match self.store.discard(&self.key).await {
            Ok(true) => {
                self.found.store(true, Ordering::SeqCst);
                Redrive::Discard
            }
            Ok(false) | Err(_) => Redrive::Keep,
        }
    }
}

/// POST /console/events/{provider}/{id}/discard: a dead letter gone for
/// good, its message and its record (FAILED only).
pub async fn discard_one(
    State(console): State<Arc<Console>>,
    Path((provider, id)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !guard::csrf_ok(&console, &form.csrf) {
        return refused_page(&console, STALE);
    }
    let key = EventKey::new(&provider, &id);
    let code = match console.store.get(&key).await {
        Ok(None) => "missing",
        Ok(Some(r)) if r.state != EventState::Failed => "not-failed",
        Ok(Some(_)) => {
            let gate = DiscardOne {
                store: console.store.as_ref(),
                key: key.clone(),
                found: AtomicBool::new(false),
            };
            match console.queue.redrive(usize::MAX, &gate).await {
                // Its message was not among the dead letters (already
                // moved): the FAILED record alone is what is left of it.
                Ok(_) if !gate.found.load(Ordering::SeqCst) => match console.store.discard(&key).await {
                    Ok(true) => "discarded",
                    Ok(false) => "not-failed",
                    Err(e) => {
                        warn!(event = %key, error = %e, "console: discard failed");
                        "error"
                    }
                },
                Ok(_) => "discarded",
                Err(e) => {
                    warn!(event = %key, error = %e, "console: discard failed");
                    "error"
                }
            }
        }
        Err(e) => {
            warn!(event = %key, error = %e, "console: discard failed");
            "error"
        }
    };
    info!(event = %key, outcome = code, "console: discard");
    back(&provider, &id, code)
}

#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    filters: Filters,
}

/// How a bulk replay ended.
#[derive(Debug, Default)]
pub struct Summary {
    pub replayed: usize,
    pub done: usize,
    pub busy: usize,
    pub gone: usize,
    pub failed: usize,
}

/// POST /console/replay: every event the filters select, one by one, with
/// the single replay's rules; DONE ones are left alone.
pub async fn replay_matching(State(console): State<Arc<Console>>, Form(form): Form<ReplayForm>) -> Response {
    if !guard::csrf_ok(&console, &form.csrf) {
        return refused_page(&console, STALE);
    }
    let parsed = form.filters.parse();
    let rows = match parsed.matching(console.store.as_ref(), SCAN_CAP).await {
        Ok((rows, _)) => rows,
        Err(e) => {
            warn!(error = %e, "console: bulk replay could not list");
            return refused_page(
                &console,
                "The event store did not answer; nothing was replayed. Try again.",
            );
        }
    };
    let mut summary = Summary::default();
    for record in rows {
        if record.state == EventState::Done {
            summary.done += 1;
            continue;
        }
        let key = record.key();
        match replay_event(console.store.as_ref(), console.queue.as_ref(), &key, unix_now()).await {
            Ok(_) => summary.replayed += 1,
            Err(ReplayError::AlreadyDone(_)) => summary.done += 1,
            Err(ReplayError::Busy { .. }) => summary.busy += 1,
            Err(ReplayError::NotFound(_)) => summary.gone += 1,
            Err(e) => {
                warn!(event = %key, error = %e, "console: replay failed");
                summary.failed += 1;
            }
        }
    }
    info!(?summary, "console: bulk replay");
    replayed_page(&console, &form.filters, &summary).into_response()
}
