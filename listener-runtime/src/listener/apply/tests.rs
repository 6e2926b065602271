use std::sync::Mutex;

use super::*;
use crate::api::context::Context;
use crate::api::error::{HandlerError, HandlerResult};
use crate::api::registry::{ApiKind, ModuleInstance, ModuleRegistration, SourceLocation};
use crate::listener::cache::CachedEntry;

static CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// semantics §10's recorder: `(dn, old entryUUID or -, new entryUUID or -, command)`.
fn recorder(
    _ctx: &mut Context,
    dn: &Dn,
    new: Option<&Entry>,
    old: Option<&Entry>,
    command: Command,
) -> HandlerResult {
    let uuid = |e: Option<&Entry>| {
        e.and_then(|e| e.first_str("entryUUID"))
            .unwrap_or("-")
            .to_owned()
    };
    if dn.as_str().contains("explode") {
        return Err(HandlerError::msg("boom"));
    }
    CALLS.lock().unwrap().push(format!(
        "{}({},{},{command})",
        dn.rdn().map_or(String::new(), |r| r.to_string()),
        uuid(old),
        uuid(new)
    ));
    Ok(())
}

static RECORDER: ModuleRegistration = ModuleRegistration {
    name: "recorder",
    description: "test",
    ldap_filter: "(objectClass=*)",
    attributes: &[],
    priority: 50.0,
    handle_every_delete: false,
    blocking: false,
    modrdn: true,
    parallelism: None,
    kind: ApiKind::Classic,
    constructor: || ModuleInstance::Classic(recorder),
    source: SourceLocation {
        item: "recorder",
        file: file!(),
        line: line!(),
    },
};

fn object(dn: &str, uuid: &str, description: &str) -> Entry {
    let mut e = Entry::new(Dn::parse(dn).unwrap());
    e.insert("objectClass", ["organizationalRole"]).unwrap();
    e.insert("cn", [dn.split(['=', ',']).nth(1).unwrap()])
        .unwrap();
    e.insert("description", [description]).unwrap();
    e.insert("entryUUID", [uuid]).unwrap();
    e
}

fn applier() -> Applier {
    Applier::for_tests(&RECORDER)
}

fn take() -> Vec<String> {
    std::mem::take(&mut *CALLS.lock().unwrap())
}

#[tokio::test]
async fn create_modify_move_delete_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut a = applier();
    let test = object("cn=test,dc=x", "a", "one");

    let step = Step::Update {
        old: None,
        new: test.clone(),
    };
    a.apply(&cache, 1, Command::Add, step).await.unwrap();
    let cached = apply_cached(&cache, "cn=test,dc=x");
    assert!(cached.modules.contains("recorder"));

    let changed = object("cn=test,dc=x", "a", "two");
    let step = Step::Update {
        old: Some(cached.clone()),
        new: changed.clone(),
    };
    a.apply(&cache, 2, Command::Modify, step).await.unwrap();

    let moved = object("cn=test2,dc=x", "a", "two");
    let old = apply_cached(&cache, "cn=test,dc=x");
    let patched = super::super::decide::patch(&old.entry, old.entry.dn(), moved.dn());
    let step = Step::Move {
        old_dn: old.entry.dn().clone(),
        old,
        patched,
        fresh: Some(moved.clone()),
    };
    a.apply(&cache, 4, Command::Add, step).await.unwrap();
    assert!(cached_at(&cache, "cn=test,dc=x").is_none());
    assert!(
        apply_cached(&cache, "cn=test2,dc=x")
            .modules
            .contains("recorder")
    );

    let old = apply_cached(&cache, "cn=test2,dc=x");
    let step = Step::Delete {
        dn: moved.dn().clone(),
        old: Some(old),
    };
    a.apply(&cache, 5, Command::Delete, step).await.unwrap();
    assert!(cached_at(&cache, "cn=test2,dc=x").is_none());
    assert_eq!(
        take(),
        [
            "cn=test(-,a,a)",
            "cn=test(a,a,m)",
            "cn=test(a,-,r)",
            "cn=test2(-,a,a)",
            "cn=test2(a,-,d)"
        ]
    );

    // A module that fails every attempt: the change is recorded, the module not
    // registered, and the transaction still commits.
    let bad = object("cn=explode,dc=x", "b", "x");
    let applied = a
        .apply(
            &cache,
            6,
            Command::Add,
            Step::Update {
                old: None,
                new: bad,
            },
        )
        .await
        .unwrap();
    assert_eq!(applied.failures, 1);
    let r = cache.read().unwrap();
    assert_eq!(r.last_id().unwrap(), 6);
    let failed = r.failed_events("recorder").unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1.transaction_id, 6);
    assert_eq!(failed[0].1.attempts, 2);
    assert_eq!(failed[0].1.error, "boom");
    let cached = r
        .entry(&Dn::parse("cn=explode,dc=x").unwrap())
        .unwrap()
        .unwrap();
    assert!(cached.modules.is_empty());
}

fn cached_at(cache: &Cache, dn: &str) -> Option<CachedEntry> {
    cache
        .read()
        .unwrap()
        .entry(&Dn::parse(dn).unwrap())
        .unwrap()
}

fn apply_cached(cache: &Cache, dn: &str) -> CachedEntry {
    cached_at(cache, dn).unwrap_or_else(|| panic!("{dn} cached"))
}

/// Like `recorder`, without recording (the tests run in parallel and share CALLS).
fn replica(
    _ctx: &mut Context,
    dn: &Dn,
    _new: Option<&Entry>,
    _old: Option<&Entry>,
    _command: Command,
) -> HandlerResult {
    if dn.as_str().contains("explode") {
        return Err(HandlerError::msg("boom"));
    }
    Ok(())
}

static BLOCKING: ModuleRegistration = ModuleRegistration {
    name: "replica",
    description: "test",
    ldap_filter: "(objectClass=*)",
    attributes: &[],
    priority: 0.0,
    handle_every_delete: false,
    blocking: true,
    modrdn: true,
    parallelism: None,
    kind: ApiKind::Classic,
    constructor: || ModuleInstance::Classic(replica),
    source: SourceLocation {
        item: "replica",
        file: file!(),
        line: line!(),
    },
};

#[tokio::test]
async fn a_failing_blocking_module_halts_with_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut a = Applier::for_tests(&BLOCKING);
    let fine = object("cn=fine,dc=x", "f", "x");
    a.apply(
        &cache,
        1,
        Command::Add,
        Step::Update {
            old: None,
            new: fine,
        },
    )
    .await
    .unwrap();
    let bad = object("cn=explode,dc=x", "b", "x");
    let applied = a
        .apply(
            &cache,
            2,
            Command::Add,
            Step::Update {
                old: None,
                new: bad,
            },
        )
        .await
        .unwrap();
    let Halted { module, error } = applied.halted.expect("halted");
    assert_eq!((module.as_str(), error.as_str()), ("replica", "boom"));
    let r = cache.read().unwrap();
    assert_eq!(r.last_id().unwrap(), 1, "the transaction is not committed");
    assert_eq!(
        r.failed_count("replica").unwrap(),
        0,
        "no failed event: it is retried"
    );
    assert!(
        r.entry(&Dn::parse("cn=explode,dc=x").unwrap())
            .unwrap()
            .is_none()
    );
}
