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
