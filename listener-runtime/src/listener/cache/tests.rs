use std::collections::BTreeSet;
use std::time::{Duration, UNIX_EPOCH};

use listener_core::{Command, Dn, Entry};

use super::*;

mod uuid_index;

pub(super) fn dn(text: &str) -> Dn {
    Dn::parse(text).unwrap()
}

pub(super) fn entry(dn_text: &str, uuid: Option<&str>) -> Entry {
    let mut e = Entry::new(dn(dn_text));
    e.insert("objectClass", ["top", "person"]).unwrap();
    e.insert("cn", ["Ünïcode", "second"]).unwrap();
    e.insert("jpegPhoto;binary", [vec![0u8, 255, 1, 2]])
        .unwrap();
    if let Some(uuid) = uuid {
        e.insert("entryUUID", [uuid]).unwrap();
    }
    e
}

fn modules(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|&n| n.to_owned()).collect()
}

#[test]
fn entries_round_trip_with_their_spelling_and_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let alice = entry("UID=Alice,DC=Example,dc=com", Some("AAAA-1"));
    let mut w = cache.write().unwrap();
    w.put_entry(&alice, ["replication", "users"]).unwrap();
    w.commit().unwrap();
    drop(cache);

    let cache = Cache::open(dir.path()).unwrap();
    let r = cache.read().unwrap();
    let got = r
        .entry(&dn("uid=alice,dc=example,dc=com"))
        .unwrap()
        .unwrap();
    assert_eq!(got.entry, alice);
    assert_eq!(got.entry.dn().as_str(), "UID=Alice,DC=Example,dc=com");
    assert_eq!(got.modules, modules(&["replication", "users"]));
    assert_eq!(r.entry_by_uuid("aaaa-1").unwrap().unwrap(), got);
    assert_eq!(r.entry_by_uuid("AAAA-1").unwrap().unwrap(), got);
    assert_eq!(r.entry_count().unwrap(), 1);
    let all: Vec<_> = r.entries().unwrap().map(Result::unwrap).collect();
    assert_eq!(all, vec![got]);
    assert_eq!(r.entry(&dn("uid=bob,dc=example,dc=com")).unwrap(), None);
}

#[test]
fn an_open_write_transaction_tells_the_uuid_it_has_stored_before_the_commit() {
    // The fetch-ahead window predicts from the group's open transaction: a move applied
    // in it and not committed yet must show at the new DN, and no longer at the old one.
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let old = entry("uid=alice,ou=old,dc=example,dc=com", Some("AAAA-1"));
    let mut w = cache.write().unwrap();
    w.put_entry(&old, ["users"]).unwrap();
    w.commit().unwrap();

    let moved = entry("uid=Alice,ou=New,dc=example,dc=com", Some("AAAA-1"));
    let mut w = cache.write().unwrap();
    w.move_entry(old.dn(), &moved, ["users"]).unwrap();
    let at_new = dn("uid=alice,ou=new,dc=example,dc=com");
    assert_eq!(w.entry_uuid_at(&at_new).unwrap().as_deref(), Some("aaaa-1"));
    assert_eq!(w.entry_uuid_at(old.dn()).unwrap(), None);
    // (The entryUUID as the cache keeps it: lower case.) What others read is the last
    // commit.
    let r = cache.read().unwrap();
    assert_eq!(r.entry_uuid_at(&at_new).unwrap(), None);
    assert_eq!(
        r.entry_uuid_at(old.dn()).unwrap().as_deref(),
        Some("aaaa-1")
    );
    drop(r);
    w.commit().unwrap();
    assert_eq!(
        cache
            .read()
            .unwrap()
            .entry_uuid_at(&at_new)
            .unwrap()
            .as_deref(),
        Some("aaaa-1")
    );
}

