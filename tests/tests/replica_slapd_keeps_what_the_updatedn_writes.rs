//! The facts the coming `replication` module builds on (docs/slapd.md), checked against
//! the harness's replica slapd (`SlapdBuilder::replica_of`: rootDN and updatedn
//! `cn=update,<base>`, `olcUpdateRef` to the primary): the updatedn's writes keep the
//! operational attributes they are given, a modify without them gets slapd's own
//! stamps, and an anonymous write is refused.

use std::collections::HashSet;

use ldap3::{LdapConnAsync, Mod, Scope, SearchEntry};
use tests::Slapd;

const OPERATIONAL: [(&str, &str); 6] = [
    ("entryUUID", "11111111-2222-3333-4444-555555555555"),
    ("entryCSN", "20200101000000.000000Z#000000#000#000000"),
    ("createTimestamp", "20200101000000Z"),
    ("creatorsName", "cn=someone,dc=example,dc=com"),
    ("modifyTimestamp", "20200101000000Z"),
    ("modifiersName", "cn=someone,dc=example,dc=com"),
];

async fn bind(url: &str, dn: &str, password: &str) -> ldap3::Ldap {
    let (conn, mut ldap) = LdapConnAsync::new(url).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(dn, password)
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap
}

async fn read(ldap: &mut ldap3::Ldap, dn: &str, attr: &str) -> Option<String> {
    let (entries, _) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec!["*", "+"])
        .await
        .unwrap()
        .success()
        .unwrap();
    let entry = SearchEntry::construct(entries.into_iter().next()?);
    entry.attrs.get(attr).and_then(|v| v.first().cloned())
}

fn set(values: &[&str]) -> HashSet<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[tokio::test]
async fn the_updatedn_writes_operational_attributes_and_anonymous_writes_are_refused() {
    let primary = Slapd::start().unwrap();
    let replica = Slapd::builder().replica_of(primary.url()).start().unwrap();
    assert_eq!(replica.root_dn(), "cn=update,dc=example,dc=com");
    let mut update = bind(replica.url(), &replica.root_dn(), replica.root_password()).await;
    let dn = "cn=r1,dc=example,dc=com";

    let mut attrs = vec![
        ("objectClass".to_owned(), set(&["organizationalRole"])),
        ("cn".to_owned(), set(&["r1"])),
        (
            "roleOccupant".to_owned(),
            set(&["cn=someone,dc=example,dc=com"]),
        ),
    ];
    attrs.extend(
        OPERATIONAL
            .iter()
            .map(|(a, v)| ((*a).to_owned(), set(&[v]))),
    );
    update.add(dn, attrs).await.unwrap().success().unwrap();
    for (attr, value) in OPERATIONAL {
        assert_eq!(
            read(&mut update, dn, attr).await.as_deref(),
            Some(value),
            "{attr}"
        );
    }

    // A modify that sends the stamps keeps them…
    let csn = "20210101000000.000000Z#000000#000#000000";
    let mods = vec![
        Mod::Add("description".to_owned(), set(&["d1"])),
        Mod::Replace("entryCSN".to_owned(), set(&[csn])),
        Mod::Replace("modifyTimestamp".to_owned(), set(&["20210101000000Z"])),
        Mod::Replace(
            "modifiersName".to_owned(),
            set(&["cn=other,dc=example,dc=com"]),
        ),
    ];
    update.modify(dn, mods).await.unwrap().success().unwrap();
    assert_eq!(
        read(&mut update, dn, "entryCSN").await.as_deref(),
        Some(csn)
    );
    assert_eq!(
        read(&mut update, dn, "modifiersName").await.as_deref(),
        Some("cn=other,dc=example,dc=com")
    );
    // …one that does not gets slapd's own.
    let mods = vec![Mod::Replace("description".to_owned(), set(&["d2"]))];
    update.modify(dn, mods).await.unwrap().success().unwrap();
    let stamped = read(&mut update, dn, "entryCSN").await.unwrap();
    assert!(stamped.as_str() > csn, "{stamped}");
    assert_eq!(
        read(&mut update, dn, "modifiersName").await.as_deref(),
        Some("cn=update,dc=example,dc=com")
    );

    // Anyone else: no write. Anonymously it needs authentication.
    let (conn, mut anonymous) = LdapConnAsync::new(replica.url()).await.unwrap();
    ldap3::drive!(conn);
    let mods = vec![Mod::Replace("description".to_owned(), set(&["d3"]))];
    let result = anonymous.modify(dn, mods).await.unwrap();
    assert_eq!(result.rc, 8, "strongerAuthRequired: {result:?}");
}
