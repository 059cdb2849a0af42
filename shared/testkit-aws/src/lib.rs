//! Test support for the AWS adapters, against an AWS API emulator (moto's
//! server, started by `scripts/aws-emulator`): which endpoint a test uses
//! (and whether a missing one skips or fails it), SDK configuration with
//! dummy credentials, and the table and queues a test creates for itself as
//! the SAM template defines them. A dev-dependency of the AWS tests only.

#![allow(clippy::unwrap_used)]

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use webhooks_aws::sdk::resilience;
use webhooks_aws::Clients;

/// The AWS API emulator a test should use: `WEBHOOKS_TEST_AWS_ENDPOINT`, or
/// `None` with a printed `SKIPPED` line when it is unset, so `cargo test`
/// works on a machine without moto. `scripts/test` sets
/// `WEBHOOKS_TEST_AWS_REQUIRED=1`, which turns a missing emulator into a
/// failure: the suite that CI runs can never pass by skipping.
pub fn endpoint_for_test(test: &str) -> Option<String> {
    match std::env::var("WEBHOOKS_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("WEBHOOKS_TEST_AWS_REQUIRED").is_ok_and(|v| v == "1") => {
            panic!("{test}: WEBHOOKS_TEST_AWS_REQUIRED=1 but WEBHOOKS_TEST_AWS_ENDPOINT is not set")
        }
        _ => {
            println!(
                "SKIPPED {test}: WEBHOOKS_TEST_AWS_ENDPOINT is not set; run `eval \"$(scripts/aws-emulator start)\"` first"
            );
            None
        }
    }
}

/// SDK configuration for an emulator at `endpoint_url`: fixed dummy
/// credentials and region, so nothing about a real account is needed, and
/// the functions' retries with longer timeouts. The emulator is one Python
/// process: on a busy machine it can take longer than the functions' 3 s to
/// answer, and a create the SDK retried after a timed-out attempt that had
/// in fact succeeded fails as "already exists".
pub async fn sdk_config(endpoint_url: &str) -> SdkConfig {
    let (retry, _) = resilience();
    let timeout = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .operation_attempt_timeout(std::time::Duration::from_secs(20))
        .operation_timeout(std::time::Duration::from_secs(60))
        .build();
    let credentials = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "emulator");
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(webhooks_aws::sdk::https_client())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint_url)
        .credentials_provider(credentials)
        .retry_config(retry)
        .timeout_config(timeout)
        .load()
        .await
}

/// Clients for the emulator a test should use, or `None` (skipped) as
/// [`endpoint_for_test`] decides.
pub async fn clients_for_test(test: &str) -> Option<Clients> {
    let url = endpoint_for_test(test)?;
    Some(Clients::new(&sdk_config(&url).await))
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sdk_error(e: impl std::error::Error + 'static) -> String {
    DisplayErrorContext(e).to_string()
}

/// Creates the table as the SAM template does (key `pk`, on demand, TTL
/// on `expires_at`) and waits until it is active. For emulators and tests.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<(), String> {
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(sdk_error)?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .map_err(sdk_error)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("state")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(sdk_error)?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("received_at")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .map_err(sdk_error)?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(webhooks_aws::dynamodb::STATE_INDEX)
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("state")
                        .key_type(KeyType::Hash)
                        .build()
                        .map_err(sdk_error)?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("received_at")
                        .key_type(KeyType::Range)
                        .build()
                        .map_err(sdk_error)?,
                )
                .projection(Projection::builder().projection_type(ProjectionType::All).build())
                .build()
                .map_err(sdk_error)?,
        )
        .send()
        .await
        .map_err(sdk_error)?;
    for _ in 0..100 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(sdk_error)?;
        let active = out
            .table()
            .and_then(|t| t.table_status())
            .is_some_and(|s| s.as_str() == "ACTIVE");
        if active {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .map_err(sdk_error)?,
        )
        .send()
        .await
        .map_err(sdk_error)?;
    Ok(())
}

/// Creates `{name}-dlq` (14 days retention) and `{name}` with a
/// RedrivePolicy to it after `max_receive_count` receives, as the SAM
/// template does, with the `by_state` listing index. Returns (queue URL, DLQ URL). For emulators and tests.
pub async fn create_queue_pair(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout_secs: u32,
    max_receive_count: u32,
) -> Result<(String, String), String> {
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(sdk_error)?;
    let dlq_url = dlq
        .queue_url()
        .ok_or_else(|| "CreateQueue returned no URL".to_string())?
        .to_string();
    let attrs = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk_error)?;
    let dlq_arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or_else(|| "DLQ has no ARN".to_string())?
        .clone();
    let policy = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count});
    let main = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .map_err(sdk_error)?;
    let url = main
        .queue_url()
        .ok_or_else(|| "CreateQueue returned no URL".to_string())?
        .to_string();
    Ok((url, dlq_url))
}

/// What SQS hands a processor Lambda for these messages (the event source
/// mapping's record for each: id, receipt handle, body, system attributes,
/// and the string message attributes received with it).
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message]) -> aws_lambda_events::event::sqs::SqsEvent {
    let mut event = aws_lambda_events::event::sqs::SqsEvent::default();
    for m in messages {
        let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
        record.message_id = m.message_id().map(str::to_string);
        record.receipt_handle = m.receipt_handle().map(str::to_string);
        record.body = m.body().map(str::to_string);
        record.attributes = m
            .attributes()
            .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect())
            .unwrap_or_default();
        for (name, value) in m.message_attributes().into_iter().flatten() {
            let mut attribute = aws_lambda_events::event::sqs::SqsMessageAttribute::default();
            attribute.string_value = value.string_value().map(str::to_string);
            attribute.data_type = Some(value.data_type().to_string());
            record.message_attributes.insert(name.clone(), attribute);
        }
        record.event_source = Some("aws:sqs".into());
        event.records.push(record);
    }
    event
}
