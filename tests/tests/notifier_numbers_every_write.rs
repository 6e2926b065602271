//! The notifier against a real slapd: every write through LDAP becomes the expected
//! transactions, with consecutive IDs and r/a pairs for modrdn.

use std::net::SocketAddr;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, Mod};
use listener_runtime::testing::{NotifierConfig, NotifierError, run_notifier};
use tests::Slapd;
use tests::in_process::{InProcessNotifier, expected_transactions, root_settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The in-process notifier, started listening on any port.
struct Running(InProcessNotifier);

impl Running {
    async fn start(slapd: &Slapd, data_dir: &std::path::Path) -> Running {
        Running(InProcessNotifier::start(slapd, data_dir, "127.0.0.1:0".parse().unwrap()).await)
    }

    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    async fn stop(self) {
        self.0.stop().await
    }
}

/// A minimal protocol client asking for `GET_DNS` batches.
struct Client {
    stream: TcpStream,
    msgid: u64,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"Version: 3\nCapabilities: GET_DNS\n\n")
            .await
            .unwrap();
        let mut c = Client { stream, msgid: 0 };
        assert!(c.read().await.contains("GET_DNS"));
        c
    }

    async fn read(&mut self) -> String {
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while !out.ends_with(b"\n\n") {
            let n = tokio::time::timeout(Duration::from_secs(20), self.stream.read(&mut byte))
                .await
                .expect("notifier answers within 20 s")
                .unwrap();
            assert_eq!(n, 1, "notifier closed the connection");
            out.push(byte[0]);
        }
        String::from_utf8(out).unwrap()
    }

    /// Transactions `from..=to` as `<id> <dn> <cmd>` lines (waits until they exist).
    async fn lines(&mut self, from: u64, to: u64) -> Vec<String> {
        let mut out = Vec::new();
        let mut next = from;
        while next <= to {
            self.msgid += 1;
            let request = format!(
                "MSGID: {}\nGET_DNS {next} {}\n\n",
                self.msgid,
                to - next + 1
            );
            self.stream.write_all(request.as_bytes()).await.unwrap();
            let reply = self.read().await;
            assert!(
                reply.starts_with(&format!("MSGID: {}\n", self.msgid)),
                "reply to another request: {reply:?}"
            );
            for line in reply.lines().skip(1).filter(|l| !l.is_empty()) {
                out.push(line.to_owned());
                next += 1;
            }
        }
        out
    }

    async fn get_id(&mut self) -> u64 {
        self.msgid += 1;
        let request = format!("MSGID: {}\nGET_ID\n\n", self.msgid);
        self.stream.write_all(request.as_bytes()).await.unwrap();
        let reply = self.read().await;
        assert!(
            reply.starts_with(&format!("MSGID: {}\n", self.msgid)),
            "reply to another request: {reply:?}"
        );
        reply.lines().nth(1).unwrap().parse().unwrap()
    }
}

async fn admin(slapd: &Slapd) -> Ldap {
    let (conn, mut ldap) = LdapConnAsync::new(slapd.url()).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&slapd.root_dn(), slapd.root_password())
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap
}

