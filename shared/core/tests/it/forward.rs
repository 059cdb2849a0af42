//! Forwarding from configuration through the whole app: `forward:NAME`
//! handlers built from `[destinations]`, each destination its own handler
//! (a retry re-sends only to the one that failed), an unknown destination
//! refused at start-up, and every request verified by an independent
//! Standard Webhooks implementation (the `standardwebhooks` PyPI library).

use crate::harness::{gigstack_signature, secrets, Harness, FWD_WHSEC};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use webhooks_core::app::{App, AppError, Ports};
use webhooks_core::config::AppConfig;
use webhooks_core::event::EventState;
use webhooks_core::ports::artifacts::LocalDir;
use webhooks_sqlite::{Durability, SqliteBackend};
use webhooks_testkit::http_sink::TestServer;

/// Provider `fwd` (gigstack's signature) with `invoice.paid` forwarded to
/// two destinations.
fn overlay(erp: &str, audit: &str) -> String {
    format!(
        r#"
[providers.fwd]
verifier = {{ scheme = "hmac", header = "X-Gigstack-Signature", algorithm = "sha256", encoding = "hex", secrets = ["env:GIGSTACK_WEBHOOK_SECRET"] }}
event_id = "body:/id"
event_type = "body:/type"
handlers = {{ "invoice.paid" = ["forward:erp", "forward:audit"] }}

[destinations.erp]
url = "{erp}"
signing_secret = "env:FWD_SECRET"
timeout_secs = 5

[destinations.audit]
url = "{audit}"
signing_secret = "env:FWD_SECRET"
timeout_secs = 5
"#
    )
}

/// A signed delivery to the `fwd` provider.
fn fwd_request(body: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post("/webhooks/fwd")
        .header("content-type", "application/json")
        .header("X-Gigstack-Signature", gigstack_signature(body.as_bytes()))
        .body(axum::body::Body::from(body.to_string()))
        .expect("request")
}

