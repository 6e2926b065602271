//! Shared state of asynchronous modules: variables (`get_shared_var`, `set_shared_var`)
//! and locks (`lock`, `lock_with`), per module, behind one [`SharedStore`] trait with two
//! backends: [`memcached::Memcached`] (`run --memcached HOST:PORT`) and
//! [`embedded::Embedded`] (the default, a file in the cache directory).
//!
//! A lock is a lease: acquired atomically with a random token and a TTL, released only by
//! the holder of that token (compare-and-delete, never get-then-delete), and gone by
//! itself when the TTL runs out, so a crashed holder blocks nobody for longer. Values are
//! serde JSON. Names are per module: two modules never see each other's variables or
//! locks. Only variables and locks go to a store: never the queue, never credentials.
//!
//! The listener owns the store; its worker processes ask it over their channels
//! (`crate::workers::worker`).

pub(crate) mod embedded;
pub(crate) mod memcached;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::api::handler::BoxFuture;

/// The store `run` gives every module: the memcached at `memcached` if given, else the
/// embedded store in `cache_dir`; watched, so that `status` and the log tell when it
/// fails.
pub(crate) fn open(
    memcached: Option<&str>,
    cache_dir: &std::path::Path,
) -> Result<(Arc<dyn SharedStore>, Arc<Health>), SharedError> {
    let (inner, backend): (Arc<dyn SharedStore>, String) = match memcached {
        Some(addr) => (
            Arc::new(memcached::Memcached::new(addr)),
            format!("memcached at {addr}"),
        ),
        None => (
            Arc::new(embedded::Embedded::open(cache_dir)?),
            "the embedded store".to_owned(),
        ),
    };
    let health = Arc::new(Health {
        backend,
        failing: Mutex::new(None),
    });
    let store = Arc::new(Watched {
        inner,
        health: health.clone(),
    });
    Ok((store, health))
}

/// Whether the store answers: its last backend error, until a request succeeds again.
#[derive(Debug)]
pub(crate) struct Health {
    /// `memcached at HOST:PORT` or `the embedded store`.
    pub(crate) backend: String,
    failing: Mutex<Option<(String, SystemTime)>>,
}

impl Health {
    /// The error and since when, while the store fails.
    pub(crate) fn failing(&self) -> Option<(String, SystemTime)> {
        self.failing.lock().ok().and_then(|f| f.clone())
    }

    /// Notes what `result` says of the store, and hands it on.
    fn observed<T>(&self, result: Result<T, SharedError>) -> Result<T, SharedError> {
        let Ok(mut failing) = self.failing.lock() else {
            return result;
        };
        match &result {
            Err(e @ SharedError::Backend { .. }) if failing.is_none() => {
                tracing::warn!(error = %e, "shared state fails; the calls that need it fail and are retried, then recorded as failed events");
                *failing = Some((e.to_string(), SystemTime::now()));
            }
            Ok(_) if failing.is_some() => {
                tracing::info!(backend = %self.backend, "shared state answers again");
                *failing = None;
            }
            _ => {}
        }
        result
    }
}

/// A store whose backend errors are recorded in its [`Health`].
#[derive(Debug)]
struct Watched {
    inner: Arc<dyn SharedStore>,
    health: Arc<Health>,
}

impl SharedStore for Watched {
    fn get<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, SharedError>> {
        Box::pin(async move { self.health.observed(self.inner.get(module, name).await) })
    }

    fn set<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(async move {
            self.health
                .observed(self.inner.set(module, name, value).await)
        })
    }

    fn try_lock<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedError>> {
        Box::pin(async move {
            self.health
                .observed(self.inner.try_lock(module, name, token, lease).await)
        })
    }

    fn unlock<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<bool, SharedError>> {
        Box::pin(async move {
            self.health
                .observed(self.inner.unlock(module, name, token).await)
        })
    }
}

/// The lease of a lock taken with `ctx.lock(name)`.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// How long `ctx.lock` keeps trying before it is an error.
pub(crate) const LOCK_DEADLINE: Duration = Duration::from_secs(30);

/// What went wrong with shared state. The messages name the backend and the variable or
/// lock.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The store cannot be reached or answered something unexpected.
    #[error("shared state on {backend}: {message}")]
    Backend {
        /// `memcached at HOST:PORT` or `the embedded store`.
        backend: String,
        /// What happened.
        message: String,
    },
    /// A name that cannot be stored (empty, or too long once escaped).
    #[error("shared {what} name {name:?} is not usable: {reason}")]
    BadName {
        /// `variable` or `lock`.
        what: &'static str,
        /// The name as given.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A value that does not serialize, or a stored one that does not deserialize into
    /// the type asked for.
    #[error("shared variable {name:?}: {message}")]
    Value {
        /// The variable.
        name: String,
        /// The serde error.
        message: String,
    },
    /// The context has no store: shared state is there for the asynchronous modules of
    /// a running listener.
    #[error(
        "no shared state here: it is there for asynchronous modules (run_asynchronously) \
         in a running listener"
    )]
    NoStore,
    /// The lock stayed taken by another holder until the deadline.
    #[error("lock {name:?} is still held by another call after {waited:?}")]
    LockTimeout {
        /// The lock.
        name: String,
        /// How long the call tried.
        waited: Duration,
    },
}

