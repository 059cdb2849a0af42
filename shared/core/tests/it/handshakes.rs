//! The senders' handshakes end to end, through the real router, pipelines
//! and SQLite adapters: Meta's GET subscription check, Slack's signed
//! `url_verification` challenge, Zoom's signed `endpoint.url_validation`,
//! Twilio's signature over the public URL rebuilt from forwarded headers and
//! Square's over the configured `public_url`. Providers come from a TOML overlay whose
//! secrets are `env:` references resolved by the test's own map.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use std::sync::Arc;
use tower::ServiceExt;
use webhooks_core::app::{App, Ports};
use webhooks_core::config::AppConfig;
use webhooks_core::event::{Event, EventRecord};
use webhooks_core::handlers::{Handler, HandlerError};
use webhooks_core::ports::artifacts::LocalDir;
use webhooks_core::ports::store::{EventStore, ListFilter};
use webhooks_core::secret::MapResolver;
use webhooks_core::time::unix_now;
use webhooks_sqlite::{Durability, SqliteBackend, SqliteStore};

const META_APP_SECRET: &str = "test-meta-app-secret-4c3b";
const META_OLD_APP_SECRET: &str = "test-meta-old-app-secret-9d8e";
const META_VERIFY_TOKEN: &str = "test-meta-verify-token-7f6e";
const SLACK_SECRET: &str = "test-slack-signing-secret-2a1b";
const TWILIO_TOKEN: &str = "test-twilio-auth-token-0c9d";
const SQUARE_KEY: &str = "test-square-signature-key-5e4f";
const ZOOM_SECRET: &str = "test-zoom-secret-token-8a7b";
/// The notification URL saved in the Square subscription.
const SQUARE_URL: &str = "https://hooks.example.com/square/notifications";

/// The providers under test; every secret is a reference into [`secrets`].
const OVERLAY: &str = r#"
[providers.whatsapp]
verifier = { scheme = "meta", secrets = ["env:META_TEST_APP_SECRET"], verify_tokens = ["env:META_TEST_VERIFY_TOKEN"] }
batch_path = "/entry"
event_id = "body:/id"
event_type = ["body:/changes/0/field", "const:entry"]
handlers = { "*" = ["test.noop"] }

[providers.slack]
verifier = { scheme = "slack", secrets = ["env:SLACK_TEST"] }
format = "auto"
event_id = "body:/event_id"
event_type = ["body:/event/type", "body:/type"]
handlers = { "*" = ["test.noop"] }

# No public_url: the URL Twilio signed is rebuilt from X-Forwarded-*.
[providers.twilio]
verifier = { scheme = "twilio", secrets = ["env:TWILIO_TEST"] }
format = "auto"
event_id = ["body:/MessageSid", "?body:/MessageStatus"]
event_type = ["body:/MessageStatus", "const:message"]
handlers = { "*" = ["test.noop"] }

# Square signs the subscription's URL, set here as public_url (the proxy
# maps it to /webhooks/square).
[providers.square]
preset = "square"
secrets = ["env:SQUARE_TEST"]
public_url = "https://hooks.example.com/square/notifications"
handlers = { "*" = ["test.noop"] }

[providers.zoom]
preset = "zoom"
secrets = ["env:ZOOM_TEST"]
handlers = { "*" = ["test.noop"] }
"#;

fn secrets() -> MapResolver {
    MapResolver::default()
        .with("META_TEST_APP_SECRET", META_APP_SECRET)
        .with("META_TEST_VERIFY_TOKEN", META_VERIFY_TOKEN)
        .with("SLACK_TEST", SLACK_SECRET)
        .with("TWILIO_TEST", TWILIO_TOKEN)
        .with("SQUARE_TEST", SQUARE_KEY)
        .with("ZOOM_TEST", ZOOM_SECRET)
}

/// A handler that does nothing, so routed events are queued.
struct Noop;

