//! Artifacts in an S3 bucket (the SAM template's private, encrypted bucket).
//! Every object is written with server-side encryption: SSE-KMS with the
//! given key, else SSE-S3 (AES256). A `PutObject` replaces the object whole,
//! so a reader never sees half a PDF.

use async_trait::async_trait;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;
use webhooks_core::ports::artifacts::{check_relative, ArtifactError, ArtifactStore};

/// S3-backed [`ArtifactStore`].
#[derive(Debug, Clone)]
pub struct S3Artifacts {
    client: Client,
    bucket: String,
    kms_key_id: Option<String>,
}

impl S3Artifacts {
    /// `kms_key_id`: SSE-KMS with this key; `None`: SSE-S3.
    pub fn new(client: Client, bucket: &str, kms_key_id: Option<String>) -> Self {
        Self {
            client,
            bucket: bucket.to_string(),
            kms_key_id,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl ArtifactStore for S3Artifacts {
    async fn put(&self, path: &str, bytes: &[u8], content_type: &str) -> Result<String, ArtifactError> {
        check_relative(path)?;
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(path)
            .content_type(content_type)
            .body(ByteStream::from(bytes.to_vec()));
        request = match &self.kms_key_id {
            Some(key) => request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key),
            None => request.server_side_encryption(ServerSideEncryption::Aes256),
        };
        request.send().await.map_err(|e| {
            ArtifactError::Unavailable(format!("s3://{}/{path}: {}", self.bucket, DisplayErrorContext(&e)))
        })?;
        Ok(format!("s3://{}/{path}", self.bucket))
    }
}
