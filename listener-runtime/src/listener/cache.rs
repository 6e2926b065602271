//! The listener's cache (docs/architecture.md, Storage): what the listener knows about every
//! object it has seen, the modules registered on each, where it is in the notifier's
//! transaction stream, module states, failed events and async queues.
//!
//! One redb database, `cache.redb` in the cache directory, holds all of it (the tables are
//! described in `cache/tables.rs`), so one [`WriteTxn`] commits a processed transaction
//! completely or not at all (semantics §4 step 4). A lock on `lock` in the same directory
//! keeps a second listener out with a message naming the directory.
//!
//! Durability: a commit is durable (fsync) by default. For group commit the caller marks
//! all but the last commit of a group non-durable ([`WriteTxn::set_durable`]); a crash
//! then loses a suffix of whole transactions, never part of one, and the listener replays
//! them (at-least-once, semantics §4). [`ReadTxn::verify`] checks the derived tables (uuid
//! index, registrations by module) against the entries.
//!
//! ```no_run
//! # fn main() -> Result<(), listener_runtime::testing::CacheError> {
//! use listener_runtime::testing::Cache;
//! use listener_runtime::{Dn, Entry};
//!
//! let cache = Cache::open("/var/lib/univention-directory-listener".as_ref())?;
//! let mut w = cache.write()?;
//! let mut entry = Entry::new(Dn::parse("uid=alice,dc=example,dc=com").unwrap());
//! entry.insert("entryUUID", ["0f3c…"]).unwrap();
//! w.put_entry(&entry, ["replication"])?;
//! w.set_last_id(42)?;
//! w.commit()?;
//! assert_eq!(cache.read()?.last_id()?, 42);
//! # Ok(()) }
//! ```

mod error;
mod intents;
mod read;
mod records;
mod stored;
mod tables;
mod verify;
mod write;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, TableDefinition};

pub use error::CacheError;
use error::{Result, store_err};
pub(crate) use intents::Intents;
pub use read::{Entries, ReadTxn};
pub(crate) use records::PendingCreate;
pub use records::{CachedEntry, FailedEvent, ModulePhase, ModuleState};
use tables::{FORMAT_VERSION, META, META_FORMAT};
pub use verify::VerifyReport;
pub use write::WriteTxn;

const DB_FILE: &str = "cache.redb";

/// redb's in-process page cache. Its default (1 GiB) lets the listener's memory grow with
/// the directory; the pages a transaction needs (one object, its indexes) are few and the
/// kernel's page cache keeps the file warm, so a small cache costs little speed (measured
/// with 100,000 objects: 32 MiB initializes ~15% slower than 128 MiB, and peaks ~45 MiB
/// lower).
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// An open listener cache (holding its directory's lock until dropped).
pub struct Cache {
    db: redb::Database,
    /// The database file, named in every error.
    path: Arc<Path>,
    _lock: File,
}

impl Cache {
    /// Opens the cache in `dir`, creating the directory and an empty cache if needed.
    /// Fails with [`CacheError::Locked`] while another listener has it open.
    pub fn open(dir: &Path) -> Result<Cache> {
        let lock = crate::dir_lock::lock(dir).map_err(|e| match e {
            crate::dir_lock::LockError::Held => CacheError::Locked {
                path: dir.to_owned(),
            },
            crate::dir_lock::LockError::Io(path, source) => CacheError::Io { path, source },
        })?;
        let path: Arc<Path> = dir.join(DB_FILE).into();
        let db = create_waiting_for_readers(&path)?;
        let cache = Cache {
            db,
            path,
            _lock: lock,
        };
        cache.prepare()?;
        Ok(cache)
    }