#[test]
fn two_objects_claiming_one_uuid_stay_findable() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let stale = entry("cn=old place,dc=x", Some("U-1"));
    let fresh = entry("cn=new place,dc=x", Some("u-1"));
    let mut w = cache.write().unwrap();
    w.put_entry(&stale, ["m"]).unwrap();
    w.put_entry(&fresh, ["m"]).unwrap();
    w.commit().unwrap();
    let r = cache.read().unwrap();
    let found: Vec<_> = r
        .entries_by_uuid("u-1")
        .unwrap()
        .into_iter()
        .map(|c| c.entry)
        .collect();
    assert_eq!(found, [fresh.clone(), stale.clone()]);
    let report = r.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.shared_uuids.len(), 1);
    drop(r);
    let mut w = cache.write().unwrap();
    w.remove_entry(fresh.dn()).unwrap();
    w.commit().unwrap();
    let r = cache.read().unwrap();
    assert_eq!(
        r.entry_by_uuid("U-1").unwrap().map(|c| c.entry),
        Some(stale)
    );
}

#[test]
fn verify_reports_inconsistent_derived_tables() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut w = cache.write().unwrap();
    w.put_entry(&entry("cn=a,dc=x", Some("u-a")), ["m"])
        .unwrap();
    w.txn
        .open_table(tables::UUIDS)
        .unwrap()
        .insert(("u-ghost", "cn=gone,dc=x"), ())
        .unwrap();
    {
        let mut counts = w.txn.open_table(tables::REGISTERED_COUNTS).unwrap();
        counts.insert("m", 2).unwrap();
        counts.insert("n", 1).unwrap();
    }
    w.commit().unwrap();
    let report = cache.read().unwrap().verify().unwrap();
    assert_eq!(report.entries, 1);
    assert_eq!(
        report.problems,
        [
            "the uuid index leads u-ghost to \"cn=gone,dc=x\", which is not cached with that uuid",
            "m is registered on 1 cached objects, but counted on 2",
            "n is registered on 0 cached objects, but counted on 1",
        ]
    );
}

#[test]
fn registrations_can_be_changed_and_need_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let a = entry("cn=a,dc=x", None);
    let mut w = cache.write().unwrap();
    w.put_entry(&a, ["m1", "m2"]).unwrap();
    w.set_registrations(a.dn(), ["m2", "m3"]).unwrap();
    assert_eq!(
        w.entry(a.dn()).unwrap().unwrap().modules,
        modules(&["m2", "m3"])
    );
    let err = w
        .set_registrations(&dn("cn=nothing,dc=x"), ["m1"])
        .unwrap_err();
    assert!(matches!(err, CacheError::NotCached { .. }), "{err}");
    assert!(err.to_string().contains("cn=nothing,dc=x"), "{err}");
    w.commit().unwrap();
    let r = cache.read().unwrap();
    assert_eq!(
        r.entry(a.dn()).unwrap().unwrap().modules,
        modules(&["m2", "m3"])
    );
}

#[test]
fn a_record_body_is_encoded_as_the_derived_entry_body_decodes_it() {
    use super::stored::{self, EntryBody, EntryHead, Value};
    let e = entry("CN=A,dc=x", Some("u-1"));
    let derived = EntryBody {
        dn: e.dn().as_str(),
        attrs: e
            .attributes()
            .map(|a| (a.desc.as_str(), a.values.iter().map(|v| Value(v)).collect()))
            .collect(),
    };
    let head = EntryHead::new(Some("u-1"), ["m"]);
    let body = postcard::to_allocvec(&derived).unwrap();
    let mut expected = stored::encode(&head).unwrap();
    expected.extend_from_slice(&body);
    assert_eq!(stored::encode_stored(&head, &e).unwrap(), expected);
    assert!(stored::body_is(&body, &e));
}

