//! The administrator's tools against a running listener (over its control socket) and a
//! stopped one (from the cache): `status` (IDs, lag, module states, exit codes), `dump`
//! (LDIF with base64 and `listenerModule` lines, `--ids`), `verify` (equal, then a
//! damaged cache named per DN), `failed list/show/replay/drop` with the
//! `failing_on_demand` example module, `resync` of one module while running, `modules`
//! while running, and `status` exit code 1 while the blocking `halting_on_demand` module
//! (of listener-under-test) halts processing.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use listener_core::{Dn, Entry};
use listener_runtime::testing::Cache;
use tests::Slapd;
use tests::domain::Domain;
use tests::ldif;

const BASE: &str = "dc=example,dc=com";

/// Runs `listener-under-test <args…>`.
fn tool(args: &[&str]) -> Output {
    Command::new(tests::listener_binary!())
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LISTENER_CACHE_DIR")
        .env_remove("LISTENER_NOTIFIER")
        .output()
        .expect("run listener-under-test")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Both streams, for assertion messages.
fn shown(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Admin {
    domain: Domain,
    cache: String,
}

impl Admin {
    fn run(&self, command: &str, args: &[&str]) -> Output {
        let mut all = vec![command, "--cache-dir", &self.cache];
        all.extend_from_slice(args);
        tool(&all)
    }

    fn status(&self) -> (serde_json::Value, Output) {
        let out = self.run("status", &["--json"]);
        let json = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}):\n{}", shown(&out)));
        (json, out)
    }

    /// Waits until the listener reports the notifier's current ID as processed.
    fn caught_up(&self) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let (json, out) = self.status();
            let target = self.domain.notifier_id();
            if json["last_id"] == target && json["lag_ids"] == 0 {
                return json;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not caught up with {target}:\n{}",
                shown(&out)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn verify(&self) -> Output {
        let slapd = &self.domain.slapd;
        let password = slapd.password_file().to_string_lossy().into_owned();
        let root = slapd.root_dn();
        self.run(
            "verify",
            &[
                "--ldap-uri",
                slapd.url(),
                "--base",
                BASE,
                "--bind-dn",
                &root,
                "--bind-password-file",
                &password,
                "--settle",
                "5",
            ],
        )
    }

    fn failed_json(&self) -> Vec<serde_json::Value> {
        let out = self.run("failed", &["list", "--json"]);
        assert!(out.status.success(), "{}", shown(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn admin_tools_work_against_a_running_and_a_stopped_listener() {
    let mut domain = Domain::start(
        tests::listener_binary!(),
        Slapd::builder().base(BASE).entries(&format!(
            "dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n"
        )),
    )
    .unwrap();
    domain.start_listener().unwrap();
    let cache = domain.cache_dir().to_string_lossy().into_owned();
    let mut admin = Admin { domain, cache };
    // Initialized: the printer took the existing objects as `n`.
    admin.domain.wait_for(Duration::from_secs(30), |calls| {
        calls
            .iter()
            .any(|l| l.starts_with("ou=people,") && l.ends_with("\tn"))
    });
    let mueller = format!("cn=Müller,{BASE}");
    admin
        .domain
        .slapd
        .ldapmodify(&ldif::add(
            &mueller,
            &[
                ("objectClass", "organizationalRole"),
                ("cn", "Müller"),
                ("description", " leading space"),
            ],
        ))
        .unwrap();
    admin.domain.barrier();

    // status --json while running: the notifier's ID, caught up, every module READY.
    let json = admin.caught_up();
    let (json2, out) = admin.status();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert_eq!(json2["last_id"], json["last_id"]);
    assert_eq!(json["running"], true);
    assert_eq!(json["health"], "healthy");
    assert_eq!(json["notifier_id"], admin.domain.notifier_id());
    assert_eq!(json["lag_seconds"], 0.0);
    assert_eq!(json["halted"], serde_json::Value::Null);
    assert!(json["rate"].as_f64().is_some(), "{json}");
    let modules = json["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 7, "{json}");
    for m in modules {
        assert_eq!(m["state"], "READY", "{json}");
        assert_eq!(m["failed"], 0, "{json}");
    }
    // The human form too.
    let out = admin.run("status", &[]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let text = stdout(&out);
    assert!(
        text.contains("running") && text.contains("healthy"),
        "{text}"
    );
    assert!(
        text.contains("MODULE") && text.contains("printer"),
        "{text}"
    );

    // dump: LDIF, base64 where RFC 2849 asks, the registrations after each entry.
    let out = admin.run("dump", &[]);
    assert!(out.status.success(), "{}", shown(&out));
    let dump = stdout(&out);
    let mut dn_line = String::new();
    listener_core::ldif::write_line(&mut dn_line, "dn", mueller.as_bytes());
    let record = dump
        .split("\n\n")
        .find(|r| r.starts_with(&dn_line))
        .unwrap_or_else(|| panic!("no {dn_line:?} in\n{dump}"));
    assert!(record.starts_with("dn:: "), "{record}");
    assert!(record.contains("\ndescription:: "), "{record}");
    assert!(record.ends_with("\nlistenerModule: printer"), "{record}");
    assert!(dump.contains(&format!("dn: ou=people,{BASE}\n")), "{dump}");
    let out = admin.run("dump", &["--ids"]);
    let ids = stdout(&out);
    let numbers: Vec<u64> = ids.split_whitespace().map(|n| n.parse().unwrap()).collect();
    assert_eq!(numbers.len(), 2, "{ids}");
    assert_eq!(numbers[0], admin.domain.notifier_id(), "{ids}");

    // modules --cache-dir while running: through the socket, not "in use".
    let out = tool(&["modules", "--cache-dir", &admin.cache]);
    assert!(out.status.success(), "{}", shown(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("printer ") && l.contains(" READY ")),
        "{}",
        shown(&out)
    );

    // verify while running: cache and LDAP agree.
    let out = admin.verify();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        stdout(&out).contains(" 0 differences, 0 cache problems"),
        "{}",
        shown(&out)
    );

    // failed: a change failing_on_demand cannot take.
    let broken = format!("cn=broken,{BASE}");
    admin
        .domain
        .slapd
        .ldapmodify(&ldif::add(
            &broken,
            &[
                ("objectClass", "organizationalRole"),
                ("cn", "broken"),
                ("description", "fail"),
            ],
        ))
        .unwrap();
    admin.domain.barrier();
    // Reading tools show what is durable: under group commit, once caught up.
    admin.caught_up();
    let events = admin.failed_json();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["module"], "failing_on_demand");
    assert_eq!(event["dn"], broken.as_str());
    assert_eq!(event["command"], "a");
    assert_eq!(event["attempts"], 3);
    let seq = event["seq"].as_u64().unwrap().to_string();
    let out = admin.run("failed", &[]);
    let list = stdout(&out);
    assert!(list.contains("failing_on_demand: 1 failed event"), "{list}");
    assert!(
        list.contains(&broken) && list.contains("asked to fail"),
        "{list}"
    );
    let (json, _) = admin.status();
    let failing = json["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "failing_on_demand")
        .unwrap()
        .clone();
    assert_eq!(failing["failed"], 1, "{json}");

    let out = admin.run("failed", &["show", "failing_on_demand", &seq]);
    assert!(out.status.success(), "{}", shown(&out));
    let show = stdout(&out);
    assert!(show.contains(&format!("dn:          {broken}\n")), "{show}");
    assert!(show.contains("command:     a\n"), "{show}");
    assert!(show.contains("old:         (none)"), "{show}");
    assert!(show.contains(&format!("new:\ndn: {broken}\n")), "{show}");
    assert!(show.contains("description: fail\n"), "{show}");
    let out = admin.run("failed", &["show", "failing_on_demand", "999"]);
    assert!(!out.status.success(), "{}", shown(&out));

    // Replay while it still fails: it stays, attempts counted up.
    let out = admin.run("failed", &["replay", "failing_on_demand"]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(
        stdout(&out).contains("0 delivered, 1 failed again, 0 superseded"),
        "{}",
        shown(&out)
    );
    let events = admin.failed_json();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["attempts"], 6, "{events:?}");
    assert_eq!(
        events[0]["seq"].as_u64().unwrap().to_string(),
        seq,
        "same name"
    );

    // The object leaves the module's filter: the event is superseded and dropped.
    admin
        .domain
        .slapd
        .ldapmodify(&ldif::replace(&broken, "description", "fixed"))
        .unwrap();
    admin.domain.barrier();
    admin.caught_up();
    let out = admin.run("failed", &["replay", "failing_on_demand", &seq]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    assert!(
        stdout(&out).contains("0 delivered, 0 failed again, 1 superseded"),
        "{}",
        shown(&out)
    );
    assert!(admin.failed_json().is_empty());

    // drop.
    let broken2 = format!("cn=broken2,{BASE}");
    admin
        .domain
        .slapd
        .ldapmodify(&ldif::add(
            &broken2,
            &[
                ("objectClass", "organizationalRole"),
                ("cn", "broken2"),
                ("description", "fail"),
            ],
        ))
        .unwrap();
    admin.domain.barrier();
    admin.caught_up();
    assert_eq!(admin.failed_json().len(), 1);
    let out = admin.run("failed", &["drop", "failing_on_demand"]);
    assert!(out.status.success(), "{}", shown(&out));
    assert!(
        stdout(&out).contains("dropped 1 failed event of failing_on_demand"),
        "{}",
        shown(&out)
    );
    assert!(admin.failed_json().is_empty());
    let out = admin.run("failed", &["replay", "no_such_module"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no module named")
    );

    // resync of the printer while running: it gets every object again as `n`; the
    // listener goes on.
    let base_n = |calls: &[String]| {
        calls
            .iter()
            .filter(|l| l.starts_with(&format!("{BASE}\t")) && l.ends_with("\tn"))
            .count()
    };
    let before = base_n(&admin.domain.calls());
    let out = admin.run("resync", &["printer"]);
    assert!(out.status.success(), "{}", shown(&out));
    assert!(
        stdout(&out).contains("printer re-initialized: "),
        "{}",
        shown(&out)
    );
    assert_eq!(
        base_n(&admin.domain.calls()),
        before + 1,
        "the base again as `n`"
    );
    admin.domain.barrier();
    let json = admin.caught_up();
    for m in json["modules"].as_array().unwrap() {
        assert_eq!(m["state"], "READY", "{json}");
    }
    let out = admin.verify();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));

    // A blocking module halts processing: status exits 1 and says why; replay waits.
    let halt = format!("cn=halt,{BASE}");
    admin
        .domain
        .slapd
        .ldapmodify(&ldif::add(
            &halt,
            &[
                ("objectClass", "organizationalRole"),
                ("cn", "halt"),
                ("description", "halt"),
            ],
        ))
        .unwrap();
    let started = Instant::now();
    let (json, out) = loop {
        let (json, out) = admin.status();
        if json["halted"] != serde_json::Value::Null {
            break (json, out);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never halted:\n{}",
            shown(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert_eq!(json["health"], "halted");
    assert_eq!(json["halted"]["module"], "halting_on_demand", "{json}");
    assert_eq!(json["halted"]["id"], admin.domain.notifier_id(), "{json}");
    assert!(
        json["halted"]["error"]
            .as_str()
            .unwrap()
            .contains("asked to halt"),
        "{json}"
    );
    assert_eq!(json["lag_ids"], 1, "{json}");
    let out = admin.run("status", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    assert!(
        stdout(&out).contains("by the blocking module halting_on_demand"),
        "{}",
        shown(&out)
    );
    let out = admin.run("failed", &["replay", "failing_on_demand"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("processing is halted"),
        "{}",
        shown(&out)
    );
    // Fixed at the source: the retry fetches the new state and processing goes on.
    admin
        .domain
        .slapd
        .ldapmodify(&ldif::replace(&halt, "description", "go on"))
        .unwrap();
    let json = admin.caught_up();
    assert_eq!(json["halted"], serde_json::Value::Null, "{json}");
    assert_eq!(json["health"], "healthy", "{json}");

    // Stopped: status from the cache (exit 3, not running), replay refused, and a cache
    // made to differ from LDAP is reported per DN.
    assert!(admin.domain.stop_listener());
    let (json, out) = admin.status();
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    assert_eq!(json["running"], false);
    assert_eq!(json["health"], "unknown");
    assert_eq!(json["last_id"], admin.domain.notifier_id());
    let args = admin
        .domain
        .run_args("cn=unused", admin.domain.slapd.password_file());
    let notifier = args[args.iter().position(|a| a == "--notifier").unwrap() + 1].clone();
    let out = admin.run("status", &["--json", "--notifier", &notifier]);
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["notifier_id"], admin.domain.notifier_id(), "{json}");
    assert_eq!(json["lag_ids"], 0, "{json}");
    let out = admin.run("failed", &["replay", "failing_on_demand"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("start the listener"),
        "{}",
        shown(&out)
    );
    let out = admin.run("dump", &["--ids"]);
    assert_eq!(
        stdout(&out).split_whitespace().next(),
        Some(admin.domain.notifier_id().to_string().as_str())
    );
    let out = admin.verify();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));

    {
        let cache = Cache::open(&admin.domain.cache_dir()).unwrap();
        let mut w = cache.write().unwrap();
        let dn = Dn::parse(&mueller).unwrap();
        let mut damaged = w.entry(&dn).unwrap().unwrap();
        damaged.entry.remove("description");
        damaged
            .entry
            .insert("description", ["not in LDAP"])
            .unwrap();
        w.put_entry(&damaged.entry, &damaged.modules).unwrap();
        let mut ghost = Entry::new(Dn::parse(&format!("cn=ghost,{BASE}")).unwrap());
        ghost.insert("objectClass", ["organizationalRole"]).unwrap();
        w.put_entry(&ghost, BTreeSet::from(["printer"])).unwrap();
        w.commit().unwrap();
    }
    let out = admin.verify();
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let report = stdout(&out);
    assert!(
        report.contains(&format!("differs: {mueller}: description\n")),
        "{report}"
    );
    assert!(
        report.contains(&format!("only in cache: cn=ghost,{BASE}\n")),
        "{report}"
    );

    // Running again: the same differences persist through the re-check.
    admin.domain.start_listener().unwrap();
    let started = Instant::now();
    // (Until it serves its socket, `status` finds the cache in use and says so.)
    while serde_json::from_slice::<serde_json::Value>(&admin.run("status", &["--json"]).stdout)
        .map_or(true, |json| json["running"] != true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the listener did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = admin.verify();
    assert_eq!(out.status.code(), Some(1), "{}", shown(&out));
    let report = stdout(&out);
    assert!(
        report.contains(&format!("differs: {mueller}: description\n")),
        "{report}"
    );
    assert!(
        report.contains(&format!("only in cache: cn=ghost,{BASE}\n")),
        "{report}"
    );

    // Killed: the socket it leaves behind is stale, and the tools read the cache.
    admin.domain.listener().unwrap().kill9();
    assert!(admin.domain.cache_dir().join("control.sock").exists());
    let (json, out) = admin.status();
    assert_eq!(out.status.code(), Some(3), "{}", shown(&out));
    assert_eq!(json["running"], false, "{json}");
}
