//! `run --replicate-to`: the built-in `replication` module keeps a replica slapd (the
//! harness's, set up as UCS sets up its replicas) a faithful copy of the primary: after
//! adds, modifies, renames, moves (a subtree's too), deletes, a delete and re-create at
//! one DN, group membership changes, binary values and non-ASCII and escaped DNs, the
//! two directories hold the same entries with the same attributes, operational ones
//! included (all but those a replica keeps itself); membership changes go as value
//! deltas; a refused change holds processing and is kept in failed.ldif; selective
//! replication; convergence after kill -9 of the listener.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ldap3::{Scope, SearchEntry};
use listener_core::replica::is_replicated;
use tests::Slapd;
use tests::domain::Domain;

/// A directory's entries: DN (lower-cased) → attribute (lower-cased) → values.
type Dump = BTreeMap<String, BTreeMap<String, BTreeSet<Vec<u8>>>>;

/// The dump of `slapd`, read as its rootDN.
async fn dump_of(slapd: &Slapd) -> Dump {
    let mut ldap = slapd.bind(&slapd.root_dn(), slapd.root_password()).await;
    let base = slapd.base();
    let (entries, _) = ldap
        .search(base, Scope::Subtree, "(objectClass=*)", vec!["*", "+"])
        .await
        .unwrap()
        .success()
        .unwrap();
    let mut dump = Dump::new();
    for raw in entries {
        let entry = SearchEntry::construct(raw);
        let mut attrs: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
        let text = entry.attrs.into_iter().map(|(a, vs)| {
            (
                a,
                vs.into_iter().map(String::into_bytes).collect::<Vec<_>>(),
            )
        });
        for (attr, values) in text.chain(entry.bin_attrs) {
            if is_replicated(&attr) {
                attrs.entry(attr.to_lowercase()).or_default().extend(values);
            }
        }
        dump.insert(entry.dn.to_lowercase(), attrs);
    }
    dump
}

