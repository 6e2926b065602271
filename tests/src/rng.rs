//! A small deterministic PRNG for randomized tests: the seed is printed, and an
//! environment variable replays it.

/// A linear congruential generator (Knuth's MMIX constants).
pub struct Lcg {
    seed: u64,
    state: u64,
}

impl Lcg {
    /// Seeded from the variable `env_var` if set, else from the clock; prints
    /// `<env_var>=<seed>` so a failing run can be replayed.
    pub fn from_env(env_var: &str) -> Lcg {
        let seed = std::env::var(env_var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{env_var}={seed}");
        Lcg::new(seed)
    }

    /// Seeded with `seed`.
    pub fn new(seed: u64) -> Lcg {
        Lcg { seed, state: seed }
    }

    /// The seed it started from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A number below `below` (which must not be 0).
    pub fn next(&mut self, below: u64) -> u64 {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.state >> 33) % below.max(1)
    }
}
