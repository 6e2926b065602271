//! Reading the cache: [`ReadTxn`], a consistent snapshot, and the lookups [`super::WriteTxn`]
//! shares with it (generic over redb's readable tables, so both see the same decoding).

use std::path::Path;
use std::sync::Arc;

use listener_core::Dn;
use redb::{ReadOnlyTable, ReadableTable, ReadableTableMetadata};
use serde::Deserialize;

use super::error::{CacheError, Result, store_err};
use super::records::{CachedEntry, FailedEvent, ModuleState, PendingCreate};
use super::stored::{
    FailedRecord, ModuleStateRecord, PendingRecord, decode, decode_stored, entry_uuid, stored_uuid,
};
use super::tables::{
    ENTRIES, FAILED_EVENTS, META, META_LAST_ID, META_NOTIFIER_IDENTITY, META_PENDING_CREATE,
    META_SCHEMA_ID, MODULE_STATES, QUEUE, REGISTERED_COUNTS, UUIDS, prefix_end,
};

/// A consistent snapshot of the cache; writes committed after it began are not seen.
pub struct ReadTxn {
    pub(super) txn: redb::ReadTransaction,
    pub(super) path: Arc<Path>,
}

impl ReadTxn {
    pub(super) fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: redb::TableDefinition<K, V>,
    ) -> Result<ReadOnlyTable<K, V>> {
        self.txn.open_table(def).map_err(store_err(&self.path))
    }

    /// The cached object at `dn` (compared by its normalized form).
    pub fn entry(&self, dn: &Dn) -> Result<Option<CachedEntry>> {
        self.entry_at(dn.normalized())
    }

    /// The entryUUID of the object cached at `dn`, if it is cached and has one: reads
    /// only the record's head (the fetch-ahead window asks this for every transaction).
    pub fn entry_uuid_at(&self, dn: &Dn) -> Result<Option<String>> {
        load_uuid(&self.path, &self.table(ENTRIES)?, dn.normalized())
    }

    fn entry_at(&self, key: &str) -> Result<Option<CachedEntry>> {
        load_entry(&self.path, &self.table(ENTRIES)?, key)
    }

    /// The cached object with this entryUUID (any case), wherever it is cached. Should
    /// several cached objects claim it (a stale entry for an object that has since moved
    /// or been replaced), the one whose normalized DN sorts first; see
    /// [`ReadTxn::entries_by_uuid`].
    pub fn entry_by_uuid(&self, uuid: &str) -> Result<Option<CachedEntry>> {
        Ok(self.entries_by_uuid(uuid)?.into_iter().next())
    }

    /// Every cached object claiming this entryUUID (any case), by normalized DN.
    pub fn entries_by_uuid(&self, uuid: &str) -> Result<Vec<CachedEntry>> {
        let uuid = uuid.to_ascii_lowercase();
        let mut found = Vec::new();
        for ndn in dns_of_uuid(&self.path, &self.table(UUIDS)?, &uuid)? {
            // Only a replaced damaged record leaves a stale pair behind; never hand out
            // an object that is not the one asked for.
            if let Some(c) = self.entry_at(&ndn)?
                && entry_uuid(&c.entry).as_deref() == Some(uuid.as_str())
            {
                found.push(c);
            }
        }
        Ok(found)
    }

    /// The whole uuid index as (lower-cased uuid, normalized DN) pairs, in that order.
    pub fn uuid_index(&self) -> Result<Vec<(String, String)>> {
        let uuids = self.table(UUIDS)?;
        let range = uuids
            .range::<(&str, &str)>(..)
            .map_err(store_err(&self.path))?;
        range
            .map(|item| {
                let (k, _) = item.map_err(store_err(&self.path))?;
                let (uuid, ndn) = k.value();
                Ok((uuid.to_owned(), ndn.to_owned()))
            })
            .collect()
    }

    /// Every cached object in normalized-DN order (for dump and verify). The iterator
    /// reads lazily from this snapshot.
    pub fn entries(&self) -> Result<Entries> {
        let range = self
            .table(ENTRIES)?
            .range::<&str>(..)
            .map_err(store_err(&self.path))?;
        Ok(Entries {
            range,
            path: self.path.clone(),
        })
    }

    /// The number of cached objects.
    pub fn entry_count(&self) -> Result<u64> {
        self.table(ENTRIES)?.len().map_err(store_err(&self.path))
    }

    /// The ID of the last transaction fully processed (0 for a new cache).
    pub fn last_id(&self) -> Result<u64> {
        Ok(meta(&self.path, &self.table(META)?, META_LAST_ID)?.unwrap_or(0))
    }

    /// The creates noted before their transaction's module calls and not yet committed
    /// with it: after a crash, those of the transaction to replay.
    pub fn pending_create(&self) -> Result<Option<PendingCreate>> {
        let meta = self.table(META)?;
        let Some(bytes) = meta
            .get(META_PENDING_CREATE)
            .map_err(store_err(&self.path))?
        else {
            return Ok(None);
        };
        decode::<PendingRecord<'_>>(bytes.value())
            .and_then(|r| r.to_pending())
            .map(Some)
            .map_err(|reason| damaged(&self.path, "meta", META_PENDING_CREATE, reason))
    }

    /// The schema ID last seen from the notifier (0 for a new cache).
    pub fn schema_id(&self) -> Result<u64> {
        Ok(meta(&self.path, &self.table(META)?, META_SCHEMA_ID)?.unwrap_or(0))
    }

    /// The identity of the notifier whose transaction IDs this cache follows.
    pub fn notifier_identity(&self) -> Result<Option<String>> {
        meta(&self.path, &self.table(META)?, META_NOTIFIER_IDENTITY)
    }

    /// Checks that `presented` is the notifier this cache follows. A cache that follows
    /// none yet accepts any (the caller then records it with
    /// [`super::WriteTxn::set_notifier_identity`]).
    pub fn check_notifier_identity(&self, presented: &str) -> Result<()> {
        match self.notifier_identity()? {
            Some(stored) if stored != presented => Err(CacheError::IdentityMismatch {
                path: self.path.to_path_buf(),
                stored,
                presented: presented.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// A module's persisted state; `None` when it was never initialized (or was reset).
    pub fn module_state(&self, module: &str) -> Result<Option<ModuleState>> {
        let states = self.table(MODULE_STATES)?;
        let Some(bytes) = states.get(module).map_err(store_err(&self.path))? else {
            return Ok(None);
        };
        decode_module_state(&self.path, module, bytes.value()).map(Some)
    }

    /// Every module's persisted state, by module name.
    pub fn module_states(&self) -> Result<Vec<(String, ModuleState)>> {
        let states = self.table(MODULE_STATES)?;
        let range = states.range::<&str>(..).map_err(store_err(&self.path))?;
        range
            .map(|item| {
                let (k, v) = item.map_err(store_err(&self.path))?;
                let state = decode_module_state(&self.path, k.value(), v.value())?;
                Ok((k.value().to_owned(), state))
            })
            .collect()
    }

    /// On how many cached objects `module` is registered (during its initialization: how
    /// many objects it has taken so far).
    pub fn registered_count(&self, module: &str) -> Result<u64> {
        let counts = self.table(REGISTERED_COUNTS)?;
        let count = counts.get(module).map_err(store_err(&self.path))?;
        Ok(count.map_or(0, |c| c.value()))
    }

    /// A module's failed events with their sequence numbers, oldest first.
    pub fn failed_events(&self, module: &str) -> Result<Vec<(u64, FailedEvent)>> {
        let failed = self.table(FAILED_EVENTS)?;
        let range = failed
            .range((module, 0)..=(module, u64::MAX))
            .map_err(store_err(&self.path))?;
        range
            .map(|item| {
                let (k, v) = item.map_err(store_err(&self.path))?;
                let seq = k.value().1;
                Ok((seq, decode_failed(&self.path, module, seq, v.value())?))
            })
            .collect()
    }

    /// One failed event.
    pub fn failed_event(&self, module: &str, seq: u64) -> Result<Option<FailedEvent>> {
        let failed = self.table(FAILED_EVENTS)?;
        let Some(bytes) = failed.get((module, seq)).map_err(store_err(&self.path))? else {
            return Ok(None);
        };
        decode_failed(&self.path, module, seq, bytes.value()).map(Some)
    }

    /// How many failed events a module has.
    pub fn failed_count(&self, module: &str) -> Result<u64> {
        count(&self.path, &self.table(FAILED_EVENTS)?, module)
    }

    /// How many jobs a module's async queue holds.
    pub fn queue_len(&self, module: &str) -> Result<u64> {
        count(&self.path, &self.table(QUEUE)?, module)
    }

    /// Every job of a module's async queue, oldest first, with its sequence number.
    pub fn jobs(&self, module: &str) -> Result<Vec<(u64, Vec<u8>)>> {
        let queue = self.table(QUEUE)?;
        let range = queue
            .range((module, 0)..=(module, u64::MAX))
            .map_err(store_err(&self.path))?;
        range
            .map(|item| {
                let (k, v) = item.map_err(store_err(&self.path))?;
                Ok((k.value().1, v.value().to_vec()))
            })
            .collect()
    }
}

/// The iterator of [`ReadTxn::entries`].
pub struct Entries {
    range: redb::Range<'static, &'static str, &'static [u8]>,
    path: Arc<Path>,
}

impl Iterator for Entries {
    type Item = Result<CachedEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.range.next()?;
        Some(
            item.map_err(store_err(&self.path))
                .and_then(|(k, v)| decode_entry(&self.path, k.value(), v.value())),
        )
    }
}

pub(super) fn load_entry(
    path: &Path,
    entries: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<CachedEntry>> {
    let Some(bytes) = entries.get(key).map_err(store_err(path))? else {
        return Ok(None);
    };
    decode_entry(path, key, bytes.value()).map(Some)
}

/// The entryUUID in the head of the record at `key`, if there is a record and it has one
/// (a damaged head counts as none: the window only guesses from it).
pub(super) fn load_uuid(
    path: &Path,
    entries: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<String>> {
    let Some(bytes) = entries.get(key).map_err(store_err(path))? else {
        return Ok(None);
    };
    Ok(stored_uuid(bytes.value()).ok().flatten().map(str::to_owned))
}

/// The normalized DNs the uuid index holds for `uuid` (lower-cased).
fn dns_of_uuid(
    path: &Path,
    uuids: &impl ReadableTable<(&'static str, &'static str), ()>,
    uuid: &str,
) -> Result<Vec<String>> {
    let end = prefix_end(uuid);
    let range = uuids
        .range((uuid, "")..(end.as_str(), ""))
        .map_err(store_err(path))?;
    range
        .map(|item| {
            let (k, _) = item.map_err(store_err(path))?;
            Ok(k.value().1.to_owned())
        })
        .collect()
}

pub(super) fn meta<T: for<'a> Deserialize<'a>>(
    path: &Path,
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &'static str,
) -> Result<Option<T>> {
    let Some(bytes) = table.get(key).map_err(store_err(path))? else {
        return Ok(None);
    };
    decode(bytes.value())
        .map(Some)
        .map_err(|reason| damaged(path, "meta", key, reason))
}

/// How many keys of a (module, sequence) table belong to `module`.
pub(super) fn count(
    path: &Path,
    table: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    module: &str,
) -> Result<u64> {
    let range = table
        .range((module, 0)..=(module, u64::MAX))
        .map_err(store_err(path))?;
    let mut n = 0;
    for item in range {
        item.map_err(store_err(path))?;
        n += 1;
    }
    Ok(n)
}

fn decode_entry(path: &Path, key: &str, bytes: &[u8]) -> Result<CachedEntry> {
    decode_stored(bytes)
        .and_then(|(head, body)| {
            Ok(CachedEntry {
                entry: body.to_entry()?,
                modules: head.modules.iter().map(|&m| m.to_owned()).collect(),
            })
        })
        .map_err(|reason| damaged(path, "entries", key, reason))
}

fn decode_module_state(path: &Path, module: &str, bytes: &[u8]) -> Result<ModuleState> {
    decode::<ModuleStateRecord<'_>>(bytes)
        .map(|r| r.to_state())
        .map_err(|reason| damaged(path, "module_states", module, reason))
}

fn decode_failed(path: &Path, module: &str, seq: u64, bytes: &[u8]) -> Result<FailedEvent> {
    decode::<FailedRecord<'_>>(bytes)
        .and_then(|r| r.to_event())
        .map_err(|reason| damaged(path, "failed_events", &format!("{module} #{seq}"), reason))
}

pub(super) fn damaged(path: &Path, table: &'static str, key: &str, reason: String) -> CacheError {
    CacheError::Damaged {
        path: path.to_owned(),
        table,
        key: key.to_owned(),
        reason,
    }
}
