//! Acceptance: a crate outside this workspace (`listener-runtime/tests/external`) writes
//! modules with the public API (docs/architecture.md) and a binary with
//! `listener_runtime::main()`. `<bin> modules` lists them, and run against a real slapd
//! its asynchronous module `crm_sync` (`run_asynchronously, parallelism = 4`, a shared
//! counter under a lock) runs in worker processes, in parallel, ordered per object, with
//! an exact counter, on the embedded store and with `--memcached`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use listener_runtime::testing::SharedStore;
use tests::domain::Domain;
use tests::{Memcached, Slapd};

const USERS: usize = 40;

/// One line of `crm-calls.txt`: pid, entryUUID, version, start, end.
type Recorded = (u32, String, u64, u64, u64);
const VERSIONS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crate_outside_the_workspace_lists_its_modules_and_runs_crm_sync_in_workers() {
    let binary = tests::external::build_my_listener().unwrap();
    let run = Command::new(&binary).arg("modules").output().unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with("unique_name "))
        .unwrap_or_else(|| panic!("no row for unique_name in:\n{stdout}"));
    assert!(
        row.contains("(&(objectClass=inetOrgPerson)(uid=example))"),
        "{row}"
    );
    assert!(row.contains("sn,givenName"), "{row}");
    assert!(row.contains(" new "), "{row}");
    let row = stdout
        .lines()
        .find(|line| line.starts_with("crm_sync "))
        .unwrap_or_else(|| panic!("no row for crm_sync in:\n{stdout}"));
    assert!(row.contains(" async ") && row.contains(" 4 "), "{row}");

    for with_memcached in [false, true] {
        let memcached = with_memcached.then(|| Memcached::start().unwrap());
        let mut domain = Domain::start(&binary, Slapd::builder()).unwrap();
        let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
        if let Some(m) = &memcached {
            args.extend(["--memcached".to_owned(), m.address()]);
        }
        domain.start_listener_with(&args).unwrap();
        assert!(domain.wait_caught_up(Duration::from_secs(60)));
        let listener = domain.listener().unwrap().pid();
        // Each user is created, then changed twice; the listener catches up after each
        // round, so it sees every version.
        let base = domain.slapd.base().to_owned();
        for version in 0..VERSIONS {
            let ldif: String = (0..USERS)
                .map(|i| match version {
                    0 => format!(
                        "dn: uid=u{i},{base}\nobjectClass: inetOrgPerson\nuid: u{i}\ncn: u{i}\nsn: u{i}\ndescription: 0\n\n"
                    ),
                    v => format!("dn: uid=u{i},{base}\nchangetype: modify\nreplace: description\ndescription: {v}\n\n"),
                })
                .collect();
            domain.slapd.ldapmodify(&ldif).unwrap();
            assert!(domain.wait_caught_up(Duration::from_secs(60)));
        }
        assert!(domain.wait_for_queues(Duration::from_secs(120)));

        let path = domain.cache_dir().parent().unwrap().join("crm-calls.txt");
        let text = std::fs::read_to_string(&path).unwrap();
        let calls: Vec<Recorded> = text
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (
                    f[0].parse().unwrap(),
                    f[1].to_owned(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    f[4].parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(calls.len(), USERS * VERSIONS, "{text}");
        let pids: BTreeSet<u32> = calls.iter().map(|c| c.0).collect();
        assert!(
            pids.len() >= 2 && !pids.contains(&listener),
            "{pids:?}, listener {listener}"
        );
        let mut by_uuid: BTreeMap<&str, Vec<&Recorded>> = BTreeMap::new();
        for call in &calls {
            by_uuid.entry(call.1.as_str()).or_default().push(call);
        }
        for (uuid, mut own) in by_uuid {
            own.sort_by_key(|c| c.3);
            let versions: Vec<u64> = own.iter().map(|c| c.2).collect();
            assert_eq!(versions, [0, 1, 2], "{uuid}");
            assert!(
                own.windows(2).all(|w| w[0].4 <= w[1].3),
                "{uuid} overlaps: {own:?}"
            );
        }
        // In parallel: some calls for different objects overlap in time.
        let mut sorted = calls.clone();
        sorted.sort_by_key(|c| c.3);
        assert!(
            sorted.windows(2).any(|w| w[1].3 < w[0].4),
            "no two calls ran at once"
        );

        let context = match &memcached {
            Some(m) => SharedStore::memcached(&m.address()).context("crm_sync"),
            None => {
                assert!(domain.stop_listener());
                SharedStore::embedded(&domain.cache_dir())
                    .unwrap()
                    .context("crm_sync")
            }
        };
        let counted: Option<u64> = context.get_shared_var("calls").await.unwrap();
        assert_eq!(
            counted,
            Some((USERS * VERSIONS) as u64),
            "memcached: {with_memcached}"
        );
    }
}
