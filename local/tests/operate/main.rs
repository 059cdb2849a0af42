//! The operating commands (`events list/show/export`, `replay`,
//! `dead-letters`) through the real binary, as one suite run over both
//! backends: the embedded SQLite file fed by `webhooks serve`, and a stack in
//! the AWS emulator (created by CloudFormation, so `--stack` resolves its
//! outputs) fed by the ingest function's router and the processor
//! function's batch handler. Needs the `aws` feature (`./scripts/test` runs
//! it with `cargo test -p webhooks --features aws --test operate`).

#![allow(clippy::unwrap_used)]

mod deployments;
mod suite;
#[path = "../it/support/mod.rs"]
mod support;

use deployments::{AwsStack, Embedded};
use support::Sink;

#[tokio::test]
async fn the_operating_commands_on_the_embedded_database() {
    let sink = Sink::start().await;
    let deployment = Embedded::start(&sink);
    suite::run(&deployment, &sink).await;
}

#[tokio::test]
async fn the_operating_commands_on_a_deployed_stack() {
    let Some(endpoint) = webhooks_testkit_aws::endpoint_for_test("the_operating_commands_on_a_deployed_stack") else {
        return;
    };
    let sink = Sink::start().await;
    let deployment = AwsStack::create(&endpoint, &sink).await;
    suite::run(&deployment, &sink).await;
}

/// A processor that dies at the receive limit leaves the message to SQS's
/// redrive policy, which moves it to the dead letters with the record still
/// QUEUED. `dead-letters list` shows it FAILED with why, as the processor
/// Lambda's `dead_letters` command would (one function in webhooks-core).
#[tokio::test]
async fn dead_letters_list_marks_failed_a_record_the_redrive_policy_left_waiting() {
    let Some(endpoint) = webhooks_testkit_aws::endpoint_for_test(
        "dead_letters_list_marks_failed_a_record_the_redrive_policy_left_waiting",
    ) else {
        return;
    };
    let sink = Sink::start().await;
    let stack = AwsStack::create(&endpoint, &sink).await;
    let id = "evt_op_stranded";
    assert_eq!(
        suite::Deployment::deliver(&stack, &support::gigstack_body(id, "invoice.created")).await,
        200
    );
    let receives = stack.receive_until_redriven().await;
    assert!(receives >= 5, "moved only past maxReceiveCount: {receives}");
    let record = |stack: &AwsStack| -> serde_json::Value {
        let out = suite::Deployment::cli(stack, &["events", "show", "gigstack", id, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    assert_eq!(
        record(&stack)["state"],
        "QUEUED",
        "the redrive policy does not touch the record"
    );
    // Past the processing lease (5 s in the suite's configuration): no
    // replay is moving it back right now.
    tokio::time::sleep(std::time::Duration::from_millis(5_500)).await;

    let out = stack.cli_with_config(&["dead-letters", "list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let why = "moved to the dead-letter queue by the queue's redrive policy after 5 receives";
    assert_eq!(
        (
            &lines[0]["id"],
            &lines[0]["state"],
            &lines[0]["reason"],
            &lines[0]["last_error"]
        ),
        (
            &serde_json::json!(id),
            &serde_json::json!("FAILED"),
            &serde_json::json!(why),
            &serde_json::json!(why)
        ),
        "{lines:?}"
    );
    let after = record(&stack);
    assert_eq!(
        (&after["state"], &after["last_error"]),
        (&serde_json::json!("FAILED"), &serde_json::json!(why)),
        "{after}"
    );
    assert!(sink.effects().is_empty(), "no handler ran: {:?}", sink.effects());
}

#[tokio::test]
async fn a_stack_that_does_not_exist_is_named_in_the_error() {
    let Some(endpoint) = webhooks_testkit_aws::endpoint_for_test("a_stack_that_does_not_exist_is_named_in_the_error")
    else {
        return;
    };
    let wd = support::Workdir::new();
    let out = deployments::aws_command(&wd, &endpoint, &["events", "list", "--stack", "no-such-stack"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr.contains("stack `no-such-stack`"), "{stderr}");
}

#[test]
fn aws_flags_without_the_aws_backend_are_refused() {
    let wd = support::Workdir::new();
    let out = support::run(
        &wd,
        &["events", "list", "--backend", "sqlite", "--queue-url", "http://q"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr.contains("--queue-url names an AWS resource"), "{stderr}");
}

/// `webhooks console --stack`: the same page, read from the stack's table,
/// its events listed and one opened.
#[tokio::test]
async fn the_console_serves_a_deployed_stack() {
    let Some(endpoint) = webhooks_testkit_aws::endpoint_for_test("the_console_serves_a_deployed_stack") else {
        return;
    };
    let sink = Sink::start().await;
    let stack = AwsStack::create(&endpoint, &sink).await;
    let id = "evt_op_console";
    assert_eq!(
        suite::Deployment::deliver(&stack, &support::gigstack_body(id, "invoice.created")).await,
        200
    );
    let (mut child, base) = stack.console();
    let http = reqwest::Client::new();
    let page = async {
        let events = http
            .get(format!("{base}/console"))
            .send()
            .await
            .expect("get")
            .text()
            .await
            .expect("text");
        assert!(events.contains(id) && events.contains("AWS stack"), "{events}");
        let event = http
            .get(format!("{base}/console/events/gigstack/{id}"))
            .send()
            .await
            .expect("get");
        assert_eq!(event.status().as_u16(), 200);
        assert!(event.text().await.expect("text").contains("Payload"));
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    page
}