#[async_trait]
impl Handler for Noop {
    async fn handle(&self, _event: &Event) -> Result<serde_json::Value, HandlerError> {
        Ok(serde_json::Value::Null)
    }
}

struct Harness {
    router: axum::Router,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
    }

    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl Harness {
    fn new() -> Self {
        let config = AppConfig::from_overlay(Some(("handshakes", OVERLAY))).expect("test config");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteBackend::open(&dir.path().join("t.db"), Durability::Normal).expect("db");
        let store = db.store();
        let ports = Ports::new(
            store.clone(),
            db.queue(),
            Arc::new(LocalDir::new(dir.path().join("artifacts"))),
        );
        let app = App::build_with(&config, &secrets(), ports, |reg, _| {
            reg.register("test.noop", Arc::new(Noop));
        })
        .expect("app builds");
        for name in ["whatsapp", "slack", "twilio", "square", "zoom"] {
            assert!(app.ingest.providers().get(name).is_some(), "{name} is served");
        }
        Self {
            router: webhooks_core::http::router(app.ingest.clone()),
            store,
            _dir: dir,
        }
    }

    async fn call(&self, req: Request<Body>) -> Answer {
        let resp = self.router.clone().oneshot(req).await.expect("router answers");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn records(&self, provider: &str) -> Vec<EventRecord> {
        self.store
            .list(&ListFilter {
                provider: Some(provider.to_string()),
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("list")
    }
}

/// HMAC-SHA256, computed here independently of the crate's verifiers.
fn hmac_sha256(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <SimpleHmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(key.as_bytes()).expect("key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hub_signature(secret: &str, body: &str) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret, &[body.as_bytes()])))
}

#[tokio::test]
async fn meta_get_handshake_answers_the_challenge_only_for_the_verify_token() {
    let h = Harness::new();
    let get = |token: &str| {
        Request::get(format!(
            "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        ))
        .body(Body::empty())
        .expect("request")
    };
    let ok = h.call(get(META_VERIFY_TOKEN)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.content_type().starts_with("text/plain"), "{:?}", ok.headers);
    assert_eq!(ok.text, "1158201444");

    for token in ["wrong-token", META_APP_SECRET, ""] {
        let refused = h.call(get(token)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{token:?}");
        assert!(!refused.text.contains("1158201444"), "{}", refused.text);
    }
    let unsubscribe = Request::get(format!(
        "/webhooks/whatsapp?hub.mode=unsubscribe&hub.verify_token={META_VERIFY_TOKEN}&hub.challenge=1"
    ))
    .body(Body::empty())
    .expect("request");
    assert_eq!(h.call(unsubscribe).await.status, StatusCode::FORBIDDEN);
    assert!(h.records("whatsapp").await.is_empty(), "a handshake is no event");
}

#[tokio::test]
async fn meta_post_with_a_valid_hub_signature_is_accepted() {
    let h = Harness::new();
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"WABA_1","changes":[{"field":"messages","value":{}}]}]}"#;
    let post = |sigs: &[&str]| {
        let mut req = Request::post("/webhooks/whatsapp").header("content-type", "application/json");
        for sig in sigs {
            req = req.header("X-Hub-Signature-256", *sig);
        }
        req.body(Body::from(body)).expect("request")
    };
    let ok = h.call(post(&[&hub_signature(META_APP_SECRET, body)])).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.json()["ids"], serde_json::json!(["WABA_1"]));
    assert_eq!(h.records("whatsapp").await[0].event_type, "messages");

    let forged = h.call(post(&[&hub_signature("not-the-app-secret", body)])).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.json(), serde_json::json!({"error": "invalid_signature"}));
    // The verify token is not the app secret.
    let with_token = h.call(post(&[&hub_signature(META_VERIFY_TOKEN, body)])).await;
    assert_eq!(with_token.status, StatusCode::UNAUTHORIZED);
    let unsigned = h.call(post(&[])).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unsigned.json(), serde_json::json!({"error": "missing_signature"}));

    // The header repeated on the way (a stale value next to the right one).
    let repeated = h
        .call(post(&[
            &hub_signature(META_OLD_APP_SECRET, body),
            &hub_signature(META_APP_SECRET, body),
        ]))
        .await;
    assert_eq!(repeated.status, StatusCode::OK, "{}", repeated.text);
    assert_eq!(repeated.json()["status"], "duplicate");
}

fn slack_post(body: &str, signed_with: Option<&str>, ts: i64) -> Request<Body> {
    let mut req = Request::post("/webhooks/slack").header("content-type", "application/json");
    if let Some(secret) = signed_with {
        let ts = ts.to_string();
        let mac = hmac_sha256(secret, &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]);
        req = req
            .header("X-Slack-Signature", format!("v0={}", hex::encode(mac)))
            .header("X-Slack-Request-Timestamp", ts);
    }
    req.body(Body::from(body.to_string())).expect("request")
}