#[test]
fn held_tells_an_unchanged_record_from_any_difference() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let a = entry("CN=A,dc=x", Some("u-1"));
    let mut w = cache.write().unwrap();
    w.put_entry(&a, ["m2", "m1"]).unwrap();
    let held = w.held(&a).unwrap().unwrap();
    assert_eq!(held.modules, modules(&["m1", "m2"]));
    assert!(held.unchanged);

    let mut value = a.clone();
    value.insert("cn", ["Ünïcode", "third"]).unwrap();
    let mut more = a.clone();
    more.insert("description", ["new"]).unwrap();
    let spelled = entry("cn=a,dc=x", Some("u-1"));
    assert_eq!(spelled, a, "equal entries, another DN spelling");
    for other in [&value, &more, &spelled] {
        let held = w.held(other).unwrap().unwrap();
        assert!(!held.unchanged, "{other:?}");
        assert_eq!(held.modules, modules(&["m1", "m2"]));
    }
    assert_eq!(w.held(&entry("cn=b,dc=x", None)).unwrap(), None);
}

#[test]
fn unregister_module_everywhere_leaves_other_modules_and_prefixes_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut w = cache.write().unwrap();
    for i in 0..50 {
        let e = entry(&format!("cn=e{i},dc=x"), None);
        let mods: &[&str] = if i % 2 == 0 {
            &["mod", "mod-two", "other"]
        } else {
            &["mod-two"]
        };
        w.put_entry(&e, mods).unwrap();
    }
    assert_eq!(w.unregister_module_everywhere("mod").unwrap(), 25);
    assert_eq!(w.unregister_module_everywhere("mod").unwrap(), 0);
    w.commit().unwrap();
    let r = cache.read().unwrap();
    for (i, cached) in r.entries().unwrap().map(Result::unwrap).enumerate() {
        assert!(!cached.modules.contains("mod"), "entry {i}");
        assert!(cached.modules.contains("mod-two"), "entry {i}");
    }
    // The by-module direction was cleared too: registering again works from scratch.
    let mut w = cache.write().unwrap();
    w.set_registrations(&dn("cn=e1,dc=x"), ["mod"]).unwrap();
    assert_eq!(w.unregister_module_everywhere("mod").unwrap(), 1);
}

#[test]
fn master_record_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let r = cache.read().unwrap();
    assert_eq!((r.last_id().unwrap(), r.schema_id().unwrap()), (0, 0));
    assert_eq!(r.notifier_identity().unwrap(), None);
    drop(r);
    let mut w = cache.write().unwrap();
    w.set_last_id(u64::MAX - 1).unwrap();
    w.set_schema_id(7).unwrap();
    w.set_notifier_identity("ldap://notifier:6669 20261128000000.000001Z#000000#000#000000")
        .unwrap();
    assert_eq!(w.last_id().unwrap(), u64::MAX - 1);
    w.commit().unwrap();
    drop(cache);
    let cache = Cache::open(dir.path()).unwrap();
    let r = cache.read().unwrap();
    assert_eq!(r.last_id().unwrap(), u64::MAX - 1);
    assert_eq!(r.schema_id().unwrap(), 7);
    assert_eq!(
        r.notifier_identity().unwrap().as_deref(),
        Some("ldap://notifier:6669 20261128000000.000001Z#000000#000#000000")
    );
}

