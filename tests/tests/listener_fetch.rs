//! The listener's fetch stage against a real slapd: objects by DN and by entryUUID (so a
//! move is followed), deleted and ACL-hidden objects as "not there", values byte-exact,
//! operational attributes, escaped and non-ASCII DNs, many fetches in flight in order.

use std::collections::HashSet;

use ldap3::Ldap;
use listener_runtime::testing::{Cache, FetchBy, Fetcher, TransactionRef, Window};
use listener_runtime::{Command, Dn, Entry};
use tests::Slapd;

/// A self-signed certificate (DER): slapd checks certificate syntax, so the
/// `userCertificate;binary` value must be a real one.
const CERT_HEX: &str = "3082016f30820115a00302010202142c58901c3a480180b0f06a954f2f993817f7ae86300a06082a8648ce3d04030230\
0c310a300806035504030c01743020170d3236313132383037353630325a180f32313236313130343037353630325a30\
0c310a300806035504030c01743059301306072a8648ce3d020106082a8648ce3d03010703420004b9885d7c298603ca\
470f3bd676bc7cca29c233c48651a98bcb48dd0b0d6fce69820a157ee10375aa5e7c5524763f5f959c99994100e52150\
5418a32e6b3787e7a3533051301d0603551d0e04160414338dd79c30a6fddae693887f76766484e10778d0301f060355\
1d23041830168014338dd79c30a6fddae693887f76766484e10778d0300f0603551d130101ff040530030101ff300a06\
082a8648ce3d0403020348003045022100a116f641b6919956253c051ad03965273fe7a023026a5b5421d3b0435b37c9\
6702207cc5757437016d1dc8ee1c12c37986f57c58cfa4e071b2663cb3a7bfb90d4f89";

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

async fn admin(slapd: &Slapd) -> Ldap {
    slapd.bind(&slapd.root_dn(), slapd.root_password()).await
}

fn fetcher(ldap: Ldap, slapd: &Slapd) -> Fetcher {
    Fetcher::new(ldap, Dn::parse(slapd.base()).unwrap())
}

async fn add(ldap: &mut Ldap, dn: &str, attrs: Vec<(&str, Vec<Vec<u8>>)>) {
    let attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
        .into_iter()
        .map(|(name, values)| (name.as_bytes().to_vec(), values.into_iter().collect()))
        .collect();
    ldap.add(dn, attrs).await.unwrap().success().unwrap();
}

async fn add_role(ldap: &mut Ldap, dn: &str, cn: &str) {
    add(
        ldap,
        dn,
        vec![
            ("objectClass", vec![b"organizationalRole".to_vec()]),
            ("cn", vec![cn.as_bytes().to_vec()]),
        ],
    )
    .await;
}

fn dn(text: &str) -> Dn {
    Dn::parse(text).unwrap()
}

