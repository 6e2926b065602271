//! Changing the cache: [`WriteTxn`], all-or-nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use listener_core::{Dn, Entry};
use redb::{ReadableTable, Table};
use serde::Serialize;

use super::error::{CacheError, Result, store_err};
use super::read::{count, damaged, load_entry, load_uuid, meta};
use super::records::{CachedEntry, FailedEvent, ModuleState, PendingCreate};
use super::stored::{
    EntryHead, FailedRecord, ModuleStateRecord, PendingRecord, body_is, encode, encode_stored,
    entry_uuid, reencode_stored, split_stored,
};
use super::tables::{
    ENTRIES, FAILED_EVENTS, META, META_LAST_ID, META_NOTIFIER_IDENTITY, META_PENDING_CREATE,
    META_SCHEMA_ID, MODULE_STATES, QUEUE, REGISTERED_COUNTS, SEQUENCES, UUIDS,
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
        load_entry(&self.path, &self.table(ENTRIES)?, dn.normalized())
    }

    /// How the cache holds the object at `entry`'s DN, without decoding its attributes:
    /// the modules registered on it, and whether its record is `entry` as it stands (the
    /// same DN spelling, attributes, values and order). `None` if nothing is cached there.
    pub fn held(&self, entry: &Entry) -> Result<Option<Held>> {
        let key = entry.dn().normalized();
        let entries = self.table(ENTRIES)?;
        let Some(bytes) = entries.get(key).map_err(store_err(&self.path))? else {
            return Ok(None);
        };
        let (head, body) = split_stored(bytes.value())
            .map_err(|reason| damaged(&self.path, "entries", key, reason))?;
        Ok(Some(Held {
            modules: head.modules.iter().map(|&m| m.to_owned()).collect(),
            unchanged: body_is(body, entry),
        }))
    }

    /// The entryUUID of the object cached at `dn` as this transaction has left it so far,
    /// without decoding the rest of its record.
    pub fn entry_uuid_at(&self, dn: &Dn) -> Result<Option<String>> {
        load_uuid(&self.path, &self.table(ENTRIES)?, dn.normalized())
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
            let uuid = entry_uuid(entry);
            let modules: Vec<S> = modules.into_iter().collect();
            let head = EntryHead::new(uuid.as_deref(), modules.iter().map(AsRef::as_ref));
            let bytes = w.encode_entry(&head, entry)?;
            EntryTables::open(w)?.store(entry.dn().normalized(), &bytes, &head)
        })
    }

    /// Removes the object at `dn` with its registrations and uuid index entry. Returns
    /// whether it was cached.
    pub fn remove_entry(&mut self, dn: &Dn) -> Result<bool> {
        self.guarded(|w| EntryTables::open(w)?.remove(dn.normalized()))
    }

    /// Moves the object cached at `old` to `new_entry`'s DN, storing `new_entry` there
    /// with exactly `modules` registered on it (one write of the record). Moving an
    /// object that is not cached just stores `new_entry`.
    pub fn move_entry<I, S>(&mut self, old: &Dn, new_entry: &Entry, modules: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.guarded(|w| {
            let mut tables = EntryTables::open(w)?;
            let uuid = entry_uuid(new_entry);
            let modules: Vec<S> = modules.into_iter().collect();
            let head = EntryHead::new(uuid.as_deref(), modules.iter().map(AsRef::as_ref));
            let bytes = w.encode_entry(&head, new_entry)?;
            tables.move_record(old.normalized(), new_entry.dn().normalized(), &bytes, &head)
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
        let modules: Vec<S> = modules.into_iter().collect();
        let wanted = EntryHead::new(None, modules.iter().map(AsRef::as_ref)).modules;
        let mut tables = EntryTables::open(self)?;
        // Nothing is changed until the record is rewritten: the errors before leave the
        // transaction usable.
        let bytes = match tables.rewrite(key, Change::Set(&wanted))? {
            Rewrite::Record(bytes) => bytes,
            Rewrite::Unchanged => return Ok(()),
            Rewrite::NotCached => {
                return Err(CacheError::NotCached {
                    path: self.path.to_path_buf(),
                    dn: dn.to_string(),
                });
            }
        };
        let stored = split_stored(&bytes)
            .map_err(|reason| self.encode_err(format!("the entry {dn}"), reason))
            .and_then(|(head, _)| tables.store(key, &bytes, &head));
        drop(tables);
        if stored.is_err() {
            self.poisoned = true;
        }
        stored
    }

    /// Removes `module`'s registration from every cached object (before re-initializing
    /// it); costs a pass over the cache's records and a rewrite of each record the module
    /// is registered on. Returns how many objects it was registered on.
    pub fn unregister_module_everywhere(&mut self, module: &str) -> Result<u64> {
        self.guarded(|w| {
            let mut tables = EntryTables::open(w)?;
            let dns: Vec<String> = {
                let range = tables
                    .entries
                    .range::<&str>(..)
                    .map_err(store_err(&w.path))?;
                let mut dns = Vec::new();
                for item in range {
                    let (key, value) = item.map_err(store_err(&w.path))?;
                    // A damaged record has nothing to unregister.
                    if let Ok((head, _)) = split_stored(value.value())
                        && head.modules.binary_search(&module).is_ok()
                    {
                        dns.push(key.value().to_owned());
                    }
                }
                dns
            };
            let mut n = 0;
            for ndn in &dns {
                if let Rewrite::Record(bytes) = tables.rewrite(ndn, Change::Unregister(module))? {
                    let (head, _) = split_stored(&bytes)
                        .map_err(|reason| w.encode_err(format!("the entry {ndn}"), reason))?;
                    tables.store(ndn, &bytes, &head)?;
                    n += 1;
                }
            }
            // Whatever the count said (a damaged record may have left it too high), the
            // module is now registered nowhere.
            tables
                .indexes
                .counts()?
                .remove(module)
                .map_err(store_err(&w.path))?;
            Ok(n)
        })
    }

    /// Records the last fully processed transaction ID.
    pub fn set_last_id(&mut self, id: u64) -> Result<()> {
        self.guarded(|w| w.set_meta(META_LAST_ID, &id))
    }

    /// Notes the creates about to be delivered (pending creates); commit it durably
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

    /// Appends a job to `module`'s async queue; returns its sequence number. The queue is
    /// the outbox of asynchronous modules: a transaction's calls of such a module are
    /// written in the transaction's own commit, and a job goes away when a worker has
    /// done it (`crate::workers`).
    pub fn push_job(&mut self, module: &str, job: &[u8]) -> Result<u64> {
        self.push_jobs(module, [job])
    }

    /// Appends jobs to `module`'s async queue in order, numbered from the returned
    /// sequence number up: one lookup of the sequence and one opening of the queue for
    /// all of them (a group's calls are written together).
    pub fn push_jobs<'j>(
        &mut self,
        module: &str,
        jobs: impl IntoIterator<Item = &'j [u8]>,
    ) -> Result<u64> {
        self.guarded(|w| {
            let first = w.last_sequence("queue", module)? + 1;
            let mut next = first;
            {
                let mut queue = w.table(QUEUE)?;
                for job in jobs {
                    queue
                        .insert((module, next), job)
                        .map_err(store_err(&w.path))?;
                    next += 1;
                }
            }
            if next > first {
                w.table(SEQUENCES)?
                    .insert(("queue", module), next - 1)
                    .map_err(store_err(&w.path))?;
            }
            Ok(first)
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

    fn set_meta<T: Serialize>(&mut self, key: &'static str, value: &T) -> Result<()> {
        let bytes = encode(value).map_err(|reason| self.encode_err(key.to_owned(), reason))?;
        self.table(META)?
            .insert(key, bytes.as_slice())
            .map_err(store_err(&self.path))?;
        Ok(())
    }

    /// The next number of the (table, module) sequence, starting at 1.
    fn next_sequence(&mut self, table: &str, module: &str) -> Result<u64> {
        let next = self.last_sequence(table, module)? + 1;
        self.table(SEQUENCES)?
            .insert((table, module), next)
            .map_err(store_err(&self.path))?;
        Ok(next)
    }

    /// The last number the (table, module) sequence handed out (0: none yet).
    fn last_sequence(&self, table: &str, module: &str) -> Result<u64> {
        Ok(self
            .table(SEQUENCES)?
            .get((table, module))
            .map_err(store_err(&self.path))?
            .map_or(0, |v| v.value()))
    }

    /// Encodes `entry` for the `entries` table with `head`.
    fn encode_entry(&self, head: &EntryHead<'_>, entry: &Entry) -> Result<Vec<u8>> {
        encode_stored(head, entry)
            .map_err(|reason| self.encode_err(format!("the entry {}", entry.dn()), reason))
    }

    fn encode_err(&self, what: String, reason: String) -> CacheError {
        CacheError::Encode {
            path: self.path.to_path_buf(),
            what,
            reason,
        }
    }
}

/// How the cache holds an object: [`WriteTxn::held`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Names of the modules registered on it.
    pub modules: BTreeSet<String>,
    /// Whether its record is the entry asked about, as it stands.
    pub unchanged: bool,
}

/// The tables an object's state spans, opened once per operation: its record and, when
/// the operation changes what they derive from the record's head, the indexes.
struct EntryTables<'t> {
    entries: Table<'t, &'static str, &'static [u8]>,
    indexes: Indexes<'t>,
}

impl<'t> EntryTables<'t> {
    fn open(w: &'t WriteTxn) -> Result<EntryTables<'t>> {
        Ok(EntryTables {
            entries: w.table(ENTRIES)?,
            indexes: Indexes {
                w,
                uuids: None,
                counts: None,
            },
        })
    }

    /// Stores `bytes`, an encoded record whose head is `head`, at `key`, and brings the
    /// indexes from the head of the record it replaces to `head`.
    fn store(&mut self, key: &str, bytes: &[u8], head: &EntryHead<'_>) -> Result<()> {
        let previous = self
            .entries
            .insert(key, bytes)
            .map_err(store_err(&self.indexes.w.path))?;
        let old = match &previous {
            Some(old) => self.indexes.head_of(key, old.value()),
            None => EntryHead::default(),
        };
        self.indexes.update(key, &old, head)
    }

    /// Moves the record at `old_key` to `new_key`, stored as `bytes` (head `head`). The
    /// registration counts change only by what the heads differ in: a move keeps its
    /// modules as a rule, and counting each of them down and up again cost two table
    /// writes per module and move.
    fn move_record(
        &mut self,
        old_key: &str,
        new_key: &str,
        bytes: &[u8],
        head: &EntryHead<'_>,
    ) -> Result<()> {
        if old_key == new_key {
            return self.store(new_key, bytes, head);
        }
        let w = self.indexes.w;
        let path = &w.path;
        let moved = {
            let removed = self.entries.remove(old_key).map_err(store_err(path))?;
            removed.map(|record| {
                let old = self.indexes.head_of(old_key, record.value());
                let modules: Vec<String> = old.modules.iter().map(|&m| m.to_owned()).collect();
                (old.uuid.map(str::to_owned), modules)
            })
        };
        let Some((old_uuid, old_modules)) = moved else {
            return self.store(new_key, bytes, head);
        };
        let previous = self
            .entries
            .insert(new_key, bytes)
            .map_err(store_err(path))?;
        let replaced = match &previous {
            Some(record) => self.indexes.head_of(new_key, record.value()),
            None => EntryHead::default(),
        };
        self.indexes
            .reindex_uuid(old_key, old_uuid.as_deref(), None)?;
        self.indexes
            .reindex_uuid(new_key, replaced.uuid, head.uuid)?;
        // Both records' registrations go, the head's come.
        let gone = old_modules.iter().map(String::as_str);
        self.indexes
            .recount(gone.chain(replaced.modules.iter().copied()), &head.modules)
    }

    /// Removes the record at `key` and its index entries; returns whether there was one.
    fn remove(&mut self, key: &str) -> Result<bool> {
        let Some(previous) = self
            .entries
            .remove(key)
            .map_err(store_err(&self.indexes.w.path))?
        else {
            return Ok(false);
        };
        let old = self.indexes.head_of(key, previous.value());
        self.indexes.update(key, &old, &EntryHead::default())?;
        Ok(true)
    }

    /// The record at `key` re-encoded with its modules changed. Reads only; a damaged
    /// record is an error.
    fn rewrite(&self, key: &str, change: Change<'_>) -> Result<Rewrite> {
        let w = self.indexes.w;
        let Some(current) = self.entries.get(key).map_err(store_err(&w.path))? else {
            return Ok(Rewrite::NotCached);
        };
        let (head, body) = split_stored(current.value())
            .map_err(|reason| damaged(&w.path, "entries", key, reason))?;
        let modules = match change {
            Change::Set(wanted) if head.modules != wanted => wanted.to_vec(),
            Change::Unregister(module) if head.modules.contains(&module) => head
                .modules
                .iter()
                .copied()
                .filter(|&m| m != module)
                .collect(),
            Change::Set(_) | Change::Unregister(_) => return Ok(Rewrite::Unchanged),
        };
        let head = EntryHead {
            uuid: head.uuid,
            modules,
        };
        reencode_stored(&head, body)
            .map(Rewrite::Record)
            .map_err(|reason| w.encode_err(format!("the entry {key}"), reason))
    }
}

/// How [`EntryTables::rewrite`] changes a record's modules.
enum Change<'a> {
    /// To exactly these (sorted, no repeats).
    Set(&'a [&'a str]),
    /// Without this one.
    Unregister(&'a str),
}

/// What [`EntryTables::rewrite`] made of a record.
enum Rewrite {
    NotCached,
    Unchanged,
    /// The new record, to store.
    Record(Vec<u8>),
}

/// The tables derived from the records' heads, each opened when first needed.
struct Indexes<'t> {
    w: &'t WriteTxn,
    uuids: Option<Table<'t, (&'static str, &'static str), ()>>,
    counts: Option<Table<'t, &'static str, u64>>,
}

