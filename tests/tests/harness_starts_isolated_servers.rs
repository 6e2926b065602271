//! The harness itself: servers start, record writes in the accesslog, run side by side,
//! and leave nothing behind.

use ldap3::{LdapConnAsync, Scope, SearchEntry};
use tests::{Memcached, Slapd};

async fn bind(slapd: &Slapd) -> ldap3::Ldap {
    let (conn, mut ldap) = LdapConnAsync::new(slapd.url()).await.expect("connect");
    ldap3::drive!(conn);
    ldap.simple_bind(&slapd.root_dn(), slapd.root_password())
        .await
        .expect("bind")
        .success()
        .expect("bind result");
    ldap
}

#[tokio::test]
async fn writes_reach_the_accesslog() {
    let slapd = Slapd::start().expect("slapd");
    let mut ldap = bind(&slapd).await;
    let dn = format!("cn=probe,{}", slapd.base());
    ldap.add(
        &dn,
        vec![
            ("objectClass", ["organizationalRole"].into()),
            ("cn", ["probe"].into()),
        ],
    )
    .await
    .expect("add")
    .success()
    .expect("add result");

    let (entries, _) = ldap
        .search(
            "cn=accesslog",
            Scope::OneLevel,
            "(&(objectClass=auditWriteObject)(reqResult=0))",
            vec!["reqType", "reqDN"],
        )
        .await
        .expect("search")
        .success()
        .expect("search result");
    let writes: Vec<(String, String)> = entries
        .into_iter()
        .map(SearchEntry::construct)
        .map(|e| (e.attrs["reqType"][0].clone(), e.attrs["reqDN"][0].clone()))
        .collect();
    assert_eq!(writes, [("add".to_owned(), dn)]);
}

#[tokio::test]
async fn preloaded_entries_exist_and_acls_hide_subtrees() {
    let base = "dc=example,dc=com";
    let slapd = Slapd::builder()
        .entries(&format!(
            "dn: cn=hidden,{base}\nobjectClass: organizationalRole\ncn: hidden\n\n\
             dn: cn=secret,cn=hidden,{base}\nobjectClass: organizationalRole\ncn: secret\n\n\
             dn: cn=reader,{base}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\n\
             cn: reader\nuserPassword: reader-secret\n"
        ))
        .acl(&format!(
            "to dn.subtree=\"cn=hidden,{base}\" by dn.exact=\"cn=reader,{base}\" none by * break"
        ))
        .start()
        .expect("slapd");

    let (conn, mut reader) = LdapConnAsync::new(slapd.url()).await.expect("connect");
    ldap3::drive!(conn);
    reader
        .simple_bind(&format!("cn=reader,{base}"), "reader-secret")
        .await
        .expect("bind")
        .success()
        .expect("reader bind");
    let (seen, _) = reader
        .search(
            base,
            Scope::Subtree,
            "(objectClass=organizationalRole)",
            vec!["1.1"],
        )
        .await
        .expect("search")
        .success()
        .expect("search result");
    let mut dns: Vec<String> = seen
        .into_iter()
        .map(|e| SearchEntry::construct(e).dn)
        .collect();
    dns.sort();
    assert_eq!(dns, [format!("cn=reader,{base}")]);

    let mut admin = bind(&slapd).await;
    let (all, _) = admin
        .search(
            base,
            Scope::Subtree,
            "(objectClass=organizationalRole)",
            vec!["1.1"],
        )
        .await
        .expect("search")
        .success()
        .expect("search result");
    assert_eq!(all.len(), 3);
}

#[test]
fn parallel_servers_are_independent_and_cleaned_up() {
    let a = Slapd::start().expect("slapd a");
    let b = Slapd::start().expect("slapd b");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    a.ldapmodify(&format!(
        "dn: cn=only-a,{}\nobjectClass: organizationalRole\ncn: only-a\n",
        a.base()
    ))
    .expect("ldapmodify");

    let dir = a.dir().to_owned();
    let pid = a.pid();
    drop(a);
    assert!(!dir.exists(), "temporary directory removed");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "slapd process gone"
    );
    // b still serves after a is gone.
    b.ldapmodify(&format!(
        "dn: cn=only-b,{}\nobjectClass: organizationalRole\ncn: only-b\n",
        b.base()
    ))
    .expect("b still serves");
}

#[test]
fn restart_keeps_data() {
    let mut slapd = Slapd::start().expect("slapd");
    slapd
        .ldapmodify(&format!(
            "dn: cn=kept,{}\nobjectClass: organizationalRole\ncn: kept\n",
            slapd.base()
        ))
        .expect("add");
    slapd.kill();
    slapd.restart().expect("restart");
    let err = slapd
        .ldapmodify(&format!(
            "dn: cn=kept,{}\nobjectClass: organizationalRole\ncn: kept\n",
            slapd.base()
        ))
        .expect_err("entry survived the restart, so adding it again fails");
    assert!(err.to_string().contains("Already exists"), "{err}");
}

#[test]
fn memcached_answers() {
    use std::io::{BufRead, BufReader, Write};
    let mc = Memcached::start().expect("memcached");
    let mut stream = std::net::TcpStream::connect(mc.address()).expect("connect");
    stream
        .write_all(b"set k 0 0 1\r\nv\r\nget k\r\n")
        .expect("write");
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    for _ in 0..4 {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        lines.push(line.trim_end().to_owned());
    }
    assert_eq!(lines, ["STORED", "VALUE k 0 1", "v", "END"]);
}

/// The DNs under the base of `slapd`, read as its rootDN; empty while it has no base.
async fn dns(slapd: &Slapd) -> std::collections::BTreeSet<String> {
    let mut ldap = bind(slapd).await;
    match ldap
        .search(slapd.base(), Scope::Subtree, "(objectClass=*)", vec!["1.1"])
        .await
        .and_then(ldap3::SearchResult::success)
    {
        Ok((entries, _)) => entries
            .into_iter()
            .map(|e| SearchEntry::construct(e).dn.to_lowercase())
            .collect(),
        Err(_) => Default::default(),
    }
}

#[tokio::test]
async fn a_syncrepl_consumer_copies_its_provider_and_follows_it() {
    let provider = Slapd::builder()
        .entries("dn: cn=early,dc=example,dc=com\nobjectClass: organizationalRole\ncn: early\n")
        .start()
        .unwrap();
    let consumer = Slapd::builder()
        .syncrepl_of(
            provider.url(),
            &provider.root_dn(),
            provider.root_password(),
        )
        .start()
        .unwrap();
    provider
        .ldapmodify("dn: cn=late,dc=example,dc=com\nobjectClass: organizationalRole\ncn: late\n")
        .unwrap();
    let want = dns(&provider).await;
    assert_eq!(want.len(), 3, "{want:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let have = dns(&consumer).await;
        if have == want {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{have:?} != {want:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
