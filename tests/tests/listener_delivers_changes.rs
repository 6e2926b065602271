//! The listener end to end: slapd, notifier and listener as processes; the example printer
//! module (classic API with `modrdn`) records every call.

use std::time::Duration;

use tests::Slapd;
use tests::domain::{Domain, readable};
use tests::ldif;

#[test]
fn create_modify_rename_move_delete() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let base = domain.slapd.base().to_owned();
    domain.start_listener().unwrap();
    // Initialization delivers what exists: the base.
    domain.wait_for(Duration::from_secs(30), |calls| {
        calls
            .iter()
            .any(|l| l.starts_with(&format!("{base}\t-\t")) && l.ends_with("\tn"))
    });

    // Each step waits for its call: a change the listener sees only after a later rename
    // is delivered with that rename ("delay until moved", semantics §4), not on its own.
    let steps = [
        ldif::role(&format!("cn=visible,{base}")),
        ldif::role(&format!("cn=test,{base}")),
        ldif::replace(&format!("cn=test,{base}"), "description", "changed"),
        ldif::rename(&format!("cn=test,{base}"), "cn=test2", None),
        ldif::rename(
            &format!("cn=test2,{base}"),
            "cn=test2",
            Some(&format!("cn=visible,{base}")),
        ),
        ldif::delete(&format!("cn=test2,cn=visible,{base}")),
    ];
    let mut seen = 0;
    for step in &steps {
        domain.slapd.ldapmodify(step).unwrap();
        seen = domain
            .wait_for_scope(&base, |calls| calls.len() > seen)
            .len();
    }
    domain.barrier();
    let calls = readable(&domain.calls(), &base);
    assert_eq!(
        calls
            .iter()
            .filter(|c| !c.starts_with("cn=barrier"))
            .collect::<Vec<_>>(),
        [
            "cn=visible(-,a,a)",
            "cn=test(-,b,a)",
            "cn=test(b,b,m)",
            // A rename: r, a with the cached state, then m with the fresh one (its
            // operational attributes changed, and the printer lists no `attributes`).
            "cn=test(b,-,r)",
            "cn=test2(-,b,a)",
            "cn=test2(b,b,m)",
            // A move: the same.
            "cn=test2(b,-,r)",
            "cn=test2,cn=visible(-,b,a)",
            "cn=test2,cn=visible(b,b,m)",
            "cn=test2,cn=visible(b,-,d)",
        ]
    );
    assert!(
        domain.stop_listener(),
        "SIGTERM stops the listener with exit code 0"
    );
}

#[test]
fn resync_initializes_a_module_again_at_the_next_start() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let base = domain.slapd.base().to_owned();
    let initialized = |calls: &[String]| {
        calls
            .iter()
            .filter(|l| l.starts_with(&format!("{base}\t-\t")) && l.ends_with("\tn"))
            .count()
    };
    domain.start_listener().unwrap();
    domain.wait_for(Duration::from_secs(30), |calls| initialized(calls) == 1);
    assert!(domain.stop_listener());

    // A restart alone does not initialize again…
    domain.start_listener().unwrap();
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: cn=marker,{base}\nobjectClass: organizationalRole\ncn: marker\n"
        ))
        .unwrap();
    domain.wait_for(Duration::from_secs(30), |calls| {
        calls.iter().any(|l| l.starts_with("cn=marker"))
    });
    assert_eq!(initialized(&domain.calls()), 1);

    // …`resync` does: at once while the listener runs (over its control socket), at the
    // next start while it is stopped.
    let cache_dir = domain.cache_dir().to_string_lossy().into_owned();
    let resync = |module: &str| {
        std::process::Command::new(tests::listener_binary!())
            .args(["resync", "--cache-dir", &cache_dir, module])
            .output()
            .unwrap()
    };
    let now = resync("printer");
    assert!(now.status.success(), "{now:?}");
    domain.wait_for(Duration::from_secs(30), |calls| initialized(calls) == 2);
    assert!(domain.stop_listener());
    let unknown = resync("no_such_module");
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no module named \"no_such_module\"")
    );
    let done = resync("printer");
    assert!(done.status.success(), "{done:?}");
    domain.start_listener().unwrap();
    domain.wait_for(Duration::from_secs(30), |calls| initialized(calls) == 3);
    assert!(domain.stop_listener());
}

#[test]
fn a_slapd_restart_is_survived_by_notifier_and_listener() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let base = domain.slapd.base().to_owned();
    domain.start_listener().unwrap();
    let add = |domain: &Domain, cn: &str| {
        domain
            .slapd
            .ldapmodify(&format!(
                "dn: cn={cn},{base}\nobjectClass: organizationalRole\ncn: {cn}\n"
            ))
            .unwrap();
    };
    add(&domain, "before");
    domain.wait_for(Duration::from_secs(30), |calls| {
        calls.iter().any(|l| l.starts_with("cn=before"))
    });

    domain.slapd.kill();
    domain.slapd.restart().unwrap();
    add(&domain, "after");
    domain.wait_for(Duration::from_secs(60), |calls| {
        calls.iter().any(|l| l.starts_with("cn=after"))
    });
    assert!(domain.stop_listener());
}

#[test]
fn each_module_can_log_to_its_own_file() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let base = domain.slapd.base().to_owned();
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().join("modules");
    domain
        .start_listener_with_log_and(
            "warn,listener_module=debug",
            &["--log-dir".to_owned(), dir.to_string_lossy().into_owned()],
        )
        .unwrap();
    // Past every module's initialization: the user below arrives as a transaction.
    domain.barrier();
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: uid=example,{base}\nobjectClass: inetOrgPerson\nuid: example\ncn: E\nsn: X\n"
        ))
        .unwrap();
    // The printer's call; the template modules are called in the same transaction, which
    // a SIGTERM lets finish.
    domain.wait_for(Duration::from_secs(30), |calls| {
        calls
            .iter()
            .any(|l| l.starts_with("uid=example") && l.ends_with("\ta"))
    });
    assert!(domain.stop_listener());
    let template = std::fs::read_to_string(dir.join("unique_name.log")).unwrap();
    assert!(
        template.contains(&format!("DEBUG dn: Dn(\"uid=example,{base}\")")),
        "{template}"
    );
    let async_template =
        std::fs::read_to_string(dir.join("listener_module_template_async.log")).unwrap();
    assert!(async_template.contains("uid=example"), "{async_template}");
    assert!(
        !template.contains("async"),
        "each module only its own lines"
    );
}
