//! The cache's one error type.

use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong with the listener cache. Every message names the cache's path so an
/// admin with several listeners knows which one to look at.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file of the cache directory cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Another listener holds the cache directory.
    #[error(
        "the listener cache {path} is in use by another listener (its lock is held); stop \
         that listener or choose another --cache-dir"
    )]
    Locked {
        /// The cache directory.
        path: PathBuf,
    },
    /// A read-only open found the database open in a running listener (redb's default,
    /// exclusive-writer mode keeps every other process out while it runs).
    #[error(
        "cache in use: the listener cache {path} is open in a running listener; stop the \
         listener (SIGTERM) to read it"
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The database file cannot be opened.
    #[error("cannot open the listener cache {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// redb's reason.
        #[source]
        source: redb::DatabaseError,
    },
    /// The store failed an operation.
    #[error("listener cache {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// redb's reason.
        #[source]
        source: redb::Error,
    },
    /// The cache was written by an incompatible version.
    #[error(
        "listener cache {path} has format version {found}, this listener understands \
         {supported}; use a matching listener or remove the cache directory to rebuild it \
         (every module is then re-initialized)"
    )]
    UnsupportedFormat {
        /// The database file.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// The version this listener writes.
        supported: u32,
    },
    /// A stored record does not decode.
    #[error(
        "listener cache {path}: the record for {key:?} in table {table} is damaged \
         ({reason}); remove the cache directory to rebuild it (every module is then \
         re-initialized)"
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// The table holding the record.
        table: &'static str,
        /// The record's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A value cannot be encoded for storage.
    #[error("listener cache {path}: cannot encode {what}: {reason}")]
    Encode {
        /// The database file.
        path: PathBuf,
        /// What was being stored.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The notifier is not the one whose IDs the cache holds.
    #[error(
        "this cache ({path}) follows notifier {stored}; refusing to continue against \
         {presented}: its ID space is not ours. Point the listener back at {stored}, or \
         remove the cache directory to start over against {presented} (every module is \
         then re-initialized)"
    )]
    IdentityMismatch {
        /// The database file.
        path: PathBuf,
        /// The notifier this cache follows.
        stored: String,
        /// The notifier presented now.
        presented: String,
    },
    /// A write transaction had a failed operation; it cannot be committed.
    #[error(
        "listener cache {path}: refusing to commit a transaction in which an operation \
         failed (it may have been done in part)"
    )]
    Poisoned {
        /// The database file.
        path: PathBuf,
    },
    /// Registrations for an object the cache does not hold.
    #[error("listener cache {path}: {dn} is not cached, so modules cannot be registered on it")]
    NotCached {
        /// The database file.
        path: PathBuf,
        /// The object.
        dn: String,
    },
}

pub(super) type Result<T> = std::result::Result<T, CacheError>;

/// Wraps any redb error (they all convert into `redb::Error`) with the cache's path.
pub(super) fn store_err<E: Into<redb::Error>>(path: &Path) -> impl FnOnce(E) -> CacheError + '_ {
    move |e| CacheError::Store {
        path: path.to_owned(),
        source: e.into(),
    }
}