/// Waits until the replica's dump equals the primary's; the last pair of dumps.
async fn converge(domain: &Domain, replica: &Slapd) -> (Dump, Dump) {
    let primary = &domain.slapd;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let want = dump_of(primary).await;
        let have = dump_of(replica).await;
        if want == have || std::time::Instant::now() > deadline {
            return (want, have);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_same(want: &Dump, have: &Dump) {
    let missing: Vec<&String> = want.keys().filter(|dn| !have.contains_key(*dn)).collect();
    let extra: Vec<&String> = have.keys().filter(|dn| !want.contains_key(*dn)).collect();
    assert!(missing.is_empty(), "missing on the replica: {missing:?}");
    assert!(extra.is_empty(), "only on the replica: {extra:?}");
    for (dn, attrs) in want {
        let theirs = &have[dn];
        for (attr, values) in attrs.iter().chain(theirs) {
            let text = |v: Option<&BTreeSet<Vec<u8>>>| -> Vec<String> {
                v.into_iter()
                    .flatten()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect()
            };
            assert!(
                attrs.get(attr) == theirs.get(attr),
                "{dn}: {attr}: primary {:?}, replica {:?} ({} values)",
                text(attrs.get(attr)),
                text(theirs.get(attr)),
                values.len()
            );
        }
    }
}

const PHOTO: &str = "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_holds_what_the_primary_holds_after_a_mixed_workload() {
    let (mut domain, replica) = domain_and_replica();
    start_replicating(&mut domain, &replica, &[]);
    domain.barrier();

    let base = domain.slapd.base().to_owned();
    let members: String = (0..50)
        .map(|i| format!("member: cn=m{i},{base}\n"))
        .collect();
    let workload = format!(
        "dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: cn=J\u{f6}rg M\u{fc}ller,ou=people,{base}\nobjectClass: inetOrgPerson\ncn: J\u{f6}rg M\u{fc}ller\nsn: M\u{fc}ller\njpegPhoto:: {PHOTO}\n\n\
         dn: cn=a\\,b,ou=people,{base}\nobjectClass: organizationalRole\ncn: a,b\n\n\
         dn: cn=r1,{base}\nobjectClass: organizationalRole\ncn: r1\ndescription: one\n\n\
         dn: ou=dept,{base}\nobjectClass: organizationalUnit\nou: dept\n\n\
         dn: cn=c1,ou=dept,{base}\nobjectClass: organizationalRole\ncn: c1\n\n\
         dn: ou=moved,{base}\nobjectClass: organizationalUnit\nou: moved\n\n\
         dn: cn=g,{base}\nobjectClass: groupOfNames\ncn: g\n{members}\n\
         dn: cn=r1,{base}\nchangetype: modify\nreplace: description\ndescription: two\n-\nadd: roleOccupant\nroleOccupant: cn=x,{base}\n\n\
         dn: cn=r1,{base}\nchangetype: modrdn\nnewrdn: cn=r1b\ndeleteoldrdn: 1\n\n\
         dn: cn=r1b,{base}\nchangetype: modrdn\nnewrdn: cn=r1b\ndeleteoldrdn: 0\nnewsuperior: ou=moved,{base}\n\n\
         dn: ou=dept,{base}\nchangetype: modrdn\nnewrdn: ou=dept\ndeleteoldrdn: 0\nnewsuperior: ou=moved,{base}\n\n\
         dn: cn=c1,ou=dept,ou=moved,{base}\nchangetype: modify\nreplace: description\ndescription: moved with its parent\n\n\
         dn: cn=a\\,b,ou=people,{base}\nchangetype: delete\n\n\
         dn: cn=phoenix,{base}\nobjectClass: organizationalRole\ncn: phoenix\ndescription: first\n\n\
         dn: cn=phoenix,{base}\nchangetype: delete\n\n\
         dn: cn=phoenix,{base}\nobjectClass: organizationalRole\ncn: phoenix\ndescription: second\n"
    );
    domain.slapd.ldapmodify(&workload).unwrap();
    domain.barrier();
    // The listener replicates the state it fetches: the group's change comes after the
    // group is on the replica.
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: cn=g,{base}\nchangetype: modify\nadd: member\nmember: cn=m50,{base}\n-\ndelete: member\nmember: cn=m0,{base}\n"
        ))
        .unwrap();
    domain.barrier();

    let (want, have) = converge(&domain, &replica).await;
    assert!(want.contains_key(&format!("cn=r1b,ou=moved,{base}")));
    assert!(want.contains_key(&format!("cn=c1,ou=dept,ou=moved,{base}")));
    assert_same(&want, &have);
    assert_eq!(domain.status()["modules"][0]["name"], "replication");

    // The group's one-member changes reached the replica as value deltas, as its
    // accesslog shows: one value added, one deleted, none of the other 49 rewritten.
    let group = format!("cn=g,{base}");
    let modifies = replica_modifies(&replica, &group).await;
    let member_changes: BTreeSet<&String> = modifies
        .iter()
        .flatten()
        .filter(|m| m.to_lowercase().starts_with("member:"))
        .collect();
    let expected = [
        format!("member:+ cn=m50,{base}"),
        format!("member:- cn=m0,{base}"),
    ];
    assert_eq!(
        member_changes,
        expected.iter().collect::<BTreeSet<_>>(),
        "{modifies:?}"
    );

    // `verify --replica` agrees, and sees a change made on the replica alone.
    let verify = |domain: &Domain| {
        let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
        // The primary's connection arguments of `run`, without `run`, the notifier, the
        // cache directory and `--idle`.
        args.truncate(9);
        args[0] = "verify".to_owned();
        args.extend([
            "--replica".to_owned(),
            replica.url().to_owned(),
            "--replica-bind-password-file".to_owned(),
            replica.password_file().to_string_lossy().into_owned(),
        ]);
        std::process::Command::new(tests::listener_binary!())
            .args(&args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = verify(&domain);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("0 differences"), "{text}");
    replica
        .ldapmodify(&format!(
            "dn: cn=phoenix,{base}\nchangetype: modify\nreplace: description\ndescription: local\n"
        ))
        .unwrap();
    let out = verify(&domain);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "differs: cn=phoenix,{base}: description, entrycsn"
        )),
        "{text}"
    );
}

