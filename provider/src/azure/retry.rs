//! How ARM calls are retried: bounded attempts, exponential backoff with jitter. Shared by
//! the ARM client and cloud discovery (in `config`); a leaf, so that `config` needs nothing
//! of the client (which imports `credentials`, which imports `config`).

use std::time::Duration;

/// Attempts at one request, and the waits between them when ARM gives no `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(400),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(1u32 << attempt.min(10));
        let capped = exponential.min(self.max_delay);
        // Up to 25% jitter so concurrent writers do not retry in lockstep.
        let jitter = capped.mul_f64(rand::random::<f64>() * 0.25);
        capped + jitter
    }
}
