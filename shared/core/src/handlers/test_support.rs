//! What the handler tests share: an event as the processor hands it over,
//! handler deps over a real client, and the classification check every
//! handler that calls an API passes (404 permanent; 429, 500 and a refused
//! connection retryable; no secret in any result or error). The server they
//! call is the test kit's recording HTTP sink.

#![allow(clippy::unwrap_used)]

use super::{Handler, HandlerDeps, HandlerError, ResolvedSettings};
use crate::event::Event;
use crate::ports::artifacts::{ArtifactStore, LocalDir};
use serde_json::Value;
use std::sync::Arc;
pub use webhooks_testkit::http_sink::{refused_base, TestServer};

/// An event as the processor hands it to a handler.
pub fn event(provider: &str, event_type: &str, payload: Value) -> Event {
    Event {
        provider: provider.into(),
        id: "evt_test_1".into(),
        event_type: event_type.into(),
        received_at: 1_700_000_000,
        payload: crate::payload::Payload::from_text(payload.to_string()),
        request_id: None,
        original: None,
    }
}

/// Handler deps over a real client, `settings`, and artifacts in `dir`.
pub fn deps(settings: ResolvedSettings, dir: &std::path::Path) -> HandlerDeps {
    HandlerDeps {
        http: super::http_client(5).unwrap(),
        artifacts: Arc::new(LocalDir::new(dir)) as Arc<dyn ArtifactStore>,
        settings: Arc::new(settings),
    }
}

/// Fails when `secret` appears in a result or an error text.
pub fn assert_no_secret(outcome: &Result<Value, HandlerError>, secrets: &[&str]) {
    let text = match outcome {
        Ok(v) => v.to_string(),
        Err(e) => e.to_string(),
    };
    for s in secrets {
        assert!(!text.contains(s), "secret leaked into {text}");
    }
}

/// Runs a handler against a server answering 404, 429 and 500, and against a
/// refused connection, and checks the classification of each. `build` gets
/// the base URL the handler should call and returns the handler and event.
pub async fn assert_classifies<F>(build: F, secrets: &[&str])
where
    F: Fn(&str) -> (Arc<dyn Handler>, Event),
{
    for (status, retryable) in [(404u16, false), (429, true), (500, true)] {
        let server = TestServer::start().await;
        server.reply(status, "application/json", r#"{"error":"scripted"}"#);
        let (handler, event) = build(server.base());
        let outcome = handler.handle(&event).await;
        assert_no_secret(&outcome, secrets);
        let err = outcome.expect_err("scripted failure must fail");
        assert_eq!(err.is_retryable(), retryable, "HTTP {status}: {err}");
        assert!(err.to_string().contains(&status.to_string()), "{err}");
        assert!(
            !server.requests().is_empty(),
            "HTTP {status}: no request reached the server"
        );
    }
    let (handler, event) = build(&refused_base().await);
    let outcome = handler.handle(&event).await;
    assert_no_secret(&outcome, secrets);
    let err = outcome.expect_err("refused connection must fail");
    assert!(err.is_retryable(), "connection refused: {err}");
}
