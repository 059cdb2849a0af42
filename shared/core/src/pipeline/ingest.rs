//! The ingest pipeline over ports: route to a provider, check size, verify,
//! extract, claim each event, enqueue, answer. No AWS and no HTTP framework
//! types: the axum router in [`crate::http`] adapts to and from it, and it is
//! the same code under `webhooks serve` and the ingest Lambda.

use crate::config::IngestSettings;
use crate::event::{Event, EventKey, EventState};
use crate::ports::admission::{Admission, AdmissionBatch, AdmissionError};
use crate::ports::queue::QueueError;
use crate::ports::refusals::{NoRefusals, Refusal, RefusalLog, RefusalSampler, UNKNOWN_PROVIDER};
use crate::ports::store::{ClaimOutcome, EventStore};
use crate::provider::{PayloadError, Provider, Providers};
use crate::verify::{Handshake, Request, VerifyError};
use bytes::Bytes;
use bytestring::ByteString;
use http::{HeaderMap, Method};
use smallvec::SmallVec;
use std::sync::Arc;
use tracing::{error, info, warn};

/// An inbound request, as the HTTP layer saw it.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub provider: String,
    pub method: Method,
    pub headers: HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    /// The request path, for rebuilding the public URL.
    pub path: String,
    pub body: Bytes,
    pub now: i64,
    /// Shared with the events of the request, not copied into each.
    pub request_id: ByteString,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// At least one new event was claimed and queued.
    New { ids: Vec<ByteString> },
    /// Every event was seen before and is queued or processed.
    Duplicate { ids: Vec<ByteString> },
    /// Every event has a type with no handler: recorded, nothing runs.
    Ignored { ids: Vec<ByteString> },
    /// A handshake or challenge, answered as the verifier says.
    Handshake(Handshake),
}

/// Why a delivery was not accepted. Each maps to one row of the HTTP table.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("unknown provider")]
    UnknownProvider,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payload too large")]
    TooLarge,
    #[error("the body ended before it was received in full")]
    Incomplete,
    #[error("rejected: {error}")]
    Rejected { status: u16, error: VerifyError },
    #[error("invalid payload: {0}")]
    InvalidPayload(PayloadError),
    #[error("a copy of this event is still being accepted")]
    InFlight,
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// The ingest pipeline.
pub struct Ingest {
    providers: Arc<Providers>,
    admission: Arc<dyn Admission>,
    /// Read only, for the occurrences of providers with a dedup window.
    store: Arc<dyn EventStore>,
    settings: IngestSettings,
    /// Where refused deliveries are kept, as far as `sampler` lets them.
    refusals: Arc<dyn RefusalLog>,
    sampler: RefusalSampler,
}

/// What the HTTP layer knows of a request ingest did not accept.
#[derive(Debug)]
pub struct Refused<'a> {
    /// The provider named in the path.
    pub provider: &'a str,
    pub error: &'a IngestError,
    pub request_id: &'a str,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub source_ip: Option<String>,
    pub body_bytes: u64,
    pub now: i64,
}