/// The `reqMod` values of each modify of `dn` in the replica's accesslog, in order.
async fn replica_modifies(replica: &Slapd, dn: &str) -> Vec<Vec<String>> {
    let mut ldap = replica
        .bind(&replica.root_dn(), replica.root_password())
        .await;
    let filter = format!("(&(reqType=modify)(reqDN={dn}))");
    let (entries, _) = ldap
        .search(
            "cn=accesslog",
            Scope::Subtree,
            &filter,
            vec!["reqStart", "reqMod"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let mut found: Vec<(String, Vec<String>)> = entries
        .into_iter()
        .map(SearchEntry::construct)
        .map(|e| {
            let start = e.attrs.get("reqStart").and_then(|v| v.first().cloned());
            (
                start.unwrap_or_default(),
                e.attrs.get("reqMod").cloned().unwrap_or_default(),
            )
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, mods)| mods).collect()
}

/// Sets the replica's main database read-only (it then refuses even its updatedn) or
/// writable again, over `cn=config`.
fn set_read_only(replica: &Slapd, on: bool) {
    let value = if on { "TRUE" } else { "FALSE" };
    replica
        .ldapmodify_as_root(&format!(
            "dn: olcDatabase={{2}}mdb,cn=config\nchangetype: modify\nreplace: olcReadOnly\nolcReadOnly: {value}\n"
        ))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_replica_refuses_holds_processing_until_the_replica_takes_it() {
    let (mut domain, replica) = domain_and_replica();
    start_replicating(&mut domain, &replica, &[]);
    domain.barrier();

    set_read_only(&replica, true);
    let base = domain.slapd.base().to_owned();
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: cn=refused,{base}\nobjectClass: organizationalRole\ncn: refused\n\n\
             dn: cn=after,{base}\nobjectClass: organizationalRole\ncn: after\n"
        ))
        .unwrap();
    let halted = wait_halted(&domain, "cn=refused").await;
    assert_eq!(halted["module"], "replication", "{halted}");
    // Retried a few times meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let error = halted["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("dn: cn=refused,{base}")), "{error}");
    assert!(error.contains("changetype: add"), "{error}");
    // Nothing after the refused change went past it: the other modules have not seen
    // `cn=after` (nor `cn=refused`).
    assert!(
        !domain.calls().iter().any(|c| c.contains("cn=after")),
        "a later change went past the held one"
    );

    // …and failed.ldif holds it once (however often it was retried), only for its owner.
    let failed = domain.cache_dir().join("failed.ldif");
    let text = std::fs::read_to_string(&failed).unwrap();
    assert_eq!(
        text.matches(&format!("dn: cn=refused,{base}\nchangetype: add\n"))
            .count(),
        1,
        "{text}"
    );
    assert!(text.starts_with("# "), "{text}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&failed).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // `failed skip`: the held change becomes the module's failed event and processing
    // goes on, to the next change the (still read-only) replica refuses.
    let out = tool(&domain, &["failed", "skip"]);
    assert!(out.status.success(), "{out:?}");
    let halted = wait_halted(&domain, "cn=after").await;
    assert_eq!(halted["module"], "replication", "{halted}");
    assert!(
        domain.calls().iter().any(|c| c.contains("cn=refused")),
        "the other modules got the skipped change"
    );
    // `failed retry` with the replica writable again: at once, not at the next retry.
    set_read_only(&replica, false);
    let out = tool(&domain, &["failed", "retry"]);
    assert!(out.status.success(), "{out:?}");
    domain.barrier();
    assert!(domain.status()["halted"].is_null());
    let have = dump_of(&replica).await;
    assert!(have.contains_key(&format!("cn=after,{base}")));
    assert!(
        !have.contains_key(&format!("cn=refused,{base}")),
        "it was skipped"
    );
    let out = tool(&domain, &["failed", "list", "replication", "--json"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&format!("cn=refused,{base}")), "{listed}");

    // Replayed, the skipped change reaches the replica, which is then a faithful copy.
    let out = tool(&domain, &["failed", "replay", "replication"]);
    assert!(out.status.success(), "{out:?}");
    let (want, have) = converge(&domain, &replica).await;
    assert!(have.contains_key(&format!("cn=refused,{base}")));
    assert_same(&want, &have);
}

/// Runs the listener binary's tool `command` (`failed`, …) on `domain`'s cache
/// directory, with `args` after it.
fn tool(domain: &Domain, command_and_args: &[&str]) -> std::process::Output {
    let (command, args) = command_and_args.split_first().unwrap();
    std::process::Command::new(tests::listener_binary!())
        .arg(command)
        .arg("--cache-dir")
        .arg(domain.cache_dir())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Waits until processing is halted at a change whose LDIF mentions `dn_part`.
async fn wait_halted(domain: &Domain, dn_part: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = domain.status();
        let halted = &status["halted"];
        if halted["error"]
            .as_str()
            .is_some_and(|e| e.contains(dn_part))
        {
            return halted.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not halted at {dn_part}: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A primary with its notifier, and a replica of it (the listener not started).
fn domain_and_replica() -> (Domain, Slapd) {
    let domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let replica = Slapd::builder()
        .replica_of(domain.slapd.url())
        .start()
        .unwrap();
    (domain, replica)
}

/// Starts the listener of `domain` replicating into `replica`, with `extra` arguments.
fn start_replicating(domain: &mut Domain, replica: &Slapd, extra: &[&str]) {
    let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
    args.extend([
        "--replicate-to".to_owned(),
        replica.url().to_owned(),
        "--replica-bind-password-file".to_owned(),
        replica.password_file().to_string_lossy().into_owned(),
    ]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    domain.start_listener_with(&args).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selective_replication_copies_the_matching_objects_and_their_parents() {
    let (mut domain, replica) = domain_and_replica();
    start_replicating(
        &mut domain,
        &replica,
        &["--replication-filter", "(description=replicate)"],
    );
    domain.barrier();
    let base = domain.slapd.base().to_owned();
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: ou=a,{base}\nobjectClass: organizationalUnit\nou: a\n\n\
             dn: ou=b,ou=a,{base}\nobjectClass: organizationalUnit\nou: b\n\n\
             dn: cn=in,ou=b,ou=a,{base}\nobjectClass: organizationalRole\ncn: in\ndescription: replicate\n\n\
             dn: cn=out,ou=b,ou=a,{base}\nobjectClass: organizationalRole\ncn: out\ndescription: keep here\n\n\
             dn: cn=leaving,{base}\nobjectClass: organizationalRole\ncn: leaving\ndescription: replicate\n"
        ))
        .unwrap();
    domain.barrier();
    // An object that stops matching leaves the replica.
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: cn=leaving,{base}\nchangetype: modify\nreplace: description\ndescription: no more\n"
        ))
        .unwrap();
    domain.barrier();

    let have = dump_of(&replica).await;
    let want = dump_of(&domain.slapd).await;
    let dns: BTreeSet<&str> = have.keys().map(String::as_str).collect();
    let expected: BTreeSet<String> = [
        base.clone(),
        format!("ou=a,{base}"),
        format!("ou=b,ou=a,{base}"),
        format!("cn=in,ou=b,ou=a,{base}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        dns,
        expected.iter().map(String::as_str).collect(),
        "{have:?}"
    );
    // What is there is a faithful copy (the parents as the primary has them).
    for dn in &expected {
        if *dn != base {
            assert_eq!(want.get(dn), have.get(dn), "{dn}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_converges_after_kill_9_of_the_listener_mid_stream() {
    let (mut domain, replica) = domain_and_replica();
    start_replicating(&mut domain, &replica, &[]);
    domain.barrier();
    let base = domain.slapd.base().to_owned();
    let mut ldif = String::new();
    for i in 0..300 {
        ldif.push_str(&format!(
            "dn: cn=k{i},{base}\nobjectClass: organizationalRole\ncn: k{i}\ndescription: v1\n\n"
        ));
    }
    for i in (0..300).step_by(3) {
        ldif.push_str(&format!(
            "dn: cn=k{i},{base}\nchangetype: modify\nreplace: description\ndescription: v2\n\n"
        ));
    }
    for i in (0..300).step_by(7) {
        ldif.push_str(&format!(
            "dn: cn=k{i},{base}\nchangetype: modrdn\nnewrdn: cn=k{i}m\ndeleteoldrdn: 1\n\n"
        ));
    }
    for i in (1..300).step_by(11) {
        if i % 7 != 0 {
            ldif.push_str(&format!("dn: cn=k{i},{base}\nchangetype: delete\n\n"));
        }
    }
    // Written in slices, with the listener killed between them while it processes.
    let records: Vec<&str> = ldif
        .split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .collect();
    assert!(records.len() > 400);
    for (n, slice) in records.chunks(60).enumerate() {
        domain.slapd.ldapmodify(&slice.join("\n\n")).unwrap();
        tokio::time::sleep(Duration::from_millis(50 + 30 * (n as u64 % 3))).await;
        if let Some(listener) = domain.listener() {
            listener.kill9();
        }
        start_replicating(&mut domain, &replica, &[]);
    }
    domain.barrier();
    let (want, have) = converge(&domain, &replica).await;
    assert_same(&want, &have);
}

/// The add of an object new to the listener skips looking for it on the replica only in
/// transactions no earlier listener can have written (the replication mark, semantics
/// §8). Here a listener "crashed" after writing an add to the replica and before the
/// move that followed: the replica holds the object at its first DN, and the listener,
/// applying both again, meets it as new at its second. Added there without a lookup,
/// the replica would hold it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_applied_again_after_a_crash_finds_the_object_the_crashed_listener_wrote() {
    let (mut domain, replica) = domain_and_replica();
    start_replicating(&mut domain, &replica, &[]);
    domain.barrier();
    assert!(domain.stop_listener());
    // A clean stop leaves the mark at the last transaction: nothing after it is a replay.
    let mark = domain.cache_dir().join("replication.mark");
    let stopped_at = std::fs::read_to_string(&mark).unwrap();
    assert_eq!(stopped_at.trim(), domain.notifier_id().to_string());

    let base = domain.slapd.base().to_owned();
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: cn=first,{base}\nobjectClass: organizationalRole\ncn: first\ndescription: d\n"
        ))
        .unwrap();
    let primary = dump_of(&domain.slapd).await;
    let first = &primary[&format!("cn=first,{base}")];
    let value = |attr: &str| String::from_utf8(first[attr].first().unwrap().clone()).unwrap();
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: cn=first,{base}\nchangetype: modrdn\nnewrdn: cn=second\ndeleteoldrdn: 1\n"
        ))
        .unwrap();
    // What the crashed listener wrote: the add, not the move; and its mark, persisted
    // before the add was sent.
    replica
        .ldapmodify(&format!(
            "dn: cn=first,{base}\nobjectClass: organizationalRole\ncn: first\ndescription: d\n\
             entryUUID: {}\nentryCSN: {}\n",
            value("entryuuid"),
            value("entrycsn")
        ))
        .unwrap();
    std::fs::write(&mark, format!("{}\n", domain.notifier_id() + 10_000)).unwrap();

    start_replicating(&mut domain, &replica, &[]);
    domain.barrier();
    let (want, have) = converge(&domain, &replica).await;
    assert_same(&want, &have);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_schema_on_the_primary_reaches_the_replica_before_the_entry_that_uses_it() {
    let (mut domain, replica) = domain_and_replica();
    start_replicating(
        &mut domain,
        &replica,
        &["--replica-config-uri", replica.ldapi_url()],
    );
    domain.barrier();
    domain
        .slapd
        .ldapmodify_as_root(
            "dn: cn=listenertest,cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: listenertest\n\
             olcAttributeTypes: ( 1.3.6.1.4.1.99999.7.1 NAME 'listenerTestAttr' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n\
             olcAttributeTypes: ( 1.3.6.1.4.1.99999.7.2 NAME 'listenerTestSub' SUP listenerTestAttr )\n\
             olcObjectClasses: ( 1.3.6.1.4.1.99999.7.3 NAME 'listenerTestObject' SUP top AUXILIARY MAY ( listenerTestAttr $ listenerTestSub ) )\n",
        )
        .unwrap();
    let base = domain.slapd.base().to_owned();
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: cn=schemed,{base}\nobjectClass: organizationalRole\nobjectClass: listenerTestObject\n\
             cn: schemed\nlistenerTestAttr: hello\nlistenerTestSub: world\n"
        ))
        .unwrap();
    domain.barrier();
    assert!(domain.status()["halted"].is_null());
    let (want, have) = converge(&domain, &replica).await;
    let dn = format!("cn=schemed,{base}");
    assert_eq!(
        have.get(&dn).and_then(|a| a.get("listenertestsub")),
        Some(&BTreeSet::from([b"world".to_vec()])),
        "{:?}",
        have.get(&dn)
    );
    assert_same(&want, &have);
}

/// The schema `listenerTestObject` (an auxiliary class with `listenerTestAttr`), for a
/// slapd's `cn=config`.
const TEST_SCHEMA: &str = "dn: cn=listenertest,cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: listenertest\n\
     olcAttributeTypes: ( 1.3.6.1.4.1.99999.7.1 NAME 'listenerTestAttr' EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n\
     olcObjectClasses: ( 1.3.6.1.4.1.99999.7.3 NAME 'listenerTestObject' SUP top AUXILIARY MAY listenerTestAttr )\n";

/// Asserts that the other modules got a call of each of `cn=<prefix>0…<count-1>,<base>`.
fn assert_called(calls: &[String], prefix: &str, count: usize, base: &str) {
    for i in 0..count {
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with(&format!("cn={prefix}{i},{base}\t"))),
            "{prefix}{i} did not reach the other modules"
        );
    }
}

