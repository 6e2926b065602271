//! The cache's one error type.

use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong with the listener cache. Every message names the cache's path so an
/// admin with several listeners knows which one to look at.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the listener cache {path} is in use by another listener (its lock is held); stop \
         that listener or choose another --cache-dir"
    )]
    Locked { path: PathBuf },
    #[error("cannot open the listener cache {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("listener cache {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: redb::Error,
    },
    #[error(
        "listener cache {path} has format version {found}, this listener understands \
         {supported}; use a matching listener or remove the cache directory to rebuild it \
         (every module is then re-initialized)"
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "listener cache {path}: the record for {key:?} in table {table} is damaged \
         ({reason}); remove the cache directory to rebuild it (every module is then \
         re-initialized)"
    )]
    Damaged {
        path: PathBuf,
        table: &'static str,
        key: String,
        reason: String,
    },
    #[error("listener cache {path}: cannot encode {what}: {reason}")]
    Encode {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error(
        "this cache ({path}) follows notifier {stored}; refusing to continue against \
         {presented}: its ID space is not ours. Point the listener back at {stored}, or \
         remove the cache directory to start over against {presented} (every module is \
         then re-initialized)"
    )]
    IdentityMismatch {
        path: PathBuf,
        stored: String,
        presented: String,
    },
    #[error(
        "listener cache {path}: refusing to commit a transaction in which an operation \
         failed (it may have been done in part)"
    )]
    Poisoned { path: PathBuf },
    #[error("listener cache {path}: {dn} is not cached, so modules cannot be registered on it")]
    NotCached { path: PathBuf, dn: String },
}

pub(super) type Result<T> = std::result::Result<T, CacheError>;

/// Wraps any redb error (they all convert into `redb::Error`) with the cache's path.
pub(super) fn store_err<E: Into<redb::Error>>(path: &Path) -> impl FnOnce(E) -> CacheError + '_ {
    move |e| CacheError::Store {
        path: path.to_owned(),
        source: e.into(),
    }
}

pub(super) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_owned(),
        source,
    }
}
