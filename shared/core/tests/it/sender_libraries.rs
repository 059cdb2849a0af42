//! Presets against the senders' own libraries. Public-key: a Discord
//! delivery signed by PyNaCl (the Ed25519 library Discord's docs use) goes
//! through the `discord` preset, and what our `discord` signer makes with a
//! PyNaCl key (`webhooks sign --private-key`) PyNaCl verifies; a SendGrid
//! delivery whose signature SendGrid's own helper
//! (`sendgrid.helpers.eventwebhook.EventWebhook`) accepts goes through the
//! `sendgrid` preset. HMAC: HubSpot's signature utility
//! (`hubspot.utils.signature.Signature`, from `hubspot-api-client`) accepts
//! what our `hubspot` signer makes and computes v3 signatures the preset
//! accepts, and Square's `webhooks_helper` (from `squareup`) accepts what
//! our `square` signer makes, which the preset accepts in turn; Paddle's SDK
//! (`paddle_billing.Notifications`, from `paddle-python-sdk`) verifies what
//! our `paddle` signer makes and signs what the preset accepts. Each key is
//! made at run time, so no vector of ours is assumed; tampered copies are
//! refused.

use crate::harness::{post, secrets, Harness};
use base64::Engine;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A Python that imports `module`: `$WEBHOOKS_PYENV`, then the project's
/// `target/pyenv` (where scripts/test installs the test tools), then
/// `python3`. `None` when none has it; a failure instead of a skip when
/// `WEBHOOKS_TEST_AWS_REQUIRED=1` (the full suite).
fn python_with(module: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(env) = std::env::var("WEBHOOKS_PYENV") {
        candidates.push(PathBuf::from(env).join("bin/python"));
    }
    candidates.push(root.join("target/pyenv/bin/python"));
    candidates.push(PathBuf::from("python3"));
    let found = candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        if std::env::var("WEBHOOKS_TEST_AWS_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("WEBHOOKS_TEST_AWS_REQUIRED=1 but no Python imports {module} (pip install -r scripts/requirements-test.txt)");
        }
        eprintln!("skipped: no Python with {module} (set WEBHOOKS_PYENV)");
    }
    found
}

/// Runs `script` with `args`, returning its stdout as JSON.
fn run_python(python: &PathBuf, script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run Python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON from the script")
}

/// Signs timestamp + body as Discord does, with a fresh PyNaCl key.
const DISCORD_SIGNER: &str = r#"
import json, sys
from nacl.signing import SigningKey
key = SigningKey.generate()
ts, body = sys.argv[1], sys.argv[2]
signed = key.sign((ts + body).encode())
print(json.dumps({"public_key": key.verify_key.encode().hex(), "signature": signed.signature.hex()}))
"#;

#[tokio::test]
async fn a_pynacl_signed_discord_delivery_passes_the_discord_preset_and_a_tampered_one_does_not() {
    let Some(python) = python_with("nacl") else { return };
    let ts = webhooks_core::time::unix_now().to_string();
    let body = r#"{"id":"1200000000000000001","type":2,"data":{"name":"ping"}}"#;
    let signed = run_python(&python, DISCORD_SIGNER, &[&ts, body]);
    let (key, sig) = (
        signed["public_key"].as_str().expect("key"),
        signed["signature"].as_str().expect("sig"),
    );
    let overlay = r#"
[providers.discord]
preset = "discord"
public_keys = ["env:DISCORD_TEST_PUBLIC_KEY"]
handlers = { "*" = ["test.effect"] }
"#;
    let h = Harness::with_overlay_and_secrets(overlay, secrets().with("DISCORD_TEST_PUBLIC_KEY", key));
    let headers = [("X-Signature-Ed25519", sig), ("X-Signature-Timestamp", ts.as_str())];
    let tampered = body.replace("ping", "pong");
    accepted_and_refused_tampered(&h, "discord", "1200000000000000001", body, &tampered, &headers).await;
    let later = (ts.parse::<i64>().expect("ts") + 1).to_string();
    let moved = [("X-Signature-Ed25519", sig), ("X-Signature-Timestamp", later.as_str())];
    let (status, _, text) = h.call(post("/webhooks/discord", body, &moved)).await;
    assert_eq!(status.as_u16(), 401, "the timestamp is signed: {text}");
}