    /// Opens an existing cache in `dir` for reading only (for `modules`, `status` and
    /// tests), without its lock and without changing it. `Ok(None)` when `dir` holds no
    /// cache. While a listener has the cache open this fails with [`CacheError::InUse`]:
    /// redb lets a read-only handle share the file only with a writer opened in its
    /// multi-process (`SingleWriter`) mode, and the listener uses the default exclusive
    /// one. A cache left by a killed listener needs redb's repair, which a read-only
    /// handle cannot do; then it is opened normally (taking the lock) and repaired.
    pub fn open_read_only(dir: &Path) -> Result<Option<ReadOnlyCache>> {
        let path: Arc<Path> = dir.join(DB_FILE).into();
        if !path.exists() {
            return Ok(None);
        }
        let db = match redb::ReadOnlyDatabase::open(&*path) {
            Ok(db) => ReadOnlyDb::Shared(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(CacheError::InUse {
                    path: path.to_path_buf(),
                });
            }
            Err(redb::DatabaseError::RepairAborted) => ReadOnlyDb::Repaired(Cache::open(dir)?),
            Err(source) => {
                return Err(CacheError::Open {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(Some(ReadOnlyCache { db, path }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent snapshot for reading.
    pub fn read(&self) -> Result<ReadTxn> {
        let txn = self.db.begin_read().map_err(store_err(&self.path))?;
        Ok(ReadTxn {
            txn,
            path: self.path.clone(),
        })
    }

    /// Makes every commit so far durable (after non-durable ones of a group commit).
    pub fn sync(&self) -> Result<()> {
        let mut w = self.write()?;
        w.set_durable(true)?;
        w.commit()
    }

    /// A write transaction, durable on commit unless [`WriteTxn::set_durable`] says
    /// otherwise. Only one exists at a time; this waits for the previous one to finish.
    pub fn write(&self) -> Result<WriteTxn> {
        let txn = self.db.begin_write().map_err(store_err(&self.path))?;
        Ok(WriteTxn {
            txn,
            path: self.path.clone(),
            poisoned: false,
        })
    }

    /// Creates the tables a new cache lacks (so readers never meet a missing table) and
    /// checks the format version of an existing one.
    fn prepare(&self) -> Result<()> {
        let w = self.write()?;
        open(&w, tables::ENTRIES)?;
        open(&w, tables::MODULE_STATES)?;
        open(&w, tables::UUIDS)?;
        open(&w, tables::REGISTERED_COUNTS)?;
        open(&w, tables::FAILED_EVENTS)?;
        open(&w, tables::QUEUE)?;
        open(&w, tables::SEQUENCES)?;
        let found: Option<u32> = read::meta(&self.path, &open(&w, META)?, META_FORMAT)?;
        match found {
            None => {
                let bytes =
                    stored::encode(&FORMAT_VERSION).map_err(|reason| CacheError::Encode {
                        path: self.path.to_path_buf(),
                        what: META_FORMAT.to_owned(),
                        reason,
                    })?;
                open(&w, META)?
                    .insert(META_FORMAT, bytes.as_slice())
                    .map_err(store_err(&self.path))?;
            }
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(CacheError::UnsupportedFormat {
                    path: self.path.to_path_buf(),
                    found,
                    supported: FORMAT_VERSION,
                });
            }
        }
        w.commit()
    }
}

/// Opens (or creates) the database. A tool reading a stopped listener's cache
/// ([`Cache::open_read_only`], e.g. a monitoring `status` run) holds redb's shared file
/// lock for a moment; a listener starting just then waits for it (up to
/// [`READER_WAIT`]) instead of failing to start.
fn create_waiting_for_readers(path: &Path) -> Result<redb::Database> {
    let started = std::time::Instant::now();
    loop {
        match redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
        {
            Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < READER_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            result => {
                return result.map_err(|source| CacheError::Open {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// How long [`Cache::open`] waits for read-only readers of the file to finish.
const READER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A cache opened by [`Cache::open_read_only`].
pub struct ReadOnlyCache {
    db: ReadOnlyDb,
    path: Arc<Path>,
}

enum ReadOnlyDb {
    /// No lock taken; redb's shared file lock keeps a listener from starting meanwhile.
    Shared(redb::ReadOnlyDatabase),
    /// Needed repair: opened (and locked) like a listener would.
    Repaired(Cache),
}

impl ReadOnlyCache {
    /// A consistent snapshot for reading.
    pub fn read(&self) -> Result<ReadTxn> {
        let txn = match &self.db {
            ReadOnlyDb::Shared(db) => db.begin_read().map_err(store_err(&self.path))?,
            ReadOnlyDb::Repaired(cache) => return cache.read(),
        };
        Ok(ReadTxn {
            txn,
            path: self.path.clone(),
        })
    }
}

fn open<'t, K: redb::Key + 'static, V: redb::Value + 'static>(
    w: &'t WriteTxn,
    def: TableDefinition<K, V>,
) -> Result<redb::Table<'t, K, V>> {
    w.txn.open_table(def).map_err(store_err(&w.path))
}

#[cfg(test)]
mod tests;
