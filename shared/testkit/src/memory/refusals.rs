//! The refusal log in memory, with the same bounds as the real adapters.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;
use webhooks_core::ports::refusals::{capped, count_reasons, Refusal, RefusalBounds, RefusalError, RefusalLog};

/// In-memory [`RefusalLog`], oldest first inside.
#[derive(Debug, Default)]
pub struct MemoryRefusals {
    bounds: RefusalBounds,
    kept: Mutex<Vec<Refusal>>,
}

impl MemoryRefusals {
    pub fn new(bounds: RefusalBounds) -> Self {
        Self {
            bounds,
            kept: Mutex::new(Vec::new()),
        }
    }

    /// The unexpired refusals (of `provider`), newest first.
    fn newest(&self, provider: Option<&str>) -> Vec<Refusal> {
        let oldest = webhooks_core::time::unix_now() - self.bounds.keep_secs;
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter()
            .rev()
            .filter(|r| r.at > oldest && provider.is_none_or(|p| r.provider == p))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl RefusalLog for MemoryRefusals {
    async fn record(&self, refusal: Refusal) -> Result<(), RefusalError> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = refusal.at - self.bounds.keep_secs;
        let provider = refusal.provider.clone();
        kept.push(refusal);
        kept.retain(|r| r.at > oldest);
        let of_provider = kept.iter().filter(|r| r.provider == provider).count();
        let mut excess = of_provider.saturating_sub(self.bounds.per_provider);
        kept.retain(|r| {
            if excess > 0 && r.provider == provider {
                excess -= 1;
                false
            } else {
                true
            }
        });
        Ok(())
    }

    async fn list(&self, provider: Option<&str>, limit: usize) -> Result<Vec<Refusal>, RefusalError> {
        let mut newest = self.newest(provider);
        newest.truncate(capped(provider, limit, self.bounds));
        Ok(newest)
    }

    async fn counts(&self, provider: Option<&str>) -> Result<BTreeMap<String, u64>, RefusalError> {
        Ok(count_reasons(&self.newest(provider)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_refusal_contract() {
        crate::contract::refusals::run_all(&MemoryRefusals::new(crate::contract::refusals::BOUNDS)).await;
    }
}
