//! The console: one page where a person sees every event, why a delivery
//! was refused, and replays what failed. Served by `webhooks serve` at
//! `/console` and by `webhooks console` (also against a deployed stack),
//! over the same two ports as the operating commands, so its rules are
//! theirs: a replay resets the record before its message moves, a DONE
//! event is refused, a live lease is refused.
//!
//! Rendered on the server (maud, which escapes everything it interpolates:
//! payloads are attacker-controlled), so every view and action works with
//! JavaScript off; the small script of our own only converts times to the
//! reader's zone, copies a payload and runs the live tail (server-sent
//! events). Safety, in [`guard`]: a strict Content-Security-Policy on every
//! answer (no inline script or style, nothing from elsewhere), a CSRF token
//! on every POST, and, when a token is configured, a session cookie that
//! only the token's holder gets.

mod actions;
mod assets;
mod guard;
mod pages;
mod query;
mod refused;
mod stream;

use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use webhooks_core::ports::queue::Queue;
use webhooks_core::ports::refusals::{NoRefusals, RefusalLog};
use webhooks_core::ports::store::EventStore;

pub use guard::Access;

/// How the console may run on `addr`, with `WEBHOOKS_CONSOLE_TOKEN` from
/// the environment: on loopback without a token; elsewhere only with one.
pub fn access(addr: std::net::SocketAddr) -> Result<Access, String> {
    guard::decide(addr, std::env::var("WEBHOOKS_CONSOLE_TOKEN").ok())
}

/// What the console's handlers share.
pub struct Console {
    pub store: Arc<dyn EventStore>,
    pub queue: Arc<dyn Queue>,
    /// Who may use it (and how they prove it).
    pub access: Access,
    /// The token every form carries back (random per process): a page of
    /// another site cannot know it, so it cannot make a browser act here.
    csrf: String,
    /// Where the data comes from, shown in the header ("SQLite ./webhooks.db").
    pub source: String,
    /// The refused deliveries shown at `/console/refused`.
    pub refusals: Arc<dyn RefusalLog>,
}

impl Console {
    pub fn new(store: Arc<dyn EventStore>, queue: Arc<dyn Queue>, access: Access, source: String) -> Self {
        Self {
            store,
            queue,
            access,
            csrf: guard::random_token(),
            source,
            refusals: Arc::new(NoRefusals),
        }
    }

    /// The same console, showing the refusals kept in `log`.
    pub fn with_refusals(self, refusals: Arc<dyn RefusalLog>) -> Self {
        Self { refusals, ..self }
    }
}

/// The console's routes, every one under `/console`.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/console", get(pages::events))
        .route("/console/events/{provider}/{id}", get(pages::event))
        .route("/console/events/{provider}/{id}/replay", post(actions::replay_one))
        .route("/console/events/{provider}/{id}/discard", post(actions::discard_one))
        .route(
            "/console/replay",
            get(pages::confirm_replay).post(actions::replay_matching),
        )
        .route("/console/refused", get(refused::page))
        .route("/console/stream", get(stream::tail))
        .route("/console/login", get(pages::login).post(guard::login))
        .route("/console/assets/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(console.clone(), guard::guard))
        .with_state(console)
}