async fn add_role(ldap: &mut Ldap, dn: &str, cn: &str) {
    ldap.add(
        dn,
        vec![
            ("objectClass", ["organizationalRole"].into()),
            ("cn", [cn].into()),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_become_transactions() {
    let slapd = Slapd::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path()).await;
    let base = slapd.base().to_owned();
    let mut ldap = admin(&slapd).await;
    let mut client = Client::connect(notifier.addr()).await;
    assert_eq!(client.get_id().await, 0);

    add_role(&mut ldap, &format!("cn=visible,{base}"), "visible").await;
    add_role(&mut ldap, &format!("cn=test,{base}"), "test").await;
    ldap.modify(
        &format!("cn=test,{base}"),
        vec![Mod::Replace("description", ["changed"].into())],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    // rename
    ldap.modifydn(&format!("cn=test,{base}"), "cn=test2", true, None)
        .await
        .unwrap()
        .success()
        .unwrap();
    // move
    ldap.modifydn(
        &format!("cn=test2,{base}"),
        "cn=test2",
        true,
        Some(&format!("cn=visible,{base}")),
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    // rename + move, to an escaped non-ASCII RDN
    ldap.modifydn(
        &format!("cn=test2,cn=visible,{base}"),
        "cn=Unmöglich\\, oder?",
        true,
        Some(&base),
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    ldap.delete(&format!("cn=Unmöglich\\, oder?,{base}"))
        .await
        .unwrap()
        .success()
        .unwrap();

    let expected = [
        format!("1 cn=visible,{base} a"),
        format!("2 cn=test,{base} a"),
        format!("3 cn=test,{base} m"),
        format!("4 cn=test,{base} r"),
        format!("5 cn=test2,{base} a"),
        format!("6 cn=test2,{base} r"),
        format!("7 cn=test2,cn=visible,{base} a"),
        format!("8 cn=test2,cn=visible,{base} r"),
        // slapd logs the new RDN of a modrdn normalized (lower case, `\2C`), and other
        // DNs in its "pretty" form: spelled as the client did, escapes as `\XX`.
        format!("9 cn=unmöglich\\2C oder?,{base} a"),
        format!("10 cn=Unmöglich\\2C oder?,{base} d"),
    ];
    assert_eq!(client.lines(1, 10).await, expected);
    assert_eq!(client.get_id().await, 10);
    notifier.stop().await;

    // The log on disk has the same, with entryUUIDs: the r/a halves share one.
    let log = listener_runtime::testing::Translog::open(data.path()).unwrap();
    let r = log.get(8).unwrap().unwrap();
    let a = log.get(9).unwrap().unwrap();
    assert_eq!(r.entry_uuid, a.entry_uuid);
    assert_eq!(r.entry_uuid.len(), 36, "{r:?}");
    assert!(r.time_us > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_without_gap_or_repeat() {
    let slapd = Slapd::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let base = slapd.base().to_owned();
    let mut ldap = admin(&slapd).await;

    let notifier = Running::start(&slapd, data.path()).await;
    let mut client = Client::connect(notifier.addr()).await;
    for i in 0..5 {
        add_role(
            &mut ldap,
            &format!("cn=before{i},{base}"),
            &format!("before{i}"),
        )
        .await;
    }
    assert_eq!(client.lines(1, 5).await.len(), 5);
    notifier.stop().await;

    // Written while the notifier is down: numbered after it comes back, once each.
    for i in 0..5 {
        add_role(
            &mut ldap,
            &format!("cn=during{i},{base}"),
            &format!("during{i}"),
        )
        .await;
    }
    let notifier = Running::start(&slapd, data.path()).await;
    let mut client = Client::connect(notifier.addr()).await;
    for i in 0..5 {
        add_role(
            &mut ldap,
            &format!("cn=after{i},{base}"),
            &format!("after{i}"),
        )
        .await;
    }
    let lines = client.lines(1, 15).await;
    let dns: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    let expected: Vec<String> = ["before", "during", "after"]
        .iter()
        .flat_map(|p| {
            (0..5)
                .map(|i| format!("cn={p}{i},{base}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(dns, expected);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.get_id().await, 15);
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_notifier_starts_at_the_end_of_the_accesslog() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let mut ldap = admin(&slapd).await;
    add_role(&mut ldap, &format!("cn=old,{base}"), "old").await;
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path()).await;
    let mut client = Client::connect(notifier.addr()).await;
    add_role(&mut ldap, &format!("cn=new,{base}"), "new").await;
    assert_eq!(client.lines(1, 1).await, [format!("1 cn=new,{base} a")]);
    notifier.stop().await;
}

/// 10,000 writes, some of them renames and moves, become consecutive IDs matching the
/// accesslog one to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_writes_match_the_accesslog() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path()).await;
    let mut ldap = admin(&slapd).await;
    add_role(&mut ldap, &format!("cn=box,{base}"), "box").await;
    let mut writes = 1;
    let mut i = 0;
    while writes < 10_000 {
        let dn = format!("cn=u{i},{base}");
        add_role(&mut ldap, &dn, &format!("u{i}")).await;
        writes += 1;
        if i % 7 == 0 {
            let value = format!("d{i}");
            ldap.modify(
                &dn,
                vec![Mod::Replace("description", [value.as_str()].into())],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
            writes += 1;
        }
        if i % 10 == 0 {
            // rename and move in one
            ldap.modifydn(
                &dn,
                &format!("cn=m{i}"),
                true,
                Some(&format!("cn=box,{base}")),
            )
            .await
            .unwrap()
            .success()
            .unwrap();
            writes += 1;
        } else if i % 13 == 0 {
            ldap.delete(&dn).await.unwrap().success().unwrap();
            writes += 1;
        }
        i += 1;
    }

    // What slapd logged, in its order, turned into transaction lines independently.
    let expected = expected_transactions(&slapd).await;
    // A modrdn is two transactions (r, a); every other write one.
    let renames = expected.iter().filter(|l| l.ends_with(" r")).count();
    assert_eq!(expected.len() - renames, writes);

    let mut client = Client::connect(notifier.addr()).await;
    let last = expected.len() as u64;
    let served = client.lines(1, last).await;
    assert_eq!(served.len(), expected.len());
    assert_eq!(served, expected);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client.get_id().await,
        last,
        "no transaction beyond the writes"
    );
    notifier.stop().await;
}

/// Deletes accesslog entries as `olcAccessLogPurge` would.
fn purge_accesslog(slapd: &Slapd, entries: &[String]) {
    let ldif: String = entries
        .iter()
        .map(|dn| format!("dn: {dn}\nchangetype: delete\n\n"))
        .collect();
    slapd.ldapmodify_as_root(&ldif).unwrap();
}

async fn accesslog_dns(ldap: &mut Ldap) -> Vec<String> {
    let (entries, _) = ldap
        .search(
            "cn=accesslog",
            ldap3::Scope::OneLevel,
            "(objectClass=auditWriteObject)",
            vec!["1.1"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let mut dns: Vec<String> = entries
        .into_iter()
        .map(|e| ldap3::SearchEntry::construct(e).dn)
        .collect();
    dns.sort();
    dns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_gap_stops_the_notifier_with_a_clear_error() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let mut ldap = admin(&slapd).await;

    let notifier = Running::start(&slapd, data.path()).await;
    let mut client = Client::connect(notifier.addr()).await;
    add_role(&mut ldap, &format!("cn=a,{base}"), "a").await;
    assert_eq!(client.lines(1, 1).await.len(), 1);
    notifier.stop().await;

    // While the notifier is down, two writes happen and the older one is purged together
    // with the entry the notifier stopped at.
    add_role(&mut ldap, &format!("cn=lost,{base}"), "lost").await;
    add_role(&mut ldap, &format!("cn=kept,{base}"), "kept").await;
    let logged = accesslog_dns(&mut ldap).await;
    assert_eq!(logged.len(), 3);
    purge_accesslog(&slapd, &logged[..2]);

    let mut config = NotifierConfig::new(root_settings(&slapd), data.path().to_owned());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        run_notifier(config, |_| {}, std::future::pending()),
    )
    .await
    .expect("the notifier stops by itself");
    let error = result.expect_err("a purged gap is an error");
    assert!(
        matches!(error, NotifierError::Purged { last_id: 1, .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("purged") && message.contains("To recover"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_without_new_writes_is_no_gap() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let mut ldap = admin(&slapd).await;
    let notifier = Running::start(&slapd, data.path()).await;
    let mut client = Client::connect(notifier.addr()).await;
    add_role(&mut ldap, &format!("cn=a,{base}"), "a").await;
    assert_eq!(client.lines(1, 1).await.len(), 1);
    notifier.stop().await;

    let logged = accesslog_dns(&mut ldap).await;
    purge_accesslog(&slapd, &logged);
    let notifier = Running::start(&slapd, data.path()).await;
    let mut client = Client::connect(notifier.addr()).await;
    add_role(&mut ldap, &format!("cn=b,{base}"), "b").await;
    assert_eq!(client.lines(2, 2).await, [format!("2 cn=b,{base} a")]);
    notifier.stop().await;
}