/// How long storing a refusal may hold its (already decided) answer back.
const REFUSAL_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Ingest {
    pub fn new(
        providers: Arc<Providers>,
        admission: Arc<dyn Admission>,
        store: Arc<dyn EventStore>,
        settings: IngestSettings,
    ) -> Self {
        Self {
            providers,
            admission,
            store,
            settings,
            refusals: Arc::new(NoRefusals),
            sampler: RefusalSampler::default(),
        }
    }

    /// The same pipeline, keeping refused deliveries in `log`.
    pub fn with_refusals(self, log: Arc<dyn RefusalLog>) -> Self {
        Self { refusals: log, ..self }
    }

    /// Keeps a refused delivery in the refusal log, if it is one (not a 409
    /// "come back later", not a 405 to a stray GET) and the sampler lets it
    /// through. Only names are kept: which of the scheme's expected headers
    /// and query parameters were there, never their values or the body.
    /// Runs only on the refused path, after the answer is decided; a failure
    /// (or a write slower than [`REFUSAL_WRITE_TIMEOUT`]) is logged and
    /// changes nothing.
    pub async fn record_refusal(&self, refused: Refused<'_>) {
        if matches!(refused.error, IngestError::InFlight | IngestError::MethodNotAllowed) {
            return;
        }
        let configured = self.providers.get(refused.provider);
        let known = configured.is_some() || self.providers.pending_reason(refused.provider).is_some();
        let provider = if known { refused.provider } else { UNKNOWN_PROVIDER };
        if !self.sampler.admit(provider, std::time::Instant::now()) {
            return;
        }
        let (mut present, mut absent) = (Vec::new(), Vec::new());
        if let Some(p) = configured {
            let expected = p.verifier.expected_names();
            for (name, _) in expected.headers {
                let there = refused.headers.contains_key(name.as_str());
                if there { &mut present } else { &mut absent }.push(name);
            }
            let query = parse_query(refused.query);
            for (name, _) in expected.query {
                let there = query.iter().any(|(n, _)| *n == name);
                if there { &mut present } else { &mut absent }.push(format!("?{name}"));
            }
        }
        let refusal = Refusal {
            at: refused.now,
            provider: provider.to_string(),
            status: refused.error.status(),
            reason: crate::telemetry::rejection_reason(refused.error).to_string(),
            request_id: refused.request_id.to_string(),
            source_ip: refused.source_ip,
            body_bytes: refused.body_bytes,
            present,
            absent,
        };
        match tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, self.refusals.record(refusal)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(request_id = %refused.request_id, provider, error = %e, "refusal not kept");
            }
            Err(_) => {
                warn!(request_id = %refused.request_id, provider, "refusal not kept: the log did not answer in time")
            }
        }
    }

    pub fn settings(&self) -> &IngestSettings {
        &self.settings
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Handles one request end to end, in four steps: [`route`](Self::route)
    /// it to its provider, [`verify`](Self::verify) it (or answer a
    /// handshake), [`extract`](Self::extract) its events (and, for a
    /// provider with a dedup window, [`name_occurrences`](Self::name_occurrences)),
    /// and [`admit`](Self::admit) them (claim and enqueue).
    pub async fn handle(&self, inbound: &Inbound) -> Result<Accepted, IngestError> {
        let provider = self.route(inbound)?;
        let provider = provider.as_ref();
        let query = parse_query(inbound.query.as_deref());
        // Only schemes that sign the URL (Twilio, Square, HubSpot) need it rebuilt.
        let url = if provider.verifier.signs_url() {
            public_url(provider, inbound)
        } else {
            String::new()
        };
        let req = Request {
            method: &inbound.method,
            headers: &inbound.headers,
            query: &query,
            body: &inbound.body,
            url: &url,
            now: inbound.now,
        };
        if let Some(answer) = self.verify(provider, inbound, &req)? {
            return Ok(answer);
        }
        let mut events = self.extract(provider, inbound, &req)?;
        if let Some(window) = provider.dedup_window_secs.filter(|w| *w > 0) {
            self.name_occurrences(provider, &mut events, window, inbound).await?;
        }
        self.admit(inbound, events).await
    }

    /// For a provider whose event id names an object rather than one
    /// occurrence (`dedup_window_secs`): each event becomes the occurrence
    /// `{id}@{slot}`, the slot being the start of the `window`-long slice of
    /// time the delivery arrived in. A copy in the same slot claims the same
    /// key, so it is a duplicate; a copy in the next slot is a duplicate of
    /// the previous slot's occurrence when that one arrived less than
    /// `window` ago. Whatever arrives later is a new occurrence: recorded,
    /// processed, and listed beside the earlier ones. One read per event.
    async fn name_occurrences(
        &self,
        provider: &Provider,
        events: &mut [(Event, EventState)],
        window: i64,
        inbound: &Inbound,
    ) -> Result<(), IngestError> {
        let slot = inbound.now.div_euclid(window) * window;
        for (event, _) in events.iter_mut() {
            let previous = EventKey::new(&provider.name, &format!("{}@{}", event.id, slot - window));
            match self.store.get(&previous).await {
                Ok(Some(record)) if inbound.now - record.received_at < window => event.id = previous.id,
                Ok(_) => event.id = format!("{}@{slot}", event.id).into(),
                Err(e) => {
                    warn!(request_id = %inbound.request_id, provider = %provider.name, error = %e, "occurrence lookup failed; nothing kept");
                    return Err(IngestError::Unavailable(e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// The provider named in the path, if the method is one it answers and
    /// a POST's body is within the size limit.
    fn route(&self, inbound: &Inbound) -> Result<Arc<Provider>, IngestError> {
        let Some(provider) = self.providers.get(&inbound.provider) else {
            if let Some(why) = self.providers.pending_reason(&inbound.provider) {
                // Its secret could not be fetched: 503 so the sender retries
                // (a 404 makes some senders switch the endpoint off).
                error!(request_id = %inbound.request_id, provider = %inbound.provider, reason = %why, "provider's secret unavailable; answered 503");
                return Err(IngestError::Unavailable(why));
            }
            return Err(IngestError::UnknownProvider);
        };
        if inbound.method != Method::GET && inbound.method != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        if inbound.method == Method::POST && inbound.body.len() > self.settings.max_body_bytes {
            return Err(IngestError::TooLarge);
        }
        Ok(provider)
    }

    /// A GET is a subscription handshake (or 405 for providers without
    /// one); a POST must carry a valid signature, and a verified challenge
    /// (Slack's `url_verification`) is answered here. `Some` is the answer
    /// to send at once; `None` means go on with the events.
    fn verify(
        &self,
        provider: &Provider,
        inbound: &Inbound,
        req: &Request<'_>,
    ) -> Result<Option<Accepted>, IngestError> {
        if inbound.method == Method::GET {
            return provider
                .verifier
                .handshake(req)
                .map(|h| Some(Accepted::Handshake(h)))
                .ok_or(IngestError::MethodNotAllowed);
        }
        if let Err(error) = provider.verifier.verify(req) {
            warn!(request_id = %inbound.request_id, provider = %provider.name, reason = error.reason(), detail = %error, "delivery rejected");
            return Err(IngestError::Rejected {
                status: provider.reject_status,
                error,
            });
        }
        if let Some(answer) = provider.verifier.challenge(req) {
            info!(request_id = %inbound.request_id, provider = %provider.name, "challenge answered");
            return Ok(Some(Accepted::Handshake(answer)));
        }
        Ok(None)
    }

    /// The events of the body, each with the state it is recorded in:
    /// RECEIVED when its type has handlers, IGNORED when not. A batch that
    /// names the same event twice holds it once.
    fn extract(&self, provider: &Provider, inbound: &Inbound, req: &Request<'_>) -> Result<Events, IngestError> {
        let header = |name: &str| {
            inbound
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let query_value = |name: &str| req.query_param(name).map(str::to_string);
        let content_type = inbound
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let extracted = provider
            .extract(&inbound.body, content_type, &header, &query_value)
            .map_err(|e| {
                warn!(request_id = %inbound.request_id, provider = %provider.name, detail = %e, "invalid payload");
                IngestError::InvalidPayload(e)
            })?;
        let mut events = Events::with_capacity(extracted.len());
        for x in extracted {
            if events.iter().any(|(e, _)| e.id == x.id) {
                continue;
            }
            let state = match provider.handlers_for(&x.event_type) {
                Some(_) => EventState::Received,
                None => EventState::Ignored,
            };
            let event = Event {
                provider: provider.name.clone(),
                id: x.id,
                event_type: x.event_type,
                received_at: inbound.now,
                payload: x.payload,
                request_id: Some(inbound.request_id.clone()),
                original: x.original,
            };
            events.push((event, state));
        }
        Ok(events)
    }

    /// Claims and enqueues through the admission port, and answers.
    async fn admit(&self, inbound: &Inbound, events: Events) -> Result<Accepted, IngestError> {
        let events = shared(events);
        let batch = AdmissionBatch {
            events: events.clone(),
            now: inbound.now,
            claim_lease_secs: self.settings.claim_lease_secs,
            ttl_secs: self.settings.retention_secs(),
        };
        let outcomes = match self.admission.admit(batch).await {
            Ok(outcomes) => outcomes,
            Err(AdmissionError::Queue(QueueError::TooLarge(size))) => {
                // A retry cannot fit either: 413, not 503. Nothing was claimed.
                warn!(request_id = %inbound.request_id, provider = %inbound.provider, message_bytes = size, "event too large for the queue; nothing kept");
                return Err(IngestError::TooLarge);
            }
            Err(e) => {
                warn!(request_id = %inbound.request_id, provider = %inbound.provider, error = %e, "claim or enqueue failed; the sender retries");
                return Err(IngestError::Unavailable(e.to_string()));
            }
        };
        let ids: Vec<ByteString> = events.iter().map(|(e, _)| e.id.clone()).collect();
        let claimed = |want: EventState| {
            events
                .iter()
                .zip(&outcomes)
                .any(|((_, state), outcome)| *state == want && *outcome == ClaimOutcome::Claimed)
        };
        let outcome = if outcomes.contains(&ClaimOutcome::InFlight) {
            Err(IngestError::InFlight)
        } else if claimed(EventState::Received) {
            Ok(Accepted::New { ids })
        } else if outcomes.iter().any(|o| matches!(o, ClaimOutcome::Duplicate(_))) {
            Ok(Accepted::Duplicate { ids })
        } else {
            Ok(Accepted::Ignored { ids })
        };
        for (event, _) in events.iter() {
            info!(
                request_id = %inbound.request_id,
                provider = %event.provider,
                event_id = %event.id,
                event_type = %event.event_type,
                outcome = outcome_name(&outcome),
                "delivery handled"
            );
        }
        outcome
    }
}

/// The events of one delivery, each with the state it is recorded in: one,
/// inline, unless it is a batch.
type Events = SmallVec<[(Event, EventState); 1]>;

/// The events, to be shared with the admission: the usual single event in
/// one allocation (a `Vec` made into an `Arc<[_]>` is copied into a second).
fn shared(mut events: Events) -> Arc<[(Event, EventState)]> {
    if events.len() == 1 {
        if let Some(only) = events.pop() {
            return Arc::new([only]);
        }
    }
    events.into_vec().into()
}

fn outcome_name(outcome: &Result<Accepted, IngestError>) -> &'static str {
    match outcome {
        Ok(Accepted::New { .. }) => "accepted",
        Ok(Accepted::Duplicate { .. }) => "duplicate",
        Ok(Accepted::Ignored { .. }) => "ignored",
        Ok(Accepted::Handshake(_)) => "handshake",
        Err(IngestError::InFlight) => "in_progress",
        Err(_) => "error",
    }
}

/// Decodes a query string into pairs (invalid encodings are dropped).
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    raw.and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
}

/// The URL the sender called: the provider's configured `public_url`, else
/// rebuilt from `X-Forwarded-Proto` / `X-Forwarded-Host` (or `Host`), never
/// the internal address alone.
fn public_url(provider: &Provider, inbound: &Inbound) -> String {
    let query = inbound.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
    if let Some(base) = &provider.public_url {
        return format!("{base}{query}");
    }
    let header = |n: &str| inbound.headers.get(n).and_then(|v| v.to_str().ok());
    let proto = header("x-forwarded-proto").unwrap_or("https");
    let host = header("x-forwarded-host")
        .or_else(|| header("host"))
        .unwrap_or("localhost");
    format!("{proto}://{host}{}{query}", inbound.path)
}