/// PyNaCl as a receiver: `key` prints a fresh key pair (seed and public
/// key, hex); `check PUBLIC SIG TS BODY` prints whether PyNaCl verifies.
const NACL: &str = r#"
import json, sys
from nacl.signing import SigningKey, VerifyKey
from nacl.exceptions import BadSignatureError
if sys.argv[1] == "key":
    key = SigningKey.generate()
    print(json.dumps({"seed": key.encode().hex(), "public_key": key.verify_key.encode().hex()}))
else:
    public, sig, ts, body = sys.argv[2:6]
    try:
        VerifyKey(bytes.fromhex(public)).verify((ts + body).encode(), bytes.fromhex(sig))
        print(json.dumps({"valid": True}))
    except BadSignatureError:
        print(json.dumps({"valid": False}))
"#;

#[tokio::test]
async fn what_the_discord_preset_signs_with_a_pynacl_key_pynacl_verifies() {
    let Some(python) = python_with("nacl") else { return };
    let pair = run_python(&python, NACL, &["key"]);
    let (seed, public) = (
        pair["seed"].as_str().expect("seed"),
        pair["public_key"].as_str().expect("key"),
    );
    let overlay = r#"
[providers.discord]
preset = "discord"
public_keys = ["env:DISCORD_TEST_PUBLIC_KEY"]
handlers = { "*" = ["test.effect"] }
"#;
    let resolver = secrets().with("DISCORD_TEST_PUBLIC_KEY", public);
    let provider = preset_provider(overlay, "discord", &resolver);
    let body = r#"{"id":"1200000000000000009","type":2,"data":{"name":"ping"}}"#;
    // What `webhooks sign discord --private-key` prints, with PyNaCl's seed.
    let signed = provider
        .verifier
        .sign_with_private_key(
            &webhooks_core::verify::SignInput {
                body: body.as_bytes(),
                now: webhooks_core::time::unix_now(),
                id: "",
                url: "",
            },
            &webhooks_core::secret::Secret::new(seed),
        )
        .expect("signs");
    let (sig, ts) = (
        signed_header(&signed, "X-Signature-Ed25519"),
        signed_header(&signed, "X-Signature-Timestamp"),
    );
    let check = |body: &str| run_python(&python, NACL, &["check", public, sig, ts, body])["valid"].clone();
    assert_eq!(check(body), serde_json::json!(true), "PyNaCl verifies ours");
    assert_eq!(
        check(&body.replace("ping", "pong")),
        serde_json::json!(false),
        "not a tampered body"
    );
    let h = Harness::with_overlay_and_secrets(overlay, resolver);
    let headers = [("X-Signature-Ed25519", sig), ("X-Signature-Timestamp", ts)];
    let (status, _, text) = h.call(post("/webhooks/discord", body, &headers)).await;
    assert_eq!(status.as_u16(), 200, "{text}");
}

/// SendGrid's own helper checks a signature: prints `{"valid": bool}`.
const SENDGRID_CHECK: &str = r#"
import json, sys
from sendgrid.helpers.eventwebhook import EventWebhook
key, sig, ts, body = sys.argv[1:5]
print(json.dumps({"valid": EventWebhook(key).verify_signature(body, sig, ts)}))
"#;

