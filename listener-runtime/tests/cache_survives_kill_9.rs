//! A listener killed at any moment leaves a cache in which every committed transaction is
//! fully there and none is there in part. The test re-runs this test binary as a child that
//! commits transactions in a loop, kills it with SIGKILL at random moments and checks the
//! cache after each kill.
//!
//! It is a test binary of its own: a child forked from the library's test binary would
//! briefly share the lock files other tests hold there.

use std::hash::{BuildHasher, RandomState};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use listener_core::{Dn, Entry};
use listener_runtime::testing::Cache;

const CHILD_DIR_VAR: &str = "LISTENER_CACHE_CRASH_CHILD_DIR";
const OBJECTS: u64 = 10;

fn dn(text: &str) -> Dn {
    Dn::parse(text).unwrap()
}

fn entry(dn_text: &str, uuid: Option<&str>) -> Entry {
    let mut e = Entry::new(dn(dn_text));
    e.insert("objectClass", ["top", "person"]).unwrap();
    e.insert("cn", ["Ünïcode", "second"]).unwrap();
    if let Some(uuid) = uuid {
        e.insert("entryUUID", [uuid]).unwrap();
    }
    e
}

fn object_dn(k: u64) -> String {
    format!("cn=obj{k},dc=x")
}

fn mover_dn(id: u64) -> String {
    format!("cn=mover {id},dc=x")
}

/// One transaction as the child commits it: updates one object, moves another (its uuid
/// index entry changes), and advances last_id.
fn commit_transaction(cache: &Cache, id: u64) {
    let mut w = cache.write().unwrap();
    // Group commit as the listener does it: only every third commit syncs.
    w.set_durable(id.is_multiple_of(3)).unwrap();
    let mut e = entry(
        &object_dn(id % OBJECTS),
        Some(&format!("obj-{}", id % OBJECTS)),
    );
    e.insert("description", [id.to_string()]).unwrap();
    w.put_entry(&e, ["m"]).unwrap();
    let mut moved = entry(&mover_dn(id), Some("mover"));
    moved.insert("description", [id.to_string()]).unwrap();
    w.move_entry(&dn(&mover_dn(id - 1)), &moved, ["m"]).unwrap();
    w.set_last_id(id).unwrap();
    w.commit().unwrap();
}

/// Runs only as the child: commits until killed.
#[test]
fn child_commits_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
        return;
    };
    let cache = Cache::open(dir.as_ref()).unwrap();
    let mut id = cache.read().unwrap().last_id().unwrap();
    loop {
        id += 1;
        commit_transaction(&cache, id);
    }
}

/// The state after transaction `last` must be exactly the one the child built.
fn check(cache: &Cache, last: u64) {
    let r = cache.read().unwrap();
    assert_eq!(r.last_id().unwrap(), last);
    if last == 0 {
        assert_eq!(r.entry_count().unwrap(), 0);
        return;
    }
    for k in 0..OBJECTS.min(last + 1) {
        // The newest transaction ≤ last that wrote object k.
        let Some(id) = (1..=last).rev().find(|id| id % OBJECTS == k) else {
            continue;
        };
        let cached = r.entry(&dn(&object_dn(k))).unwrap().expect("object cached");
        assert_eq!(
            cached.entry.first_str("description"),
            Some(id.to_string().as_str()),
            "object {k} after transaction {last}"
        );
        assert_eq!(
            r.entry_by_uuid(&format!("OBJ-{k}"))
                .unwrap()
                .map(|c| c.entry),
            Some(cached.entry)
        );
    }
    let mover = r.entry_by_uuid("mover").unwrap().expect("mover indexed");
    assert_eq!(mover.entry.dn().as_str(), mover_dn(last));
    assert_eq!(
        mover.entry.first_str("description"),
        Some(last.to_string().as_str())
    );
    let objects = OBJECTS.min(last);
    assert_eq!(r.entry_count().unwrap(), objects + 1, "only one mover");
}

#[test]
fn a_killed_writer_leaves_whole_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let random = RandomState::new();
    let mut last = 0;
    for round in 0..4u64 {
        let mut child = Process::new(&exe)
            .args(["--exact", "child_commits_until_killed", "--test-threads=1"])
            .env(CHILD_DIR_VAR, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = 150 + random.hash_one(round) % 400;
        std::thread::sleep(Duration::from_millis(delay));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child must still be committing when it is killed"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let cache = Cache::open(dir.path()).unwrap();
        let now = cache.read().unwrap().last_id().unwrap();
        assert!(
            now >= last,
            "round {round}: last_id went back from {last} to {now}"
        );
        check(&cache, now);
        last = now;
    }
    assert!(last > 0, "the child never committed");
}
