//! The listener end to end: slapd, notifier and listener as processes; the example printer
//! module (classic API with `modrdn`) records every call.

use std::collections::HashMap;
use std::time::Duration;

use tests::Slapd;
use tests::domain::Domain;

/// Turns `dn⇥old⇥new⇥cmd` lines into semantics §10's `rdn(old,new,cmd)` with entryUUIDs
/// named a, b, c… in order of appearance; only lines about DNs under `base` except the
/// base itself.
fn readable(calls: &[String], base: &str) -> Vec<String> {
    let mut names: HashMap<String, char> = HashMap::new();
    let mut name = |uuid: &str| -> String {
        if uuid == "-" {
            return "-".into();
        }
        let next = (b'a' + names.len() as u8) as char;
        names.entry(uuid.to_owned()).or_insert(next).to_string()
    };
    calls
        .iter()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            let (dn, old, new, cmd) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if dn.eq_ignore_ascii_case(base) || !dn.to_lowercase().ends_with(&base.to_lowercase()) {
                return None;
            }
            let rdn = dn.split(',').next()?;
            Some(format!("{rdn}({},{},{cmd})", name(old), name(new)))
        })
        .collect()
}

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

    // One change at a time, each processed before the next (the printer has its calls):
    // a listener that lags fetches later states and rightly skips calls made redundant
    // by them, which would make the sequence depend on timing.
    let mut change = |ldif: String, calls_after: usize| {
        domain.slapd.ldapmodify(&ldif).unwrap();
        domain.wait_for(Duration::from_secs(30), |calls| {
            readable(calls, &base).len() >= calls_after
        });
    };
    change(
        format!("dn: cn=visible,{base}\nobjectClass: organizationalRole\ncn: visible\n"),
        1,
    );
    change(
        format!("dn: cn=test,{base}\nobjectClass: organizationalRole\ncn: test\n"),
        2,
    );
    change(
        format!(
            "dn: cn=test,{base}\nchangetype: modify\nreplace: description\ndescription: changed\n"
        ),
        3,
    );
    change(
        format!("dn: cn=test,{base}\nchangetype: modrdn\nnewrdn: cn=test2\ndeleteoldrdn: 1\n"),
        6,
    );
    change(
        format!(
            "dn: cn=test2,{base}\nchangetype: modrdn\nnewrdn: cn=test2\ndeleteoldrdn: 1\nnewsuperior: cn=visible,{base}\n"
        ),
        9,
    );
    change(
        format!("dn: cn=test2,cn=visible,{base}\nchangetype: delete\n"),
        10,
    );

    let calls = domain.wait_for(Duration::from_secs(30), |calls| {
        readable(calls, &base)
            .iter()
            .filter(|c| c.ends_with(",d)"))
            .count()
            == 1
    });
    assert_eq!(
        readable(&calls, &base),
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
            "cn=test2(-,b,a)",
            "cn=test2(b,b,m)",
            "cn=test2(b,-,d)",
        ]
    );
    assert!(
        domain.stop_listener(),
        "SIGTERM stops the listener with exit code 0"
    );
}