#[tokio::test]
async fn a_signature_sendgrids_helper_accepts_passes_the_sendgrid_preset_and_a_tampered_one_does_not() {
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;
    let Some(python) = python_with("sendgrid.helpers.eventwebhook") else {
        return;
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    // A fresh key each run: the scalar from the clock (nonzero, below the
    // order as its top byte is 0x01).
    let mut scalar = [0u8; 32];
    scalar[0] = 1;
    scalar[16..].copy_from_slice(&webhooks_core::time::unix_now().to_be_bytes().repeat(2));
    let key = p256::ecdsa::SigningKey::from_slice(&scalar).expect("scalar");
    let public = b64.encode(key.verifying_key().to_public_key_der().expect("der").as_bytes());
    let ts = webhooks_core::time::unix_now().to_string();
    let body = "[{\"email\":\"a@example.com\",\"event\":\"delivered\",\"sg_event_id\":\"sg_lib_1\",\"timestamp\":1700000000}]\r\n";
    let sig: p256::ecdsa::Signature = key.sign(format!("{ts}{body}").as_bytes());
    let sig = b64.encode(sig.to_der().as_bytes());
    let check = |body: &str| run_python(&python, SENDGRID_CHECK, &[&public, &sig, &ts, body])["valid"].clone();
    assert_eq!(check(body), serde_json::json!(true), "SendGrid's helper accepts it");
    let tampered = body.replace("delivered", "bounce");
    assert_eq!(
        check(&tampered),
        serde_json::json!(false),
        "and refuses a tampered body"
    );

    let overlay = r#"
[providers.sendgrid]
preset = "sendgrid"
public_keys = ["env:SENDGRID_TEST_PUBLIC_KEY"]
handlers = { "*" = ["test.effect"] }
"#;
    let h = Harness::with_overlay_and_secrets(overlay, secrets().with("SENDGRID_TEST_PUBLIC_KEY", &public));
    let headers = [
        ("X-Twilio-Email-Event-Webhook-Signature", sig.as_str()),
        ("X-Twilio-Email-Event-Webhook-Timestamp", ts.as_str()),
    ];
    accepted_and_refused_tampered(&h, "sendgrid", "sg_lib_1", body, &tampered, &headers).await;
}

/// The preset `name` with `overlay`'s settings, as the router builds it:
/// its signer is the one `webhooks sign` uses.
fn preset_provider(
    overlay: &str,
    name: &str,
    resolver: &webhooks_core::secret::MapResolver,
) -> webhooks_core::provider::Provider {
    let config = webhooks_core::config::AppConfig::from_overlay(Some(("test", overlay))).expect("config");
    let providers = config.enabled_providers();
    let cfg = providers.get(name).expect("provider configured");
    webhooks_core::provider::Provider::build(name, cfg, resolver).expect("provider builds")
}

/// Through the router with the sender's `headers`: `body` is answered 200
/// and stored as `provider`'s event `id`; `tampered`, with the same
/// headers, is refused 401.
async fn accepted_and_refused_tampered(
    h: &Harness,
    provider: &str,
    id: &str,
    body: &str,
    tampered: &str,
    headers: &[(&str, &str)],
) {
    let path = format!("/webhooks/{provider}");
    let (status, _, text) = h.call(post(&path, body, headers)).await;
    assert_eq!(status.as_u16(), 200, "{text}");
    assert!(h.record(provider, id).await.is_some(), "stored");
    let (status, _, text) = h.call(post(&path, tampered, headers)).await;
    assert_eq!(status.as_u16(), 401, "{text}");
}

/// The value of header `name` in `signed`.
fn signed_header<'a>(signed: &'a webhooks_core::verify::Signed, name: &str) -> &'a str {
    signed
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .expect("signed header")
}

/// HubSpot's own signature utility (`hubspot.utils.signature.Signature`):
/// `sign SECRET URI BODY TS` prints the v3 signature it computes;
/// `check SECRET URI BODY TS SIG` prints whether it accepts `SIG`.
const HUBSPOT: &str = r#"
import json, sys
from hubspot.utils.signature import Signature
op, secret, uri, body, ts = sys.argv[1:6]
if op == "sign":
    print(json.dumps({"signature": Signature.get_signature(secret, body, "v3", uri, "POST", ts)}))
else:
    print(json.dumps({"valid": Signature.is_valid(signature=sys.argv[6], client_secret=secret, request_body=body,
        http_uri=uri, http_method="POST", signature_version="v3", timestamp=ts)}))
"#;

