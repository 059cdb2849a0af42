//! The console in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`, which `scripts/test` installs) driven over
//! WebDriver. Signed deliveries go to a running `webhooks serve`; the test
//! sees them listed, filters, opens one, replays a dead letter and sees its
//! state change, watches the live tail add a row, checks that a payload's
//! `<script>` never ran, and fails on any error in the browser's console.
//! Screenshots are saved under `target/console-screenshots/`.
//!
//! Without `chromedriver` on the PATH the test says so and passes, unless
//! `WEBHOOKS_TEST_BROWSER_REQUIRED=1` (set by `scripts/test`), which makes a
//! missing browser a failure rather than a skip.

use crate::support::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_driver() -> Option<Driver> {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn connect(driver: &Driver) -> Client {
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
        },
        "goog:loggingPrefs": {"browser": "ALL"}
    }))
    .expect("capabilities");
    let deadline = Instant::now() + WAIT;
    loop {
        // chromedriver is plain HTTP on loopback: no TLS connector needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() > deadline => panic!("chromedriver did not start a browser: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Chrome's legacy log endpoint: every browser console entry so far.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_string()))
    }
}

/// Browser console entries at level SEVERE (errors, CSP violations).
async fn console_errors(client: &Client) -> Vec<String> {
    let logs = client.issue_cmd(BrowserLog).await.expect("browser log");
    logs.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shoot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(shots().join(format!("{name}.png")), png).expect("save screenshot");
}

