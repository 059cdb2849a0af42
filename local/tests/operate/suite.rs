//! The scenario both backends must pass with the same output: a delivery
//! whose handler is refused for good (dead-lettered), one that succeeds, one
//! with no handler; then every operating command, its filters and its
//! refusals, and a redrive that brings the dead letter back to DONE.

use crate::support::{gigstack_body, Sink};
use std::process::Output;
use std::time::{Duration, Instant};

/// A backend the commands run on, and the pipeline that feeds it.
#[allow(async_fn_in_trait)] // used by static dispatch only
pub trait Deployment {
    /// Runs the binary with this backend's flags appended.
    fn cli(&self, args: &[&str]) -> Output;
    /// Delivers a signed gigstack body; the HTTP status.
    async fn deliver(&self, body: &str) -> u16;
    /// Lets the processor work a little (a no-op where it runs by itself).
    async fn pump(&self);
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn show(d: &impl Deployment, id: &str) -> Option<serde_json::Value> {
    let out = d.cli(&["events", "show", "gigstack", id, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// Pumps until the event reaches `state`; panics with the last record.
async fn settle(d: &impl Deployment, id: &str, state: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        d.pump().await;
        let record = show(d, id);
        if let Some(r) = record.as_ref().filter(|r| r["state"] == state) {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{id} did not reach {state}; last: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn ids(out: &Output) -> Vec<String> {
    json_lines(out)
        .iter()
        .map(|v| v["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub async fn run(d: &impl Deployment, sink: &Sink) {
    // The first handler call is refused for good (a 4xx), every later one succeeds.
    sink.plan(&[400], 200);
    for (id, event_type, state) in [
        ("evt_op_refused", "invoice.created", "FAILED"),
        ("evt_op_done", "invoice.created", "DONE"),
        ("evt_op_unhandled", "order.shipped", "IGNORED"),
    ] {
        assert_eq!(d.deliver(&gigstack_body(id, event_type)).await, 200, "{id}");
        settle(d, id, state).await;
        // Records keep their received time in seconds, and DynamoDB has no
        // arrival order within one: a second apart, "newest first" is exact.
        tokio::time::sleep(Duration::from_millis(1_050)).await;
    }

    // Listing: newest first, times in UTC, every filter.
    let table = d.cli(&["events", "list"]);
    let text = stdout(&table);
    assert!(table.status.success(), "{table:?}");
    assert!(text.starts_with("RECEIVED (UTC)"), "{text}");
    assert!(text.contains("3 event(s)"), "{text}");
    assert!(
        text.lines().nth(1).is_some_and(|l| l.contains('T') && l.contains('Z')),
        "{text}"
    );
    assert_eq!(
        ids(&d.cli(&["events", "list", "--json"])),
        ["evt_op_unhandled", "evt_op_done", "evt_op_refused"]
    );
    assert_eq!(
        ids(&d.cli(&["events", "list", "--json", "--status", "FAILED"])),
        ["evt_op_refused"]
    );
    assert_eq!(
        ids(&d.cli(&["events", "list", "--json", "--type", "order.shipped"])),
        ["evt_op_unhandled"]
    );
    assert_eq!(
        ids(&d.cli(&["events", "list", "--json", "--limit", "1"])),
        ["evt_op_unhandled"]
    );
    assert_eq!(
        ids(&d.cli(&[
            "events",
            "list",
            "--json",
            "--provider",
            "gigstack",
            "--since",
            "2020-01-01"
        ]))
        .len(),
        3
    );
    assert!(ids(&d.cli(&["events", "list", "--json", "--since", "2999-01-01"])).is_empty());
    assert!(ids(&d.cli(&["events", "list", "--json", "--provider", "piriod"])).is_empty());
    let bad = d.cli(&["events", "list", "--status", "LOST"]);
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown status `LOST`"),
        "{bad:?}"
    );

    // One event whole: state, handler results, payload.
    let done = show(d, "evt_op_done").expect("shown");
    assert_eq!(done["state"], "DONE");
    assert_eq!(done["payload"]["id"], "evt_op_done");
    assert_eq!(
        done["results"]["gigstack.notify_invoice_created"]["notified"], true,
        "{done}"
    );
    let text = stdout(&d.cli(&["events", "show", "gigstack", "evt_op_done"]));
    let received = text.lines().find(|l| l.starts_with("received")).unwrap_or_default();
    assert!(
        received.contains("T") && received.ends_with('Z'),
        "times in UTC ISO-8601: {text}"
    );
    let absent = d.cli(&["events", "show", "gigstack", "evt_never_sent"]);
    assert_eq!(absent.status.code(), Some(1), "{absent:?}");

    // Export: JSON lines with payloads, filtered.
    let export = d.cli(&["events", "export", "--status", "FAILED", "--payloads"]);
    let lines = json_lines(&export);
    assert_eq!(lines.len(), 1, "{export:?}");
    assert_eq!(lines[0]["payload"]["id"], "evt_op_refused");
    assert!(String::from_utf8_lossy(&export.stderr).contains("exported 1 event(s)"));

    // Dead letters: listed with why, when, and the filters of `events list`.
    let letters = stdout(&d.cli(&["dead-letters", "list"]));
    assert!(
        letters.starts_with("RECEIVED (UTC)  ")
            && letters.contains("UPDATED (UTC)")
            && letters.contains("gigstack#evt_op_refused")
            && letters.contains("400")
            && letters.contains("1 dead letter(s)"),
        "{letters}"
    );
    let row = letters.lines().nth(1).unwrap_or_default();
    assert_eq!(
        row.split_whitespace()
            .take(2)
            .filter(|t| t.len() == 20 && t.contains('T') && t.ends_with('Z'))
            .count(),
        2,
        "received and updated in UTC ISO-8601: {letters}"
    );
    let letters = json_lines(&d.cli(&["dead-letters", "list", "--json"]));
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        (
            &letter["provider"],
            &letter["id"],
            &letter["type"],
            &letter["state"],
            &letter["attempts"]
        ),
        (
            &serde_json::json!("gigstack"),
            &serde_json::json!("evt_op_refused"),
            &serde_json::json!("invoice.created"),
            &serde_json::json!("FAILED"),
            &serde_json::json!(1)
        ),
        "{letter}"
    );
    assert!(letter["reason"].as_str().is_some_and(|r| r.contains("400")), "{letter}");
    assert!(
        letter["updated"].as_str().is_some_and(|t| t.ends_with('Z')) && letter["received_at"].is_i64(),
        "{letter}"
    );
    assert_eq!(
        ids(&d.cli(&[
            "dead-letters",
            "list",
            "--json",
            "--provider",
            "gigstack",
            "--type",
            "invoice.created",
            "--since",
            "2020-01-01",
            "--limit",
            "5"
        ])),
        ["evt_op_refused"]
    );
    assert!(ids(&d.cli(&["dead-letters", "list", "--json", "--type", "order.shipped"])).is_empty());
    assert!(ids(&d.cli(&["dead-letters", "list", "--json", "--provider", "piriod"])).is_empty());
    assert!(ids(&d.cli(&["dead-letters", "list", "--json", "--limit", "0"])).is_empty());
    let later = stdout(&d.cli(&["dead-letters", "list", "--since", "2999-01-01"]));
    assert!(later.contains("empty (for these filters)"), "{later}");

    // Replay's refusals: a DONE event, an unknown one.
    let refused = d.cli(&["replay", "gigstack", "evt_op_done"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("DONE"), "{refused:?}");
    let unknown = d.cli(&["replay", "gigstack", "evt_never_sent"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");

    // The redrive: the dead letter goes back, runs once more and is DONE.
    let redrive = d.cli(&["replay", "--dead-letter"]);
    let text = stdout(&redrive);
    assert!(redrive.status.success(), "{redrive:?}");
    assert!(text.contains("replayed gigstack#evt_op_refused"), "{text}");
    assert!(
        text.contains("moved 1; skipped 0 (0 DONE meanwhile, discarded; 0 being processed); failed 0"),
        "{text}"
    );
    let after = settle(d, "evt_op_refused", "DONE").await;
    assert_eq!(after["attempts"], 1, "a replay starts the count again: {after}");
    assert!(
        after["last_error"].as_str().is_some_and(|e| e.contains("400")),
        "the refused attempt stays on the record as history: {after}"
    );
    assert!(stdout(&d.cli(&["dead-letters", "list"])).contains("empty"));
    assert!(stdout(&d.cli(&["replay", "--dead-letter"])).contains("empty"));

    // Replaying one event by id: an IGNORED one is put back and settles again.
    let one = d.cli(&["replay", "gigstack", "evt_op_unhandled"]);
    assert!(one.status.success(), "{one:?}");
    assert!(stdout(&one).contains("replayed gigstack#evt_op_unhandled"), "{one:?}");
    settle(d, "evt_op_unhandled", "IGNORED").await;
    assert_eq!(
        sink.effects().len(),
        2,
        "each handled event had one effect: {:?}",
        sink.effects()
    );

    // A filtered replay: a second dead letter, then everything of one type.
    sink.plan(&[400], 200);
    assert_eq!(
        d.deliver(&gigstack_body("evt_op_refused_again", "invoice.created"))
            .await,
        200
    );
    settle(d, "evt_op_refused_again", "FAILED").await;
    // Without --yes: the count, and nothing changes.
    let preview = d.cli(&["replay", "--status", "FAILED"]);
    let text = stdout(&preview);
    assert!(preview.status.success(), "{preview:?}");
    assert!(
        text.contains("1 event(s) match: 1 would be replayed") && text.contains("run again with --yes"),
        "{text}"
    );
    assert_eq!(show(d, "evt_op_refused_again").expect("shown")["state"], "FAILED");
    assert!(stdout(&d.cli(&["dead-letters", "list"])).contains("gigstack#evt_op_refused_again"));
    let preview = stdout(&d.cli(&["replay", "--provider", "gigstack", "--type", "invoice.created"]));
    assert!(
        preview.contains("3 event(s) match: 1 would be replayed; 2 would be skipped (DONE)"),
        "{preview}"
    );
    // With --yes: the DONE ones are skipped, the FAILED one leaves the dead
    // letters (moved, not copied) and runs once more.
    let filtered = d.cli(&[
        "replay",
        "--provider",
        "gigstack",
        "--type",
        "invoice.created",
        "--since",
        "2020-01-01",
        "--yes",
    ]);
    let text = stdout(&filtered);
    assert!(filtered.status.success(), "{filtered:?}");
    assert!(text.contains("replayed gigstack#evt_op_refused_again"), "{text}");
    assert!(text.contains("skipped gigstack#evt_op_done: DONE"), "{text}");
    assert!(
        text.contains("moved 1; skipped 2 (2 DONE, 0 being processed, 0 gone); failed 0"),
        "{text}"
    );
    assert!(stdout(&d.cli(&["dead-letters", "list"])).contains("empty"));
    let after = settle(d, "evt_op_refused_again", "DONE").await;
    assert_eq!(after["attempts"], 1, "{after}");
    assert_eq!(sink.effects().len(), 3, "the DONE ones ran no handler again");
    let nothing = d.cli(&["replay", "--since", "2999-01-01", "--yes"]);
    assert!(
        nothing.status.success() && stdout(&nothing).contains("moved 0; skipped 0"),
        "{nothing:?}"
    );
}
