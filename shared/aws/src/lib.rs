//! The AWS backend: what the two Lambda functions run on.
//!
//! - [`env`]: the typed environment (every variable, read once, a missing
//!   one named);
//! - [`sdk`]: SDK configuration with short request-path timeouts, the
//!   clients built once, the first connections opened at init;
//! - [`secrets`]: `secretsmanager:` / `ssm:` references fetched once at cold
//!   start into a cache;
//! - [`bootstrap`]: the cold start that wires it all into the app;
//! - [`eventbridge`]: the `eventbridge:BUS` handler (AWS only);
//! - [`emf`]: CloudWatch metrics written to the log (Embedded Metric Format);
//! - the adapters of the ports: [`dynamodb::DynamoStore`] (event store),
//!   [`sqs::SqsQueue`] (queue and dead-letter queue), `s3::S3Artifacts`
//!   (feature `artifacts-s3`),
//!   [`refusals::DynamoRefusals`] (the refused-delivery log, in the events table).
//!
//! Features `artifacts-s3` and `eventbridge` link the S3 and EventBridge
//! clients: the processor turns them on, the ingest (which never runs a
//! handler) does not, so its bootstrap carries two SDK clients fewer.
//!
//! Each adapter passes the same contract suite as the embedded one
//! (`webhooks-testkit`), run against an AWS API emulator.

pub mod bootstrap;
pub mod dynamodb;
pub mod emf;
pub mod env;
pub mod eventbridge;
pub mod refusals;
#[cfg(feature = "artifacts-s3")]
pub mod s3;
pub mod sdk;
pub mod secrets;
pub mod sqs;

pub use bootstrap::{build, cold_start, cold_start_with, init, load_overlay, ports, Runtime};
pub use env::AwsEnv;
pub use sdk::{sdk_config, Clients};
pub use secrets::CachedSecrets;

use webhooks_core::app::AppError;
use webhooks_core::config::ConfigError;
use webhooks_core::secret::SecretError;

/// Why a function could not start. Each variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("environment variable {0} is required but not set (or empty)")]
    MissingVar(&'static str),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("WEBHOOKS_CONFIG: {0}")]
    ConfigSource(SecretError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("cannot reach {what} during init: {reason}")]
    Unreachable { what: String, reason: String },
}