/// Where shared variables and locks live. `module` and `name` are kept apart by the
/// store (see [`key`]); values are opaque bytes here.
pub(crate) trait SharedStore: Send + Sync + std::fmt::Debug {
    /// The variable's value, if set.
    fn get<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, SharedError>>;

    /// Sets the variable.
    fn set<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SharedError>>;

    /// Takes the lock for `lease` with `token` if nobody holds it; whether it was taken.
    fn try_lock<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedError>>;

    /// Releases the lock if `token` still holds it; whether it did.
    fn unlock<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<bool, SharedError>>;
}

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Variable,
    Lock,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Variable => "variable",
            Kind::Lock => "lock",
        }
    }
}

/// The store key of a module's variable or lock: `udl.<v|l>.<module>.<name>`, with every
/// byte outside `[A-Za-z0-9_-]` of the module and the name escaped as `%XX`, so no
/// two (module, name) pairs share a key and memcached's rules (at most 250 bytes, no
/// spaces or control characters) hold.
pub(crate) fn key(kind: Kind, module: &str, name: &str) -> Result<String, SharedError> {
    let bad = |reason| SharedError::BadName {
        what: kind.word(),
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    let tag = match kind {
        Kind::Variable => 'v',
        Kind::Lock => 'l',
    };
    let mut key = format!("udl.{tag}.");
    escape(&mut key, module);
    key.push('.');
    escape(&mut key, name);
    if key.len() > 250 {
        return Err(bad("escaped, the key is longer than memcached's 250 bytes"));
    }
    Ok(key)
}

fn escape(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// 64 random bits (std's per-instance random hash keys, mixed with the time and pid).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A random lock token: who holds a lease.
pub(crate) fn token() -> String {
    format!("{:016x}{:016x}", random(), random())
}

/// The wait before try number `attempt` (1-based) of a taken lock: about 1 ms at first,
/// doubling up to about 16 ms, each a random amount around it so that waiters do not
/// retry in step (short locks are taken again soon, long ones are not polled hard).
pub(crate) fn jitter(attempt: u32) -> Duration {
    let base: u64 = 1_000 << attempt.saturating_sub(1).min(4);
    Duration::from_micros(base / 2 + random() % base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_modules_and_names_apart_and_follow_memcached_rules() {
        let a = key(Kind::Variable, "crm", "calls").unwrap();
        assert_eq!(a, "udl.v.crm.calls");
        assert_ne!(a, key(Kind::Lock, "crm", "calls").unwrap());
        // A dot in a name cannot make it another module's.
        assert_ne!(
            key(Kind::Variable, "a.b", "c").unwrap(),
            key(Kind::Variable, "a", "b.c").unwrap()
        );
        let odd = key(Kind::Variable, "m", "a b\nü%").unwrap();
        assert_eq!(odd, "udl.v.m.a%20b%0A%C3%BC%25");
        assert!(odd.bytes().all(|b| b.is_ascii_graphic()));
        assert!(matches!(
            key(Kind::Lock, "m", ""),
            Err(SharedError::BadName { what: "lock", .. })
        ));
        let long = "x".repeat(250);
        let e = key(Kind::Variable, "m", &long).unwrap_err();
        assert!(e.to_string().contains("250 bytes"), "{e}");
    }

    #[tokio::test]
    async fn a_context_outside_a_listener_has_no_shared_state() {
        let ctx = crate::Context::new("m");
        assert!(matches!(ctx.lock("l").await, Err(SharedError::NoStore)));
        assert!(matches!(
            ctx.get_shared_var::<u64>("n").await,
            Err(SharedError::NoStore)
        ));
    }

    #[test]
    fn tokens_differ() {
        let tokens: std::collections::HashSet<String> = (0..100).map(|_| token()).collect();
        assert_eq!(tokens.len(), 100);
        assert!(tokens.iter().all(|t| t.len() == 32));
    }

    #[test]
    fn lock_waits_start_short_and_grow_to_a_bound() {
        let micros = |attempt| jitter(attempt).as_micros() as u64;
        assert!((500..1_500).contains(&micros(1)));
        assert!((1_000..3_000).contains(&micros(2)));
        for attempt in [5, 6, 100] {
            assert!((8_000..24_000).contains(&micros(attempt)));
        }
    }
}
