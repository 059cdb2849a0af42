//! The artifact storage port: where handlers keep files they fetch (gigstack
//! invoice PDFs). Adapters: a local directory ([`LocalDir`], here: it needs
//! nothing but the file system) and an S3 bucket (`webhooks_aws::s3::S3Artifacts`).

use async_trait::async_trait;
use std::path::{Component, Path, PathBuf};

/// Why an artifact could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact path `{0}` is not a plain relative path")]
    BadPath(String),
    #[error("artifact storage unavailable: {0}")]
    Unavailable(String),
}

/// Stores named blobs.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Stores `bytes` at `path` (relative, `/`-separated), replacing what was
    /// there; returns where it went (a file path or an `s3://` URL).
    async fn put(&self, path: &str, bytes: &[u8], content_type: &str) -> Result<String, ArtifactError>;
}

/// Rejects absolute paths and `..`, so a payload field cannot write outside the store.
pub fn check_relative(path: &str) -> Result<(), ArtifactError> {
    let p = Path::new(path);
    let plain = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))) && !path.contains('\\');
    if plain {
        Ok(())
    } else {
        Err(ArtifactError::BadPath(path.to_string()))
    }
}

/// Artifacts in a local directory. Writes go to a temporary file first and
/// are renamed into place, so a crash never leaves half a PDF.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

#[async_trait]
impl ArtifactStore for LocalDir {
    async fn put(&self, path: &str, bytes: &[u8], _content_type: &str) -> Result<String, ArtifactError> {
        check_relative(path)?;
        let target = self.root.join(path);
        let unavailable = |e: std::io::Error| ArtifactError::Unavailable(format!("{}: {e}", target.display()));
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(unavailable)?;
        }
        let tmp = target.with_extension(format!("tmp-{}", std::process::id()));
        tokio::fs::write(&tmp, bytes).await.map_err(unavailable)?;
        tokio::fs::rename(&tmp, &target).await.map_err(unavailable)?;
        Ok(target.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths() {
        assert!(check_relative("invoices/abc.pdf").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a\\b"] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn writes_atomically_into_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::new(dir.path());
        let at = store
            .put("invoices/u1.pdf", b"%PDF-1.4", "application/pdf")
            .await
            .unwrap();
        assert_eq!(std::fs::read(&at).unwrap(), b"%PDF-1.4");
        assert!(store.put("../escape.pdf", b"x", "application/pdf").await.is_err());
    }
}