impl<'t> Indexes<'t> {
    fn uuids(&mut self) -> Result<&mut Table<'t, (&'static str, &'static str), ()>> {
        if self.uuids.is_none() {
            self.uuids = Some(self.w.table(UUIDS)?);
        }
        Ok(self.uuids.as_mut().expect("opened above"))
    }

    fn counts(&mut self) -> Result<&mut Table<'t, &'static str, u64>> {
        if self.counts.is_none() {
            self.counts = Some(self.w.table(REGISTERED_COUNTS)?);
        }
        Ok(self.counts.as_mut().expect("opened above"))
    }

    /// Changes the registrations counted for `module` by `delta` (never below 0).
    fn count(&mut self, module: &str, delta: i64) -> Result<()> {
        let path = &self.w.path;
        let counts = self.counts()?;
        let now = counts
            .get(module)
            .map_err(store_err(path))?
            .map_or(0, |c| c.value());
        let next = now.saturating_add_signed(delta);
        if next == 0 {
            counts.remove(module).map_err(store_err(path))?;
        } else {
            counts.insert(module, next).map_err(store_err(path))?;
        }
        Ok(())
    }

    /// Changes the index entries of the object at `key` from those of head `old` to those
    /// of head `new`, touching only what differs.
    fn update(&mut self, key: &str, old: &EntryHead<'_>, new: &EntryHead<'_>) -> Result<()> {
        self.reindex_uuid(key, old.uuid, new.uuid)?;
        if old.modules != new.modules {
            self.recount(old.modules.iter().copied(), &new.modules)?;
        }
        Ok(())
    }

    /// Changes the uuid index entry of `key` from `old` to `new`.
    fn reindex_uuid(&mut self, key: &str, old: Option<&str>, new: Option<&str>) -> Result<()> {
        if old == new {
            return Ok(());
        }
        let path = &self.w.path;
        let uuids = self.uuids()?;
        if let Some(uuid) = old {
            uuids.remove((uuid, key)).map_err(store_err(path))?;
        }
        if let Some(uuid) = new {
            uuids.insert((uuid, key), ()).map_err(store_err(path))?;
        }
        Ok(())
    }

    /// Takes away one registration of each module in `gone` (a module may come twice)
    /// and adds one of each in `come`, writing only the counts that change.
    fn recount<'m>(&mut self, gone: impl Iterator<Item = &'m str>, come: &[&'m str]) -> Result<()> {
        let mut delta: BTreeMap<&str, i64> = BTreeMap::new();
        for module in gone {
            *delta.entry(module).or_default() -= 1;
        }
        for &module in come {
            *delta.entry(module).or_default() += 1;
        }
        for (module, d) in delta {
            if d != 0 {
                self.count(module, d)?;
            }
        }
        Ok(())
    }

    /// The head of a stored record. A damaged record is being replaced or removed, which
    /// is how it heals; its index entries cannot be found from it, but stale ones are
    /// harmless: lookups by uuid check the entry they reach, unregistering a module checks
    /// the record, and `verify` reports them.
    fn head_of<'b>(&self, key: &str, bytes: &'b [u8]) -> EntryHead<'b> {
        match split_stored(bytes) {
            Ok((head, _)) => head,
            Err(reason) => {
                tracing::warn!(
                    cache = %self.w.path.display(),
                    dn = key,
                    "replacing a damaged cache record ({reason})"
                );
                EntryHead::default()
            }
        }
    }
}
