//! Semantics §5 rules 1 and 2 with a module that has a filter and an `attributes` list:
//! the example `unique_name` module (new API, filter
//! `(&(objectClass=inetOrgPerson)(uid=example))`, attributes `sn`, `givenName`). Its calls
//! are read from the listener's trace log (one `module call` line per call); the
//! `printer` (no `attributes`, filter `(objectClass=*)`) is called for every change.

use tests::Slapd;
use tests::domain::{Domain, readable, relative_dn};
use tests::ldif;

const PEOPLE: &str = "cn=people,dc=example,dc=com";

/// `unique_name`'s calls so far, as `<command> <DN relative to cn=people>`: `a` create,
/// `m` modify, `d` remove.
fn template_calls(domain: &Domain) -> Vec<String> {
    domain
        .log()
        .iter()
        .filter_map(|line| {
            let call = line.split_once(" module call ")?.1;
            call.strip_prefix("module=unique_name ")?;
            let command = call.split_once(" command=")?.1.get(..1)?;
            let dn = call.split_once(" dn=")?.1;
            Some(format!("{command} {}", relative_dn(dn, PEOPLE)?))
        })
        .collect()
}

fn person(cn: &str, uid: &str) -> String {
    ldif::add(
        &format!("cn={cn},{PEOPLE}"),
        &[
            ("objectClass", "inetOrgPerson"),
            ("cn", cn),
            ("sn", "Person"),
            ("uid", uid),
        ],
    )
}

/// A change, then everything processed; returns `unique_name`'s calls since `seen`.
fn step(domain: &mut Domain, ldif: &str, seen: &mut usize) -> Vec<String> {
    domain.slapd.ldapmodify(ldif).unwrap();
    domain.barrier();
    let calls = template_calls(domain);
    let new = calls[*seen..].to_vec();
    *seen = calls.len();
    new
}

#[test]
fn objects_entering_and_leaving_a_filter_and_changes_outside_attributes() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain
        .start_listener_with_log("warn,listener_runtime::listener::apply=trace")
        .unwrap();
    domain.barrier();
    domain.slapd.ldapmodify(&ldif::role(PEOPLE)).unwrap();
    let ex = format!("cn=ex,{PEOPLE}");
    let seen = &mut 0;

    // Added matching the filter: a create.
    assert_eq!(
        step(&mut domain, &person("ex", "example"), seen),
        ["a cn=ex"]
    );

    // A modify of an attribute outside `attributes`: the printer is called, the module
    // not (rule 1), and it stays registered.
    assert_eq!(
        step(&mut domain, &ldif::replace(&ex, "description", "d"), seen),
        Vec::<String>::new()
    );
    assert_eq!(
        readable(&domain.calls(), PEOPLE).last().map(String::as_str),
        Some("cn=ex(a,a,m)"),
        "the printer, which lists no attributes, gets the modify"
    );

    // A listed attribute: a modify.
    assert_eq!(
        step(&mut domain, &ldif::replace(&ex, "sn", "Changed"), seen),
        ["m cn=ex"]
    );

    // Leaving the filter by a change of an attribute the module does not list: rule 1
    // comes first, so the module is not called and keeps its registration (as in UDL;
    // see dispatch.rs) …
    assert_eq!(
        step(&mut domain, &ldif::replace(&ex, "uid", "other"), seen),
        Vec::<String>::new()
    );
    // … until one of its attributes changes: then it has left the filter, and gets the
    // remove (rule 2; UDL unregisters silently).
    assert_eq!(
        step(&mut domain, &ldif::replace(&ex, "givenName", "G"), seen),
        ["d cn=ex"]
    );
    // Unregistered: further changes outside the filter reach it no more.
    assert_eq!(
        step(&mut domain, &ldif::replace(&ex, "sn", "Again"), seen),
        Vec::<String>::new()
    );

    // Entering the filter: a create, whatever changed (rule 1 only spares registered
    // modules).
    assert_eq!(
        step(&mut domain, &ldif::replace(&ex, "uid", "example"), seen),
        ["a cn=ex"]
    );

    // Leaving the filter together with a listed attribute: the remove at once.
    let leave = format!(
        "dn: {ex}\nchangetype: modify\nreplace: uid\nuid: other\n-\nreplace: sn\nsn: Left\n"
    );
    assert_eq!(step(&mut domain, &leave, seen), ["d cn=ex"]);

    // An object outside the filter: nothing, also when a listed attribute changes …
    let other = format!("cn=other,{PEOPLE}");
    assert_eq!(
        step(&mut domain, &person("other", "someone"), seen),
        Vec::<String>::new()
    );
    assert_eq!(
        step(&mut domain, &ldif::replace(&other, "sn", "S"), seen),
        Vec::<String>::new()
    );
    // … until it enters; a rename keeps it registered (one modify with the old DN); the
    // delete removes it.
    assert_eq!(
        step(&mut domain, &ldif::replace(&other, "uid", "example"), seen),
        ["a cn=other"]
    );
    assert_eq!(
        step(&mut domain, &ldif::rename(&other, "cn=renamed", None), seen),
        ["m cn=renamed"]
    );
    assert_eq!(
        step(
            &mut domain,
            &ldif::delete(&format!("cn=renamed,{PEOPLE}")),
            seen
        ),
        ["d cn=renamed"]
    );

    // Leaving and entering the filter by a rename: the RDN's `uid` value changes with it.
    let by_uid = ldif::add(
        &format!("uid=example,{PEOPLE}"),
        &[
            ("objectClass", "inetOrgPerson"),
            ("cn", "by uid"),
            ("sn", "Person"),
            ("uid", "example"),
        ],
    );
    assert_eq!(step(&mut domain, &by_uid, seen), ["a uid=example"]);
    assert_eq!(
        step(
            &mut domain,
            &ldif::rename(&format!("uid=example,{PEOPLE}"), "uid=nobody", None),
            seen
        ),
        ["d uid=example"],
        "the remove goes to the DN the module knew"
    );
    assert_eq!(
        step(
            &mut domain,
            &ldif::rename(&format!("uid=nobody,{PEOPLE}"), "uid=example", None),
            seen
        ),
        ["a uid=example"]
    );

    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
}