#[tokio::test]
async fn hubspots_signature_utility_and_the_hubspot_preset_accept_each_others_v3_signatures() {
    let Some(python) = python_with("hubspot.utils.signature") else {
        return;
    };
    let secret = "hubspot-lib-client-secret-7c1d";
    let url = "https://hooks.example.com/webhooks/hubspot?portalId=62515";
    let overlay = format!(
        r#"
[providers.hubspot]
preset = "hubspot"
secrets = ["env:HUBSPOT_TEST_SECRET"]
public_url = "{url}"
handlers = {{ "*" = ["test.effect"] }}
"#
    );
    let resolver = secrets().with("HUBSPOT_TEST_SECRET", secret);
    let body = r#"[{"eventId":4001,"subscriptionId":12,"portalId":62515,"appId":1,"occurredAt":1700000000000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123}]"#;
    let tampered = body.replace("4001", "4002");

    // Our signer (what `webhooks sign hubspot` prints): HubSpot's utility accepts it.
    let provider = preset_provider(&overlay, "hubspot", &resolver);
    let now = webhooks_core::time::unix_now();
    let ours = provider.verifier.sign(&webhooks_core::verify::SignInput {
        body: body.as_bytes(),
        now,
        id: "",
        url,
    });
    let (sig, ts) = (
        signed_header(&ours, "X-HubSpot-Signature-v3"),
        signed_header(&ours, "X-HubSpot-Request-Timestamp"),
    );
    assert_eq!(ts, (now * 1000).to_string(), "milliseconds, as HubSpot sends");
    let check = |body: &str| run_python(&python, HUBSPOT, &["check", secret, url, body, ts, sig])["valid"].clone();
    assert_eq!(check(body), serde_json::json!(true), "HubSpot's utility accepts ours");
    assert_eq!(
        check(&tampered),
        serde_json::json!(false),
        "and refuses a tampered body"
    );

    // HubSpot's computation passes the preset through the router.
    let ts = (webhooks_core::time::unix_now() * 1000).to_string();
    let theirs = run_python(&python, HUBSPOT, &["sign", secret, url, body, &ts]);
    let sig = theirs["signature"].as_str().expect("signature");
    let headers = [
        ("X-HubSpot-Signature-v3", sig),
        ("X-HubSpot-Request-Timestamp", ts.as_str()),
    ];
    let h = Harness::with_overlay_and_secrets(&overlay, resolver);
    accepted_and_refused_tampered(&h, "hubspot", "4001", body, &tampered, &headers).await;
    let other_secret = run_python(&python, HUBSPOT, &["sign", "another-secret", url, body, &ts]);
    let wrong = [
        (
            "X-HubSpot-Signature-v3",
            other_secret["signature"].as_str().expect("signature"),
        ),
        ("X-HubSpot-Request-Timestamp", ts.as_str()),
    ];
    let (status, _, text) = h.call(post("/webhooks/hubspot", body, &wrong)).await;
    assert_eq!(status.as_u16(), 401, "another app's secret: {text}");
}

/// Square's own helper (`square.utils.webhooks_helper.verify_signature`):
/// prints whether it accepts the signature for the notification URL.
const SQUARE_CHECK: &str = r#"
import json, sys
from square.utils.webhooks_helper import verify_signature
key, url, sig, body = sys.argv[1:5]
print(json.dumps({"valid": verify_signature(request_body=body, signature_header=sig, signature_key=key, notification_url=url)}))
"#;

#[tokio::test]
async fn a_signature_squares_helper_accepts_passes_the_square_preset_and_a_tampered_one_does_not() {
    let Some(python) = python_with("square.utils.webhooks_helper") else {
        return;
    };
    let key = "square-lib-signature-key-3b9a";
    let url = "https://hooks.example.com/square/notifications";
    let overlay = format!(
        r#"
[providers.square]
preset = "square"
secrets = ["env:SQUARE_TEST_KEY"]
public_url = "{url}"
handlers = {{ "*" = ["test.effect"] }}
"#
    );
    let resolver = secrets().with("SQUARE_TEST_KEY", key);
    let body = r#"{"merchant_id":"6SSW7HV8K2ST5","type":"payment.updated","event_id":"sq_lib_1","created_at":"2026-01-06T22:14:30.000Z","data":{"type":"payment","id":"KkAkhdMsgzn59SM8A89WgKwekxLZY"}}"#;
    let tampered = body.replace("payment.updated", "refund.updated");
    let provider = preset_provider(&overlay, "square", &resolver);
    let signed = provider.verifier.sign(&webhooks_core::verify::SignInput {
        body: body.as_bytes(),
        now: webhooks_core::time::unix_now(),
        id: "",
        url,
    });
    let sig = signed_header(&signed, "x-square-hmacsha256-signature");
    let check =
        |key: &str, url: &str, body: &str| run_python(&python, SQUARE_CHECK, &[key, url, sig, body])["valid"].clone();
    assert_eq!(
        check(key, url, body),
        serde_json::json!(true),
        "Square's helper accepts ours"
    );
    assert_eq!(
        check(key, url, &tampered),
        serde_json::json!(false),
        "not a tampered body"
    );
    assert_eq!(
        check(key, "https://hooks.example.com/webhooks/square", body),
        serde_json::json!(false),
        "the URL is signed"
    );
    assert_eq!(
        check("another-key", url, body),
        serde_json::json!(false),
        "nor another key"
    );

    let h = Harness::with_overlay_and_secrets(&overlay, resolver);
    let headers = [("x-square-hmacsha256-signature", sig)];
    accepted_and_refused_tampered(&h, "square", "sq_lib_1", body, &tampered, &headers).await;
}

