//! The fetch-ahead window joins the fetches of transactions taken in together into one
//! `(|(entryDN=…)(entryUUID=…))` search. Every answer must be the one a single fetch
//! gives: for DNs with escapes and other spellings, DNs outside the base, objects that
//! are gone or hidden by ACLs, objects found by cached entryUUID, and a bind DN that may
//! not search on `entryDN` at all.

use std::collections::HashSet;

use listener_runtime::testing::Cache;
use listener_runtime::testing::FetchBy;
use listener_runtime::testing::Fetcher;
use listener_runtime::testing::TransactionRef;
use listener_runtime::testing::Window;
use listener_runtime::{Command, Dn};
use tests::Slapd;

const BASE: &str = "dc=example,dc=com";

fn directory() -> String {
    let mut ldif = String::new();
    for k in 0..40 {
        ldif += &format!("dn: cn=r{k},{BASE}\nobjectClass: organizationalRole\ncn: r{k}\n\n");
    }
    ldif += &format!(
        "dn: cn=Müller\\, Jörg \\+ \\\"Sohn\\\" (*\\5c),{BASE}\nobjectClass: organizationalRole\n\
         cn: Müller, Jörg + \"Sohn\" (*\\\n\n\
         dn: cn=hidden,{BASE}\nobjectClass: organizationalRole\ncn: hidden\n\n\
         dn: cn=secret,cn=hidden,{BASE}\nobjectClass: organizationalRole\ncn: secret\n\n\
         dn: cn=reader,{BASE}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\n\
         cn: reader\nuserPassword: reader-secret\n\n\
         dn: cn=blind,{BASE}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\n\
         cn: blind\nuserPassword: blind-secret\n"
    );
    ldif
}

/// The DNs of the transactions, as a notifier may spell them.
fn spellings() -> Vec<String> {
    let mut dns: Vec<String> = (0..40).map(|k| format!("cn=r{k},{BASE}")).collect();
    dns.extend([
        format!("cn=Müller\\, Jörg \\+ \\\"Sohn\\\" (*\\5c),{BASE}"),
        format!("CN=MÜLLER\\2C JÖRG \\2B \\22SOHN\\22 \\28\\2A\\5C\\29,{BASE}"),
        "CN=R7,DC=Example,DC=Com".to_owned(),
        format!("cn=gone,{BASE}"),
        format!("cn=secret,cn=hidden,{BASE}"),
        "cn=elsewhere,dc=other".to_owned(),
        String::new(),
    ]);
    dns
}

/// Takes every DN of `spellings` into a window at once (so they are fetched in batches)
/// and checks each answer against a single fetch.
async fn compare(
    slapd: &Slapd,
    bind_dn: &str,
    password: &str,
    cached: &[&str],
    expect_by_uuid: usize,
) {
    let base = Dn::parse(BASE).unwrap();
    let single = Fetcher::new(slapd.bind(bind_dn, password).await, base.clone());
    let pool = vec![
        Fetcher::new(slapd.bind(bind_dn, password).await, base.clone()),
        Fetcher::new(slapd.bind(bind_dn, password).await, base.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    // Objects the cache knows are fetched by entryUUID.
    let admin = Fetcher::new(
        slapd.bind(&slapd.root_dn(), slapd.root_password()).await,
        base.clone(),
    );
    let mut uuids = HashSet::new();
    for dn in cached {
        let entry = admin
            .fetch_by_dn(&Dn::parse(dn).unwrap())
            .await
            .unwrap()
            .unwrap();
        uuids.insert(entry.first_str("entryUUID").unwrap().to_owned());
        let mut w = cache.write().unwrap();
        w.put_entry(&entry, ["m"]).unwrap();
        w.commit().unwrap();
    }

    let mut window = Window::new(single.clone(), pool, 256);
    let dns = spellings();
    for (id, dn) in dns.iter().enumerate() {
        let t = TransactionRef {
            id: id as u64 + 1,
            dn: dn.clone(),
            command: Command::Modify,
        };
        window.push(t, &cache).unwrap();
    }
    window.flush();
    let mut by_uuid = 0;
    for dn in &dns {
        let txn = window.front().unwrap().unwrap().clone();
        assert_eq!(txn.dn.as_str(), dn);
        let known = cache.read().unwrap().entry(&txn.dn).unwrap();
        let by = match known.as_ref().and_then(|c| c.entry.first_str("entryUUID")) {
            Some(uuid) => {
                by_uuid += 1;
                FetchBy::Uuid(uuid.to_owned())
            }
            None => FetchBy::Dn(txn.dn.clone()),
        };
        let batched = window.fetch_front(&by, known.as_ref()).await.unwrap();
        let alone = match &by {
            FetchBy::Uuid(uuid) => single.fetch_by_uuid(uuid).await.unwrap(),
            FetchBy::Dn(dn) => single.fetch_by_dn(dn).await.unwrap(),
        };
        assert_eq!(batched, alone, "{dn} fetched as {by:?} as {bind_dn}");
        window.pop();
    }
    assert_eq!(by_uuid, expect_by_uuid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_fetches_answer_as_single_fetches_do() {
    let slapd = Slapd::builder()
        .base(BASE)
        .entries(&directory())
        .acl(&format!(
            "to dn.subtree=\"cn=hidden,{BASE}\" by dn.exact=\"cn=reader,{BASE}\" none by * break"
        ))
        .acl(&format!(
            "to attrs=entryDN by dn.exact=\"cn=blind,{BASE}\" none by * break"
        ))
        .start()
        .unwrap();
    let reader = format!("cn=reader,{BASE}");
    let blind = format!("cn=blind,{BASE}");
    let cached = ["cn=r3,dc=example,dc=com", "cn=r7,dc=example,dc=com"];
    // r3, r7 and R7 are fetched by entryUUID.
    compare(&slapd, &slapd.root_dn(), slapd.root_password(), &cached, 3).await;
    compare(&slapd, &reader, "reader-secret", &cached, 3).await;
    // May not search on entryDN: every DN fetch falls back to a base-scope search.
    compare(&slapd, &blind, "blind-secret", &[], 0).await;
}
