//! Exponential backoff with jitter between processing attempts.

use crate::config::RetrySettings;
use rand::Rng;
use std::time::Duration;

/// The delay before attempt `attempt + 1`, after `attempt` failures:
/// `base * 2^(attempt-1)`, capped at `max`, then scaled by a random factor in
/// [0.5, 1.0] so a burst of failures does not retry in lockstep.
pub fn delay(policy: &RetrySettings, attempt: u32, rng: &mut impl Rng) -> Duration {
    let ceiling = ceiling_ms(policy, attempt);
    let jittered = rng.gen_range(ceiling / 2..=ceiling);
    Duration::from_millis(jittered)
}

/// The upper bound of [`delay`] for `attempt`.
pub fn ceiling_ms(policy: &RetrySettings, attempt: u32) -> u64 {
    let exp = attempt.saturating_sub(1).min(32);
    policy
        .base_delay_ms
        .saturating_mul(1u64 << exp)
        .min(policy.max_delay_ms)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn policy() -> RetrySettings {
        RetrySettings {
            max_attempts: 5,
            base_delay_ms: 1000,
            max_delay_ms: 10_000,
            processing_lease_secs: 60,
        }
    }

    #[test]
    fn grows_then_caps() {
        let p = policy();
        assert_eq!(ceiling_ms(&p, 1), 1000);
        assert_eq!(ceiling_ms(&p, 2), 2000);
        assert_eq!(ceiling_ms(&p, 4), 8000);
        assert_eq!(ceiling_ms(&p, 5), 10_000);
        assert_eq!(ceiling_ms(&p, 500), 10_000);
    }

    #[test]
    fn jitter_stays_in_range() {
        let p = policy();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 1..8 {
            for _ in 0..50 {
                let d = delay(&p, attempt, &mut rng).as_millis() as u64;
                let c = ceiling_ms(&p, attempt);
                assert!(d >= c / 2 && d <= c, "{d} not in [{}, {c}]", c / 2);
            }
        }
    }
}
