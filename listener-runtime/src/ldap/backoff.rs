//! The one retry delay of the runtime: exponential backoff, shared by every loop that
//! waits for slapd, the notifier or a failing module to come back.

use std::time::Duration;

/// How a retry loop waits: the delay doubles from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The delay doubles up to this.
    pub max: Duration,
    /// Give up after this many attempts (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    /// 100 ms doubling up to 30 s, forever: reconnecting to slapd or the notifier.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// 1 s doubling up to 60 s, forever: retrying a transaction a blocking module halted.
    pub(crate) fn halted() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            max_attempts: None,
        }
    }

    /// The wait before retry number `retry` (1-based).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A retry loop's state, before its first failure.
    pub(crate) fn start(&self) -> Retry {
        Retry {
            backoff: self.clone(),
            failures: 0,
        }
    }
}

/// Where one retry loop stands: how many attempts failed in a row.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    backoff: Backoff,
    failures: u32,
}

impl Retry {
    /// Counts a failed attempt and returns how long to wait before the next one, or
    /// `None` when the attempts are used up.
    pub(crate) fn failed(&mut self) -> Option<Duration> {
        self.failures += 1;
        if self
            .backoff
            .max_attempts
            .is_some_and(|max| self.failures >= max)
        {
            return None;
        }
        Some(self.backoff.delay(self.failures))
    }

    /// Attempts made so far, the one under way included.
    pub(crate) fn attempt(&self) -> u32 {
        self.failures + 1
    }

    /// After a success: the next failure waits the initial delay again.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_and_attempts_run_out() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            max_attempts: Some(4),
        };
        let ms: Vec<u128> = (1..=5).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 350, 350, 350]);
        assert_eq!(backoff.delay(200), Duration::from_millis(350));
        let mut retry = backoff.start();
        assert_eq!(retry.attempt(), 1);
        assert_eq!(retry.failed(), Some(Duration::from_millis(100)));
        assert_eq!(retry.failed(), Some(Duration::from_millis(200)));
        assert_eq!(retry.attempt(), 3);
        assert_eq!(retry.failed(), Some(Duration::from_millis(350)));
        assert_eq!(retry.failed(), None, "the fourth attempt was the last");
        retry.reset();
        assert_eq!(retry.failed(), Some(Duration::from_millis(100)));
        let forever = Backoff::default().start();
        let mut forever = forever;
        for _ in 0..100 {
            assert!(forever.failed().is_some());
        }
    }
}
