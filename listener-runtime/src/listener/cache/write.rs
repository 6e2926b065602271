//! Changing the cache: [`WriteTxn`], all-or-nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use listener_core::{Dn, Entry};
use redb::{ReadableTable, Table};
use serde::Serialize;

use super::error::{CacheError, Result, store_err};
use super::read::{count, load_entry, meta, modules_of};
use super::records::{CachedEntry, FailedEvent, ModuleState, PendingCreate};
use super::stored::{
    EntryHead, EntryRecord, FailedRecord, ModuleStateRecord, PendingRecord, decode_prefix, encode,
    entry_uuid,
};
use super::tables::{
    ENTRIES, FAILED_EVENTS, META, META_LAST_ID, META_NOTIFIER_IDENTITY, META_PENDING_CREATE,
    META_SCHEMA_ID, MODULE_STATES, QUEUE, REGISTRATIONS, REGISTRATIONS_BY_MODULE, SEQUENCES, UUIDS,
    prefix_end,
};

/// A write transaction over the whole cache. Nothing it does is visible to readers or
/// survives a crash until [`WriteTxn::commit`]; dropping it without committing changes
/// nothing. After an operation failed, commit is refused: drop the transaction.
pub struct WriteTxn {
    pub(super) txn: redb::WriteTransaction,
    pub(super) path: Arc<Path>,
    /// An operation failed part way; see [`WriteTxn::commit`].
    pub(super) poisoned: bool,
}