#[test]
fn a_different_notifier_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    cache.read().unwrap().check_notifier_identity("X").unwrap();
    let mut w = cache.write().unwrap();
    w.set_notifier_identity("notifier-a csn-1").unwrap();
    w.commit().unwrap();
    let r = cache.read().unwrap();
    r.check_notifier_identity("notifier-a csn-1").unwrap();
    let err = r.check_notifier_identity("notifier-b csn-9").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CacheError::IdentityMismatch { .. }), "{msg}");
    assert!(
        msg.contains(
            "follows notifier notifier-a csn-1; refusing to continue against notifier-b csn-9"
        ),
        "{msg}"
    );
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
fn module_states_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let at = UNIX_EPOCH + Duration::from_micros(1_764_000_000_123_456);
    let states = [
        (
            "a",
            ModuleState {
                phase: ModulePhase::Initializing {
                    progress: Some("uid=x,dc=y".into()),
                },
                filter: "(objectClass=person)".into(),
                attributes: vec!["cn".into(), "mail".into()],
                changed: at,
            },
        ),
        (
            "b",
            ModuleState {
                phase: ModulePhase::Initializing { progress: None },
                filter: String::new(),
                attributes: vec![],
                changed: at,
            },
        ),
        (
            "c",
            ModuleState {
                phase: ModulePhase::Ready,
                filter: "(uid=*)".into(),
                attributes: vec![],
                changed: at,
            },
        ),
        (
            "d",
            ModuleState {
                phase: ModulePhase::Failed {
                    error: "initialize() failed: disk full".into(),
                },
                filter: "(cn=*)".into(),
                attributes: vec![],
                changed: at,
            },
        ),
    ];
    let mut w = cache.write().unwrap();
    for (name, state) in &states {
        w.set_module_state(name, state).unwrap();
    }
    w.commit().unwrap();
    let r = cache.read().unwrap();
    assert_eq!(r.module_state("c").unwrap(), Some(states[2].1.clone()));
    assert_eq!(r.module_state("zzz").unwrap(), None);
    let all: Vec<_> = states
        .iter()
        .map(|(n, s)| ((*n).to_owned(), s.clone()))
        .collect();
    assert_eq!(r.module_states().unwrap(), all);
    drop(r);
    let mut w = cache.write().unwrap();
    assert!(w.remove_module_state("a").unwrap());
    assert!(!w.remove_module_state("a").unwrap());
    w.commit().unwrap();
    assert_eq!(cache.read().unwrap().module_state("a").unwrap(), None);
}

fn failed(id: u64, old: Option<Entry>, new: Option<Entry>) -> FailedEvent {
    FailedEvent {
        transaction_id: id,
        dn: dn("uid=Alice,dc=example,dc=com"),
        entry_uuid: "aaaa-1".into(),
        command: if new.is_none() {
            Command::Delete
        } else {
            Command::Modify
        },
        old,
        new,
        error: "connection refused".into(),
        attempts: 5,
        time: UNIX_EPOCH + Duration::from_secs(1_764_000_000),
    }
}

#[test]
fn failed_events_round_trip_per_module_and_numbers_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let e = entry("uid=Alice,dc=example,dc=com", Some("aaaa-1"));
    let events = [
        failed(1, Some(e.clone()), Some(e.clone())),
        failed(2, Some(e.clone()), None),
        failed(3, None, Some(e)),
    ];
    let mut w = cache.write().unwrap();
    let seqs: Vec<u64> = events
        .iter()
        .map(|ev| w.add_failed_event("m", ev).unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(w.add_failed_event("m-other", &events[0]).unwrap(), 1);
    w.commit().unwrap();

    let r = cache.read().unwrap();
    assert_eq!(r.failed_count("m").unwrap(), 3);
    assert_eq!(r.failed_count("m-other").unwrap(), 1);
    assert_eq!(r.failed_count("n").unwrap(), 0);
    let listed = r.failed_events("m").unwrap();
    let expected: Vec<_> = seqs.iter().copied().zip(events.iter().cloned()).collect();
    assert_eq!(listed, expected);
    assert_eq!(r.failed_event("m", 2).unwrap(), Some(events[1].clone()));
    assert_eq!(r.failed_event("m", 9).unwrap(), None);
    drop(r);

    let mut w = cache.write().unwrap();
    assert!(w.remove_failed_event("m", 3).unwrap());
    assert!(!w.remove_failed_event("m", 3).unwrap());
    assert_eq!(w.add_failed_event("m", &events[2]).unwrap(), 4);
    w.commit().unwrap();
    let r = cache.read().unwrap();
    let seqs: Vec<u64> = r
        .failed_events("m")
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(seqs, [1, 2, 4]);
}

