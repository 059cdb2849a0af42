//! What the shared support module (the ingest tests') asks of a suite
//! whose build has S3: both of the processor's test trees include this file.

/// The bucket the processor's handlers store artifacts in.
pub async fn create_artifacts_bucket(clients: &webhooks_aws::Clients, bucket: &str) {
    clients
        .s3
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
}
