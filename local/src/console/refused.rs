//! GET /console/refused: the last deliveries ingest did not accept, for
//! whoever is setting up a provider ("why is every delivery a 401?"). What
//! the refusal log keeps is names and numbers only (never a body, a header
//! value or a signature), and maud escapes every value shown anyway.

use super::pages::{layout, time};
use super::Console;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;
use webhooks_core::ports::refusals::RefusalSampler;

/// How many refusals the page lists.
const SHOWN: usize = 200;

/// The page's filter.
#[derive(Debug, Default, Deserialize)]
pub struct RefusedFilter {
    #[serde(default)]
    pub provider: String,
}

/// What a reason code tells whoever set the provider up.
fn hint(reason: &str) -> &'static str {
    match reason {
        "missing_signature" => "the signature header (or parameter) is absent: is signing on at the sender?",
        "invalid_signature" => "a signature came but does not match: check the secret on both sides",
        "timestamp_out_of_tolerance" => "the signed time is too far off: a clock, or an old delivery replayed",
        "unknown_provider" => "the URL names no configured provider: check the path",
        "payload_too_large" => "the body is over the size limit",
        "invalid_payload" => "signed, but the event id or type could not be read from the body",
        "unavailable" => "the receiver could not store it (or the provider's secret); the sender retries",
        _ => "",
    }
}

pub async fn page(State(console): State<Arc<Console>>, Query(filter): Query<RefusedFilter>) -> Response {
    let provider = Some(filter.provider.trim()).filter(|p| !p.is_empty());
    let found = tokio::try_join!(
        console.refusals.list(provider, SHOWN),
        console.refusals.counts(provider)
    );
    let (refusals, counts) = match found {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "console: listing refusals");
            let body = html! { p.notice.bad { "The refusal log did not answer. Reload to try again." } };
            return (StatusCode::SERVICE_UNAVAILABLE, layout(&console, "Refused", body)).into_response();
        }
    };
    let body = html! {
        h1 { "Refused deliveries" }
        p.hint {
            "The newest refused deliveries (kept: the last 1,000 per provider, 7 days; at most "
            (RefusalSampler::BURST as u32) " per provider per " (RefusalSampler::REFILL_SECS as u32)
            " s are stored, the metrics count every one). Only header and parameter names are kept, never their values or the body."
        }
        section.counts aria-label="refusals per reason" {
            @for (reason, n) in &counts {
                span.count title=(hint(reason)) { span.pill.s-failed { (reason) } span.n { (n) } }
            }
        }
        form.filters method="get" action="/console/refused" {
            label { "Provider " input name="provider" value=(filter.provider) size="12"; }
            button type="submit" { "Filter" }
        }
        @if refusals.is_empty() {
            p.notice { "No refused delivery is kept" @if let Some(p) = provider { " for " (p) } "." }
        } @else {
            div.scroll {
                table.events.refused {
                    thead { tr {
                        th { "Time" } th { "Provider" } th { "Reason" } th { "Status" } th { "Request id" }
                        th { "Source IP" } th { "Body bytes" } th { "Present" } th { "Absent" }
                    } }
                    tbody {
                        @for r in &refusals {
                            tr {
                                td { (time(r.at)) }
                                td { (r.provider) }
                                td.reason title=(hint(&r.reason)) { (r.reason) }
                                td { (r.status) }
                                td { code { (r.request_id) } }
                                td { (r.source_ip.as_deref().unwrap_or("–")) }
                                td { (r.body_bytes) }
                                td.present { (r.present.join(", ")) }
                                td.absent { (r.absent.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(&console, "Refused", body).into_response()
}