#[tokio::test]
async fn slack_url_verification_is_answered_with_the_challenge_and_not_recorded() {
    let h = Harness::new();
    let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let now = unix_now();
    let ok = h.call(slack_post(body, Some(SLACK_SECRET), now)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.content_type().starts_with("text/plain"), "{:?}", ok.headers);
    assert_eq!(ok.text, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    assert!(h.records("slack").await.is_empty(), "a challenge is no event");

    let unsigned = h.call(slack_post(body, None, now)).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unsigned.json(), serde_json::json!({"error": "missing_signature"}));
    assert!(!unsigned.text.contains("3eZbrw1a"), "{}", unsigned.text);
    let forged = h.call(slack_post(body, Some("not-the-signing-secret"), now)).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.json(), serde_json::json!({"error": "invalid_signature"}));
    let stale = h.call(slack_post(body, Some(SLACK_SECRET), now - 600)).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert_eq!(stale.json(), serde_json::json!({"error": "timestamp_out_of_tolerance"}));
    assert!(h.records("slack").await.is_empty());

    // A signed event, by contrast, is recorded.
    let event = r#"{"type":"event_callback","event_id":"Ev0PV52K21","event":{"type":"app_mention"}}"#;
    let accepted = h.call(slack_post(event, Some(SLACK_SECRET), now)).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert_eq!(accepted.json()["ids"], serde_json::json!(["Ev0PV52K21"]));
    let records = h.records("slack").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event_type, "app_mention");
}

/// base64(HMAC-SHA1(auth token, URL + each sorted parameter's name and
/// value)), as Twilio computes it, independently of the crate.
fn twilio_signature(url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac =
        <SimpleHmac<sha1::Sha1> as hmac::digest::KeyInit>::new_from_slice(TWILIO_TOKEN.as_bytes()).expect("key");
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn twilio_is_verified_against_the_public_url_from_forwarded_headers() {
    let h = Harness::new();
    let params = [
        ("MessageSid", "SM1f0e8ae6ade43cb3c0ce4525424e404f"),
        ("MessageStatus", "delivered"),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("To", "+15558675310"),
    ];
    let body = serde_urlencoded::to_string(params).expect("form");
    // Behind a proxy: the app sees its internal host, the sender called the public one.
    let post = |signature: String| {
        Request::post("/webhooks/twilio")
            .header("host", "10.0.3.7:3000")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "hooks.example.com")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(Body::from(body.clone()))
            .expect("request")
    };
    let public = twilio_signature("https://hooks.example.com/webhooks/twilio", &params);
    let ok = h.call(post(public)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        ok.json()["ids"],
        serde_json::json!(["SM1f0e8ae6ade43cb3c0ce4525424e404f:delivered"])
    );

    for internal in [
        "http://10.0.3.7:3000/webhooks/twilio",
        "https://10.0.3.7:3000/webhooks/twilio",
        "http://hooks.example.com/webhooks/twilio",
    ] {
        let rejected = h.call(post(twilio_signature(internal, &params))).await;
        assert_eq!(rejected.status, StatusCode::UNAUTHORIZED, "{internal}");
        assert_eq!(
            rejected.json(),
            serde_json::json!({"error": "invalid_signature"}),
            "{internal}"
        );
    }
    assert_eq!(
        h.records("twilio").await.len(),
        1,
        "only the first delivery is recorded"
    );
}

