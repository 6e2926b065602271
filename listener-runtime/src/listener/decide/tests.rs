use std::collections::BTreeSet;

use super::*;

fn dn(text: &str) -> Dn {
    Dn::parse(text).unwrap()
}

fn object(at: &str, uuid: &str, cn: &str) -> Entry {
    let mut e = Entry::new(dn(at));
    e.insert("objectClass", ["organizationalRole"]).unwrap();
    e.insert("cn", [cn]).unwrap();
    e.insert("entryUUID", [uuid]).unwrap();
    e
}

fn cached(e: &Entry) -> CachedEntry {
    CachedEntry {
        entry: e.clone(),
        modules: BTreeSet::from(["printer".to_owned()]),
    }
}

fn txn(id: u64, at: &str, command: Command) -> Transaction {
    Transaction {
        id,
        dn: dn(at),
        command,
    }
}

#[test]
fn modify_of_an_object_still_there_is_an_update() {
    let old = object("cn=test,dc=x", "a", "test");
    let mut new = old.clone();
    new.insert("description", ["changed"]).unwrap();
    let t = txn(3, "CN=Test,dc=x", Command::Modify);
    assert_eq!(
        fetch_by(&t, Some(&cached(&old)), None),
        Some(FetchBy::Uuid("a".into()))
    );
    let step = decide(&t, None, Some(cached(&old)), Some(new.clone())).unwrap();
    assert_eq!(
        step,
        Step::Update {
            old: Some(cached(&old)),
            new
        }
    );
}

#[test]
fn modify_of_an_object_that_moved_since_waits_for_the_move() {
    let old = object("cn=test,cn=visible,dc=x", "a", "test");
    let now = object("cn=test,dc=x", "a", "test");
    let t = txn(3, "cn=test,cn=visible,dc=x", Command::Modify);
    assert_eq!(
        decide(&t, None, Some(cached(&old)), Some(now)).unwrap(),
        Step::Nothing
    );
}

#[test]
fn an_object_ldap_does_not_return_is_deleted() {
    let old = object("cn=test,dc=x", "a", "test");
    let t = txn(3, "cn=test,dc=x", Command::Modify);
    assert_eq!(
        decide(&t, None, Some(cached(&old)), None).unwrap(),
        Step::Delete {
            dn: dn("cn=test,dc=x"),
            old: Some(cached(&old))
        }
    );
    // Not cached and not visible: nothing any module has seen.
    assert_eq!(decide(&t, None, None, None).unwrap(), Step::Nothing);
}

#[test]
fn add_of_a_new_object_is_fetched_by_dn() {
    let new = object("cn=test,dc=x", "a", "test");
    let t = txn(1, "cn=test,dc=x", Command::Add);
    assert_eq!(
        fetch_by(&t, None, None),
        Some(FetchBy::Dn(dn("cn=test,dc=x")))
    );
    assert_eq!(
        decide(&t, None, None, Some(new.clone())).unwrap(),
        Step::Update { old: None, new }
    );
}

#[test]
fn delete_uses_the_cached_state_and_fetches_nothing() {
    let old = object("cn=test,dc=x", "a", "test");
    let t = txn(2, "cn=test,dc=x", Command::Delete);
    assert_eq!(fetch_by(&t, Some(&cached(&old)), None), None);
    // Even when something new exists at the DN now: its own `a` comes later.
    assert_eq!(
        decide(&t, None, Some(cached(&old)), None).unwrap(),
        Step::Delete {
            dn: dn("cn=test,dc=x"),
            old: Some(cached(&old))
        }
    );
}

#[test]
fn rename_is_stashed_then_completed_by_its_add() {
    let old = object("cn=test,dc=x", "a", "test");
    let r = txn(4, "cn=test,dc=x", Command::Rename);
    assert_eq!(fetch_by(&r, Some(&cached(&old)), None), None);
    let Step::Stash(stash) = decide(&r, None, Some(cached(&old)), None).unwrap() else {
        panic!("r is stashed")
    };
    let a = txn(5, "cn=test2,dc=x", Command::Add);
    assert_eq!(
        fetch_by(&a, None, Some(&stash)),
        Some(FetchBy::Uuid("a".into()))
    );
    let fresh = object("cn=test2,dc=x", "a", "test2");
    let step = decide(&a, Some(stash), None, Some(fresh.clone())).unwrap();
    let Step::Move {
        old_dn,
        old: moved,
        patched,
        fresh: Some(f),
    } = step
    else {
        panic!("{step:?}")
    };
    assert_eq!(old_dn, dn("cn=test,dc=x"));
    assert_eq!(moved, cached(&old));
    assert_eq!(f, fresh);
    assert_eq!(patched.dn(), &dn("cn=test2,dc=x"));
    let cns: Vec<&str> = patched.strs("cn").collect();
    assert_eq!(cns, ["test2"], "old RDN value gone, new one there");
}