fn paid_body(id: &str) -> String {
    format!(r#"{{"id":"{id}","type":"invoice.paid","data":{{"total":  10.50}}}}"#)
}

#[tokio::test]
async fn each_destination_is_its_own_handler_and_a_retry_resends_only_to_the_one_that_failed() {
    let (erp, audit) = (TestServer::start().await, TestServer::start().await);
    erp.reply(204, "text/plain", "");
    audit.reply(503, "text/plain", "busy");
    let h = Harness::with_overlay(&overlay(&erp.url("/erp"), &audit.url("/audit")));
    let body = paid_body("evt_fwd_1");
    let (status, _, text) = h.call(fwd_request(&body)).await;
    assert_eq!(status.as_u16(), 200, "{text}");
    h.drain(Duration::from_secs(15)).await;
    let rec = h.record("fwd", "evt_fwd_1").await.expect("record");
    assert_eq!(rec.state, EventState::Done, "{rec:?}");
    assert_eq!(rec.results["forward:erp"]["forwarded"], true);
    assert_eq!(rec.results["forward:audit"]["status"], 200);
    let (erp_seen, audit_seen) = (erp.requests(), audit.requests());
    assert_eq!(erp_seen.len(), 1, "the destination that succeeded is not sent again");
    assert_eq!(audit_seen.len(), 2, "the one that answered 503 is retried");
    for r in erp_seen.iter().chain(&audit_seen) {
        assert_eq!(r.body, body.as_bytes(), "the sender's body byte for byte");
    }
    let id = |r: &webhooks_testkit::http_sink::Recorded| r.header("webhook-id").expect("webhook-id");
    assert_eq!(id(&audit_seen[0]), id(&audit_seen[1]), "stable across retries");
    assert_ne!(id(&erp_seen[0]), id(&audit_seen[0]), "different per destination");
}

#[tokio::test]
async fn an_unknown_destination_stops_the_start_up_naming_it() {
    let config = AppConfig::from_overlay(Some((
        "test",
        "[providers.gigstack.handlers]\n\"invoice.paid\" = [\"forward:warehouse\"]",
    )))
    .expect("config");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqliteBackend::open(&dir.path().join("t.db"), Durability::Normal).expect("db");
    let ports = Ports::new(db.store(), db.queue(), Arc::new(LocalDir::new(dir.path())));
    let err = App::build(&config, &secrets(), ports).err().expect("refused");
    assert!(matches!(err, AppError::UnknownDestination { .. }), "{err}");
    assert!(err.to_string().contains("[destinations.warehouse]"), "{err}");
}

/// The receiver: verifies each request with `standardwebhooks.Webhook(secret)`
/// (parsing the body as JSON only when it says it is JSON) and answers 204,
/// or 400 when verification fails.
const RECEIVER: &str = r#"
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from standardwebhooks import Webhook

hook = Webhook(os.environ["RECEIVER_SECRET"])

class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        # verify() parses the body as JSON unless told not to: a forwarded
        # form body is verified as the bytes it is.
        is_json = headers.get("content-type", "").startswith("application/json")
        try:
            hook.verify(body, headers, json_parse=is_json)
            self.send_response(204)
        except Exception as e:
            sys.stderr.write("rejected: %r\n" % (e,))
            self.send_response(400)
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A Python that imports `standardwebhooks`: `$WEBHOOKS_PYENV`, then the
/// project's `target/pyenv` (where scripts/test installs the test tools),
/// then `python3`. `None` when none has the library.
fn python_with_standardwebhooks() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(env) = std::env::var("WEBHOOKS_PYENV") {
        candidates.push(PathBuf::from(env).join("bin/python"));
    }
    candidates.push(root.join("target/pyenv/bin/python"));
    candidates.push(PathBuf::from("python3"));
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import standardwebhooks"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The receiver process, killed when dropped.
struct Receiver {
    child: Child,
    url: String,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_receiver(python: &PathBuf) -> Receiver {
    let mut child = Command::new(python)
        .args(["-c", RECEIVER])
        .env("RECEIVER_SECRET", FWD_WHSEC)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python receiver");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the receiver prints its port");
    let port: u16 = line.trim().parse().expect("a port");
    Receiver {
        child,
        url: format!("http://127.0.0.1:{port}/hook"),
    }
}

#[tokio::test]
async fn a_standard_webhooks_library_verifies_what_is_forwarded() {
    let Some(python) = python_with_standardwebhooks() else {
        if std::env::var("WEBHOOKS_TEST_AWS_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("WEBHOOKS_TEST_AWS_REQUIRED=1 but no Python imports standardwebhooks (pip install -r scripts/requirements-test.txt)");
        }
        eprintln!("skipped: no Python with the standardwebhooks library (set WEBHOOKS_PYENV)");
        return;
    };
    let receiver = start_receiver(&python);
    let h = Harness::with_overlay(&overlay(&receiver.url, &receiver.url));
    let body = paid_body("evt_fwd_py");
    let (status, _, text) = h.call(fwd_request(&body)).await;
    assert_eq!(status.as_u16(), 200, "{text}");
    h.drain(Duration::from_secs(15)).await;
    let rec = h.record("fwd", "evt_fwd_py").await.expect("record");
    assert_eq!(rec.state, EventState::Done, "{rec:?}");
    assert_eq!(rec.results["forward:erp"]["status"], 204, "{rec:?}");
    assert_eq!(rec.results["forward:audit"]["status"], 204, "{rec:?}");

    // The receiver does verify: a changed body with the same headers is refused.
    let client = reqwest::Client::new();
    let now = webhooks_core::time::unix_now().to_string();
    let key = webhooks_core::verify::standard_webhooks::decode_secret(FWD_WHSEC.as_bytes()).expect("key");
    let sig = webhooks_core::verify::standard_webhooks::signature(&key, "msg_x", &now, body.as_bytes());
    let send = |payload: String| {
        client
            .post(&receiver.url)
            .header("webhook-id", "msg_x")
            .header("webhook-timestamp", &now)
            .header("webhook-signature", &sig)
            .body(payload)
            .send()
    };
    let genuine = send(body.clone()).await.expect("answer");
    assert_eq!(genuine.status().as_u16(), 204, "the control request passes");
    let tampered = send(body.replace("10.50", "99.50")).await.expect("answer");
    assert_eq!(tampered.status().as_u16(), 400);
}

/// Provider `fwdform` (gigstack's signature over a form body, like Twilio's
/// or Slack's deliveries) and `fwdbatch` (a JSON batch under `/events`),
/// each forwarding to `erp` (a recording server) and `audit` (the Python
/// receiver, which verifies).
fn form_and_batch_overlay(erp: &str, audit: &str) -> String {
    format!(
        r#"
[providers.fwdform]
verifier = {{ scheme = "hmac", header = "X-Gigstack-Signature", algorithm = "sha256", encoding = "hex", secrets = ["env:GIGSTACK_WEBHOOK_SECRET"] }}
format = "auto"
event_id = "body:/MessageSid"
event_type = "const:sms.received"
handlers = {{ "sms.received" = ["forward:erp", "forward:audit"] }}

[providers.fwdbatch]
verifier = {{ scheme = "hmac", header = "X-Gigstack-Signature", algorithm = "sha256", encoding = "hex", secrets = ["env:GIGSTACK_WEBHOOK_SECRET"] }}
event_id = "body:/id"
event_type = "body:/type"
batch_path = "/events"
handlers = {{ "invoice.paid" = ["forward:erp", "forward:audit"] }}

[destinations.erp]
url = "{erp}"
signing_secret = "env:FWD_SECRET"
timeout_secs = 5

[destinations.audit]
url = "{audit}"
signing_secret = "env:FWD_SECRET"
timeout_secs = 5
"#
    )
}

fn signed_request(provider: &str, content_type: &str, body: &[u8]) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post(format!("/webhooks/{provider}"))
        .header("content-type", content_type)
        .header("X-Gigstack-Signature", gigstack_signature(body))
        .body(axum::body::Body::from(body.to_vec()))
        .expect("request")
}

