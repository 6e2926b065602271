//! The new API's mapping of transactions to calls (semantics §4, §5, §7), read from what
//! the example modules log at debug (`RUST_LOG=warn,listener_module=debug`): the template
//! `unique_name` (filter `uid=example` people, attributes `sn`, `givenName`) gets a create,
//! a modify for a listed attribute, nothing for an unlisted one, one modify with `old_dn`
//! for a move, and a remove; `failing_on_demand` fails a create, has its `error_handler`
//! called on every attempt, and the change lands in its failed-events store.

use std::time::Duration;

use listener_core::{Command, Dn};
use listener_runtime::testing::Cache;
use tests::Slapd;
use tests::domain::Domain;

/// The messages `module` logged, in order (ANSI colours stripped).
fn messages(log: &str, module: &str) -> Vec<String> {
    let span = format!("module{{module=\"{module}\"}}");
    log.lines()
        .map(strip_ansi)
        .filter(|l| l.contains(&span))
        .filter_map(|l| {
            l.split_once("listener_module: ")
                .map(|(_, message)| message.to_owned())
        })
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters… final letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn create_modify_unlisted_move_failure_and_delete() {
    let base = "dc=example,dc=com";
    let mut domain = Domain::start(
        tests::listener_binary!(),
        Slapd::builder().base(base).entries(&format!(
            "dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n"
        )),
    )
    .unwrap();
    let start_id = domain.notifier_id();
    domain
        .start_listener_with_log("warn,listener_module=debug")
        .unwrap();
    domain.wait_for(Duration::from_secs(30), |calls| {
        calls
            .iter()
            .any(|l| l.starts_with("ou=people,") && l.ends_with("\tn"))
    });

    let example = format!("uid=example,{base}");
    let moved = format!("uid=example,ou=people,{base}");
    let broken = format!("cn=broken,{base}");
    // One change at a time, each processed (the printer, called before the template, has
    // its line) before the next: otherwise the listener may fetch a later state and
    // rightly skip a call that has become redundant.
    let mut change = |ldif: String, dn: &str, command: &str| {
        domain.slapd.ldapmodify(&ldif).unwrap();
        let line = format!("{dn}\t");
        let command = format!("\t{command}");
        domain.wait_for(Duration::from_secs(30), |calls| {
            calls
                .last()
                .is_some_and(|l| l.starts_with(&line) && l.ends_with(&command))
        });
    };
    // 1: create
    change(
        format!(
            "dn: {example}\nobjectClass: inetOrgPerson\nuid: example\ncn: Example\nsn: One\ngivenName: Ex\n"
        ),
        &example,
        "a",
    );
    // 2: a listed attribute
    change(
        format!("dn: {example}\nchangetype: modify\nreplace: sn\nsn: Two\n"),
        &example,
        "m",
    );
    // 3: an unlisted attribute
    change(
        format!("dn: {example}\nchangetype: modify\nreplace: description\ndescription: unlisted\n"),
        &example,
        "m",
    );
    // 4, 5: a move (r, a; the printer also gets the fresh state as m)
    change(
        format!(
            "dn: {example}\nchangetype: modrdn\nnewrdn: uid=example\ndeleteoldrdn: 1\nnewsuperior: ou=people,{base}\n"
        ),
        &moved,
        "m",
    );
    // 6: a create the failing module fails
    change(
        format!("dn: {broken}\nobjectClass: organizationalRole\ncn: broken\ndescription: fail\n"),
        &broken,
        "a",
    );
    // 7: delete
    change(format!("dn: {moved}\nchangetype: delete\n"), &moved, "d");
    // SIGTERM finishes the transaction being processed, so every call is logged.
    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");

    let log = domain.log().join("\n");
    let dn = |text: &str| format!("dn: Dn({text:?})");
    let template = messages(&log, "unique_name");
    assert_eq!(template.len(), 7, "{template:#?}");
    // create
    assert_eq!(template[0], dn(&example));
    // modify of sn
    assert_eq!(template[1], dn(&example));
    assert!(
        template[2].starts_with("changed attributes: ") && template[2].contains("sn"),
        "{template:#?}"
    );
    // (nothing for description) the move: one modify with old_dn
    assert_eq!(template[3], dn(&moved));
    assert_eq!(
        template[4],
        format!("it is (also) a move! old_dn: Dn({example:?})")
    );
    assert!(
        template[5].starts_with("changed attributes: "),
        "{template:#?}"
    );
    // remove
    assert_eq!(template[6], dn(&moved));

    // The failing module: each attempt fails and reaches error_handler, which declines.
    let failing = messages(&log, "failing_on_demand");
    let attempt = [
        format!("create dn: Dn({broken:?}): failing"),
        format!(
            "error_handler called: a Dn({broken:?}): {broken} asked to fail (description=fail)"
        ),
    ];
    assert_eq!(
        failing,
        attempt.iter().cycle().take(6).cloned().collect::<Vec<_>>(),
        "three attempts (the default)"
    );

    // … and the change is in its failed-events store, the module not registered.
    let cache = Cache::open_read_only(&domain.cache_dir()).unwrap().unwrap();
    let r = cache.read().unwrap();
    let failed = r.failed_events("failing_on_demand").unwrap();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let event = &failed[0].1;
    assert_eq!(event.transaction_id, start_id + 6);
    assert_eq!(event.dn, Dn::parse(&broken).unwrap());
    assert_eq!(event.command, Command::Add);
    assert!(event.old.is_none() && event.new.is_some());
    assert_eq!(event.attempts, 3);
    assert!(event.error.contains("asked to fail"), "{}", event.error);
    let cached = r.entry(&Dn::parse(&broken).unwrap()).unwrap().unwrap();
    assert!(
        !cached.modules.contains("failing_on_demand") && cached.modules.contains("printer"),
        "{:?}",
        cached.modules
    );
    assert_eq!(r.failed_count("unique_name").unwrap(), 0);
}
