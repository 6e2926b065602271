//! The test harness: throwaway `slapd` and `memcached` instances for integration tests.
//!
//! Each instance lives in a fresh temporary directory on a random loopback port, is killed
//! and removed when dropped (also when a test panics, and through `PR_SET_PDEATHSIG` when
//! the test process dies), so tests run in parallel without interfering with each other or
//! with a system slapd/memcached.
//!
//! ```no_run
//! let slapd = tests::Slapd::builder().no_sync(true).start().unwrap();
//! println!("{} as {}", slapd.url(), slapd.root_dn());
//! ```

pub mod daemon;
pub mod domain;
pub mod external;
pub mod in_process;
pub mod ldif;
mod memcached;
mod process;
pub mod rng;
mod slapd;
pub mod syncrepl;

pub use memcached::Memcached;
pub use slapd::{Slapd, SlapdBuilder};

/// A loopback TCP port free right now, for a daemon's listening address.
pub fn free_port() -> Result<u16, HarnessError> {
    process::free_port()
}

/// Why a test server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error(
        "{program} is not installed: run the README's test command as root, or \
         `apt-get install slapd ldap-utils memcached`"
    )]
    Missing { program: &'static str },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed: {message}")]
    Failed {
        program: &'static str,
        message: String,
    },
}

impl HarnessError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
        let what = what.into();
        move |source| HarnessError::Io { what, source }
    }
}
