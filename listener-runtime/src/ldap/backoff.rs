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
    /// 100 ms doubling up to 30 s, forever.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}
