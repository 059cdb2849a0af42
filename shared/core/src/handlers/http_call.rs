//! The one place where a handler's outbound HTTP call is sent and its outcome
//! classified, so every handler agrees on what a retry can fix:
//!
//! | outcome | error |
//! | --- | --- |
//! | 2xx | none: the [`Reply`] is returned |
//! | connection refused/reset, timeout, body cut short | [`HandlerError::Retryable`] |
//! | 408, 429, 5xx | [`HandlerError::Retryable`] |
//! | any other status (4xx, unfollowed 3xx) | [`HandlerError::Permanent`] |
//! | request could not be built (bad URL, bad header), redirect loop, body over the limit | [`HandlerError::Permanent`] |
//!
//! Error texts end up in the event record, the logs and the dead-letter
//! reason, so they never carry a URL (a Slack webhook or ERP URL is itself a
//! credential) and every secret the caller names is masked, even when the
//! remote side echoes it back in its error body.

use super::{HandlerError, ResolvedSettings};
use crate::secret::Secret;
use reqwest::{RequestBuilder, StatusCode, Url};
use serde_json::Value;

/// Default cap on a response body read into memory (API answers are small).
pub const DEFAULT_MAX_BODY: usize = 2 * 1024 * 1024;

/// How much of a failed response's body is quoted in the error.
const SNIPPET_CHARS: usize = 300;

/// Shortest value masked as a secret: masking one- or two-letter strings would
/// shred the message without protecting anything.
const MIN_SECRET_LEN: usize = 4;

/// A successful (2xx) answer, with its body read (up to the call's limit).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON. A 2xx that is not JSON is bad data from the remote
    /// side (an HTML error page behind a proxy, say): retrying the same call
    /// will not change it, so it is permanent.
    pub fn json(&self, what: &str) -> Result<Value, HandlerError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| HandlerError::Permanent(format!("{what}: HTTP {} answer is not JSON ({e})", self.status)))
    }
}

/// One outbound call: a label for messages, the secrets to mask in them, and
/// a body size limit.
#[derive(Debug, Clone)]
pub struct Call {
    what: String,
    masked: Vec<String>,
    max_body: usize,
}

impl Call {
    /// `what` names the call in error texts ("gigstack payment complement");
    /// it must not contain a URL or a secret.
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            masked: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// Masks `secret` in every error text this call produces.
    pub fn masking(mut self, secret: Option<&Secret>) -> Self {
        if let Some(s) = secret {
            self.masked.push(s.expose_str());
        }
        self
    }

    /// Masks a plain string (a webhook URL that embeds its own token).
    pub fn masking_text(mut self, text: &str) -> Self {
        self.masked.push(text.to_string());
        self
    }

    /// Reads at most `bytes` of the response body; more is a permanent error
    /// (the same document will be as large next time).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Masks this call's secrets in `text`.
    pub fn mask(&self, text: &str) -> String {
        mask(text, &self.masked)
    }