#[test]
fn queues_are_fifo_per_module() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut w = cache.write().unwrap();
    assert_eq!(w.push_job("q", b"one").unwrap(), 1);
    assert_eq!(w.push_job("q", b"two").unwrap(), 2);
    assert_eq!(w.push_job("q2", b"other").unwrap(), 1);
    assert_eq!(w.queue_len("q").unwrap(), 2);
    w.commit().unwrap();

    let r = cache.read().unwrap();
    assert_eq!(r.queue_len("q").unwrap(), 2);
    assert_eq!(
        r.jobs("q").unwrap(),
        [(1, b"one".to_vec()), (2, b"two".to_vec())]
    );
    assert_eq!(r.jobs("none").unwrap(), []);
    drop(r);
    let mut w = cache.write().unwrap();
    assert_eq!(w.pop_job("q").unwrap(), Some((1, b"one".to_vec())));
    assert!(w.remove_job("q", 2).unwrap());
    assert_eq!(w.pop_job("q").unwrap(), None);
    assert_eq!(w.push_job("q", b"three").unwrap(), 3);
    w.commit().unwrap();
    let r = cache.read().unwrap();
    assert_eq!(r.jobs("q").unwrap(), [(3, b"three".to_vec())]);
    assert_eq!(r.jobs("q2").unwrap(), [(1, b"other".to_vec())]);
}

#[test]
fn jobs_pushed_together_are_numbered_in_order_after_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut w = cache.write().unwrap();
    assert_eq!(w.push_job("q", b"one").unwrap(), 1);
    let batch: [&[u8]; 3] = [b"two", b"three", b"four"];
    assert_eq!(w.push_jobs("q", batch).unwrap(), 2);
    // Nothing pushed: nothing numbered, the next number unchanged.
    assert_eq!(w.push_jobs("q", []).unwrap(), 5);
    assert_eq!(w.push_job("q", b"five").unwrap(), 5);
    w.commit().unwrap();
    let seqs: Vec<u64> = cache
        .read()
        .unwrap()
        .jobs("q")
        .unwrap()
        .into_iter()
        .map(|j| j.0)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[test]
fn a_transaction_dropped_or_aborted_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let a = entry("cn=a,dc=x", Some("u-a"));
    let mut w = cache.write().unwrap();
    w.put_entry(&a, ["m"]).unwrap();
    w.set_last_id(1).unwrap();
    w.commit().unwrap();

    for abort in [false, true] {
        let mut w = cache.write().unwrap();
        w.remove_entry(a.dn()).unwrap();
        w.put_entry(&entry("cn=b,dc=x", Some("u-b")), ["m"])
            .unwrap();
        w.unregister_module_everywhere("m").unwrap();
        w.set_last_id(2).unwrap();
        w.set_schema_id(2).unwrap();
        w.add_failed_event("m", &failed(2, None, None)).unwrap();
        w.push_job("m", b"job").unwrap();
        if abort {
            w.abort().unwrap();
        } else {
            drop(w);
        }
        let r = cache.read().unwrap();
        assert_eq!(r.last_id().unwrap(), 1);
        assert_eq!(r.schema_id().unwrap(), 0);
        assert_eq!(
            r.entry(a.dn()).unwrap().map(|c| c.modules),
            Some(modules(&["m"]))
        );
        assert_eq!(r.entry_by_uuid("u-b").unwrap(), None);
        assert_eq!(r.entry_count().unwrap(), 1);
        assert_eq!(r.failed_count("m").unwrap(), 0);
        assert_eq!(r.queue_len("m").unwrap(), 0);
    }
}

#[test]
fn a_transaction_with_a_failed_operation_is_not_committed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut w = cache.write().unwrap();
    // An operation that did part of its work and then failed.
    let failed = w.guarded(|w| {
        w.set_last_id(5)?;
        Err::<(), _>(CacheError::NotCached {
            path: dir.path().to_owned(),
            dn: "cn=x".into(),
        })
    });
    assert!(failed.is_err());
    let err = w.commit().unwrap_err();
    assert!(matches!(err, CacheError::Poisoned { .. }), "{err}");
    assert_eq!(cache.read().unwrap().last_id().unwrap(), 0);

    // A refused registration changed nothing, so it does not poison.
    let mut w = cache.write().unwrap();
    assert!(w.set_registrations(&dn("cn=x"), ["m"]).is_err());
    w.set_last_id(6).unwrap();
    w.commit().unwrap();
    assert_eq!(cache.read().unwrap().last_id().unwrap(), 6);
}