fn uuid(entry: &Entry) -> String {
    entry.first_str("entryUUID").unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_by_dn_keeps_binary_values_and_operational_attributes() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let mut ldap = admin(&slapd).await;
    // Not UTF-8, with NUL and high bytes: must arrive byte-exact.
    let photo: Vec<u8> = [0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]
        .into_iter()
        .chain(b"JFIF\0".iter().copied())
        .chain((0..=255u8).rev())
        .collect();
    let cert = unhex(CERT_HEX);
    let person = format!("uid=alice,{base}");
    add(
        &mut ldap,
        &person,
        vec![
            ("objectClass", vec![b"inetOrgPerson".to_vec()]),
            ("uid", vec![b"alice".to_vec()]),
            ("cn", vec![b"Alice".to_vec()]),
            ("sn", vec!["Ölund".as_bytes().to_vec()]),
            ("jpegPhoto", vec![photo.clone()]),
            ("userCertificate;binary", vec![cert.clone()]),
        ],
    )
    .await;

    let fetcher = fetcher(ldap, &slapd);
    let entry = fetcher.fetch(&dn(&person), None).await.unwrap().unwrap();
    assert_eq!(entry.dn(), &dn(&person));
    assert_eq!(entry.get("jpegPhoto").unwrap(), [photo]);
    assert_eq!(entry.get("userCertificate;binary").unwrap(), [cert]);
    assert_eq!(entry.first_str("sn"), Some("Ölund"));
    let uuid = uuid(&entry);
    assert_eq!(uuid.len(), 36, "{uuid}");
    for operational in ["entryCSN", "modifyTimestamp", "createTimestamp", "entryDN"] {
        assert!(
            entry.contains(operational),
            "{operational} missing: {entry:?}"
        );
    }
    let classes: Vec<&str> = entry.strs("objectClass").collect();
    assert_eq!(classes, ["inetOrgPerson"]);

    // The same object by its entryUUID.
    let by_uuid = fetcher
        .fetch(&dn(&person), Some(&uuid))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_uuid, entry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_by_entry_uuid_follows_a_move_and_a_delete_is_none() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let mut ldap = admin(&slapd).await;
    add_role(&mut ldap, &format!("cn=box,{base}"), "box").await;
    let old = format!("cn=mover,{base}");
    add_role(&mut ldap, &old, "mover").await;
    let fetcher = fetcher(ldap.clone(), &slapd);
    let before = fetcher.fetch(&dn(&old), None).await.unwrap().unwrap();
    let id = uuid(&before);

    ldap.modifydn(&old, "cn=moved", true, Some(&format!("cn=box,{base}")))
        .await
        .unwrap()
        .success()
        .unwrap();
    let new = format!("cn=moved,cn=box,{base}");
    // By DN the old place is empty; by entryUUID the object is found where it is now.
    assert_eq!(fetcher.fetch(&dn(&old), None).await.unwrap(), None);
    let after = fetcher.fetch(&dn(&old), Some(&id)).await.unwrap().unwrap();
    assert_eq!(after.dn(), &dn(&new));
    assert_eq!(after.first_str("cn"), Some("moved"));
    assert_eq!(uuid(&after), id);

    ldap.delete(&new).await.unwrap().success().unwrap();
    assert_eq!(fetcher.fetch(&dn(&new), None).await.unwrap(), None);
    assert_eq!(fetcher.fetch(&dn(&new), Some(&id)).await.unwrap(), None);
    // Below a parent that does not exist (noSuchObject), and a UUID with filter
    // metacharacters (escaped, so it matches nothing rather than being a bad filter).
    assert_eq!(
        fetcher
            .fetch(&dn(&format!("cn=x,cn=nowhere,{base}")), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        fetcher.fetch(&dn(&new), Some("*)(cn=*")).await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_hidden_by_acls_is_none() {
    let base = "dc=example,dc=com";
    let slapd = Slapd::builder()
        .entries(&format!(
            "dn: cn=hidden,{base}\nobjectClass: organizationalRole\ncn: hidden\n\n\
             dn: cn=secret,cn=hidden,{base}\nobjectClass: organizationalRole\ncn: secret\n\n\
             dn: cn=visible,{base}\nobjectClass: organizationalRole\ncn: visible\n\n\
             dn: cn=reader,{base}\nobjectClass: simpleSecurityObject\nobjectClass: organizationalRole\n\
             cn: reader\nuserPassword: reader-secret\n"
        ))
        .acl(&format!(
            "to dn.subtree=\"cn=hidden,{base}\" by dn.exact=\"cn=reader,{base}\" none by * break"
        ))
        .start()
        .unwrap();
    let secret = dn(&format!("cn=secret,cn=hidden,{base}"));
    let visible = dn(&format!("cn=visible,{base}"));
    let as_admin = fetcher(admin(&slapd).await, &slapd);
    let secret_uuid = uuid(&as_admin.fetch(&secret, None).await.unwrap().unwrap());

    let reader = slapd
        .bind(&format!("cn=reader,{base}"), "reader-secret")
        .await;
    let as_reader = fetcher(reader, &slapd);
    assert_eq!(as_reader.fetch(&secret, None).await.unwrap(), None);
    assert_eq!(
        as_reader.fetch(&secret, Some(&secret_uuid)).await.unwrap(),
        None
    );
    let seen = as_reader.fetch(&visible, None).await.unwrap().unwrap();
    assert_eq!(seen.first_str("cn"), Some("visible"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_with_escapes_and_non_ascii_characters() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let mut ldap = admin(&slapd).await;
    let text = format!("cn=Müller\\, Jörg \\+ \\\"Sohn\\\",{base}");
    add_role(&mut ldap, &text, "Müller, Jörg + \"Sohn\"").await;
    let fetcher = fetcher(ldap, &slapd);

    // However the DN is spelled: as written, case-changed, with hex escapes.
    for spelling in [
        text.clone(),
        format!("CN=MÜLLER\\2C JÖRG \\2B \\22SOHN\\22,{base}"),
    ] {
        let entry = fetcher.fetch(&dn(&spelling), None).await.unwrap();
        let entry = entry.unwrap_or_else(|| panic!("{spelling} not found"));
        assert_eq!(entry.dn(), &dn(&text));
        assert_eq!(entry.first_str("cn"), Some("Müller, Jörg + \"Sohn\""));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_keeps_many_in_flight_and_yields_in_order() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let mut ldap = admin(&slapd).await;
    let mut dns = Vec::new();
    for i in 0..200 {
        let text = format!("cn=o{i},{base}");
        // Every fifth does not exist.
        if i % 5 != 0 {
            add_role(&mut ldap, &text, &format!("o{i}")).await;
        }
        dns.push(text);
    }
    let pool = vec![
        fetcher(admin(&slapd).await, &slapd),
        fetcher(admin(&slapd).await, &slapd),
    ];
    let mut window = Window::new(fetcher(ldap, &slapd), pool, 16);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut results = Vec::new();
    let mut most_in_flight = 0;
    let mut next = dns.iter().enumerate();
    loop {
        while window.has_room() {
            let Some((i, text)) = next.next() else { break };
            let t = TransactionRef {
                id: i as u64 + 1,
                dn: text.clone(),
                command: Command::Modify,
            };
            window.push(t, &cache).unwrap();
        }
        window.flush();
        most_in_flight = most_in_flight.max(window.fetches());
        let Some(front) = window.front() else { break };
        let txn = front.unwrap().clone();
        let entry = window.fetch_front(&FetchBy::Dn(txn.dn.clone()), None).await;
        results.push((txn.id as usize - 1, entry));
        window.pop();
    }
    assert!(most_in_flight > 1, "the window fetched one at a time");
    assert_eq!(results.len(), 200);
    for (n, (i, result)) in results.into_iter().enumerate() {
        assert_eq!(i, n, "out of order");
        let entry = result.unwrap();
        if i % 5 == 0 {
            assert_eq!(entry, None);
        } else {
            let cn = entry.unwrap().first_str("cn").map(str::to_owned);
            assert_eq!(cn, Some(format!("o{i}")));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_a_transient_error_naming_the_object() {
    let mut slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let fetcher = fetcher(admin(&slapd).await, &slapd);
    slapd.stop();
    let target = dn(&format!("cn=gone,{base}"));
    let err = fetcher.fetch(&target, None).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("cn=gone"), "{err}");
    let err = fetcher.fetch(&target, Some("u-1")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("cn=gone") && text.contains("u-1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_name_the_server_and_bind_dn() {
    use listener_runtime::testing::LdapSettings;
    let slapd = Slapd::start().unwrap();
    let settings = LdapSettings {
        uri: slapd.url().to_owned(),
        bind_dn: slapd.root_dn(),
        bind_password: "wrong".to_owned(),
        starttls: false,
        timeout: std::time::Duration::from_secs(5),
    };
    let err = Fetcher::connect(&settings, dn(slapd.base()))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(slapd.url()) && text.contains(&slapd.root_dn()),
        "{text}"
    );
    assert!(!text.contains("wrong"), "the password leaked: {text}");
}