impl WriteTxn {
    /// Runs an operation, remembering if it failed: it may have changed some tables and
    /// not others, so the transaction must not be committed.
    pub(super) fn guarded<T>(&mut self, op: impl FnOnce(&mut WriteTxn) -> Result<T>) -> Result<T> {
        let result = op(self);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: redb::TableDefinition<K, V>,
    ) -> Result<Table<'_, K, V>> {
        self.txn.open_table(def).map_err(store_err(&self.path))
    }

    /// Makes this commit durable (the default) or not. A non-durable commit is visible at
    /// once but is lost if the process dies (even without a system crash: redb keeps it in
    /// memory) before a durable commit or a clean close (dropping the [`super::Cache`])
    /// follows; it is lost together with every commit after it, never in part. For group
    /// commit: commit a group's transactions non-durably and the last one durably, before
    /// acknowledging any of them.
    pub fn set_durable(&mut self, durable: bool) -> Result<()> {
        let durability = if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        self.txn
            .set_durability(durability)
            .map_err(store_err(&self.path))
    }

    /// Commits everything done in this transaction at once.
    /// Refused when one of this transaction's operations failed, since that operation
    /// may have done part of its work.
    pub fn commit(self) -> Result<()> {
        if self.poisoned {
            return Err(CacheError::Poisoned {
                path: self.path.to_path_buf(),
            });
        }
        self.txn.commit().map_err(store_err(&self.path))
    }

    /// Discards everything done in this transaction (as dropping it does, but reporting
    /// errors).
    pub fn abort(self) -> Result<()> {
        self.txn.abort().map_err(store_err(&self.path))
    }

    /// The cached object at `dn`, as this transaction has left it so far.
    pub fn entry(&self, dn: &Dn) -> Result<Option<CachedEntry>> {
        load_entry(
            &self.path,
            &self.table(ENTRIES)?,
            &self.table(REGISTRATIONS)?,
            dn.normalized(),
        )
    }

    /// The last processed transaction ID as this transaction has left it so far.
    pub fn last_id(&self) -> Result<u64> {
        Ok(meta(&self.path, &self.table(META)?, META_LAST_ID)?.unwrap_or(0))
    }

    /// Stores `entry` at its DN, replacing what was there, with exactly `modules`
    /// registered on it. The uuid index follows: the entry's entryUUID now leads here, and
    /// one the previous state at this DN had no longer does.
    pub fn put_entry<I, S>(&mut self, entry: &Entry, modules: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.guarded(|w| {
            let key = entry.dn().normalized();
            let uuid = entry_uuid(entry);
            let bytes = encode(&EntryRecord::new(entry, uuid.as_deref()))
                .map_err(|reason| w.encode_err(format!("the entry {}", entry.dn()), reason))?;
            let previous_uuid = {
                let mut entries = w.table(ENTRIES)?;
                let previous = entries
                    .insert(key, bytes.as_slice())
                    .map_err(store_err(&w.path))?;
                previous.and_then(|old| w.head_uuid(key, old.value()))
            };
            let mut uuids = w.table(UUIDS)?;
            if let Some(old) = previous_uuid
                && Some(&old) != uuid.as_ref()
            {
                uuids
                    .remove((old.as_str(), key))
                    .map_err(store_err(&w.path))?;
            }
            if let Some(uuid) = &uuid {
                uuids
                    .insert((uuid.as_str(), key), ())
                    .map_err(store_err(&w.path))?;
            }
            drop(uuids);
            w.register(key, modules)
        })
    }

    /// Removes the object at `dn` with its registrations and uuid index entry. Returns
    /// whether it was cached.
    pub fn remove_entry(&mut self, dn: &Dn) -> Result<bool> {
        self.guarded(|w| {
            let key = dn.normalized();
            let previous_uuid = {
                let mut entries = w.table(ENTRIES)?;
                let previous = entries.remove(key).map_err(store_err(&w.path))?;
                previous.map(|old| w.head_uuid(key, old.value()))
            };
            let Some(previous_uuid) = previous_uuid else {
                return Ok(false);
            };
            if let Some(old) = previous_uuid {
                w.table(UUIDS)?
                    .remove((old.as_str(), key))
                    .map_err(store_err(&w.path))?;
            }
            w.register(key, std::iter::empty::<&str>())?;
            Ok(true)
        })
    }

    /// Moves the object cached at `old` to `new_entry`'s DN, storing `new_entry` there;
    /// its registrations move with it. Moving an object that is not cached just stores
    /// `new_entry` with no registrations.
    pub fn move_entry(&mut self, old: &Dn, new_entry: &Entry) -> Result<()> {
        self.guarded(|w| {
            let modules = modules_of(&w.path, &w.table(REGISTRATIONS)?, old.normalized())?;
            w.remove_entry(old)?;
            w.put_entry(new_entry, &modules)
        })
    }

    /// Sets exactly which modules are registered on the cached object at `dn`; an object
    /// that is not cached is an error (and leaves the transaction usable).
    pub fn set_registrations<I, S>(&mut self, dn: &Dn, modules: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let key = dn.normalized();
        let cached = self
            .table(ENTRIES)?
            .get(key)
            .map_err(store_err(&self.path))?
            .is_some();
        if !cached {
            return Err(CacheError::NotCached {
                path: self.path.to_path_buf(),
                dn: dn.to_string(),
            });
        }
        self.guarded(|w| w.register(key, modules))
    }

    /// Removes `module`'s registration from every cached object (before re-initializing
    /// it); costs a range over that module's registrations, not a pass over the cache.
    /// Returns how many objects it was registered on.
    pub fn unregister_module_everywhere(&mut self, module: &str) -> Result<u64> {
        self.guarded(|w| {
            let end = prefix_end(module);
            let mut by_module = w.table(REGISTRATIONS_BY_MODULE)?;
            let mut by_dn = w.table(REGISTRATIONS)?;
            let mut n = 0;
            let mut failure = None;
            by_module
                .retain_in((module, "")..(end.as_str(), ""), |(_, ndn), ()| {
                    if failure.is_none() {
                        match by_dn.remove((ndn, module)) {
                            Ok(_) => n += 1,
                            Err(e) => failure = Some(e),
                        }
                    }
                    false
                })
                .map_err(store_err(&w.path))?;
            match failure {
                Some(e) => Err(store_err(&w.path)(e)),
                None => Ok(n),
            }
        })
    }

    /// Records the last fully processed transaction ID.
    pub fn set_last_id(&mut self, id: u64) -> Result<()> {
        self.guarded(|w| w.set_meta(META_LAST_ID, &id))
    }

    /// Notes the creates about to be delivered (see [`PendingCreate`]); commit it durably
    /// before calling the modules.
    pub fn set_pending_create(&mut self, pending: &PendingCreate) -> Result<()> {
        self.guarded(|w| {
            let record = PendingRecord::new(pending);
            let bytes = encode(&record)
                .map_err(|reason| w.encode_err(META_PENDING_CREATE.to_owned(), reason))?;
            w.table(META)?
                .insert(META_PENDING_CREATE, bytes.as_slice())
                .map_err(store_err(&w.path))?;
            Ok(())
        })
    }

    /// Forgets the pending create (with the commit of its transaction).
    pub fn clear_pending_create(&mut self) -> Result<()> {
        self.guarded(|w| {
            w.table(META)?
                .remove(META_PENDING_CREATE)
                .map_err(store_err(&w.path))?;
            Ok(())
        })
    }

    /// Records the notifier's current schema ID.
    pub fn set_schema_id(&mut self, id: u64) -> Result<()> {
        self.guarded(|w| w.set_meta(META_SCHEMA_ID, &id))
    }

    /// Records which notifier this cache follows (see
    /// [`super::ReadTxn::check_notifier_identity`]).
    pub fn set_notifier_identity(&mut self, identity: &str) -> Result<()> {
        self.guarded(|w| w.set_meta(META_NOTIFIER_IDENTITY, &identity))
    }

    /// Stores a module's state.
    pub fn set_module_state(&mut self, module: &str, state: &ModuleState) -> Result<()> {
        self.guarded(|w| {
            let bytes = encode(&ModuleStateRecord::new(state))
                .map_err(|reason| w.encode_err(format!("the state of module {module}"), reason))?;
            w.table(MODULE_STATES)?
                .insert(module, bytes.as_slice())
                .map_err(store_err(&w.path))?;
            Ok(())
        })
    }

    /// Forgets a module's state (`resync`): it is initialized again at the next start.
    /// Returns whether it had one.
    pub fn remove_module_state(&mut self, module: &str) -> Result<bool> {
        self.guarded(|w| {
            let removed = w
                .table(MODULE_STATES)?
                .remove(module)
                .map_err(store_err(&w.path))?
                .is_some();
            Ok(removed)
        })
    }

    /// Records a failed event for `module`; returns its sequence number, never reused.
    pub fn add_failed_event(&mut self, module: &str, event: &FailedEvent) -> Result<u64> {
        self.guarded(|w| {
            let bytes = encode(&FailedRecord::new(event)).map_err(|reason| {
                w.encode_err(format!("a failed event of module {module}"), reason)
            })?;
            let seq = w.next_sequence("failed_events", module)?;
            w.table(FAILED_EVENTS)?
                .insert((module, seq), bytes.as_slice())
                .map_err(store_err(&w.path))?;
            Ok(seq)
        })
    }

    /// Rewrites `module`'s failed event `seq` in place (a replay that failed again keeps
    /// its number, the CLI's name for it); returns whether it existed.
    pub fn replace_failed_event(
        &mut self,
        module: &str,
        seq: u64,
        event: &FailedEvent,
    ) -> Result<bool> {
        self.guarded(|w| {
            let bytes = encode(&FailedRecord::new(event)).map_err(|reason| {
                w.encode_err(format!("a failed event of module {module}"), reason)
            })?;
            let replaced = w
                .table(FAILED_EVENTS)?
                .insert((module, seq), bytes.as_slice())
                .map_err(store_err(&w.path))?
                .is_some();
            if !replaced {
                // Not there: leave nothing behind.
                w.table(FAILED_EVENTS)?
                    .remove((module, seq))
                    .map_err(store_err(&w.path))?;
            }
            Ok(replaced)
        })
    }

    /// Removes a failed event (replayed or dismissed); returns whether it existed.
    pub fn remove_failed_event(&mut self, module: &str, seq: u64) -> Result<bool> {
        self.guarded(|w| {
            let removed = w
                .table(FAILED_EVENTS)?
                .remove((module, seq))
                .map_err(store_err(&w.path))?
                .is_some();
            Ok(removed)
        })
    }

    /// Appends a job to `module`'s async queue; returns its sequence number.
    pub fn push_job(&mut self, module: &str, job: &[u8]) -> Result<u64> {
        self.guarded(|w| {
            let seq = w.next_sequence("queue", module)?;
            w.table(QUEUE)?
                .insert((module, seq), job)
                .map_err(store_err(&w.path))?;
            Ok(seq)
        })
    }

    /// Takes the oldest job off `module`'s async queue.
    pub fn pop_job(&mut self, module: &str) -> Result<Option<(u64, Vec<u8>)>> {
        self.guarded(|w| {
            let mut queue = w.table(QUEUE)?;
            let first = {
                let mut range = queue
                    .range((module, 0)..=(module, u64::MAX))
                    .map_err(store_err(&w.path))?;
                match range.next() {
                    None => return Ok(None),
                    Some(item) => item.map_err(store_err(&w.path))?.0.value().1,
                }
            };
            let job = queue
                .remove((module, first))
                .map_err(store_err(&w.path))?
                .map(|v| v.value().to_vec());
            Ok(job.map(|job| (first, job)))
        })
    }

    /// Removes one job (done) from `module`'s async queue; returns whether it was there.
    pub fn remove_job(&mut self, module: &str, seq: u64) -> Result<bool> {
        self.guarded(|w| {
            let removed = w
                .table(QUEUE)?
                .remove((module, seq))
                .map_err(store_err(&w.path))?
                .is_some();
            Ok(removed)
        })
    }

    /// How many jobs `module`'s async queue holds, as this transaction has left it.
    pub fn queue_len(&self, module: &str) -> Result<u64> {
        count(&self.path, &self.table(QUEUE)?, module)
    }

    /// Makes exactly `modules` registered on the entry at `key`, in both directions.
    fn register<I, S>(&mut self, key: &str, modules: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let wanted: BTreeSet<String> = modules.into_iter().map(|m| m.as_ref().to_owned()).collect();
        let mut by_dn = self.table(REGISTRATIONS)?;
        let mut by_module = self.table(REGISTRATIONS_BY_MODULE)?;
        let current = modules_of(&self.path, &by_dn, key)?;
        for module in current.difference(&wanted) {
            by_dn
                .remove((key, module.as_str()))
                .map_err(store_err(&self.path))?;
            by_module
                .remove((module.as_str(), key))
                .map_err(store_err(&self.path))?;
        }
        for module in wanted.difference(&current) {
            by_dn
                .insert((key, module.as_str()), ())
                .map_err(store_err(&self.path))?;
            by_module
                .insert((module.as_str(), key), ())
                .map_err(store_err(&self.path))?;
        }
        Ok(())
    }

    fn set_meta<T: Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        let bytes = encode(value).map_err(|reason| self.encode_err(key.to_owned(), reason))?;
        self.table(META)?
            .insert(key, bytes.as_slice())
            .map_err(store_err(&self.path))?;
        Ok(())
    }

    /// The next number of the (table, module) sequence, starting at 1.
    fn next_sequence(&mut self, table: &str, module: &str) -> Result<u64> {
        let mut sequences = self.table(SEQUENCES)?;
        let last = sequences
            .get((table, module))
            .map_err(store_err(&self.path))?
            .map_or(0, |v| v.value());
        let next = last + 1;
        sequences
            .insert((table, module), next)
            .map_err(store_err(&self.path))?;
        Ok(next)
    }

    /// The uuid recorded in a stored entry, decoding only the record's head. A damaged
    /// record is being replaced or removed, which is how it heals; its uuid cannot be
    /// unindexed, but a stale index entry is harmless because lookups by uuid check the
    /// entry they reach (and `verify` reports it).
    fn head_uuid(&self, key: &str, bytes: &[u8]) -> Option<String> {
        match decode_prefix::<EntryHead<'_>>(bytes) {
            Ok(head) => head.uuid.map(str::to_owned),
            Err(reason) => {
                tracing::warn!(
                    cache = %self.path.display(),
                    dn = key,
                    "replacing a damaged cache record ({reason})"
                );
                None
            }
        }
    }

    fn encode_err(&self, what: String, reason: String) -> CacheError {
        CacheError::Encode {
            path: self.path.to_path_buf(),
            what,
            reason,
        }
    }
}
