//! The `webhooks` subcommands as a user types them: start-up errors that
//! name what to fix, `sign` and `send` for each seed provider, `events` and
//! `replay` on a real database.

use crate::support::*;
use std::time::Duration;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `webhooks send PROVIDER --url <serve's URL> --file FILE EXTRA...`.
fn send(wd: &Workdir, serve: &Serve, provider: &str, file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    send_with(wd, serve, provider, file, extra, &[])
}

/// [`send`] with extra environment variables (the secrets of a config's own providers).
fn send_with(
    wd: &Workdir,
    serve: &Serve,
    provider: &str,
    file: &std::path::Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let url = serve.url(provider);
    let mut args = vec!["send", provider, "--url", &url, "--file", file.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    command(wd, &args).envs(env.iter().copied()).output().expect("run")
}

#[test]
fn serve_without_any_secret_refuses_to_start_naming_the_variables() {
    let wd = Workdir::new();
    let out = command(&wd, &["serve", "--addr", "127.0.0.1:0"])
        .env_remove("GIGSTACK_WEBHOOK_SECRET")
        .env_remove("TF_WEBHOOK_TOKEN")
        .env_remove("PIRIOD_WEBHOOK_TOKEN")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = stderr(&out);
    for var in ["GIGSTACK_WEBHOOK_SECRET", "TF_WEBHOOK_TOKEN", "PIRIOD_WEBHOOK_TOKEN"] {
        assert!(err.contains(var), "names {var}: {err}");
    }
}

#[tokio::test]
async fn a_provider_without_its_secret_is_not_served_and_start_up_says_why() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start_with(&wd, &wd.config(&sink, 3, 100), &[], &[("PIRIOD_WEBHOOK_TOKEN", "")]);
    let banner = serve.wait_output("PIRIOD_WEBHOOK_TOKEN", Duration::from_secs(5));
    assert!(
        banner.contains("disabled: piriod") && banner.contains("PIRIOD_WEBHOOK_TOKEN"),
        "{banner}"
    );
    let resp = reqwest::Client::new()
        .post(serve.url("piriod"))
        .body(r#"{"event":"payment.created","object_id":"p1"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 404, "never accepted unverified");
}

#[test]
fn a_bad_config_file_is_refused_naming_the_file() {
    let wd = Workdir::new();
    let path = wd.path("broken.toml");
    std::fs::write(&path, "[retry\nmax_attempts = ").expect("write");
    let out = command(&wd, &["serve", "--config", path.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("broken.toml"), "{}", stderr(&out));
}

#[test]
fn sign_prints_headers_and_a_curl_command_that_verify() {
    let wd = Workdir::new();
    let body_path = wd.path("body.json");
    let body = gigstack_body("evt_sign_1", "invoice.created");
    std::fs::write(&body_path, &body).expect("write");
    let out = command(&wd, &["sign", "gigstack", "--file", body_path.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("X-Gigstack-Signature: {}", gigstack_signature(&body))
    );

    let out = command(&wd, &["sign", "piriod", "--curl"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let curl = stdout(&out);
    assert!(curl.starts_with("curl ") && curl.contains("token="), "{curl}");

    let out = command(&wd, &["sign", "nosuch"]).output().expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nosuch"), "{}", stderr(&out));
}

/// Every sample body in `events/bodies/` (named `PROVIDER.TYPE.json`, or
/// `.form` for a form-encoded one), sent with `webhooks send` to a running
/// `serve` whose handlers call a local sink, is accepted and processed by
/// its built-in handler, which makes its real HTTP call.
#[tokio::test]
async fn send_delivers_every_sample_body_and_its_handler_makes_its_call() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    // The providers' API credentials the handlers send (gigstack's is in every command's environment).
    let credentials = [
        ("PIRIOD_API_TOKEN", "piriod-api-test-token"),
        ("PIRIOD_WORKSPACE", "ws-test"),
        ("TUSFACTURAS_APIKEY", "tf-apikey"),
        ("TUSFACTURAS_APITOKEN", "tf-apitoken"),
        ("TUSFACTURAS_USERTOKEN", "tf-usertoken"),
    ];
    let serve = Serve::start_with(&wd, &wd.config(&sink, 3, 100), &[], &credentials);
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/bodies");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&samples)
        .expect("events/bodies")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 8, "{files:?}");
    let mut sent: Vec<(String, String)> = Vec::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        let provider = name.split('.').next().expect("provider prefix").to_string();
        // The stamped invoice's PDF lives on the sink, not on gigstack's file host.
        let body = std::fs::read_to_string(file)
            .expect("sample")
            .replace("https://files.gigstack.example", &sink.url(""));
        let body_path = wd.path(name);
        std::fs::write(&body_path, body).expect("write");
        // No --content-type: `send` posts what the provider reads (the form one as a form).
        let out = send(&wd, &serve, &provider, &body_path, &[]);
        let printed = stdout(&out);
        assert!(out.status.success(), "{name}: {printed} {}", stderr(&out));
        let answer: serde_json::Value = printed
            .strip_prefix("200 ")
            .and_then(|json| serde_json::from_str(json.trim()).ok())
            .unwrap_or_else(|| panic!("{name}: {printed}"));
        assert_eq!(answer["status"], "accepted", "{name}: {answer}");
        let id = answer["ids"][0].as_str().expect("one id").to_string();
        sent.push((provider, id));
    }
    for (provider, id) in &sent {
        let record = wait_for_state(&wd, provider, id, "DONE", Duration::from_secs(30)).await;
        let results = record["results"].as_object().expect("results");
        assert_eq!(results.len(), 1, "{provider}#{id}: one handler ran: {record}");
    }
    let paths: Vec<String> = sink.effects().iter().map(|h| h.path.clone()).collect();
    for expected in [
        "/notify",                                   // invoice.created, and client.validated is_valid=false
        "/invoices/inv_1001.pdf",                    // invoice.stamped downloads its PDF
        "/api/invoices/inv_1001/payment-complement", // payment.received
        "/erp",                                      // invoice.cancelled
        "/api/payments/pay_7f3a9c/",                 // Piriod fetches the object
    ] {
        assert!(paths.iter().any(|p| p == expected), "no call to {expected}: {paths:?}");
    }
    assert_eq!(paths.iter().filter(|p| *p == "/notify").count(), 2, "{paths:?}");
    let pdf = wd.path("artifacts/invoices/6F1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D.pdf");
    assert!(std::fs::read(&pdf).expect("stored PDF").starts_with(b"%PDF"));

    let listed = run(&wd, &["events", "list", "--json"]);
    let lines: Vec<serde_json::Value> = stdout(&listed)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 8, "{lines:?}");
    let only_gigstack = run(&wd, &["events", "list", "--provider", "gigstack", "--json"]);
    assert_eq!(stdout(&only_gigstack).lines().count(), 5);
    let table = run(&wd, &["events", "list"]);
    assert!(stdout(&table).contains("8 event(s)"), "{}", stdout(&table));

    let shown = show(&wd, "gigstack", "evt_gs_0001").expect("shown");
    assert_eq!(shown["type"], "invoice.created");
    assert_eq!(shown["payload"]["id"], "evt_gs_0001");
    assert!(
        shown["results"]["gigstack.notify_invoice_created"].is_object(),
        "{shown}"
    );

    let bad = run(&wd, &["events", "list", "--status", "SHIPPED"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("DONE"), "lists the states: {}", stderr(&bad));
    let missing = run(&wd, &["events", "show", "gigstack", "nope"]);
    assert_eq!(missing.status.code(), Some(1));

    // A DONE event is not replayed: its handlers all succeeded and none
    // runs twice. The command says so and changes nothing.
    let effects = sink.effects().len();
    let replay = run(&wd, &["replay", "gigstack", "evt_gs_0001"]);
    assert_eq!(replay.status.code(), Some(1), "{}", stdout(&replay));
    assert!(stderr(&replay).contains("is DONE"), "{}", stderr(&replay));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(show(&wd, "gigstack", "evt_gs_0001").expect("shown")["state"], "DONE");
    assert_eq!(sink.effects().len(), effects, "no handler ran again");
    let unknown = run(&wd, &["replay", "gigstack", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    drop(serve);
}

/// `webhooks send` signs for every scheme exactly as its verifier checks:
/// each configured sender's delivery is accepted by a running `serve`.
#[tokio::test]
async fn send_signs_for_every_verifier_scheme() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    // Secrets reach `serve` and `send` the one way a user gives them: as
    // environment variables named by `env:` references in the config.
    let schemes = [
        ("svix", r#"{ scheme = "standard_webhooks", secrets = ["env:T_SVIX"] }"#),
        ("stripe", r#"{ scheme = "stripe", secrets = ["env:T_STRIPE"] }"#),
        ("github", r#"{ scheme = "github", secrets = ["env:T_GITHUB"] }"#),
        ("shopify", r#"{ scheme = "shopify", secrets = ["env:T_SHOPIFY"] }"#),
        ("slack", r#"{ scheme = "slack", secrets = ["env:T_SLACK"] }"#),
        (
            "meta",
            r#"{ scheme = "meta", secrets = ["env:T_META"], verify_tokens = ["env:T_META_VERIFY"] }"#,
        ),
        ("mercadopago", r#"{ scheme = "mercado_pago", secrets = ["env:T_MP"] }"#),
        ("twilio", r#"{ scheme = "twilio", secrets = ["env:T_TWILIO"] }"#),
        (
            "acme",
            r#"{ scheme = "hmac", header = "X-Acme-Signature", algorithm = "sha512", encoding = "base64", prefix = "v1=", timestamp_header = "X-Acme-Timestamp", signed_content = "{timestamp}.{body}", secrets = ["env:T_ACME"] }"#,
        ),
        (
            "internal",
            r#"{ scheme = "token", name = "Authorization", prefix = "Bearer ", secrets = ["env:T_INTERNAL"] }"#,
        ),
        (
            "apikey",
            r#"{ scheme = "token", name = "key", in = "query", secrets = ["env:T_APIKEY"] }"#,
        ),
        (
            "legacy",
            r#"{ scheme = "basic_auth", username = "webhooks", passwords = ["env:T_LEGACY"] }"#,
        ),
        ("square", r#"{ scheme = "square", secrets = ["env:T_SQUARE"] }"#),
        ("paddle", r#"{ scheme = "paddle", secrets = ["env:T_PADDLE"] }"#),
        ("hubspot", r#"{ scheme = "hubspot", secrets = ["env:T_HUBSPOT"] }"#),
        ("zoom", r#"{ scheme = "zoom", secrets = ["env:T_ZOOM"] }"#),
        (
            "dlocal",
            r#"{ scheme = "dlocal", secrets = ["env:T_DLOCAL"], logins = ["env:T_DLOCAL_LOGIN"] }"#,
        ),
        ("khipu", r#"{ scheme = "khipu", secrets = ["env:T_KHIPU"] }"#),
        (
            "wompi",
            r#"{ scheme = "property_checksum", secrets = ["env:T_WOMPI"] }"#,
        ),
    ];
    let secrets = [
        ("T_SVIX", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("T_STRIPE", "whsec_stripe_test"),
        ("T_GITHUB", "gh-secret"),
        ("T_SHOPIFY", "shop-secret"),
        ("T_SLACK", "slack-secret"),
        ("T_META", "app-secret"),
        ("T_META_VERIFY", "vt"),
        ("T_MP", "mp-secret"),
        ("T_TWILIO", "twilio-token"),
        ("T_ACME", "acme-secret"),
        ("T_INTERNAL", "tok"),
        ("T_APIKEY", "k"),
        ("T_LEGACY", "pw"),
        ("T_SQUARE", "square-key"),
        ("T_PADDLE", "pdl_ntfset_test"),
        ("T_HUBSPOT", "hubspot-client-secret"),
        ("T_ZOOM", "zoom-secret-token"),
        ("T_DLOCAL", "dlocal-secret-key"),
        ("T_DLOCAL_LOGIN", "dlocal-login"),
        ("T_KHIPU", "khipu-secret"),
        ("T_WOMPI", "test_events_cli"),
    ];
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let mut config = std::fs::read_to_string(wd.config(&sink, 3, 100)).expect("config");
    for (name, verifier) in schemes {
        config.push_str(&format!(
            "\n[providers.{name}]\nverifier = {verifier}\nevent_id = \"body:/id\"\nevent_type = \"body:/type\"\n"
        ));
        if ["twilio", "square", "hubspot"].contains(&name) {
            // These sign the URL they call: the public one, from configuration.
            config.push_str(&format!("public_url = \"http://127.0.0.1:{port}/webhooks/{name}\"\n"));
        }
    }
    let config_path = wd.path("schemes.toml");
    std::fs::write(&config_path, config).expect("write");
    let addr = format!("127.0.0.1:{port}");
    let serve = Serve::start_with(&wd, &config_path, &["--addr", &addr], &secrets);
    for (name, _) in schemes {
        let body_path = wd.path(&format!("{name}.json"));
        // The checksum scheme covers the /data properties its body lists;
        // `send` writes the checksum in.
        let listed = if name == "wompi" {
            r#","data":{"id":"evt_wompi_1"},"signature":{"properties":["id"]}"#
        } else {
            ""
        };
        std::fs::write(
            &body_path,
            format!(r#"{{"id":"evt_{name}_1","type":"thing.happened"{listed}}}"#),
        )
        .expect("write");
        let out = send_with(
            &wd,
            &serve,
            name,
            &body_path,
            &["--config", config_path.to_str().expect("utf-8")],
            &secrets,
        );
        assert!(
            out.status.success() && stdout(&out).contains("\"ignored\""),
            "{name}: {} {}",
            stdout(&out),
            stderr(&out)
        );
    }
    // `sign` prints the body with its checksum; a body that lists no
    // properties cannot carry one, and `sign` says so.
    let config_arg = config_path.to_str().expect("utf-8");
    let sign = |file: &std::path::Path| {
        command(
            &wd,
            &[
                "sign",
                "wompi",
                "--config",
                config_arg,
                "--file",
                file.to_str().expect("utf-8"),
            ],
        )
        .envs(secrets.iter().copied())
        .output()
        .expect("run")
    };
    let out = sign(&wd.path("wompi.json"));
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: serde_json::Value = serde_json::from_str(stdout(&out).trim()).expect("the signed body");
    let checksum = printed["signature"]["checksum"].as_str().expect("a checksum");
    let expected = <sha2::Sha256 as sha2::Digest>::digest(
        format!("evt_wompi_1{}test_events_cli", printed["timestamp"]).as_bytes(),
    );
    assert_eq!(checksum, hex::encode(expected));
    let bare = wd.path("bare.json");
    std::fs::write(&bare, r#"{"id":"evt_1","type":"thing.happened"}"#).expect("write");
    let out = sign(&bare);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/signature/properties"), "{}", stderr(&out));
    drop(serve);
}

/// Test keys made by openssl (`genpkey -algorithm ed25519`; `ecparam -name
/// prime256v1 -genkey -noout`) with their public halves: Discord's is hex
/// (the raw seed below is the PEM's), SendGrid's base64 DER, as each sender
/// shows them.
const DISCORD_SEED: &str = "447850924ee1f3c265284030a315cb9184fd2b0d01f0fb2803c5156979e725f6";
const DISCORD_PUBLIC: &str = "bdaa704833a6a3569b726f15a4f48cf8681d2641efa7fbee5817c4dc03d11212";
const SENDGRID_PRIVATE_PEM: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIKxj6uUkt7qNnPVQCG46dYBoKoZsGAZcz8i87pKeW2I0oAoGCCqGSM49\nAwEHoUQDQgAEWsMfeoS3l51lkaODoOZxzyhsXMeMvWN76orX50NBYxmGYvaWhslE\nZnKwnW6lkUL7HxGylOVfGFVBkDQVRxM3sg==\n-----END EC PRIVATE KEY-----\n";
const SENDGRID_PUBLIC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWsMfeoS3l51lkaODoOZxzyhsXMeMvWN76orX50NBYxmGYvaWhslEZnKwnW6lkUL7HxGylOVfGFVBkDQVRxM3sg==";

/// `sign` and `send` for the public-key presets with `--private-key`: what
/// they sign with the sender's key, a running `serve` holding only the
/// public key accepts; another key's signature is refused; without the
/// option (or with it for a secret-signed provider) they say what to do.
#[tokio::test]
async fn sign_and_send_sign_public_key_presets_with_the_senders_private_key() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let mut config = std::fs::read_to_string(wd.config(&sink, 3, 100)).expect("config");
    config.push_str(
        r#"
[providers.discord]
preset = "discord"
public_keys = ["env:T_DISCORD_PUBLIC"]

[providers.sendgrid]
preset = "sendgrid"
public_keys = ["env:T_SENDGRID_PUBLIC"]
"#,
    );
    let config_path = wd.path("public-keys.toml");
    std::fs::write(&config_path, config).expect("write");
    let key_file = wd.path("sendgrid.pem");
    std::fs::write(&key_file, SENDGRID_PRIVATE_PEM).expect("write");
    let sendgrid_key = format!("file:{}", key_file.display());
    let wrong_seed = "07".repeat(32);
    let env = [
        ("T_DISCORD_PUBLIC", DISCORD_PUBLIC),
        ("T_SENDGRID_PUBLIC", SENDGRID_PUBLIC),
        ("T_DISCORD_PRIVATE", DISCORD_SEED),
        ("T_WRONG_PRIVATE", wrong_seed.as_str()),
    ];
    let serve = Serve::start_with(&wd, &config_path, &[], &env[..2]);
    let cfg = ["--config", config_path.to_str().expect("utf-8")];
    let discord_body = wd.path("discord.json");
    std::fs::write(
        &discord_body,
        r#"{"id":"1300000000000000001","type":2,"data":{"name":"ping"}}"#,
    )
    .expect("write");
    let sendgrid_body = wd.path("sendgrid.json");
    std::fs::write(
        &sendgrid_body,
        "[{\"email\":\"a@example.com\",\"event\":\"delivered\",\"sg_event_id\":\"sg_cli_1\",\"timestamp\":1700000000}]\r\n",
    )
    .expect("write");

    for (provider, body, key) in [
        ("discord", &discord_body, "env:T_DISCORD_PRIVATE"),
        ("sendgrid", &sendgrid_body, sendgrid_key.as_str()),
    ] {
        let out = send_with(
            &wd,
            &serve,
            provider,
            body,
            &[&cfg[..], &["--private-key", key]].concat(),
            &env,
        );
        assert!(
            out.status.success() && stdout(&out).starts_with("200 "),
            "{provider}: {} {}",
            stdout(&out),
            stderr(&out)
        );
    }

    // `sign` prints the headers; posted as printed, they verify.
    let body_text = std::fs::read_to_string(&discord_body)
        .expect("read")
        .replace("1300000000000000001", "1300000000000000002");
    std::fs::write(&discord_body, &body_text).expect("write");
    let args = [
        &["sign", "discord", "--file", discord_body.to_str().expect("utf-8")][..],
        &cfg,
        &["--private-key", "env:T_DISCORD_PRIVATE"],
    ]
    .concat();
    let out = command(&wd, &args).envs(env).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let headers: Vec<(&str, &str)> = printed.lines().filter_map(|l| l.split_once(": ")).collect();
    let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["X-Signature-Ed25519", "X-Signature-Timestamp"], "{printed}");
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut req = reqwest::Client::new()
            .post(serve.url("discord"))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        req.send()
    };
    let resp = post(&headers, &body_text).await.expect("post");
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    let resp = post(&headers, &body_text.replace("ping", "pong")).await.expect("post");
    assert_eq!(resp.status(), 401, "a tampered body");

    // Another key's signature is refused by the receiver.
    let out = send_with(
        &wd,
        &serve,
        "discord",
        &discord_body,
        &[&cfg[..], &["--private-key", "env:T_WRONG_PRIVATE"]].concat(),
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("401 ") && stdout(&out).contains("invalid_signature"),
        "{}",
        stdout(&out)
    );

    let sign = |extra: &[&str]| {
        let args = [&["sign", "discord"][..], &cfg, extra].concat();
        command(&wd, &args)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run")
    };
    let out = sign(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--private-key"), "{}", stderr(&out));
    // A key written where its reference belongs is refused, never echoed.
    let out = sign(&["--private-key", DISCORD_SEED]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("env:NAME or file:PATH") && !stderr(&out).contains(DISCORD_SEED),
        "{}",
        stderr(&out)
    );
    // A key of the wrong kind is named by its reference, not its text.
    let out = sign(&["--private-key", &sendgrid_key]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not an Ed25519 private key") && !stderr(&out).contains("MHcCAQEE"),
        "{}",
        stderr(&out)
    );
    let gig = [
        &["sign", "gigstack"][..],
        &cfg,
        &["--private-key", "env:T_DISCORD_PRIVATE"],
    ]
    .concat();
    let out = command(&wd, &gig)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only for public-key providers"),
        "{}",
        stderr(&out)
    );
    drop(serve);
}

#[test]
fn every_subcommand_has_help() {
    let wd = Workdir::new();
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["sign", "--help"],
        vec!["send", "--help"],
        vec!["events", "list", "--help"],
        vec!["events", "show", "--help"],
        vec!["replay", "--help"],
        vec!["dead-letters", "list", "--help"],
        vec!["events", "export", "--help"],
        vec!["dead-letters", "discard", "--help"],
    ] {
        let out = command(&wd, &args).output().expect("run");
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains("Usage"), "{args:?}: {}", stdout(&out));
    }
}

/// Ctrl-C stops a long command between two events and says how far it got.
/// The export writes into a FIFO the test reads slowly, so the command is
/// still mid-way (blocked on a full pipe) when the SIGINT arrives.
#[tokio::test]
async fn ctrl_c_stops_an_export_between_events_and_says_how_far_it_got() {
    use std::io::BufRead;
    use webhooks_core::event::{Event, EventState};
    use webhooks_core::ports::store::{Claim, EventStore};
    const TOTAL: usize = 3_000;
    let wd = Workdir::new();
    {
        let db = webhooks_sqlite::SqliteBackend::open(&wd.db(), webhooks_sqlite::Durability::Normal).expect("db");
        let store = db.store();
        let padding = "x".repeat(1_000);
        let events: Vec<Event> = (0..TOTAL)
            .map(|i| Event {
                provider: "gigstack".into(),
                id: format!("evt_bulk_{i}").into(),
                event_type: "invoice.created".into(),
                received_at: 1_700_000_000 + i as i64,
                payload: webhooks_core::payload::Payload::from_text(format!(
                    r#"{{"id":"evt_bulk_{i}","pad":"{padding}"}}"#
                )),
                request_id: None,
                original: None,
            })
            .collect();
        let claims = events.iter().map(|event| {
            store.claim(Claim {
                event,
                state: EventState::Received,
                now: event.received_at,
                lease_secs: 60,
                ttl_secs: 86_400,
            })
        });
        for outcome in futures::future::join_all(claims).await {
            outcome.expect("claim");
        }
    }
    let fifo = wd.path("export.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let db = wd.db();
    let child = command(
        &wd,
        &[
            "events",
            "export",
            "--payloads",
            "-o",
            fifo.to_str().expect("utf-8"),
            "--db",
            db.to_str().expect("utf-8"),
        ],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("spawn export");
    let pid = child.id().to_string();
    let reader = std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(std::fs::File::open(&fifo).expect("open fifo")).lines();
        let mut read = 0usize;
        // Some lines, then Ctrl-C while the writer waits on the full pipe.
        while read < 50 {
            lines.next().expect("a line").expect("utf-8");
            read += 1;
        }
        let kill = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill");
        assert!(kill.success());
        std::thread::sleep(Duration::from_millis(300));
        read + lines.count()
    });
    let read = reader.join().expect("reader");
    let out = child.wait_with_output().expect("export ends");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(read < TOTAL, "stopped before the end ({read} of {TOTAL})");
    assert!(
        err.contains(&format!("exported {read} event(s); stopped by Ctrl-C")),
        "says how far it got ({read}): {err}"
    );
}

/// A record a processor holds (PROCESSING, lease in the future) is not
/// replayed: resetting it would let a second processor run its handlers at
/// the same time. Single replay refuses with the lease's end; a filtered
/// replay counts it as skipped and changes nothing.
#[tokio::test]
async fn replay_leaves_an_event_under_a_live_lease_alone() {
    use webhooks_core::event::{Event, EventState};
    use webhooks_core::ports::store::{Claim, EventStore, LeaseOutcome};
    let wd = Workdir::new();
    let now = webhooks_core::time::unix_now();
    {
        let db = webhooks_sqlite::SqliteBackend::open(&wd.db(), webhooks_sqlite::Durability::Normal).expect("db");
        let store = db.store();
        let event = Event {
            provider: "gigstack".into(),
            id: "evt_leased".into(),
            event_type: "invoice.created".into(),
            received_at: now,
            payload: webhooks_core::payload::Payload::from_text(r#"{"id":"evt_leased"}"#.to_string()),
            request_id: None,
            original: None,
        };
        let claim = Claim {
            event: &event,
            state: EventState::Received,
            now,
            lease_secs: 60,
            ttl_secs: 86_400,
        };
        store.claim(claim).await.expect("claim");
        let leased = store.lease(&event, now, 3_600, 86_400).await.expect("lease");
        assert!(matches!(leased, LeaseOutcome::Leased(_)), "{leased:?}");
    }

    let refused = run(&wd, &["replay", "gigstack", "evt_leased"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        stderr(&refused).contains("gigstack#evt_leased is being processed (lease until"),
        "{}",
        stderr(&refused)
    );

    let preview = run(&wd, &["replay", "--status", "PROCESSING"]);
    assert!(
        stdout(&preview)
            .contains("1 event(s) match: 0 would be replayed; 0 would be skipped (DONE), 1 (being processed)"),
        "{}",
        stdout(&preview)
    );
    let filtered = run(&wd, &["replay", "--status", "PROCESSING", "--yes"]);
    assert!(filtered.status.success(), "{filtered:?}");
    assert!(
        stdout(&filtered).contains("moved 0; skipped 1 (0 DONE, 1 being processed, 0 gone); failed 0"),
        "{}",
        stdout(&filtered)
    );
    let record = show(&wd, "gigstack", "evt_leased").expect("shown");
    assert_eq!(
        (record["state"].as_str(), record["attempts"].as_u64()),
        (Some("PROCESSING"), Some(1)),
        "untouched: {record}"
    );
}

/// A bare `replay` never means "everything", and one event by id cannot be
/// mixed with filters or the dead-letter queue.
#[test]
fn replay_needs_an_event_the_dead_letters_or_a_filter() {
    let wd = Workdir::new();
    let bare = run(&wd, &["replay"]);
    assert_eq!(bare.status.code(), Some(2), "{bare:?}");
    assert!(stderr(&bare).contains("--dead-letter, or filters"), "{}", stderr(&bare));
    let mixed = run(&wd, &["replay", "gigstack", "evt_1", "--status", "FAILED"]);
    assert_eq!(mixed.status.code(), Some(2), "{mixed:?}");
    assert!(stderr(&mixed).contains("cannot be used with"), "{}", stderr(&mixed));
    let both = run(&wd, &["replay", "--dead-letter", "--type", "invoice.created"]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    let bad = run(&wd, &["replay", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        stderr(&bad).contains("--since `yesterday` is not a time"),
        "{}",
        stderr(&bad)
    );
}
