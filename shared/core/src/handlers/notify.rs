//! Notifications to a Slack-compatible incoming webhook (`handlers.notify_url`,
//! `{"text": "..."}`), shared by the handlers that tell a human something.
//!
//! The URL is optional: unset, a notification is logged (tracing, info) and
//! the handler still succeeds, so a fresh install runs without a Slack
//! workspace. Configured but unreadable (a JSON secret without that key),
//! it is an error: the notification would otherwise be lost in a log line
//! while the operator believes it is being sent. The URL embeds its own token, so it never appears in a result,
//! an error or a log line.

use super::http_call::Call;
use super::{HandlerDeps, HandlerError};
use crate::event::Event;

/// Posts notification texts, or logs them when no URL is configured.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    url: Option<String>,
    /// Why a configured URL could not be read (never its value).
    unreadable: Option<String>,
}

impl Notifier {
    pub fn new(deps: &HandlerDeps) -> Self {
        Self {
            http: deps.http.clone(),
            url: deps.settings.notify_url.clone().filter(|u| !u.trim().is_empty()),
            unreadable: deps.settings.unreadable.get("notify_url").cloned(),
        }
    }

    /// Sends `text`. Returns the webhook's HTTP status, or `None` when no URL
    /// is configured and the text was only logged. Errors are classified by
    /// [`Call`]: a Slack outage retries, a revoked webhook (404) does not.
    /// A URL that is configured but could not be read fails for good,
    /// naming the setting.
    pub async fn send(&self, event: &Event, text: &str) -> Result<Option<u16>, HandlerError> {
        if let (None, Some(why)) = (&self.url, &self.unreadable) {
            return Err(HandlerError::Permanent(format!(
                "handlers.notify_url could not be read: {why}"
            )));
        }
        let Some(url) = &self.url else {
            tracing::info!(
                provider = %event.provider,
                event_id = %event.id,
                event_type = %event.event_type,
                notification = %text,
                "notify_url is not set; notification logged only"
            );
            return Ok(None);
        };
        let reply = Call::new("notify webhook")
            .masking_text(url)
            .send(self.http.post(url).json(&serde_json::json!({ "text": text })))
            .await?;
        Ok(Some(reply.status))
    }
}

/// Escapes the three characters Slack's `mrkdwn` treats as control
/// characters, so a client name from a payload cannot inject `<!channel>`
/// mentions or links.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::super::test_support::{deps, event, TestServer};
    use super::super::ResolvedSettings;
    use super::*;

    #[tokio::test]
    async fn posts_slack_text_as_json() {
        let server = TestServer::start().await;
        server.reply(200, "text/plain", "ok");
        let dir = tempfile::tempdir().unwrap();
        let settings = ResolvedSettings {
            notify_url: Some(server.url("/services/T1/B1/tok")),
            ..Default::default()
        };
        let n = Notifier::new(&deps(settings, dir.path()));
        let status = n
            .send(&event("p", "t", serde_json::json!({})), "hi <there>")
            .await
            .unwrap();
        assert_eq!(status, Some(200));
        let req = server.single_request();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/services/T1/B1/tok");
        assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(req.json(), serde_json::json!({"text": "hi <there>"}));
    }

    #[tokio::test]
    async fn unset_url_logs_only() {
        let dir = tempfile::tempdir().unwrap();
        let n = Notifier::new(&deps(ResolvedSettings::default(), dir.path()));
        assert_eq!(
            n.send(&event("p", "t", serde_json::json!({})), "x").await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_configured_url_that_could_not_be_read_fails_for_good_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = ResolvedSettings::default();
        settings.unreadable.insert(
            "notify_url".into(),
            "secret webhooks/handlers has no key `notify_url`".into(),
        );
        let n = Notifier::new(&deps(settings, dir.path()));
        let err = n.send(&event("p", "t", serde_json::json!({})), "x").await.unwrap_err();
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(text.contains("handlers.notify_url could not be read"), "{text}");
        assert!(text.contains("has no key `notify_url`"), "{text}");
    }

    #[test]
    fn escapes_slack_control_characters() {
        assert_eq!(escape("A&B <!channel>"), "A&amp;B &lt;!channel&gt;");
    }
}