/// Writes run several at a time (group commit): one refused in the middle of a stream
/// (the replica lacks the schema it needs, and may not follow the primary's) holds
/// processing at its own transaction; the other modules have seen every change before
/// it and none after; once the replica can take it, everything arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refused_amid_many_holds_processing_at_its_own_change() {
    let (mut domain, replica) = domain_and_replica();
    start_replicating(&mut domain, &replica, &[]);
    domain.barrier();
    domain.slapd.ldapmodify_as_root(TEST_SCHEMA).unwrap();
    let base = domain.slapd.base().to_owned();
    let role = |name: String| {
        format!("dn: cn={name},{base}\nobjectClass: organizationalRole\ncn: {name}\n\n")
    };
    let mut ldif: String = (0..40).map(|i| role(format!("before{i}"))).collect();
    ldif.push_str(&format!(
        "dn: cn=refused,{base}\nobjectClass: organizationalRole\nobjectClass: listenerTestObject\n\
         cn: refused\nlistenerTestAttr: needs schema\n\n"
    ));
    ldif.extend((0..40).map(|i| role(format!("after{i}"))));
    domain.slapd.ldapmodify(&ldif).unwrap();

    let halted = wait_halted(&domain, "cn=refused").await;
    assert_eq!(halted["module"], "replication", "{halted}");
    let calls = domain.calls();
    assert_called(&calls, "before", 40, &base);
    assert!(
        !calls
            .iter()
            .any(|c| c.contains("cn=after") || c.contains("cn=refused")),
        "a change after the held one reached the other modules"
    );
    let have = dump_of(&replica).await;
    for i in 0..40 {
        assert!(have.contains_key(&format!("cn=before{i},{base}")));
    }

    // The replica learns the schema; `failed retry` writes the held change at once.
    replica.ldapmodify_as_root(TEST_SCHEMA).unwrap();
    let out = tool(&domain, &["failed", "retry"]);
    assert!(out.status.success(), "{out:?}");
    domain.barrier();
    assert!(domain.status()["halted"].is_null());
    let calls = domain.calls();
    assert_called(&calls, "after", 40, &base);
    let (want, have) = converge(&domain, &replica).await;
    assert_same(&want, &have);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_converges_after_kill_9_of_its_slapd_mid_stream() {
    let (mut domain, mut replica) = domain_and_replica();
    start_replicating(&mut domain, &replica, &[]);
    domain.barrier();
    let base = domain.slapd.base().to_owned();
    for round in 0..3 {
        let ldif: String = (0..100)
            .map(|i| {
                format!(
                    "dn: cn=s{round}-{i},{base}\nobjectClass: organizationalRole\ncn: s{round}-{i}\n\n"
                )
            })
            .collect();
        domain.slapd.ldapmodify(&ldif).unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        // A crash of the replica while the listener writes to it: the writes fail and
        // are retried (the module is blocking) until it is back.
        replica.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        replica.restart().unwrap();
    }
    domain.barrier();
    let (want, have) = converge(&domain, &replica).await;
    assert_same(&want, &have);
}

