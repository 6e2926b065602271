//! Module initialization of 20,000 existing entries (semantics §6), killed -9 halfway and
//! restarted: every entry reaches the printer as `n` at least once, the second run resumes
//! where the first committed instead of starting over, and the module ends READY.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use listener_runtime::testing::{Cache, ModulePhase};
use tests::Slapd;
use tests::domain::Domain;

const ENTRIES: usize = 20_000;

/// The printer's `n` lines so far, by DN.
fn initialized(calls: &[String]) -> Vec<&str> {
    calls
        .iter()
        .filter(|l| l.ends_with("\tn"))
        .filter_map(|l| l.split('\t').next())
        .collect()
}

#[test]
fn initialization_of_20000_entries_resumes_after_kill_9() {
    let base = "dc=example,dc=com";
    let ldif: String = (0..ENTRIES)
        .map(|i| format!("dn: cn=e{i},{base}\nobjectClass: organizationalRole\ncn: e{i}\n\n"))
        .collect();
    let started = Instant::now();
    let mut domain = Domain::start(
        tests::listener_binary!(),
        Slapd::builder().base(base).entries(&ldif),
    )
    .unwrap();
    eprintln!(
        "slapadd of {ENTRIES} entries and start: {:?}",
        started.elapsed()
    );

    // The first run, killed when about half the entries reached the printer.
    let started = Instant::now();
    domain.start_listener().unwrap();
    let first = domain.wait_for(Duration::from_secs(60), |calls| {
        initialized(calls).len() >= ENTRIES / 2
    });
    let halfway = started.elapsed();
    domain.listener().unwrap().kill9();
    let first = initialized(&domain.calls())
        .len()
        .max(initialized(&first).len());
    eprintln!("first run: {first} entries in {halfway:?}, then kill -9");
    assert!(
        first < ENTRIES,
        "the first run finished before the kill ({first} entries); nothing was resumed"
    );

    // `modules` shows where it stopped (the cache a killed listener left needs redb's
    // repair, which `modules` does by opening it normally).
    let out = std::process::Command::new(tests::listener_binary!())
        .args(["modules", "--cache-dir"])
        .arg(domain.cache_dir())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let printer = table
        .lines()
        .find(|l| l.starts_with("printer "))
        .unwrap_or_else(|| panic!("{table}{}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("{printer}");
    assert!(printer.contains(" INITIALIZING ("), "{table}");

    // The second run resumes.
    let started = Instant::now();
    domain.listener().unwrap().restart().unwrap();
    let calls = domain.wait_for(Duration::from_secs(60), |calls| {
        initialized(calls).iter().collect::<HashSet<_>>().len() > ENTRIES
    });
    eprintln!("second run: the rest in {:?}", started.elapsed());

    let lines = initialized(&calls);
    let distinct: HashSet<&str> = lines.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ENTRIES + 1,
        "every entry and the base, at least once"
    );
    let repeated = lines.len() - distinct.len();
    eprintln!("{repeated} entries delivered twice");
    assert!(
        repeated < 1_000,
        "the second run started over: {repeated} entries delivered twice"
    );

    assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
    let cache = Cache::open_read_only(&domain.cache_dir()).unwrap().unwrap();
    let r = cache.read().unwrap();
    let state = r.module_state("printer").unwrap().expect("a state");
    assert_eq!(state.phase, ModulePhase::Ready);
    assert_eq!(r.registered_count("printer").unwrap(), ENTRIES as u64 + 1);
}