/// Paddle's own SDK (`paddle_billing.Notifications`): `sign SECRET TS BODY`
/// prints the `Paddle-Signature` header it computes (`PaddleSignature`);
/// `check SECRET HEADER BODY` prints whether its `Verifier` accepts it.
const PADDLE: &str = r#"
import json, sys
from paddle_billing.Notifications import Secret, Verifier
from paddle_billing.Notifications.PaddleSignature import PaddleSignature
class Request:
    def __init__(self, headers, body):
        self.headers, self.body = headers, body
op, secret = sys.argv[1:3]
if op == "sign":
    ts, body = sys.argv[3:5]
    h1 = PaddleSignature.calculate_hmac(secret, f"{ts}:{body}".encode()).hexdigest()
    print(json.dumps({"header": f"ts={ts};h1={h1}"}))
else:
    header, body = sys.argv[3:5]
    print(json.dumps({"valid": bool(Verifier().verify(Request({"Paddle-Signature": header}, body.encode()), Secret(secret)))}))
"#;

#[tokio::test]
async fn paddles_sdk_and_the_paddle_preset_accept_each_others_signatures() {
    let Some(python) = python_with("paddle_billing.Notifications") else {
        return;
    };
    let secret = "pdl_ntfset_01hv8xqsgk3xfjd8z4h9g7n6kw_live0test0secret";
    let overlay = r#"
[providers.paddle]
preset = "paddle"
secrets = ["env:PADDLE_TEST_SECRET"]
handlers = { "*" = ["test.effect"] }
"#;
    let resolver = secrets().with("PADDLE_TEST_SECRET", secret);
    let body = r#"{"event_id":"evt_01paddlelibtest0000000001","event_type":"transaction.completed","occurred_at":"2026-12-06T10:00:00.000000Z","notification_id":"ntf_01paddlelibtest","data":{"id":"txn_01paddlelib","status":"completed"}}"#;
    let tampered = body.replace("completed\"}", "canceled\"}");

    // Our signer (what `webhooks sign paddle` prints): Paddle's Verifier
    // accepts it, within its own 5-second window.
    let provider = preset_provider(overlay, "paddle", &resolver);
    let ours = provider.verifier.sign(&webhooks_core::verify::SignInput {
        body: body.as_bytes(),
        now: webhooks_core::time::unix_now(),
        id: "",
        url: "",
    });
    let header = signed_header(&ours, "Paddle-Signature");
    let check =
        |secret: &str, body: &str| run_python(&python, PADDLE, &["check", secret, header, body])["valid"].clone();
    assert_eq!(
        check(secret, body),
        serde_json::json!(true),
        "Paddle's SDK accepts ours"
    );
    assert_eq!(
        check(secret, &tampered),
        serde_json::json!(false),
        "not a tampered body"
    );
    assert_eq!(
        check("pdl_ntfset_another", body),
        serde_json::json!(false),
        "nor another secret"
    );

    // Paddle's computation passes the preset through the router.
    let ts = webhooks_core::time::unix_now().to_string();
    let theirs = run_python(&python, PADDLE, &["sign", secret, &ts, body]);
    let header = theirs["header"].as_str().expect("header");
    let h = Harness::with_overlay_and_secrets(overlay, resolver);
    let headers = [("Paddle-Signature", header)];
    accepted_and_refused_tampered(&h, "paddle", "evt_01paddlelibtest0000000001", body, &tampered, &headers).await;
}