#[test]
fn a_move_takes_the_new_dn_as_the_server_spells_it() {
    // slapd logs the new DN of a modrdn normalized (reqNewDN), so the notifier's `a`
    // says `cn=unmöglich`; the module sees the object's own spelling.
    let old = object("cn=test,dc=x", "a", "test");
    let stash = Stash {
        id: 1,
        old_dn: dn("cn=test,dc=x"),
        cached: Some(cached(&old)),
    };
    let fresh = object("cn=Unmöglich,dc=x", "a", "Unmöglich");
    let step = decide(
        &txn(2, "cn=unmöglich,dc=x", Command::Add),
        Some(stash),
        None,
        Some(fresh),
    )
    .unwrap();
    let Step::Move { patched, .. } = step else {
        panic!("{step:?}")
    };
    assert_eq!(patched.dn().as_str(), "cn=Unmöglich,dc=x");
    assert_eq!(patched.strs("cn").collect::<Vec<_>>(), ["Unmöglich"]);
}

#[test]
fn a_move_whose_object_moved_on_again_uses_the_patched_state() {
    let old = object("cn=test1,dc=x", "a", "test1");
    let stash = Stash {
        id: 1,
        old_dn: dn("cn=test1,dc=x"),
        cached: Some(cached(&old)),
    };
    let now = object("cn=test3,dc=x", "a", "test3");
    let step = decide(
        &txn(2, "cn=test2,dc=x", Command::Add),
        Some(stash),
        None,
        Some(now),
    )
    .unwrap();
    assert!(matches!(step, Step::Move { fresh: None, .. }), "{step:?}");
}

#[test]
fn a_move_into_a_hidden_subtree_deletes_at_the_old_dn() {
    let old = object("cn=test,cn=visible,dc=x", "a", "test");
    let stash = Stash {
        id: 7,
        old_dn: old.dn().clone(),
        cached: Some(cached(&old)),
    };
    let step = decide(
        &txn(8, "cn=test,cn=hidden,dc=x", Command::Add),
        Some(stash),
        None,
        None,
    )
    .unwrap();
    assert_eq!(
        step,
        Step::Delete {
            dn: dn("cn=test,cn=visible,dc=x"),
            old: Some(cached(&old))
        }
    );
}

#[test]
fn a_move_out_of_a_hidden_subtree_is_an_add() {
    let stash = Stash {
        id: 7,
        old_dn: dn("cn=test,cn=hidden,dc=x"),
        cached: None,
    };
    let a = txn(8, "cn=test,dc=x", Command::Add);
    assert_eq!(
        fetch_by(&a, None, Some(&stash)),
        Some(FetchBy::Dn(dn("cn=test,dc=x")))
    );
    let new = object("cn=test,dc=x", "a", "test");
    assert_eq!(
        decide(&a, Some(stash), None, Some(new.clone())).unwrap(),
        Step::Update { old: None, new }
    );
}

#[test]
fn an_r_without_its_a_is_an_error() {
    let stash = Stash {
        id: 4,
        old_dn: dn("cn=test,dc=x"),
        cached: None,
    };
    for next in [
        txn(5, "cn=test2,dc=x", Command::Modify),
        txn(6, "cn=test2,dc=x", Command::Add),
    ] {
        let e = decide(&next, Some(stash.clone()), None, None).unwrap_err();
        assert!(e.to_string().contains("not its second half"), "{e}");
    }
}

#[test]
fn patch_handles_case_only_and_multi_valued_rdns() {
    let mut old = object("cn=Test,dc=x", "a", "Test");
    old.insert("uid", ["t"]).unwrap();
    let patched = patch(&old, &dn("cn=Test,dc=x"), &dn("cn=test,dc=x"));
    let cns: Vec<&str> = patched.strs("cn").collect();
    assert_eq!(cns, ["test"]);
    let patched = patch(&old, &dn("cn=Test,dc=x"), &dn("cn=n+uid=u,dc=x"));
    assert_eq!(patched.strs("cn").collect::<Vec<_>>(), ["n"]);
    assert_eq!(patched.strs("uid").collect::<Vec<_>>(), ["t", "u"]);
}

#[test]
fn a_replayed_create_that_finds_nothing_becomes_a_removal() {
    let seen = object("cn=a,dc=x", "u1", "a");
    let pending = PendingCreate {
        transaction_id: 7,
        entry: seen.clone(),
        modules: BTreeSet::from(["printer".to_owned()]),
    };
    // The object is gone (or elsewhere): the modules that may have got it get a remove.
    assert_eq!(
        replay_pending_create(Step::Nothing, 7, Some(pending.clone())),
        Step::Delete {
            dn: dn("cn=a,dc=x"),
            old: Some(cached(&seen)),
        }
    );
    // Another transaction's note, no note, or something to do anyway: unchanged.
    assert_eq!(
        replay_pending_create(Step::Nothing, 8, Some(pending.clone())),
        Step::Nothing
    );
    assert_eq!(replay_pending_create(Step::Nothing, 7, None), Step::Nothing);
    let update = Step::Update {
        old: None,
        new: seen.clone(),
    };
    assert_eq!(
        replay_pending_create(update.clone(), 7, Some(pending)),
        update
    );
}
