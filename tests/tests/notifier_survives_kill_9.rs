//! kill -9 of the notifier process at random moments during a stream of 2,000 writes,
//! restarted each time: the final log has every write exactly once, in order, no hole.

use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, Mod};
use listener_runtime::testing::Translog;
use tests::Slapd;
use tests::daemon::{Daemon, notifier_id, wait_for_notifier};
use tests::in_process::expected_transactions;
use tests::rng::Lcg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_exactly_once_across_kill_9() {
    let mut rng = Lcg::from_env("KILL9_SEED");

    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args: Vec<String> = [
        "notifier",
        "--ldap-uri",
        slapd.url(),
        "--bind-dn",
        &slapd.root_dn(),
        "--bind-password-file",
        &slapd.password_file().to_string_lossy(),
        "--data-dir",
        &data.path().to_string_lossy(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut notifier = Daemon::start(tests::listener_binary!(), &args).unwrap();
    wait_for_notifier(port, Duration::from_secs(20)).unwrap();

    // The writer: 2,000 writes over one connection, in the background.
    let url = slapd.url().to_owned();
    let (root_dn, password) = (slapd.root_dn(), slapd.root_password().to_owned());
    let writer_base = base.clone();
    let writer = tokio::spawn(async move {
        let (conn, mut ldap) = LdapConnAsync::new(&url).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(&root_dn, &password)
            .await
            .unwrap()
            .success()
            .unwrap();
        let mut writes = 0;
        let mut i = 0;
        while writes < 2_000 {
            let dn = format!("cn=k{i},{writer_base}");
            ldap.add(
                &dn,
                vec![
                    ("objectClass", ["organizationalRole"].into()),
                    ("cn", [format!("k{i}").as_str()].into()),
                ],
            )
            .await
            .unwrap()
            .success()
            .unwrap();
            writes += 1;
            if i % 3 == 0 {
                ldap.modify(&dn, vec![Mod::Replace("description", ["x"].into())])
                    .await
                    .unwrap()
                    .success()
                    .unwrap();
                writes += 1;
            }
            if i % 5 == 0 {
                ldap.modifydn(&dn, &format!("cn=renamed{i}"), true, None)
                    .await
                    .unwrap()
                    .success()
                    .unwrap();
                writes += 1;
            }
            i += 1;
        }
        writes
    });

    // The killer: kill -9 at random moments while the writes stream in.
    let mut kills = 0;
    while !writer.is_finished() {
        tokio::time::sleep(Duration::from_millis(10 + rng.next(60))).await;
        if let Some(why) = notifier.exited() {
            panic!("the notifier exited by itself: {why}");
        }
        notifier.kill9();
        kills += 1;
        // Sometimes stay down for a while, so writes pile up in the accesslog.
        tokio::time::sleep(Duration::from_millis(rng.next(100))).await;
        notifier.restart().unwrap();
    }
    let writes = writer.await.unwrap();
    eprintln!("{writes} writes, {kills} kills");
    assert!(
        kills >= 3,
        "the test killed the notifier only {kills} times"
    );

    // Expected: the accesslog's writes in order, as transactions.
    let expected = expected_transactions(&slapd).await;
    let renames = expected.iter().filter(|l| l.ends_with(" r")).count();
    assert_eq!(expected.len() - renames, writes);

    let deadline = Instant::now() + Duration::from_secs(60);
    while notifier_id(port).unwrap_or(0) < expected.len() as u64 {
        assert!(Instant::now() < deadline, "the notifier did not catch up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = notifier.terminate().expect("exit status");
    assert!(
        status.success(),
        "SIGTERM ends the notifier cleanly: {status}"
    );

    let log = Translog::open_read_only(data.path()).unwrap();
    let mut exported = Vec::new();
    log.export(&mut exported).unwrap();
    let exported: Vec<String> = String::from_utf8(exported)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(exported.len(), expected.len(), "no write lost or repeated");
    assert_eq!(exported, expected);
    assert!(
        listener_runtime::testing::check_translog(data.path())
            .unwrap()
            .problems
            .is_empty()
    );
}
