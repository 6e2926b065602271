//! The tables of `cache.redb` and how their keys are built. All of them live in the one
//! database so a single write transaction covers a processed transaction completely.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name: `format`, `last_id`, `schema_id`, `notifier_identity`, `pending_create` | postcard `u32`/`u64`/`u64`/`String`/[`PendingRecord`](super::stored::PendingRecord) |
//! | `entries` | normalized DN | postcard [`EntryHead`](super::stored::EntryHead) (entryUUID, registered modules) then [`EntryBody`](super::stored::EntryBody) (DN, attributes) |
//! | `uuid_index` | (lower-cased entryUUID, normalized DN) | `()` |
//! | `registered_counts` | module | on how many entries it is registered (`u64`; absent: none) |
//! | `module_states` | module | postcard [`ModuleStateRecord`](super::stored::ModuleStateRecord) |
//! | `failed_events` | (module, sequence) | postcard [`FailedRecord`](super::stored::FailedRecord) |
//! | `queue` | (module, sequence) | the job's bytes, opaque here |
//! | `sequences` | (table, module) | last sequence number handed out |
//!
//! The uuid index is exactly the set of (uuid, DN) pairs of the cached entries, so it can
//! be checked against them (`verify`) and cannot go stale when two cached objects claim
//! one uuid (a stale entry the listener has not yet learned is gone): removing either
//! leaves the other findable.
//!
//! The modules registered on an entry are part of its record, so loading an entry is one
//! lookup and storing it one insert. `registered_counts` is derived from the records'
//! heads and changes only where a record's modules do. There is no (module, DN) index: it
//! cost a random B-tree update per registered module for every object added, moved or
//! deleted (measured: the listener caught up 40% faster without it), and its one reader,
//! re-initializing a module, passes over all entries anyway: it searches LDAP for all of
//! the module's objects next. Sequence numbers come from `sequences` rather than "last key +
//! 1", so a number is never handed out twice even after its table emptied: a failed event's
//! number stays a stable name for the CLI.

use redb::TableDefinition;

/// The layout version written into `meta` at creation and checked on open.
/// 2: registrations inside the entry records (no `registrations` (DN, module) table).
/// 3: `registered_counts` instead of the (module, DN) index.
pub(super) const FORMAT_VERSION: u32 = 3;

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
pub(super) const UUIDS: TableDefinition<(&str, &str), ()> = TableDefinition::new("uuid_index");
pub(super) const REGISTERED_COUNTS: TableDefinition<&str, u64> =
    TableDefinition::new("registered_counts");
pub(super) const MODULE_STATES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("module_states");
pub(super) const FAILED_EVENTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("failed_events");
pub(super) const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
pub(super) const SEQUENCES: TableDefinition<(&str, &str), u64> = TableDefinition::new("sequences");

pub(super) const META_FORMAT: &str = "format";
pub(super) const META_LAST_ID: &str = "last_id";
pub(super) const META_SCHEMA_ID: &str = "schema_id";
pub(super) const META_NOTIFIER_IDENTITY: &str = "notifier_identity";
pub(super) const META_PENDING_CREATE: &str = "pending_create";

/// The first string greater than every string starting with `prefix`: `prefix` + NUL.
/// `(prefix, "")..(prefix_end(prefix), "")` is then exactly the keys whose first part is
/// `prefix`, because tuple keys compare element by element.
pub(super) fn prefix_end(prefix: &str) -> String {
    let mut end = String::with_capacity(prefix.len() + 1);
    end.push_str(prefix);
    end.push('\0');
    end
}
