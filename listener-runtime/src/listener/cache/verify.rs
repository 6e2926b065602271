//! `verify`: checks that the cache's derived tables (the uuid index, the registration
//! counts) agree with its entries' records, and that every entry can be read.

use std::collections::{BTreeMap, BTreeSet};

use redb::TableDefinition;

use super::error::{Result, store_err};
use super::read::ReadTxn;
use super::stored::{decode_stored, entry_uuid};
use super::tables::{ENTRIES, REGISTERED_COUNTS, UUIDS};

/// What [`ReadTxn::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many cached objects there are.
    pub entries: u64,
    /// Inconsistencies, one sentence each; empty for a healthy cache.
    pub problems: Vec<String>,
    /// entryUUIDs claimed by more than one cached object, with their normalized DNs. Not
    /// damage: a stale entry for an object that moved or was replaced while the listener
    /// was not looking; it goes away when the listener processes that object's changes.
    pub shared_uuids: Vec<(String, Vec<String>)>,
}

impl ReadTxn {
    /// Reads the whole cache and reports what does not fit together. Costs a pass over
    /// every table; meant for the `verify` command and tests, not the processing loop.
    pub fn verify(&self) -> Result<VerifyReport> {
        let path = &self.path;
        let mut report = VerifyReport::default();
        let mut keys = BTreeSet::new();
        let mut claimed: BTreeSet<(String, String)> = BTreeSet::new();
        // (normalized DN, module) as the records list them.
        let mut registered: BTreeSet<(String, String)> = BTreeSet::new();
        for item in self
            .table(ENTRIES)?
            .range::<&str>(..)
            .map_err(store_err(path))?
        {
            let (k, v) = item.map_err(store_err(path))?;
            let key = k.value();
            report.entries += 1;
            keys.insert(key.to_owned());
            let (head, body) = match decode_stored(v.value()) {
                Ok(record) => record,
                Err(reason) => {
                    report
                        .problems
                        .push(format!("entry {key:?} is damaged ({reason})"));
                    continue;
                }
            };
            match body.to_entry() {
                Ok(entry) if entry_uuid(&entry).as_deref() != head.uuid => {
                    report.problems.push(format!(
                        "entry {key:?} is indexed under uuid {:?} but has entryUUID {:?}",
                        head.uuid,
                        entry_uuid(&entry)
                    ));
                }
                Ok(_) => {}
                Err(reason) => report
                    .problems
                    .push(format!("entry {key:?} is damaged ({reason})")),
            }
            if let Some(uuid) = head.uuid {
                claimed.insert((uuid.to_owned(), key.to_owned()));
            }
            // The writer diffs module lists by binary search.
            if !head.modules.is_sorted_by(|a, b| a < b) {
                report.problems.push(format!(
                    "entry {key:?} lists its modules out of order or repeated: {:?}",
                    head.modules
                ));
            }
            for module in head.modules {
                registered.insert((key.to_owned(), module.to_owned()));
            }
        }

        let indexed = pairs(self, UUIDS)?;
        for (uuid, ndn) in claimed.difference(&indexed) {
            report
                .problems
                .push(format!("the uuid index lacks {uuid} for entry {ndn:?}"));
        }
        for (uuid, ndn) in indexed.difference(&claimed) {
            report.problems.push(format!(
                "the uuid index leads {uuid} to {ndn:?}, which is not cached with that uuid"
            ));
        }
        let mut by_uuid: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (uuid, ndn) in &claimed {
            by_uuid.entry(uuid).or_default().push(ndn.clone());
        }
        report.shared_uuids = by_uuid
            .into_iter()
            .filter(|(_, dns)| dns.len() > 1)
            .map(|(uuid, dns)| (uuid.to_owned(), dns))
            .collect();

        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        for (_, module) in &registered {
            *counted.entry(module.clone()).or_default() += 1;
        }
        let mut recorded: BTreeMap<String, u64> = BTreeMap::new();
        for item in self
            .table(REGISTERED_COUNTS)?
            .range::<&str>(..)
            .map_err(store_err(path))?
        {
            let (k, v) = item.map_err(store_err(path))?;
            recorded.insert(k.value().to_owned(), v.value());
        }
        for module in counted
            .keys()
            .chain(recorded.keys())
            .collect::<BTreeSet<_>>()
        {
            let (records, count) = (
                counted.get(module).copied().unwrap_or(0),
                recorded.get(module).copied().unwrap_or(0),
            );
            if records != count {
                report.problems.push(format!(
                    "{module} is registered on {records} cached objects, but counted on {count}"
                ));
            }
        }
        Ok(report)
    }
}

/// All keys of a table of (string, string) pairs.
fn pairs(
    txn: &ReadTxn,
    def: TableDefinition<(&str, &str), ()>,
) -> Result<BTreeSet<(String, String)>> {
    let range = txn
        .table(def)?
        .range::<(&str, &str)>(..)
        .map_err(store_err(&txn.path))?;
    range
        .map(|item| {
            let (k, _) = item.map_err(store_err(&txn.path))?;
            let (a, b) = k.value();
            Ok((a.to_owned(), b.to_owned()))
        })
        .collect()
}
