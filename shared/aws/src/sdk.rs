//! SDK configuration and clients: short timeouts and few retries on the
//! request path (a sick dependency becomes a fast 503 the provider retries),
//! an optional endpoint override (an emulator), the clients built once per
//! cold start, and the first connections opened during init.

use crate::env::AwsEnv;
use crate::AwsError;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_smithy_http_client::tls;
use std::time::Duration;

/// Timeouts and retries for calls made while a provider waits for an answer:
/// short, so a sick dependency turns into a fast 503 the provider retries.
pub fn resilience() -> (RetryConfig, TimeoutConfig) {
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(500));
    let timeout = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build();
    (retry, timeout)
}

/// The HTTPS client of every SDK client: rustls with ring, the crypto
/// provider reqwest already brings, rather than the SDK's default (rustls
/// with aws-lc-rs), so a binary carries one crypto library, not two. The
/// SDK loads the trusted roots when a client first uses it.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// SDK configuration from the environment (region, credentials of the
/// function's role), with `endpoint_url` overriding every service endpoint
/// and [`https_client`] as the HTTP client (the workspace builds the SDK
/// without a default one).
pub async fn sdk_config(endpoint_url: Option<&str>) -> SdkConfig {
    let (retry, timeout) = resilience();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(retry)
        .timeout_config(timeout);
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The SDK clients, built once per cold start and shared by every request.
#[derive(Debug, Clone)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The handlers' artifacts (processor only: feature `artifacts-s3`).
    #[cfg(feature = "artifacts-s3")]
    pub s3: aws_sdk_s3::Client,
    pub secrets_manager: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    /// For `eventbridge:BUS` handlers (processor only: feature
    /// `eventbridge`); cheap to build, no connection until the first put.
    #[cfg(feature = "eventbridge")]
    pub eventbridge: aws_sdk_eventbridge::Client,
}

impl Clients {
    /// Builds every client this build links from one configuration. With an
    /// endpoint override (an emulator), S3 uses path-style addressing.
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            #[cfg(feature = "artifacts-s3")]
            s3: {
                let mut s3 = aws_sdk_s3::config::Builder::from(config);
                if config.endpoint_url().is_some() {
                    s3 = s3.force_path_style(true);
                }
                aws_sdk_s3::Client::from_conf(s3.build())
            },
            secrets_manager: aws_sdk_secretsmanager::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            #[cfg(feature = "eventbridge")]
            eventbridge: aws_sdk_eventbridge::Client::new(config),
        }
    }

    /// Opens the connections the hot path uses (DynamoDB and SQS), so the
    /// first request does not pay DNS, TCP and TLS. Also proves the table and
    /// queue exist and the role may use them: a wrong name fails the cold
    /// start, not the first delivery.
    pub async fn warm_up(&self, env: &AwsEnv) -> Result<(), AwsError> {
        let table = self.dynamodb.describe_table().table_name(&env.events_table).send();
        let queue = self
            .sqs
            .get_queue_attributes()
            .queue_url(&env.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout)
            .send();
        let (table, queue) = tokio::join!(table, queue);
        table.map_err(|e| AwsError::Unreachable {
            what: format!("DynamoDB table {}", env.events_table),
            reason: DisplayErrorContext(&e).to_string(),
        })?;
        queue.map_err(|e| AwsError::Unreachable {
            what: format!("SQS queue {}", env.queue_url),
            reason: DisplayErrorContext(&e).to_string(),
        })?;
        Ok(())
    }
}
