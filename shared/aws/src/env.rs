//! The typed environment of both functions: every variable they read, read
//! once at cold start; a missing one fails the start and is named.

use crate::AwsError;

/// The CloudWatch namespace when `METRICS_NAMESPACE` is unset.
pub const DEFAULT_METRICS_NAMESPACE: &str = "Webhooks";

/// The typed environment of both functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEnv {
    /// `EVENTS_TABLE`: the DynamoDB table of event records.
    pub events_table: String,
    /// `QUEUE_URL`: the main SQS queue.
    pub queue_url: String,
    /// `DLQ_URL`: its dead-letter queue.
    pub dlq_url: String,
    /// `ARTIFACTS_BUCKET`: the S3 bucket for handler artifacts (invoice PDFs).
    pub artifacts_bucket: String,
    /// `ARTIFACTS_KMS_KEY_ID` (optional): SSE-KMS key; unset means SSE-S3 (AES256).
    pub artifacts_kms_key: Option<String>,
    /// `WEBHOOKS_CONFIG` (optional): a TOML overlay merged over the built-in
    /// config: a file path, or `ssm:NAME` / `secretsmanager:NAME` to read the
    /// text from Parameter Store / Secrets Manager.
    pub config: Option<String>,
    /// `AWS_ENDPOINT_URL` (optional): send every SDK call there (an emulator).
    pub endpoint_url: Option<String>,
    /// `METRICS_NAMESPACE` (optional, `Webhooks`): the CloudWatch namespace
    /// of the metrics the functions write to their logs.
    pub metrics_namespace: String,
}

impl AwsEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, AwsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AwsError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let required = |name: &'static str| get(name).ok_or(AwsError::MissingVar(name));
        Ok(Self {
            events_table: required("EVENTS_TABLE")?,
            queue_url: required("QUEUE_URL")?,
            dlq_url: required("DLQ_URL")?,
            artifacts_bucket: required("ARTIFACTS_BUCKET")?,
            artifacts_kms_key: get("ARTIFACTS_KMS_KEY_ID"),
            config: get("WEBHOOKS_CONFIG"),
            endpoint_url: get("AWS_ENDPOINT_URL"),
            metrics_namespace: get("METRICS_NAMESPACE").unwrap_or_else(|| DEFAULT_METRICS_NAMESPACE.to_string()),
        })
    }
}

/// An environment made of `pairs`, for tests of what reads one.
#[cfg(test)]
pub(crate) fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |n| map.get(n).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_the_missing_variable() {
        let all = [
            ("EVENTS_TABLE", "t"),
            ("QUEUE_URL", "q"),
            ("DLQ_URL", "d"),
            ("ARTIFACTS_BUCKET", "b"),
        ];
        let env = AwsEnv::from_lookup(vars(&all)).expect("test value");
        assert_eq!(env.events_table, "t");
        assert!(env.config.is_none() && env.endpoint_url.is_none());
        for skip in 0..all.len() {
            let mut some: Vec<(&str, &str)> = all.to_vec();
            let (missing, _) = some.remove(skip);
            let err = AwsEnv::from_lookup(vars(&some)).expect_err("should fail");
            assert!(err.to_string().contains(missing), "{err}");
        }
        let mut blank = all.to_vec();
        blank[1] = ("QUEUE_URL", "  ");
        assert!(AwsEnv::from_lookup(vars(&blank))
            .expect_err("should fail")
            .to_string()
            .contains("QUEUE_URL"));
    }
}