#[tokio::test]
async fn a_form_delivery_is_forwarded_as_it_arrived_and_again_as_it_arrived_on_replay() {
    let Some(python) = python_with_standardwebhooks() else {
        if std::env::var("WEBHOOKS_TEST_AWS_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("WEBHOOKS_TEST_AWS_REQUIRED=1 but no Python imports standardwebhooks");
        }
        eprintln!("skipped: no Python with the standardwebhooks library (set WEBHOOKS_PYENV)");
        return;
    };
    let receiver = start_receiver(&python);
    let erp = TestServer::start().await;
    // First a permanent refusal (the event is dead-lettered before `audit`
    // runs), then accepted.
    erp.reply(400, "text/plain", "no");
    let h = Harness::with_overlay(&form_and_batch_overlay(&erp.url("/erp"), &receiver.url));
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let body: &[u8] = b"MessageSid=SMf0rm1&Body=caf%C3%A9+%26+m%C3%A1s&Amount=10.50&From=%2B5215512345678";
    let (status, _, text) = h.call(signed_request("fwdform", content_type, body)).await;
    assert_eq!(status.as_u16(), 200, "{text}");
    h.drain(Duration::from_secs(15)).await;
    let rec = h.record("fwdform", "SMf0rm1").await.expect("record");
    assert_eq!(rec.state, EventState::Failed, "{rec:?}");
    assert_eq!(
        rec.payload.as_ref().and_then(|p| p.json().ok()).expect("JSON payload")["Body"],
        "café & más",
        "handlers still see the form as a JSON object"
    );
    let first = erp.single_request();
    assert_eq!(first.body, body, "the form body byte for byte, not its JSON rendering");
    assert_eq!(first.header("content-type").as_deref(), Some(content_type));

    // The replay rebuilds the event from the stored record (the SQLite
    // message refers to it): the same bytes go out again.
    let replayed = webhooks_core::pipeline::replay::replay_event(
        h.store.as_ref(),
        h.queue.as_ref(),
        &webhooks_core::event::EventKey::new("fwdform", "SMf0rm1"),
        webhooks_core::time::unix_now(),
    )
    .await
    .expect("replay");
    assert!(
        matches!(replayed, webhooks_core::pipeline::replay::Replayed::FromDeadLetters),
        "{replayed:?}"
    );
    h.drain(Duration::from_secs(15)).await;
    let rec = h.record("fwdform", "SMf0rm1").await.expect("record");
    assert_eq!(rec.state, EventState::Done, "{rec:?}");
    assert_eq!(
        rec.results["forward:audit"]["status"], 204,
        "the standardwebhooks library verified the form body: {rec:?}"
    );
    let seen = erp.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body, body, "the replay sends the original bytes too");
    assert_eq!(seen[1].header("content-type").as_deref(), Some(content_type));
}

#[tokio::test]
async fn each_element_of_a_json_batch_is_forwarded_as_its_own_bytes() {
    let Some(python) = python_with_standardwebhooks() else {
        if std::env::var("WEBHOOKS_TEST_AWS_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("WEBHOOKS_TEST_AWS_REQUIRED=1 but no Python imports standardwebhooks");
        }
        eprintln!("skipped: no Python with the standardwebhooks library (set WEBHOOKS_PYENV)");
        return;
    };
    let receiver = start_receiver(&python);
    let erp = TestServer::start().await;
    let h = Harness::with_overlay(&form_and_batch_overlay(&erp.url("/erp"), &receiver.url));
    let first = r#"{"type":"invoice.paid",  "id":"evt_b1","total": 10.50}"#;
    let second = r#"{ "id":"evt_b2", "type":"invoice.paid", "big": 123456789012345678901234 }"#;
    let body = format!(
        r#"{{"events": [{first},
        {second}]}}"#
    );
    let (status, _, text) = h
        .call(signed_request("fwdbatch", "application/json", body.as_bytes()))
        .await;
    assert_eq!(status.as_u16(), 200, "{text}");
    h.drain(Duration::from_secs(15)).await;
    for id in ["evt_b1", "evt_b2"] {
        let rec = h.record("fwdbatch", id).await.expect("record");
        assert_eq!(rec.state, EventState::Done, "{rec:?}");
        assert_eq!(
            rec.results["forward:audit"]["status"], 204,
            "the library verified it: {rec:?}"
        );
    }
    let mut seen: Vec<Vec<u8>> = erp
        .requests()
        .into_iter()
        .map(|r| {
            assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
            r.body
        })
        .collect();
    seen.sort();
    let mut expected = vec![first.as_bytes().to_vec(), second.as_bytes().to_vec()];
    expected.sort();
    assert_eq!(
        seen, expected,
        "each element as it stood in the batch: key order, spacing, 10.50 and the big number kept"
    );
}