/// Waits until the browser is at a URL containing `needle` (after a click
/// that navigates, the old page can still answer for a moment).
async fn wait_for_url(client: &Client, needle: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(url) = client.current_url().await {
            if url.as_str().contains(needle) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "never reached a URL with {needle:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page's text (reloaded each time if `reload`) contains `needle`.
async fn wait_for_text(client: &Client, needle: &str, reload: bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if reload {
            client.refresh().await.expect("refresh");
        }
        // Right after a click the old page may still be there and go stale
        // under our hands: that is "not yet", not a failure.
        let text = match client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{needle:?} never appeared in:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn the_console_in_a_real_browser() {
    let required = std::env::var("WEBHOOKS_TEST_BROWSER_REQUIRED").is_ok_and(|v| v == "1");
    let Some(driver) = start_driver() else {
        assert!(
            !required,
            "chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromedriver is not installed");
        return;
    };
    let sink = Sink::start().await;
    sink.plan(&[400], 200);
    let wd = Workdir::new();
    let serve = Serve::start(&wd, &wd.config(&sink, 5, 100), &[]);
    let http = reqwest::Client::new();
    // One dead letter (the sink refuses its call), one done, one hostile.
    assert_eq!(
        post_gigstack(&http, &serve, &gigstack_body("evt_web_dead", "invoice.created"))
            .await
            .0,
        200
    );
    wait_for_state(&wd, "gigstack", "evt_web_dead", "FAILED", WAIT).await;
    assert_eq!(
        post_gigstack(&http, &serve, &gigstack_body("evt_web_done", "invoice.created"))
            .await
            .0,
        200
    );
    let hostile = serde_json::json!({
        "id": "evt_web_hostile",
        "type": "<img src=x onerror=\"window.pwned=1\">",
        "data": {"client": {"name": "<script>window.pwned=2</script>"}}
    })
    .to_string();
    assert_eq!(post_gigstack(&http, &serve, &hostile).await.0, 200);
    wait_for_state(&wd, "gigstack", "evt_web_done", "DONE", WAIT).await;

    let client = connect(&driver).await;
    let base = format!("http://{}", serve.addr);
    let outcome = async {
        // The list.
        client.goto(&format!("{base}/console")).await.expect("goto");
        let text = wait_for_text(&client, "evt_web_dead", false).await;
        assert!(
            text.contains("evt_web_done") && text.contains("evt_web_hostile"),
            "{text}"
        );
        assert!(
            text.contains("<script>window.pwned=2</script>") || text.contains("<img src=x"),
            "shown as text: {text}"
        );
        shoot(&client, "01-events").await;

        // Filter by state with the form.
        let state = client
            .find(Locator::Css("select[name=state]"))
            .await
            .expect("state select");
        state.select_by_value("FAILED").await.expect("select FAILED");
        client
            .find(Locator::Css("form.filters button[type=submit]"))
            .await
            .expect("filter button")
            .click()
            .await
            .expect("click");
        // The old list also shows the dead letter: wait for the new page.
        wait_for_url(&client, "state=FAILED").await;
        let filtered = wait_for_text(&client, "evt_web_dead", false).await;
        assert!(!filtered.contains("evt_web_done"), "{filtered}");
        shoot(&client, "02-filtered-failed").await;

        // Open the dead letter: record, payload, replay.
        client
            .find(Locator::LinkText("evt_web_dead"))
            .await
            .expect("event link")
            .click()
            .await
            .expect("click");
        let event = wait_for_text(&client, "Payload", false).await;
        assert!(event.contains("FAILED") && event.contains("400"), "{event}");
        let payload = client
            .find(Locator::Css("#payload-text"))
            .await
            .expect("payload")
            .text()
            .await
            .expect("text");
        assert!(payload.contains("\"currency\": \"MXN\""), "pretty-printed: {payload}");
        shoot(&client, "03-dead-letter").await;
        client
            .find(Locator::Css("section.actions form[action$='/replay'] button"))
            .await
            .expect("replay button")
            .click()
            .await
            .expect("click");
        wait_for_text(&client, "its dead letter was moved back", false).await;
        let done = wait_for_text(&client, "DONE", true).await;
        assert!(
            done.contains("gigstack.notify_invoice_created"),
            "its handler result: {done}"
        );
        shoot(&client, "04-replayed-done").await;

        // The hostile payload's page: nothing of it ran.
        client
            .goto(&format!("{base}/console/events/gigstack/evt_web_hostile"))
            .await
            .expect("goto");
        wait_for_text(&client, "window.pwned=2", false).await;
        let pwned = client
            .execute("return window.pwned === undefined;", vec![])
            .await
            .expect("execute");
        assert_eq!(pwned, serde_json::Value::Bool(true), "a payload's markup ran");
        shoot(&client, "05-hostile-payload").await;

        // The live tail adds a row without a reload.
        client.goto(&format!("{base}/console")).await.expect("goto");
        let live = client.find(Locator::Css("#live")).await.expect("live toggle");
        live.click().await.expect("turn the tail on");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            post_gigstack(&http, &serve, &gigstack_body("evt_web_live", "invoice.created"))
                .await
                .0,
            200
        );
        wait_for_text(&client, "evt_web_live", false).await;
        shoot(&client, "06-live-tail").await;

        // A delivery without its signature, seen on the Refused page.
        let refused = http
            .post(serve.url("gigstack"))
            .header("content-type", "application/json")
            .body(gigstack_body("evt_web_unsigned", "invoice.created"))
            .send()
            .await
            .expect("post");
        assert_eq!(refused.status().as_u16(), 401);
        client
            .find(Locator::LinkText("Refused"))
            .await
            .expect("the Refused link")
            .click()
            .await
            .expect("click");
        let page = wait_for_text(&client, "missing_signature", false).await;
        assert!(page.contains("X-Gigstack-Signature"), "the absent header named: {page}");
        shoot(&client, "06b-refused").await;

        // A phone-sized window.
        client.set_window_size(390, 844).await.expect("resize");
        client.goto(&format!("{base}/console")).await.expect("goto");
        wait_for_text(&client, "evt_web_live", false).await;
        shoot(&client, "07-phone").await;

        let errors = console_errors(&client).await;
        assert!(errors.is_empty(), "browser console errors: {errors:#?}");
    }
    .await;
    let _ = client.close().await;
    outcome
}