    /// Sends the request, reads the body and classifies the outcome.
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply, HandlerError> {
        let what = &self.what;
        let mut response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(len) = response.content_length() {
            if len > self.max_body as u64 {
                return Err(HandlerError::Permanent(format!(
                    "{what}: HTTP {} body of {len} bytes is over the {} byte limit",
                    status.as_u16(),
                    self.max_body
                )));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(e))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(HandlerError::Permanent(format!(
                    "{what}: HTTP {} body is over the {} byte limit",
                    status.as_u16(),
                    self.max_body
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(Reply {
                status: status.as_u16(),
                content_type,
                body,
            });
        }
        let mut message = format!("{what}: HTTP {}", status_text(status));
        if let Some(after) = retry_after.filter(|_| status == StatusCode::TOO_MANY_REQUESTS) {
            message.push_str(&format!(
                " (retry-after {})",
                after.chars().take(40).collect::<String>()
            ));
        }
        let snippet = snippet(&String::from_utf8_lossy(&body));
        if !snippet.is_empty() {
            message.push_str(": ");
            message.push_str(&snippet);
        }
        let message = self.mask(&message);
        if is_retryable_status(status) {
            Err(HandlerError::Retryable(message))
        } else {
            Err(HandlerError::Permanent(message))
        }
    }

    fn transport_error(&self, error: reqwest::Error) -> HandlerError {
        let permanent = error.is_builder() || error.is_redirect();
        let message = self.mask(&format!("{}: {}", self.what, error_chain(error.without_url())));
        if permanent {
            HandlerError::Permanent(message)
        } else {
            HandlerError::Retryable(message)
        }
    }
}

/// 408, 429 and 5xx: the remote side may answer differently later.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `{base}/{segments...}` (each segment percent-encoded, so an id from a
/// payload cannot climb out of the path), with a trailing `/` when the API
/// wants one. A base that is not a URL is a configuration error: permanent,
/// naming the setting.
pub fn endpoint(base: &str, setting: &str, segments: &[&str], trailing_slash: bool) -> Result<Url, HandlerError> {
    let bad = || HandlerError::Permanent(format!("setting {setting} is not an absolute http(s) URL"));
    let mut url = Url::parse(base.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad());
    }
    {
        let mut path = url.path_segments_mut().map_err(|_| bad())?;
        path.pop_if_empty();
        path.extend(segments);
        if trailing_slash {
            path.push("");
        }
    }
    Ok(url)
}

/// The permanent error for a credential or URL that is not configured. Names
/// the `[handlers]` key and the variable its default reference reads.
/// The permanent error of a handler whose setting has no value: why it has
/// none (a reference an AWS source could not read), or how to set it.
pub fn missing_setting(settings: &ResolvedSettings, handler: &str, setting: &str, env: &str) -> HandlerError {
    if let Some(why) = settings.unreadable.get(setting) {
        return HandlerError::Permanent(format!("{handler}: handlers.{setting} could not be read: {why}"));
    }
    HandlerError::Permanent(format!(
        "{handler}: handlers.{setting} is not set (default reference env:{env}); set {env} or the setting"
    ))
}

/// The first of `pointers` (JSON pointers) that holds a non-empty string or a
/// number, as text. Payloads and answers put the same field in different
/// places (`/data/uuid` or `/uuid`), and ids arrive as strings or numbers.
pub fn text_at(value: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| value.pointer(p).and_then(scalar_text))
}

/// A non-empty (trimmed) string or a number, as text.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// The error and its causes ("error sending request: ... Connection refused").
fn error_chain(error: reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The start of a response body on one line, for an error text.
fn snippet(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(SNIPPET_CHARS).collect();
    if one_line.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}

/// Replaces every occurrence of each secret (long enough to be one) with `***`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        let secret = secret.trim();
        if secret.len() >= MIN_SECRET_LEN {
            out = out.replace(secret, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{refused_base, TestServer};
    use super::*;

    fn client() -> reqwest::Client {
        super::super::http_client(5).expect("client")
    }

    #[tokio::test]
    async fn two_hundreds_return_the_body() {
        let server = TestServer::start().await;
        server.reply(201, "application/json", r#"{"id":"x"}"#);
        let reply = Call::new("test call")
            .send(client().post(server.url("/a")).json(&serde_json::json!({"k": 1})))
            .await
            .expect("ok");
        assert_eq!(reply.status, 201);
        assert_eq!(reply.json("t").expect("json")["id"], "x");
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].path, "/a");
        assert_eq!(seen[0].json()["k"], 1);
    }

    #[tokio::test]
    async fn statuses_are_classified() {
        let cases = [
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (409, false),
            (422, false),
            (408, true),
            (429, true),
            (500, true),
            (502, true),
            (503, true),
        ];
        for (status, retryable) in cases {
            let server = TestServer::start().await;
            server.reply(status, "text/plain", "nope");
            let err = Call::new("test call")
                .send(client().get(server.url("/x")))
                .await
                .expect_err("must fail");
            assert_eq!(err.is_retryable(), retryable, "{status}: {err}");
            assert!(err.to_string().contains(&status.to_string()), "{err}");
            assert!(err.to_string().contains("nope"), "{err}");
        }
    }

    #[tokio::test]
    async fn retry_after_is_quoted_on_429() {
        let server = TestServer::start().await;
        server.reply_with_headers(429, &[("retry-after", "7")], "slow down");
        let err = Call::new("c")
            .send(client().get(server.url("/")))
            .await
            .expect_err("429");
        assert!(err.is_retryable());
        assert!(err.to_string().contains("retry-after 7"), "{err}");
    }

    #[tokio::test]
    async fn connection_refused_is_retryable_and_has_no_url() {
        let base = refused_base().await;
        let err = Call::new("test call")
            .send(client().get(format!("{base}/hooks/T000/B000/sekrit-token")))
            .await
            .expect_err("refused");
        assert!(err.is_retryable(), "{err}");
        assert!(!err.to_string().contains("sekrit-token"), "{err}");
        assert!(!err.to_string().contains("127.0.0.1"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_url_is_permanent() {
        let err = Call::new("c")
            .send(client().get("not a url"))
            .await
            .expect_err("bad url");
        assert!(!err.is_retryable(), "{err}");
    }

    #[tokio::test]
    async fn secrets_echoed_by_the_server_are_masked() {
        let server = TestServer::start().await;
        server.reply(400, "application/json", r#"{"error":"bad key sk_live_abcdef"}"#);
        let secret = Secret::new(b"sk_live_abcdef".to_vec());
        let err = Call::new("c")
            .masking(Some(&secret))
            .send(client().get(server.url("/")))
            .await
            .expect_err("400");
        assert!(!err.to_string().contains("sk_live_abcdef"), "{err}");
        assert!(err.to_string().contains("***"), "{err}");
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_permanent() {
        let server = TestServer::start().await;
        server.reply(200, "application/pdf", vec![b'x'; 2048]);
        let err = Call::new("c")
            .max_body(1024)
            .send(client().get(server.url("/")))
            .await
            .expect_err("too big");
        assert!(!err.is_retryable(), "{err}");
    }

    #[tokio::test]
    async fn non_json_success_is_permanent_when_json_is_expected() {
        let server = TestServer::start().await;
        server.reply(200, "text/html", "<html>maintenance</html>");
        let reply = Call::new("c").send(client().get(server.url("/"))).await.expect("200");
        assert!(!reply.json("c").expect_err("not json").is_retryable());
    }

    #[test]
    fn endpoints_encode_segments() {
        let url = endpoint(
            "https://api.example.com/v2/",
            "handlers.x",
            &["invoices", "a/../b"],
            false,
        )
        .expect("url");
        assert_eq!(url.as_str(), "https://api.example.com/v2/invoices/a%2F..%2Fb");
        let url = endpoint("https://api.example.com", "handlers.x", &["payments", "p1"], true).expect("url");
        assert_eq!(url.as_str(), "https://api.example.com/payments/p1/");
        let err = endpoint("ftp://x", "handlers.x", &[], false).expect_err("scheme");
        assert!(err.to_string().contains("handlers.x"));
        assert!(endpoint("", "handlers.x", &[], false).is_err());
    }

    #[test]
    fn text_at_takes_the_first_present_scalar() {
        let v = serde_json::json!({"data": {"uuid": "  ", "n": 5}, "uuid": "U1"});
        assert_eq!(text_at(&v, &["/data/uuid", "/uuid"]).as_deref(), Some("U1"));
        assert_eq!(text_at(&v, &["/data/n"]).as_deref(), Some("5"));
        assert_eq!(text_at(&v, &["/nope"]), None);
    }

    #[test]
    fn short_values_are_not_masked() {
        assert_eq!(mask("a key k", &["k".into()]), "a key k");
        assert_eq!(mask("token=abcd1234", &["abcd1234".into()]), "token=***");
    }
}
