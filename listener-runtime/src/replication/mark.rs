//! How far the replica may hold this cache's writes (semantics §8): a transaction ID,
//! persisted in `<cache-dir>/replication.mark` *before* a write of any later
//! transaction is sent (a step ahead, so that the file is written once in
//! [`STEP`] transactions), and set exactly at a clean stop.
//!
//! After a crash the listener applies again what it had not made durable, and the
//! replica may hold those writes already; only transactions up to the mark can be such
//! replays. The add of an object new to the listener in a later transaction therefore
//! need not look for the object on the replica by entryUUID first.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The file, in the cache directory.
const FILE: &str = "replication.mark";
/// How far ahead of the transaction being written the mark is persisted.
const STEP: u64 = 10_000;

/// The mark file cannot be written or removed.
#[derive(Debug, thiserror::Error)]
#[error("the replication mark {}: {source}", path.display())]
pub(crate) struct MarkError {
    path: PathBuf,
    source: std::io::Error,
}

#[derive(Debug)]
pub(crate) struct Mark {
    path: PathBuf,
    /// What the file says now.
    persisted: u64,
    /// Transactions up to this one may have been written to the replica before this
    /// process started.
    replayed_through: u64,
}

impl Mark {
    /// Reads the mark of `cache_dir`. Without one, a cache that has processed
    /// transactions (`cache_last_id` above 0) may have been used by a listener that
    /// kept no mark (a run without group commit, an older version): then every
    /// transaction counts as a replay in this process. A new cache has written nothing.
    pub(crate) fn open(cache_dir: &Path, cache_last_id: u64) -> Mark {
        let path = cache_dir.join(FILE);
        let read = std::fs::read_to_string(&path);
        let replayed_through = match &read {
            Ok(text) => text.trim().parse().unwrap_or_else(|_| {
                tracing::warn!(path = %path.display(), "the replication mark is damaged; every add looks for its object on the replica first");
                u64::MAX
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && cache_last_id == 0 => 0,
            Err(_) => u64::MAX,
        };
        Mark {
            path,
            persisted: 0,
            replayed_through,
        }
    }

    /// Removes the mark of `cache_dir`: a listener without group commit writes without
    /// keeping it, so the next one must not trust an old one.
    pub(crate) fn forget(cache_dir: &Path) -> Result<(), MarkError> {
        let path = cache_dir.join(FILE);
        match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                Err(MarkError { path, source })
            }
            _ => Ok(()),
        }
    }

    /// Transactions up to this one may have been written to the replica by an earlier
    /// process.
    pub(crate) fn replayed_through(&self) -> u64 {
        self.replayed_through
    }

    /// Makes sure the file covers a write of transaction `id` before it is sent.
    pub(crate) fn cover(&mut self, id: u64) -> Result<(), MarkError> {
        if id <= self.persisted {
            return Ok(());
        }
        self.persist(id.saturating_add(STEP))
    }

    /// At a clean stop, with every write of transactions up to `last` done and durable,
    /// and none after it: the mark is exactly `last`.
    pub(crate) fn settle(&mut self, last: u64) -> Result<(), MarkError> {
        self.persist(last)
    }

    fn persist(&mut self, id: u64) -> Result<(), MarkError> {
        let tmp = self.path.with_extension("new");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            writeln!(file, "{id}")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            match self.path.parent() {
                Some(dir) => std::fs::File::open(dir)?.sync_all(),
                None => Ok(()),
            }
        };
        write().map_err(|source| MarkError {
            path: self.path.clone(),
            source,
        })?;
        self.persisted = id;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Mark {
        fn may_be_replayed(&self, id: u64) -> bool {
            id <= self.replayed_through()
        }
    }

    #[test]
    fn a_write_is_covered_before_it_is_sent_and_a_clean_stop_sets_the_mark_exactly() {
        let dir = tempfile::tempdir().unwrap();
        // A new cache: nothing written before.
        let mut mark = Mark::open(dir.path(), 0);
        assert!(!mark.may_be_replayed(1));
        mark.cover(5).unwrap();
        // After a crash here, transactions up to a step ahead may be replays.
        let after_crash = Mark::open(dir.path(), 3);
        assert!(after_crash.may_be_replayed(5));
        assert!(after_crash.may_be_replayed(5 + STEP));
        assert!(!after_crash.may_be_replayed(6 + STEP));
        mark.settle(7).unwrap();
        let after_stop = Mark::open(dir.path(), 7);
        assert!(after_stop.may_be_replayed(7));
        assert!(!after_stop.may_be_replayed(8));
    }

    #[test]
    fn without_a_mark_a_used_cache_counts_everything_as_a_replay() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Mark::open(dir.path(), 42).may_be_replayed(u64::MAX));
        let mut mark = Mark::open(dir.path(), 0);
        mark.settle(9).unwrap();
        Mark::forget(dir.path()).unwrap();
        Mark::forget(dir.path()).unwrap();
        assert!(Mark::open(dir.path(), 9).may_be_replayed(1_000_000));
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(Mark::open(dir.path(), 0).may_be_replayed(1_000_000));
    }
}
