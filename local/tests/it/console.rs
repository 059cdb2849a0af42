//! The console over HTTP, on `webhooks serve` with its SQLite database:
//! every route and action, the safety rules (CSP, CSRF, escaping, the
//! token off loopback).

use crate::support::*;
use std::time::Duration;

/// Long enough for a handler run and a retry on a slow machine.
const WAIT: Duration = Duration::from_secs(20);

/// A client that does not follow redirects, so the tests see them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn base(serve: &Serve) -> String {
    format!("http://{}", serve.addr)
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = client.get(url).send().await.expect("get");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.text().await.expect("text"))
}

/// Waits (up to 10 s) until `serve` has printed `needle`.
async fn printed(serve: &Serve, needle: &str) -> bool {
    for _ in 0..100 {
        if serve.output().contains(needle) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..].split('"').next().expect("token").to_string()
}

#[tokio::test]
async fn events_are_listed_filtered_and_shown_with_their_payload() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    assert!(printed(&serve, "console: http://").await, "{}", serve.output());
    let http = client();
    for id in ["evt_console_1", "evt_console_2"] {
        assert_eq!(
            post_gigstack(&http, &serve, &gigstack_body(id, "invoice.created"))
                .await
                .0,
            200
        );
        wait_for_state(&wd, "gigstack", id, "DONE", WAIT).await;
    }
    let unhandled = gigstack_body("evt_console_3", "order.shipped");
    assert_eq!(post_gigstack(&http, &serve, &unhandled).await.0, 200);

    let (status, headers, page) = get(&http, &format!("{}/console", base(&serve))).await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    for id in ["evt_console_1", "evt_console_2", "evt_console_3"] {
        assert!(page.contains(id), "{id} listed");
    }
    // Newest first.
    assert!(page.find("evt_console_3") < page.find("evt_console_1"));
    assert!(page.contains("s-done") && page.contains("s-ignored"), "state pills");

    let (_, _, ignored) = get(&http, &format!("{}/console?state=IGNORED", base(&serve))).await;
    assert!(ignored.contains("evt_console_3") && !ignored.contains("evt_console_1\""));
    let (_, _, searched) = get(&http, &format!("{}/console?q=CONSOLE_2", base(&serve))).await;
    assert!(searched.contains("evt_console_2") && !searched.contains(">evt_console_1<"));
    let (_, _, bad) = get(&http, &format!("{}/console?from=yesterday", base(&serve))).await;
    assert!(bad.contains("is not a time"), "a filter it cannot read is named");

    let (status, _, event) = get(
        &http,
        &format!("{}/console/events/gigstack/evt_console_1", base(&serve)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(event.contains("gigstack.notify_invoice_created"), "handler results");
    assert!(
        event.contains("&quot;currency&quot;: &quot;MXN&quot;") || event.contains("\"currency\": \"MXN\""),
        "pretty payload"
    );
    let (status, _, _) = get(&http, &format!("{}/console/events/gigstack/nope", base(&serve))).await;
    assert_eq!(status, 404);

    let (status, headers, css) = get(&http, &format!("{}/console/assets/console.css", base(&serve))).await;
    assert_eq!(
        (status, headers["content-type"].to_str().expect("ct")),
        (200, "text/css; charset=utf-8")
    );
    assert!(css.contains("prefers-color-scheme: dark"));
    let (status, _, _) = get(&http, &format!("{}/console/assets/other.js", base(&serve))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn attacker_controlled_fields_are_shown_as_text() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let http = client();
    let body = serde_json::json!({
        "id": "evt_<img src=x onerror=alert(1)>",
        "type": "<script>alert('type')</script>",
        "data": {"client": {"name": "<script>alert('name')</script>"}}
    })
    .to_string();
    assert_eq!(post_gigstack(&http, &serve, &body).await.0, 200);
    let (_, _, list) = get(&http, &format!("{}/console", base(&serve))).await;
    assert!(
        !list.contains("<script>alert") && !list.contains("<img src=x"),
        "{list}"
    );
    assert!(list.contains("&lt;script&gt;alert('type')&lt;/script&gt;"));
    let href = format!(
        "{}/console/events/gigstack/evt_%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E",
        base(&serve)
    );
    let (status, _, event) = get(&http, &href).await;
    assert_eq!(status, 200, "{event}");
    assert!(!event.contains("<script>alert") && !event.contains("<img src=x"));
    assert!(event.contains("&lt;script&gt;alert('name')&lt;/script&gt;"));
}

#[tokio::test]
async fn replay_and_discard_follow_the_replay_rules_and_need_the_csrf_token() {
    let sink = Sink::start().await;
    sink.plan(&[400], 200);
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let http = client();
    assert_eq!(
        post_gigstack(&http, &serve, &gigstack_body("evt_cr_1", "invoice.created"))
            .await
            .0,
        200
    );
    wait_for_state(&wd, "gigstack", "evt_cr_1", "FAILED", WAIT).await;
    let event_url = format!("{}/console/events/gigstack/evt_cr_1", base(&serve));
    let (_, _, page) = get(&http, &event_url).await;
    assert!(page.contains("Discard dead letter") && page.contains(">Replay<"));
    let csrf = csrf_of(&page);

    // A form without the page's token changes nothing.
    let forged = http
        .post(format!("{event_url}/replay"))
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status().as_u16(), 403);
    assert_eq!(show(&wd, "gigstack", "evt_cr_1").expect("record")["state"], "FAILED");

    let replayed = http
        .post(format!("{event_url}/replay"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(replayed.status().as_u16(), 303);
    let location = replayed.headers()["location"].to_str().expect("location").to_string();
    assert!(location.ends_with("?done=replayed-dlq"), "{location}");
    wait_for_state(&wd, "gigstack", "evt_cr_1", "DONE", WAIT).await;
    let (_, _, after) = get(&http, &format!("{}{location}", base(&serve))).await;
    assert!(
        after.contains("its dead letter was moved back"),
        "the page says what happened"
    );
    assert!(!after.contains(">Replay<"), "a DONE event offers no replay");

    // DONE is refused, as on the command line.
    let again = http
        .post(format!("{event_url}/replay"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert!(again.headers()["location"]
        .to_str()
        .expect("location")
        .ends_with("done=refused-done"));

    // A dead letter discarded: its record is gone, and the queue holds nothing for it.
    sink.plan(&[400], 200);
    assert_eq!(
        post_gigstack(&http, &serve, &gigstack_body("evt_cr_2", "invoice.created"))
            .await
            .0,
        200
    );
    wait_for_state(&wd, "gigstack", "evt_cr_2", "FAILED", WAIT).await;
    let discard_url = format!("{}/console/events/gigstack/evt_cr_2/discard", base(&serve));
    let discarded = http
        .post(&discard_url)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert!(discarded.headers()["location"]
        .to_str()
        .expect("location")
        .ends_with("done=discarded"));
    assert!(show(&wd, "gigstack", "evt_cr_2").is_none());
    let listed = run(&wd, &["dead-letters", "list"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("evt_cr_2"));
    // Only a dead letter can be discarded.
    let refused = http
        .post(format!("{event_url}/discard"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert!(refused.headers()["location"]
        .to_str()
        .expect("location")
        .ends_with("done=not-failed"));
}

/// An event that failed once then succeeded shows both attempts, newest
/// first, on its page, in `events show` and in its `--json`.
#[tokio::test]
async fn an_event_that_failed_then_succeeded_shows_its_attempts() {
    let sink = Sink::start().await;
    sink.plan(&[503], 200);
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let http = client();
    let body = gigstack_body("evt_hist_1", "invoice.created");
    assert_eq!(post_gigstack(&http, &serve, &body).await.0, 200);
    wait_for_state(&wd, "gigstack", "evt_hist_1", "DONE", WAIT).await;

    let (status, _, page) = get(&http, &format!("{}/console/events/gigstack/evt_hist_1", base(&serve))).await;
    assert_eq!(status, 200);
    let table = &page[page.find("<h2>Attempts</h2>").expect("an Attempts section")..];
    let table = &table[..table.find("</table>").expect("an attempts table")];
    let (succeeded, retryable) = (table.find("o-succeeded"), table.find("o-retryable"));
    assert!(retryable.is_some() && succeeded.is_some(), "{table}");
    assert!(succeeded < retryable, "newest first: {table}");
    assert!(table.contains("503"), "the failure's error is shown: {table}");
    assert!(table.contains(" ms<"), "durations are shown: {table}");

    let json = show(&wd, "gigstack", "evt_hist_1").expect("record");
    let history = json["history"].as_array().expect("--json has the history");
    let outcomes: Vec<&str> = history.iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert_eq!(
        outcomes.first(),
        Some(&"retryable"),
        "oldest first in JSON: {outcomes:?}"
    );
    assert_eq!(outcomes.last(), Some(&"succeeded"), "{outcomes:?}");
    assert_eq!(history.last().expect("entry")["attempt"], 2);
    assert_eq!(
        json["next_attempt_at"],
        serde_json::Value::Null,
        "DONE has no next attempt"
    );

    let text = run(&wd, &["events", "show", "gigstack", "evt_hist_1"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let lines = &text[text.find("history").expect("the history is printed")..];
    assert!(
        lines.find("succeeded") < lines.find("retryable") && lines.contains("503"),
        "newest first with the error: {text}"
    );
}

#[tokio::test]
async fn replaying_a_filter_shows_the_count_first_then_replays_each() {
    let sink = Sink::start().await;
    sink.plan(&[400, 400], 200);
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let http = client();
    for id in ["evt_bulk_1", "evt_bulk_2"] {
        assert_eq!(
            post_gigstack(&http, &serve, &gigstack_body(id, "invoice.created"))
                .await
                .0,
            200
        );
        wait_for_state(&wd, "gigstack", id, "FAILED", WAIT).await;
    }
    assert_eq!(
        post_gigstack(&http, &serve, &gigstack_body("evt_bulk_3", "invoice.created"))
            .await
            .0,
        200
    );
    wait_for_state(&wd, "gigstack", "evt_bulk_3", "DONE", WAIT).await;

    let (status, _, confirm) = get(&http, &format!("{}/console/replay?q=bulk", base(&serve))).await;
    assert_eq!(status, 200);
    assert!(confirm.contains("<strong>2</strong> event(s) match"), "{confirm}");
    assert!(confirm.contains("1 DONE event(s)"), "{confirm}");
    assert_eq!(
        show(&wd, "gigstack", "evt_bulk_1").expect("record")["state"],
        "FAILED",
        "nothing changed yet"
    );
    let csrf = csrf_of(&confirm);
    let done = http
        .post(format!("{}/console/replay", base(&serve)))
        .form(&[("csrf", csrf.as_str()), ("q", "bulk"), ("state", ""), ("provider", "")])
        .send()
        .await
        .expect("post");
    assert_eq!(done.status().as_u16(), 200);
    let text = done.text().await.expect("text");
    assert!(
        text.contains("Replayed 2; skipped 1 DONE, 0 being processed, 0 gone meanwhile; 0 failed."),
        "{text}"
    );
    for id in ["evt_bulk_1", "evt_bulk_2"] {
        wait_for_state(&wd, "gigstack", id, "DONE", WAIT).await;
    }
}

#[tokio::test]
async fn the_live_tail_streams_new_rows_as_json() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let http = client();
    let mut stream = http
        .get(format!("{}/console/stream?after=0", base(&serve)))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    assert_eq!(
        post_gigstack(&http, &serve, &gigstack_body("evt_tail_1", "invoice.created"))
            .await
            .0,
        200
    );
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = String::new();
    while !seen.contains("evt_tail_1") {
        assert!(std::time::Instant::now() < deadline, "no row in {seen}");
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(std::time::Duration::from_secs(3), stream.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.contains("event: rows"), "{seen}");
    let data = seen
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("evt_tail_1"))
        .expect("a data line");
    let rows: serde_json::Value = serde_json::from_str(data.trim_start_matches("data:").trim()).expect("JSON rows");
    assert_eq!(rows[0]["href"], "/console/events/gigstack/evt_tail_1");
}

#[tokio::test]
async fn off_loopback_the_console_needs_a_token_or_stays_off() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let config = wd.config(&sink, 5, 100);
    // Any address but loopback, no token: off, and start-up says why.
    let open = Serve::start(&wd, &config, &["--addr", "0.0.0.0:0"]);
    assert!(
        printed(
            &open,
            "console: off (listening on 0.0.0.0 (not loopback) without WEBHOOKS_CONSOLE_TOKEN)"
        )
        .await,
        "{}",
        open.output()
    );
    let http = client();
    let (status, _, _) = get(&http, &format!("http://127.0.0.1:{}/console", open.addr.port())).await;
    assert_eq!(status, 404);
    drop(open);

    let token = "a-console-token-of-some-length";
    let guarded = Serve::start_with(
        &wd,
        &config,
        &["--addr", "0.0.0.0:0"],
        &[("WEBHOOKS_CONSOLE_TOKEN", token)],
    );
    let url = format!("http://127.0.0.1:{}", guarded.addr.port());
    let (status, headers, _) = get(&http, &format!("{url}/console")).await;
    assert_eq!(
        (status, headers["location"].to_str().expect("location")),
        (303, "/console/login")
    );
    let wrong = http
        .post(format!("{url}/console/login"))
        .form(&[("token", "not-it")])
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = http
        .post(format!("{url}/console/login"))
        .form(&[("token", token)])
        .send()
        .await
        .expect("post");
    assert_eq!(right.status().as_u16(), 303);
    let cookie = right.headers()["set-cookie"].to_str().expect("cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(token), "the cookie is a session, not the token");
    let session = cookie.split(';').next().expect("pair").to_string();
    let page = http
        .get(format!("{url}/console"))
        .header("cookie", &session)
        .send()
        .await
        .expect("get");
    assert_eq!(page.status().as_u16(), 200);
    let refused = http
        .post(format!("{url}/console/replay"))
        .form(&[("csrf", "x")])
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status().as_u16(), 401, "no session, no action");
}

#[tokio::test]
async fn no_console_turns_it_off() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &["--no-console"]);
    assert!(
        printed(&serve, "console: off (--no-console)").await,
        "{}",
        serve.output()
    );
    let (status, _, _) = get(&client(), &format!("{}/console", base(&serve))).await;
    assert_eq!(status, 404);
}

/// Posts `body` to `provider` with these headers; returns (status, request id).
async fn post_raw(
    http: &reqwest::Client,
    serve: &Serve,
    provider: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = http
        .post(serve.url(provider))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("post");
    let id = resp.headers()["x-request-id"].to_str().expect("request id").to_string();
    (resp.status().as_u16(), id)
}

/// The rows of the refused page's table.
fn refused_rows(page: &str) -> usize {
    page.matches("<td class=\"reason\"").count()
}

#[tokio::test]
async fn refused_deliveries_are_listed_with_their_reason_and_nothing_secret() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    assert!(printed(&serve, "console: http://").await, "{}", serve.output());
    let http = client();
    let body = r#"{"id":"evt_refused_1","type":"invoice.created","note":"BODY-MARKER-7f3a"}"#;
    let (status, bad_sig) = post_raw(
        &http,
        &serve,
        "gigstack",
        &[
            ("x-gigstack-signature", "SIG-MARKER-c0ffee"),
            ("x-forwarded-for", "198.51.100.23, 10.0.0.1"),
        ],
        body,
    )
    .await;
    assert_eq!(status, 401);
    let (status, missing) = post_raw(&http, &serve, "gigstack", &[], body).await;
    assert_eq!(status, 401);
    let (status, unknown) = post_raw(
        &http,
        &serve,
        "nosuchprovider",
        &[("x-signature", "SIG-MARKER-c0ffee")],
        body,
    )
    .await;
    assert_eq!(status, 404);

    let (_, _, events) = get(&http, &format!("{}/console", base(&serve))).await;
    assert!(events.contains("href=\"/console/refused\""), "the nav links the page");
    let (status, _, page) = get(&http, &format!("{}/console/refused", base(&serve))).await;
    assert_eq!(status, 200);
    assert_eq!(refused_rows(&page), 3, "{page}");
    for (reason, id) in [
        ("invalid_signature", &bad_sig),
        ("missing_signature", &missing),
        ("unknown_provider", &unknown),
    ] {
        assert!(page.contains(reason), "{reason} listed");
        assert!(page.contains(id.as_str()), "the request id of {reason} listed");
    }
    // Newest first.
    assert!(page.find(unknown.as_str()) < page.find(bad_sig.as_str()));
    assert!(page.contains("198.51.100.23"), "X-Forwarded-For's first entry");
    assert!(!page.contains("10.0.0.1"), "only the first entry");
    assert!(page.contains("127.0.0.1"), "the peer address without X-Forwarded-For");
    assert!(page.contains("X-Gigstack-Signature"), "the expected header's name");
    assert!(page.contains(&format!(">{}<", body.len())), "the body's size");
    for secret in ["SIG-MARKER", "BODY-MARKER", "evt_refused_1", GIGSTACK_SECRET] {
        assert!(!page.contains(secret), "{secret} must not be shown");
    }
    // The signature header was present on the first, absent on the second.
    let row = |id: &str| {
        let at = page.find(id).expect("row");
        let end = page[at..].find("</tr>").expect("row end") + at;
        page[at..end].to_string()
    };
    assert!(row(&bad_sig).contains("<td class=\"present\">X-Gigstack-Signature</td><td class=\"absent\"></td>"));
    assert!(row(&missing).contains("<td class=\"present\"></td><td class=\"absent\">X-Gigstack-Signature</td>"));

    let (_, _, filtered) = get(&http, &format!("{}/console/refused?provider=gigstack", base(&serve))).await;
    assert_eq!(refused_rows(&filtered), 2, "one provider's");
    assert!(!filtered.contains(unknown.as_str()) && !filtered.contains("unknown_provider"));
    assert!(serve.output().contains("console: http://"));
}

#[tokio::test]
async fn a_flood_of_bad_deliveries_stores_at_most_the_sample_and_answers_every_one() {
    let sink = Sink::start().await;
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    assert!(printed(&serve, "console: http://").await, "{}", serve.output());
    let http = client();
    let started = std::time::Instant::now();
    let body = gigstack_body("evt_flood", "invoice.created");
    for _ in 0..100 {
        let (status, _) = post_raw(&http, &serve, "gigstack", &[("x-gigstack-signature", "00")], &body).await;
        assert_eq!(status, 401);
    }
    let elapsed = started.elapsed().as_secs() as usize;
    let (_, _, page) = get(&http, &format!("{}/console/refused", base(&serve))).await;
    let rows = refused_rows(&page);
    // Ten at once, then one a second.
    assert!(rows >= 10 && rows <= 10 + elapsed + 1, "{rows} stored in {elapsed} s");
    let (_, _, metrics) = get(&http, &format!("{}/metrics", base(&serve))).await;
    assert!(
        metrics.contains(r#"rejected_total{provider="gigstack",reason="invalid_signature"} 100"#),
        "every refusal is counted: {metrics}"
    );
}
