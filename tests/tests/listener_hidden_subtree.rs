//! A subtree the listener may not read: an ACL denies `cn=hidden` to the listener's bind
//! DN (`cn=reader`), so objects there are, for the listener, not there. Moving an object
//! in is a delete at the DN it left (semantics §4 step 2, §10 row 9); moving one out is an
//! add; nothing inside is ever delivered. The example `printer` module records the calls
//! ([`readable`]: `rdn(old,new,cmd)`, entryUUIDs named a, b, … in order of appearance).

use std::path::PathBuf;

use tests::Slapd;
use tests::domain::{Domain, readable};
use tests::ldif;

const BASE: &str = "dc=example,dc=com";
const READER_PASSWORD: &str = "reader-secret";

/// A domain whose listener binds as `cn=reader`, which may not see `cn=hidden`.
fn domain() -> Domain {
    let slapd = Slapd::builder()
        .entries(&format!(
            "dn: cn=hidden,{BASE}\nobjectClass: organizationalRole\ncn: hidden\n\n\
             dn: cn=reader,{BASE}\nobjectClass: simpleSecurityObject\n\
             objectClass: organizationalRole\ncn: reader\nuserPassword: {READER_PASSWORD}\n"
        ))
        .acl(&format!(
            "to dn.subtree=\"cn=hidden,{BASE}\" by dn.exact=\"cn=reader,{BASE}\" none by * break"
        ));
    let mut domain = Domain::start(tests::listener_binary!(), slapd).unwrap();
    start_listener(&mut domain);
    domain
}

fn start_listener(domain: &mut Domain) {
    let password_file: PathBuf = domain.slapd.dir().join("reader.secret");
    std::fs::write(&password_file, READER_PASSWORD).unwrap();
    let args = domain.run_args(&format!("cn=reader,{BASE}"), &password_file);
    domain.start_listener_with(&args).unwrap();
}

/// `cn=<name>,cn=hidden,<base>`.
fn hidden(name: &str) -> String {
    format!("cn={name},cn=hidden,{BASE}")
}

/// Adds the container `cn=<name>,<base>` and returns it.
fn container(domain: &Domain, name: &str) -> String {
    let dn = format!("cn={name},{BASE}");
    domain.slapd.ldapmodify(&ldif::role(&dn)).unwrap();
    dn
}

/// No call ever named the hidden subtree.
fn assert_nothing_hidden(domain: &Domain) {
    let hidden: Vec<String> = domain
        .calls()
        .into_iter()
        .filter(|line| line.to_lowercase().contains("cn=hidden,"))
        .collect();
    assert!(hidden.is_empty(), "calls for hidden objects: {hidden:#?}");
}

#[test]
fn objects_moving_into_and_out_of_a_hidden_subtree() {
    let mut domain = domain();
    // Initialized: what follows arrives as changes.
    domain.barrier();
    let s = &domain.slapd;

    // §10 row 9: moved into the hidden container: (a,-,d) at the old DN, nothing for the
    // hidden DN.
    let row9 = container(&domain, "row9");
    let test = format!("cn=test,{row9}");
    s.ldapmodify(&ldif::role(&test)).unwrap();
    domain.wait_for_scope(&row9, |calls| calls == ["cn=test(-,a,a)"]);
    let s = &domain.slapd;
    s.ldapmodify(&ldif::rename(
        &test,
        "cn=row9",
        Some(&format!("cn=hidden,{BASE}")),
    ))
    .unwrap();
    // Changes inside the hidden container reach no module either.
    s.ldapmodify(&ldif::replace(&hidden("row9"), "description", "hidden"))
        .unwrap();
    s.ldapmodify(&ldif::role(&hidden("created"))).unwrap();

    // Moved out of the hidden container: an add at the new DN, as for a new object.
    let out = container(&domain, "out");
    let s = &domain.slapd;
    s.ldapmodify(&ldif::rename(&hidden("created"), "cn=test", Some(&out)))
        .unwrap();
    domain.barrier();

    assert_eq!(
        readable(&domain.calls(), &row9),
        ["cn=test(-,a,a)", "cn=test(a,-,d)"]
    );
    assert_eq!(readable(&domain.calls(), &out), ["cn=test(-,a,a)"]);
    // Once out, it is an ordinary object.
    domain
        .slapd
        .ldapmodify(&ldif::replace(
            &format!("cn=test,{out}"),
            "description",
            "out",
        ))
        .unwrap();
    domain.barrier();
    assert_eq!(
        readable(&domain.calls(), &out),
        ["cn=test(-,a,a)", "cn=test(a,a,m)"]
    );

    // With the listener stopped: modified, then moved into the hidden container. The
    // modify finds the object gone (hidden) and deletes it; the move finds nothing cached
    // and nothing visible. One call.
    let stopped = container(&domain, "stopped");
    let test = format!("cn=test,{stopped}");
    domain.slapd.ldapmodify(&ldif::role(&test)).unwrap();
    domain.wait_for_scope(&stopped, |calls| calls == ["cn=test(-,a,a)"]);
    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
    let s = &domain.slapd;
    s.ldapmodify(&ldif::replace(&test, "description", "stopped"))
        .unwrap();
    s.ldapmodify(&ldif::rename(
        &test,
        "cn=stopped",
        Some(&format!("cn=hidden,{BASE}")),
    ))
    .unwrap();
    start_listener(&mut domain);
    domain.barrier();
    assert_eq!(
        readable(&domain.calls(), &stopped),
        ["cn=test(-,a,a)", "cn=test(a,-,d)"]
    );

    assert_nothing_hidden(&domain);

    // With the listener stopped: moved into the hidden container and out again. When the
    // listener processes the first move, the object is visible again elsewhere, so that
    // move is delivered like any move whose object has moved on since (§4: to its
    // intermediate DN, with the cached state). The listener cannot tell that DN was
    // hidden: the object is not there any more, and a DN with nothing at it looks the
    // same whether the ACLs hide it or not. So here, and only here, a module sees a
    // hidden DN; the object's final state arrives at its final DN.
    let round = container(&domain, "roundtrip");
    let test = format!("cn=test,{round}");
    domain.slapd.ldapmodify(&ldif::role(&test)).unwrap();
    domain.wait_for_scope(&round, |calls| calls == ["cn=test(-,a,a)"]);
    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
    let s = &domain.slapd;
    s.ldapmodify(&ldif::rename(
        &test,
        "cn=round",
        Some(&format!("cn=hidden,{BASE}")),
    ))
    .unwrap();
    s.ldapmodify(&ldif::rename(&hidden("round"), "cn=back", Some(&round)))
        .unwrap();
    start_listener(&mut domain);
    domain.barrier();
    assert_eq!(
        readable(&domain.calls(), &round),
        [
            "cn=test(-,a,a)",
            "cn=test(a,-,r)",
            "cn=back(-,a,a)",
            "cn=back(a,a,m)"
        ]
    );
    assert_eq!(
        readable(&domain.calls(), &format!("cn=hidden,{BASE}")),
        ["cn=round(-,a,a)", "cn=round(a,-,r)"]
    );

    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
}