#[tokio::test]
async fn square_is_verified_against_the_configured_public_url() {
    let h = Harness::new();
    let body = r#"{"merchant_id":"6SSW7HV8K2ST5","type":"payment.updated","event_id":"13b867cf-db3d-4b25-90d3-4d4b6ee4ee3e","created_at":"2020-02-06T22:14:30.000Z","data":{"type":"payment","id":"KkAkhdMsgzn59SM8A89WgKwekxLZY"}}"#;
    // Behind a proxy that rewrites the path and forwards another host: the
    // configured public_url wins over both.
    let post = |signed_url: &str| {
        let sig = hmac_sha256(SQUARE_KEY, &[signed_url.as_bytes(), body.as_bytes()]);
        Request::post("/webhooks/square")
            .header("host", "10.0.3.7:3000")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "other.example.com")
            .header("content-type", "application/json")
            .header(
                "x-square-hmacsha256-signature",
                base64::engine::general_purpose::STANDARD.encode(sig),
            )
            .body(Body::from(body))
            .expect("request")
    };
    let ok = h.call(post(SQUARE_URL)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        ok.json()["ids"],
        serde_json::json!(["13b867cf-db3d-4b25-90d3-4d4b6ee4ee3e"])
    );
    for other in [
        "https://other.example.com/webhooks/square",
        "http://10.0.3.7:3000/webhooks/square",
        "https://hooks.example.com/webhooks/square",
    ] {
        let rejected = h.call(post(other)).await;
        assert_eq!(rejected.status, StatusCode::UNAUTHORIZED, "{other}");
        assert_eq!(
            rejected.json(),
            serde_json::json!({"error": "invalid_signature"}),
            "{other}"
        );
    }
    let records = h.records("square").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event_type, "payment.updated");
}

fn zoom_post(body: &str, signed_with: &str) -> Request<Body> {
    let ts = unix_now().to_string();
    let mac = hmac_sha256(signed_with, &[b"v0:", ts.as_bytes(), b":", body.as_bytes()]);
    Request::post("/webhooks/zoom")
        .header("content-type", "application/json")
        .header("x-zm-signature", format!("v0={}", hex::encode(mac)))
        .header("x-zm-request-timestamp", ts)
        .body(Body::from(body.to_string()))
        .expect("request")
}

#[tokio::test]
async fn zoom_url_validation_is_answered_with_the_encrypted_token_and_not_recorded() {
    let h = Harness::new();
    let body = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let ok = h.call(zoom_post(body, ZOOM_SECRET)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert!(ok.content_type().starts_with("application/json"), "{:?}", ok.headers);
    let expected = hex::encode(hmac_sha256(ZOOM_SECRET, &[b"qgg8vlvZRS6UYooatFL8Aw"]));
    assert_eq!(
        ok.json(),
        serde_json::json!({"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected})
    );
    let forged = h.call(zoom_post(body, "not-the-secret-token")).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.json(), serde_json::json!({"error": "invalid_signature"}));
    assert!(!forged.text.contains("encryptedToken"), "{}", forged.text);
    assert!(h.records("zoom").await.is_empty(), "a challenge is no event");

    let event = r#"{"event":"meeting.started","payload":{"account_id":"AAAAAABBBB","object":{"id":"1234567890"}},"event_ts":1635885799302}"#;
    let accepted = h.call(zoom_post(event, ZOOM_SECRET)).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(event.as_bytes()));
    assert_eq!(accepted.json()["ids"], serde_json::json!([hash]));
    let records = h.records("zoom").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].event_type, "meeting.started");
}