#[test]
fn a_second_listener_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _cache = Cache::open(dir.path()).unwrap();
    let err = Cache::open(dir.path())
        .err()
        .expect("second open must fail");
    assert!(matches!(err, CacheError::Locked { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("another listener"), "{msg}");
}

#[test]
fn a_damaged_record_is_an_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    {
        let w = cache.write().unwrap();
        let mut entries = w.txn.open_table(tables::ENTRIES).unwrap();
        entries.insert("cn=bad,dc=x", &[0xff, 0xff][..]).unwrap();
        drop(entries);
        let mut states = w.txn.open_table(tables::MODULE_STATES).unwrap();
        states.insert("broken", &[9u8][..]).unwrap();
        drop(states);
        w.commit().unwrap();
    }
    let r = cache.read().unwrap();
    let err = r.entry(&dn("CN=Bad,dc=x")).unwrap_err();
    assert!(
        matches!(
            err,
            CacheError::Damaged {
                table: "entries",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\"cn=bad,dc=x\""), "{err}");
    assert!(r.entries().unwrap().next().unwrap().is_err());
    let err = r.module_state("broken").unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
    drop(r);
    // Replacing or removing a damaged entry is how it heals.
    let mut w = cache.write().unwrap();
    w.put_entry(&entry("cn=bad,dc=x", Some("u")), ["m"])
        .unwrap();
    assert!(w.remove_entry(&dn("cn=bad,dc=x")).unwrap());
    w.commit().unwrap();
    assert_eq!(cache.read().unwrap().entry_count().unwrap(), 0);
}

#[test]
fn a_cache_of_another_format_is_refused() {
    // 1: registrations in a table of their own; newer: written by a later listener.
    for found in [1, tables::FORMAT_VERSION + 1] {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        {
            let w = cache.write().unwrap();
            let bytes = stored::encode(&found).unwrap();
            w.txn
                .open_table(tables::META)
                .unwrap()
                .insert(tables::META_FORMAT, bytes.as_slice())
                .unwrap();
            w.commit().unwrap();
        }
        drop(cache);
        let err = Cache::open(dir.path()).err().expect("must refuse");
        assert!(
            matches!(err, CacheError::UnsupportedFormat { found: f, supported, .. }
                if f == found && supported == tables::FORMAT_VERSION),
            "{err}"
        );
        assert!(
            err.to_string().contains("remove the cache directory"),
            "{err}"
        );
    }
}

#[test]
fn non_durable_commits_are_visible_at_once_and_kept_by_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    for id in 1..=3 {
        let mut w = cache.write().unwrap();
        w.set_durable(id == 2).unwrap();
        w.set_last_id(id).unwrap();
        w.commit().unwrap();
        assert_eq!(cache.read().unwrap().last_id().unwrap(), id);
    }
    drop(cache);
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(cache.read().unwrap().last_id().unwrap(), 3);
}

#[test]
fn a_pending_create_round_trips_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(cache.read().unwrap().pending_create().unwrap(), None);
    let pending = PendingCreate {
        transaction_id: 12,
        entry: entry("cn=Ünïcode,dc=x", Some("u1")),
        modules: modules(&["printer", "replication"]),
    };
    let mut w = cache.write().unwrap();
    w.set_pending_create(&pending).unwrap();
    w.commit().unwrap();
    drop(cache);
    // Durable: still there after a reopen.
    let cache = Cache::open(dir.path()).unwrap();
    assert_eq!(
        cache.read().unwrap().pending_create().unwrap(),
        Some(pending)
    );
    let mut w = cache.write().unwrap();
    w.clear_pending_create().unwrap();
    w.clear_pending_create().unwrap();
    w.commit().unwrap();
    assert_eq!(cache.read().unwrap().pending_create().unwrap(), None);
}