/// The workload: 5,000 changes of every kind over 1,000 users in 10 units and
/// two groups of 1,000 members.
fn mixed_workload(base: &str) -> (String, String, String, usize) {
    let mut creates = String::new();
    let push = |text: &mut String, record: String| {
        text.push_str(&record);
        text.push('\n');
    };
    let records = |text: &str| text.split("\n\n").filter(|r| !r.trim().is_empty()).count();
    for u in 0..10 {
        push(
            &mut creates,
            format!("dn: ou=u{u},{base}\nobjectClass: organizationalUnit\nou: u{u}\n"),
        );
    }
    let user = |i: usize| -> (String, String) {
        // Some names need escaping, some are not ASCII.
        let cn = match i % 10 {
            3 => format!("user, {i}"),
            7 => format!("J\u{f6}rg {i}"),
            _ => format!("user{i}"),
        };
        let rdn = cn.replace(',', "\\,");
        (cn, format!("cn={rdn},ou=u{},{base}", i % 10))
    };
    for i in 0..1000 {
        let (cn, dn) = user(i);
        let photo = if i % 5 == 0 {
            format!("jpegPhoto:: {PHOTO}\n")
        } else {
            String::new()
        };
        push(
            &mut creates,
            format!("dn: {dn}\nobjectClass: inetOrgPerson\ncn: {cn}\nsn: s{i}\n{photo}"),
        );
    }
    for g in 0..2 {
        let members: String = (0..1000)
            .map(|i| format!("member: {}\n", user(i).1))
            .collect();
        push(
            &mut creates,
            format!("dn: cn=group{g},{base}\nobjectClass: groupOfNames\ncn: group{g}\n{members}"),
        );
    }
    let mut changes = String::new();
    for n in 0..2400 {
        let (_, dn) = user(n % 1000);
        push(
            &mut changes,
            format!("dn: {dn}\nchangetype: modify\nreplace: description\ndescription: d{n}\n"),
        );
    }
    for n in 0..400 {
        let (_, member) = user(n);
        let op = if n % 2 == 0 { "delete" } else { "add" };
        let member = if op == "add" {
            format!("cn=new{n},{base}")
        } else {
            member
        };
        push(
            &mut changes,
            format!(
                "dn: cn=group{},{base}\nchangetype: modify\n{op}: member\nmember: {member}\n",
                n % 2
            ),
        );
    }
    // Renames (users 100-299) and moves to another unit (300-499).
    for i in 100..300 {
        let (_, dn) = user(i);
        push(
            &mut changes,
            format!("dn: {dn}\nchangetype: modrdn\nnewrdn: cn=renamed{i}\ndeleteoldrdn: 1\n"),
        );
    }
    for i in 300..500 {
        let (_, dn) = user(i);
        let rdn = dn.split(",ou=").next().unwrap().to_owned();
        push(
            &mut changes,
            format!(
                "dn: {dn}\nchangetype: modrdn\nnewrdn: {rdn}\ndeleteoldrdn: 0\nnewsuperior: ou=u{},{base}\n",
                (i + 1) % 10
            ),
        );
    }
    // Subtree moves: units 8 and 9 with their users, under unit 0, once the changes
    // above are processed (see the test), then changes inside the moved subtrees.
    let mut subtree = String::new();
    for u in [8, 9] {
        push(
            &mut subtree,
            format!(
                "dn: ou=u{u},{base}\nchangetype: modrdn\nnewrdn: ou=u{u}\ndeleteoldrdn: 0\nnewsuperior: ou=u0,{base}\n"
            ),
        );
    }
    // Deletes (users 500-699, of units 0-7), and delete then re-create at one DN (700-849).
    for i in (500..700).filter(|i| i % 10 < 8) {
        let (_, dn) = user(i);
        push(&mut changes, format!("dn: {dn}\nchangetype: delete\n"));
    }
    for i in (700..850).filter(|i| i % 10 < 8) {
        let (cn, dn) = user(i);
        push(&mut changes, format!("dn: {dn}\nchangetype: delete\n"));
        push(
            &mut changes,
            format!("dn: {dn}\nobjectClass: inetOrgPerson\ncn: {cn}\nsn: again{i}\n"),
        );
    }
    for i in (0..100).filter(|i| i % 10 >= 8) {
        push(
            &mut subtree,
            format!(
                "dn: cn=user{i},ou=u{},ou=u0,{base}\nchangetype: modify\nreplace: title\ntitle: moved\n",
                i % 10
            ),
        );
    }
    let so_far = records(&creates) + records(&changes) + records(&subtree);
    for n in 0..5000usize.saturating_sub(so_far) {
        // Users 850-999 of the units that did not move.
        let unmoved: Vec<usize> = (850..1000).filter(|i| i % 10 < 8).collect();
        let (_, dn) = user(unmoved[n % unmoved.len()]);
        push(
            &mut changes,
            format!("dn: {dn}\nchangetype: modify\nreplace: title\ntitle: t{n}\n"),
        );
    }
    let count = records(&creates) + records(&changes) + records(&subtree);
    (creates, changes, subtree, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replica_equals_the_primary_after_5000_mixed_changes() {
    let (mut domain, replica) = domain_and_replica();
    start_replicating(&mut domain, &replica, &[]);
    domain.barrier();
    let base = domain.slapd.base().to_owned();
    let (creates, changes, subtree, count) = mixed_workload(&base);
    assert!(count >= 5000, "{count}");
    domain.slapd.ldapmodify(&creates).unwrap();
    domain.barrier();
    domain.slapd.ldapmodify(&changes).unwrap();
    domain.barrier();
    // Not earlier: a change of an object whose subtree is moved before the listener
    // processes the change does not reach the modules (the listener finds the object
    // elsewhere and waits for a move of its own; a known limitation).
    domain.slapd.ldapmodify(&subtree).unwrap();
    domain.barrier();
    let (want, have) = converge(&domain, &replica).await;
    assert!(want.len() > 800, "{}", want.len());
    assert!(want.contains_key(&format!("cn=user88,ou=u8,ou=u0,{base}")));
    assert_same(&want, &have);
}

/// The first start fills the replica many objects at a time (parents before their
/// children) with everything the primary already holds, operational attributes
/// included, and processing goes on from there: a change after the fill reaches the
/// replica too. A replica object of another entryUUID at one of the DNs is overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_fills_the_replica_with_what_the_primary_holds() {
    let base = "dc=example,dc=com";
    let mut preload = String::new();
    for ou in 0..5 {
        preload.push_str(&format!(
            "dn: ou=u{ou},{base}\nobjectClass: organizationalUnit\nou: u{ou}\n\n"
        ));
        for i in 0..60 {
            preload.push_str(&format!(
                "dn: cn=r{i},ou=u{ou},{base}\nobjectClass: organizationalRole\ncn: r{i}\ndescription: {ou}/{i}\n\n"
            ));
        }
    }
    let mut domain = Domain::start(
        tests::listener_binary!(),
        Slapd::builder().entries(&preload),
    )
    .unwrap();
    let replica = Slapd::builder()
        .replica_of(domain.slapd.url())
        .entries(&format!(
            "dn: ou=u0,{base}\nobjectClass: organizationalUnit\nou: u0\ndescription: the replica's own\n"
        ))
        .start()
        .unwrap();
    let args: Vec<String> = [
        "--replicate-to",
        replica.url(),
        "--replica-bind-password-file",
        &replica.password_file().to_string_lossy(),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    domain
        .start_listener_with_log_and("listener_runtime::replication=info", &args)
        .unwrap();
    domain.barrier();
    let (want, have) = converge(&domain, &replica).await;
    // The fill added every object but the two the replica had (the base, and ou=u0
    // under another entryUUID, which their creates overwrote).
    let log = domain.log();
    assert!(
        log.iter().any(|l| l.contains("the replica is filled")
            && l.contains("seen=306")
            && l.contains("added=304")),
        "{log:#?}"
    );
    // The base, the barrier's entry, 5 units of 60 roles.
    assert_eq!(want.len(), 2 + 5 + 5 * 60);
    assert_same(&want, &have);

    domain
        .slapd
        .ldapmodify(&format!(
            "dn: cn=r7,ou=u3,{base}\nchangetype: modify\nreplace: description\ndescription: after the fill\n"
        ))
        .unwrap();
    domain.barrier();
    let (want, have) = converge(&domain, &replica).await;
    assert_same(&want, &have);
}
