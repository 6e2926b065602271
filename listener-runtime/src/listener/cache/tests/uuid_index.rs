//! The uuid index and the registrations by module stay consistent with the entries through
//! any sequence of puts, moves, removes and registration changes, in committed and
//! abandoned transactions alike: checked against a model.

use std::collections::{BTreeMap, BTreeSet};

use listener_core::Entry;
use proptest::prelude::*;

use super::super::*;
use super::{dn, entry};

/// Spellings of four objects' DNs; several spell the same DN.
const DNS: &[&str] = &[
    "cn=a,dc=x",
    "CN=A,DC=X",
    "cn=b,dc=x",
    "cn=B ,dc=x",
    "cn=c,dc=x",
    "cn=d,ou=sub,dc=x",
];
/// entryUUIDs, in different cases.
const UUIDS: &[&str] = &["U-1", "u-1", "u-2", "U-3"];
const MODULES: &[&str] = &["m1", "m2", "m3"];

#[derive(Debug, Clone)]
enum Op {
    Put {
        dn: usize,
        uuid: Option<usize>,
        modules: Vec<usize>,
    },
    Move {
        from: usize,
        to: usize,
        uuid: Option<usize>,
    },
    Remove {
        dn: usize,
    },
    Register {
        dn: usize,
        modules: Vec<usize>,
    },
    Unregister {
        module: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let dn = 0..DNS.len();
    let uuid = proptest::option::of(0..UUIDS.len());
    prop_oneof![
        3 => (dn.clone(), uuid.clone(), proptest::collection::vec(0..MODULES.len(), 0..3))
            .prop_map(|(dn, uuid, modules)| Op::Put { dn, uuid, modules }),
        2 => (dn.clone(), dn.clone(), uuid).prop_map(|(from, to, uuid)| Op::Move { from, to, uuid }),
        1 => dn.clone().prop_map(|dn| Op::Remove { dn }),
        1 => (dn, proptest::collection::vec(0..MODULES.len(), 0..3))
            .prop_map(|(dn, modules)| Op::Register { dn, modules }),
        1 => (0..MODULES.len()).prop_map(|module| Op::Unregister { module }),
    ]
}

/// What the cache should hold: by normalized DN, the entry and its modules.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    entries: BTreeMap<String, (Entry, BTreeSet<String>)>,
}

impl Model {
    fn put(&mut self, e: Entry, modules: BTreeSet<String>) {
        self.entries
            .insert(e.dn().normalized().to_owned(), (e, modules));
    }

    fn remove(&mut self, key: &str) -> Option<BTreeSet<String>> {
        self.entries.remove(key).map(|(_, modules)| modules)
    }

    /// The index is exactly the entries' (uuid, DN) pairs.
    fn index(&self) -> Vec<(String, String)> {
        let mut index: Vec<_> = self
            .entries
            .iter()
            .filter_map(|(key, (e, _))| Some((uuid_of(e)?, key.clone())))
            .collect();
        index.sort();
        index
    }
}

fn uuid_of(e: &Entry) -> Option<String> {
    e.first_str("entryUUID").map(str::to_ascii_lowercase)
}

fn make(dn_index: usize, uuid: Option<usize>) -> Entry {
    entry(DNS[dn_index], uuid.map(|u| UUIDS[u]))
}

fn apply(w: &mut WriteTxn, model: &mut Model, op: &Op) {
    match op {
        Op::Put {
            dn: d,
            uuid,
            modules,
        } => {
            let names: BTreeSet<String> = modules.iter().map(|&m| MODULES[m].to_owned()).collect();
            let e = make(*d, *uuid);
            w.put_entry(&e, &names).unwrap();
            model.put(e, names);
        }
        Op::Move { from, to, uuid } => {
            let e = make(*to, *uuid);
            // Its registrations move with it.
            let modules = model
                .remove(dn(DNS[*from]).normalized())
                .unwrap_or_default();
            w.move_entry(&dn(DNS[*from]), &e, &modules).unwrap();
            model.put(e, modules);
        }
        Op::Remove { dn: d } => {
            let was = w.remove_entry(&dn(DNS[*d])).unwrap();
            assert_eq!(was, model.remove(dn(DNS[*d]).normalized()).is_some());
        }
        Op::Register { dn: d, modules } => {
            let names: BTreeSet<String> = modules.iter().map(|&m| MODULES[m].to_owned()).collect();
            let result = w.set_registrations(&dn(DNS[*d]), &names);
            match model.entries.get_mut(dn(DNS[*d]).normalized()) {
                Some((_, registered)) => {
                    result.unwrap();
                    *registered = names;
                }
                None => assert!(matches!(result, Err(CacheError::NotCached { .. }))),
            }
        }
        Op::Unregister { module } => {
            let name = MODULES[*module];
            let mut expected = 0;
            for (_, modules) in model.entries.values_mut() {
                expected += u64::from(modules.remove(name));
            }
            assert_eq!(w.unregister_module_everywhere(name).unwrap(), expected);
        }
    }
}

fn check(cache: &Cache, model: &Model) {
    let r = cache.read().unwrap();
    let entries: BTreeMap<String, (Entry, BTreeSet<String>)> = r
        .entries()
        .unwrap()
        .map(|c| {
            let c = c.unwrap();
            (c.entry.dn().normalized().to_owned(), (c.entry, c.modules))
        })
        .collect();
    assert_eq!(entries, model.entries);
    let index = r.uuid_index().unwrap();
    assert_eq!(index, model.index());
    // Independently of the model: every object is found by its uuid, and verify agrees.
    for (key, (e, _)) in &entries {
        if let Some(uuid) = uuid_of(e) {
            let found = r.entries_by_uuid(&uuid.to_ascii_uppercase()).unwrap();
            assert!(found.iter().any(|c| c.entry.dn().normalized() == key));
            assert!(
                found
                    .iter()
                    .all(|c| uuid_of(&c.entry).as_ref() == Some(&uuid))
            );
        }
    }
    for module in MODULES {
        let expected = entries
            .values()
            .filter(|(_, m)| m.contains(*module))
            .count();
        assert_eq!(
            r.registered_count(module).unwrap(),
            expected as u64,
            "{module}"
        );
    }
    let report = r.verify().unwrap();
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.entries, entries.len() as u64);
    let shared = index
        .chunk_by(|a, b| a.0 == b.0)
        .filter(|group| group.len() > 1)
        .count();
    assert_eq!(report.shared_uuids.len(), shared);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn uuid_index_follows_puts_moves_and_removes(
        txns in proptest::collection::vec(
            (proptest::collection::vec(op(), 1..6), any::<bool>()),
            1..10,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let mut model = Model::default();
        for (ops, commit) in &txns {
            let mut w = cache.write().unwrap();
            // Durability does not change what a running cache shows; skip the fsyncs.
            w.set_durable(false).unwrap();
            let mut next = model.clone();
            for op in ops {
                apply(&mut w, &mut next, op);
            }
            if *commit {
                w.commit().unwrap();
                model = next;
            } else {
                drop(w);
            }
            check(&cache, &model);
        }
    }
}
