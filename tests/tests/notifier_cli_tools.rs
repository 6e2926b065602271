//! The notifier's command line as an administrator uses it: `notifier` as a daemon,
//! `notifier-id`, and `translog stat|lookup|export|check|prune`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tests::Slapd;
use tests::daemon::{Daemon, notifier_id, wait_for_notifier};

fn run(args: &[&str]) -> Output {
    Command::new(tests::listener_binary!())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run listener-under-test")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn notifier_daemon_and_its_tools() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args: Vec<String> = [
        "notifier",
        "--ldap-uri",
        slapd.url(),
        "--bind-dn",
        &slapd.root_dn(),
        "--bind-password-file",
        &slapd.password_file().to_string_lossy(),
        "--data-dir",
        &data_dir,
        "--listen",
        &listen,
        "--schema-interval",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut notifier = Daemon::start(tests::listener_binary!(), &args).unwrap();
    assert_eq!(wait_for_notifier(port, Duration::from_secs(20)).unwrap(), 0);

    for name in ["one", "two", "three"] {
        slapd
            .ldapmodify(&format!(
                "dn: cn={name},{base}\nobjectClass: organizationalRole\ncn: {name}\n"
            ))
            .unwrap();
    }
    slapd
        .ldapmodify(&format!(
            "dn: cn=two,{base}\nchangetype: modrdn\nnewrdn: cn=zwei\ndeleteoldrdn: 1\n"
        ))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while notifier_id(port).unwrap() < 5 {
        assert!(Instant::now() < deadline, "notifier did not reach ID 5");
        std::thread::sleep(Duration::from_millis(20));
    }

    // notifier-id, like UCS's get_notifier_id
    let out = run(&["notifier-id", "--notifier", &listen]);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "5\n");

    // A schema change raises the schema ID.
    let out = run(&["notifier-id", "--notifier", &listen, "--schema"]);
    assert_eq!(stdout(&out), "0\n");
    slapd
        .ldapmodify_as_root(
            "dn: cn={4}listenertest,cn=schema,cn=config\n\
             objectClass: olcSchemaConfig\n\
             cn: {4}listenertest\n\
             olcAttributeTypes: ( 1.3.6.1.4.1.99999.1.1 NAME 'listenerTestAttribute' \
             EQUALITY caseIgnoreMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )\n",
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run(&["notifier-id", "--notifier", &listen, "--schema"]);
        if stdout(&out) == "1\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "schema ID still {}",
            stdout(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // translog tools work beside the running notifier.
    let out = run(&["translog", "--data-dir", &data_dir, "stat"]);
    assert!(out.status.success(), "{out:?}");
    let stat = stdout(&out);
    assert!(
        stat.contains("first ID:     1\n") && stat.contains("last ID:      5\n"),
        "{stat}"
    );

    let out = run(&["translog", "--data-dir", &data_dir, "export"]);
    assert_eq!(
        stdout(&out),
        format!(
            "1 cn=one,{base} a\n2 cn=two,{base} a\n3 cn=three,{base} a\n\
             4 cn=two,{base} r\n5 cn=zwei,{base} a\n"
        )
    );

    let out = run(&["translog", "--data-dir", &data_dir, "lookup", "4", "5"]);
    let lookup = stdout(&out);
    assert!(
        lookup.starts_with(&format!("4 cn=two,{base} r\n  entryUUID: ")),
        "{lookup}"
    );
    assert!(
        lookup.contains(&format!("5 cn=zwei,{base} a\n")),
        "{lookup}"
    );
    let out = run(&["translog", "--data-dir", &data_dir, "lookup", "99"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("transaction 99 is not in the log"));

    let out = run(&["translog", "--data-dir", &data_dir, "check"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("5 transactions (1..5)"),
        "{}",
        stdout(&out)
    );

    // Pruning needs the notifier stopped: it holds the log.
    let out = run(&["translog", "--data-dir", &data_dir, "prune", "--keep", "2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use by another notifier"),
        "{out:?}"
    );

    // A second notifier on the same data directory is refused.
    let mut second_args = args.clone();
    let listen_index = second_args.iter().position(|a| a == "--listen").unwrap() + 1;
    second_args[listen_index] = format!("127.0.0.1:{}", free_port());
    let out = Command::new(tests::listener_binary!())
        .args(&second_args)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another notifier"));

    let status = notifier.terminate().unwrap();
    assert!(
        status.success(),
        "SIGTERM ends the notifier with 0: {status}"
    );

    let out = run(&["translog", "--data-dir", &data_dir, "prune", "--keep", "2"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "removed 3 transactions; the log now holds 4..5\n"
    );
    let out = run(&["translog", "--data-dir", &data_dir, "export"]);
    assert_eq!(
        stdout(&out),
        format!("4 cn=two,{base} r\n5 cn=zwei,{base} a\n")
    );
}

#[test]
fn the_bind_password_never_comes_from_the_command_line() {
    let out = run(&[
        "notifier",
        "--ldap-uri",
        "ldap://127.0.0.1:1",
        "--bind-dn",
        "cn=admin",
        "--bind-password",
        "secret",
        "--data-dir",
        "/nonexistent",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--bind-password'"));

    let out = Command::new(tests::listener_binary!())
        .args([
            "notifier",
            "--ldap-uri",
            "ldap://127.0.0.1:1",
            "--bind-dn",
            "cn=admin",
            "--data-dir",
            "/nonexistent",
        ])
        .env_remove("LISTENER_BIND_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no bind password"),
        "{out:?}"
    );
}
