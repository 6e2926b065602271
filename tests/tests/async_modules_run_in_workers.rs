//! Asynchronous modules run in worker processes (`recording_slowly` of the test binary:
//! `parallelism = 4`, 20 ms a call, each call recorded with its worker's pid, the
//! object's entryUUID and version, and its start and end): calls for one object never
//! overlap and see the object's states in order, calls for different objects run side
//! by side in several workers, a synchronous module is not held up, a worker or the
//! listener killed with -9 loses nothing, a delete and a re-create at one DN keep their
//! order, and the shared counter the calls increment under a lock is exact (and loses
//! updates without the lock) on the embedded store and on memcached.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use listener_runtime::testing::SharedStore;
use tests::domain::Domain;
use tests::{Memcached, Slapd};

const OBJECTS: usize = 200;
const VERSIONS: usize = 5;

/// One recorded call.
#[derive(Debug, Clone)]
struct Call {
    pid: u32,
    call: String,
    dn: String,
    uuid: String,
    version: Option<u64>,
    /// What `ctx.search` found of the object, for creates and modifies.
    found: Option<u64>,
    start: u64,
    end: u64,
}

fn calls_file(domain: &Domain) -> std::path::PathBuf {
    domain
        .cache_dir()
        .parent()
        .expect("the cache directory is in the domain's")
        .join("async-calls.jsonl")
}

/// The recorded change calls (create, modify, remove).
fn calls(path: &Path) -> Vec<Call> {
    records(path)
        .into_iter()
        .filter(|c| !c.call.ends_with("_run"))
        .collect()
}

/// Every recorded line, `pre_run` and `post_run` included.
fn records(path: &Path) -> Vec<Call> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|v| Call {
            pid: v["pid"].as_u64().unwrap_or(0) as u32,
            call: v["call"].as_str().unwrap_or_default().to_owned(),
            dn: v["dn"].as_str().unwrap_or_default().to_owned(),
            uuid: v["uuid"].as_str().unwrap_or_default().to_owned(),
            version: v["version"].as_str().and_then(|s| s.parse().ok()),
            found: v["found"].as_u64(),
            start: v["start"].as_u64().unwrap_or(0),
            end: v["end"].as_u64().unwrap_or(0),
        })
        .collect()
}

/// Creates `OBJECTS` roles described `description` at version 0, then modifies each of
/// them to versions 1 to 4, round after round (so calls for different objects
/// interleave). A barrier after each round: the listener reads each object once a round,
/// so it sees every version (it reads the current state of an object, and a round
/// written before it got there would fold into the next).
fn write_workload(domain: &mut Domain, description: &str) {
    let base = domain.slapd.base().to_owned();
    let mut ldif = String::new();
    for i in 0..OBJECTS {
        ldif.push_str(&format!(
            "dn: cn=obj{i},{base}\nobjectClass: organizationalRole\ncn: obj{i}\ndescription: {description}\nl: 0\n\n"
        ));
    }
    domain.slapd.ldapmodify(&ldif).unwrap();
    domain.barrier();
    for version in 1..VERSIONS {
        let mut ldif = String::new();
        for i in 0..OBJECTS {
            ldif.push_str(&format!(
                "dn: cn=obj{i},{base}\nchangetype: modify\nreplace: l\nl: {version}\n\n"
            ));
        }
        domain.slapd.ldapmodify(&ldif).unwrap();
        domain.barrier();
    }
}

/// Per entryUUID: no two calls overlap, the versions never go back, and the last call
/// saw the last version. Returns how many calls were repeats (at least once).
fn assert_ordered_and_complete(calls: &[Call]) -> usize {
    let mut by_uuid: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for call in calls {
        by_uuid.entry(&call.uuid).or_default().push(call);
    }
    assert_eq!(by_uuid.len(), OBJECTS, "calls for every object");
    let mut repeats = 0;
    for (uuid, mut calls) in by_uuid {
        calls.sort_by_key(|c| c.start);
        for pair in calls.windows(2) {
            assert!(
                pair[0].end <= pair[1].start,
                "calls for {uuid} overlap: {:?} and {:?}",
                pair[0],
                pair[1]
            );
            assert!(
                pair[0].version <= pair[1].version,
                "calls for {uuid} went back from version {:?} to {:?}",
                pair[0].version,
                pair[1].version
            );
        }
        assert_eq!(calls[0].call, "create", "{uuid}: {calls:?}");
        assert_eq!(
            calls.last().and_then(|c| c.version),
            Some(VERSIONS as u64 - 1),
            "{uuid} got its last state: {calls:?}"
        );
        let versions: BTreeSet<Option<u64>> = calls.iter().map(|c| c.version).collect();
        repeats += calls.len() - versions.len();
    }
    repeats
}

fn micros_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

async fn embedded_count(domain: &Domain) -> Option<u64> {
    SharedStore::embedded(&domain.cache_dir())
        .unwrap()
        .context("recording_slowly")
        .get_shared_var("calls")
        .await
        .unwrap()
}

fn wait_for_lines(path: &Path, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while calls(path).len() < lines && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only asks whether the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_in_workers_in_parallel_and_in_order_per_object() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    domain.barrier();
    let listener_pid = domain.listener().unwrap().pid();
    write_workload(&mut domain, "slow");
    // The synchronous printer has every change when the last barrier has passed, while
    // the asynchronous module's queue still holds calls…
    let barrier_passed = micros_now();
    let status = domain.status();
    let printed = domain
        .calls()
        .iter()
        .filter(|l| l.starts_with("cn=obj"))
        .count();
    assert!(printed >= OBJECTS * VERSIONS, "{printed} printer calls");
    let behind = status["modules"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "recording_slowly"))
        .and_then(|m| m["queue"]["depth"].as_u64())
        .unwrap_or(0);
    // …and the asynchronous module's queue drains later.
    assert!(domain.wait_for_queues(Duration::from_secs(120)));
    let calls = calls(&calls_file(&domain));
    assert_eq!(calls.len(), OBJECTS * VERSIONS, "one call per change");
    assert_eq!(assert_ordered_and_complete(&calls), 0);

    let pids: BTreeSet<u32> = calls.iter().map(|c| c.pid).collect();
    assert!(pids.len() >= 2, "calls ran in {pids:?}");
    // ctx.search works in a worker (nothing here is deleted: it finds every object).
    assert!(
        calls.iter().all(|c| c.found == Some(1)),
        "a search in a worker failed"
    );
    assert!(!pids.contains(&listener_pid), "a call ran in the listener");
    let first = calls.iter().map(|c| c.start).min().unwrap();
    let last = calls.iter().map(|c| c.end).max().unwrap();
    let sum: u64 = calls.iter().map(|c| c.end - c.start).sum();
    let wall = last - first;
    assert!(
        wall * 3 <= sum,
        "wall {wall} µs, handlers {sum} µs: not in parallel enough"
    );
    eprintln!(
        "{} calls in {} workers: wall {} ms, handlers {} ms; the printer had every change \
         {} ms before the last asynchronous call ended, {behind} calls still queued then",
        calls.len(),
        pids.len(),
        wall / 1000,
        sum / 1000,
        last.saturating_sub(barrier_passed) / 1000
    );
    assert!(
        behind >= 100 && last > barrier_passed + 500_000,
        "the listener was not ahead of the asynchronous module"
    );
    // Every worker ran pre_run before its first call and, the queue drained and the idle
    // time (1 s) passed, post_run after its last.
    let path = calls_file(&domain);
    let deadline = Instant::now() + Duration::from_secs(30);
    let post_runs = || {
        records(&path)
            .iter()
            .filter(|c| c.call == "post_run")
            .map(|c| c.pid)
            .collect::<BTreeSet<u32>>()
    };
    while post_runs() != pids && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let records = records(&path);
    for pid in &pids {
        // (clean and initialize at the first start are no calls: no pre_run for them.)
        let own: Vec<&str> = records
            .iter()
            .filter(|c| c.pid == *pid && !matches!(c.call.as_str(), "clean_run" | "initialize_run"))
            .map(|c| c.call.as_str())
            .collect();
        assert_eq!(own.first(), Some(&"pre_run"), "worker {pid}: {own:?}");
        assert_eq!(own.last(), Some(&"post_run"), "worker {pid}: {own:?}");
        assert_eq!(own.iter().filter(|c| **c == "pre_run").count(), 1);
    }
    assert!(domain.stop_listener());
    assert_eq!(
        embedded_count(&domain).await,
        Some((OBJECTS * VERSIONS) as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_pauses_the_listener_and_loses_nothing() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
    args.extend(["--queue-limit".to_owned(), "5".to_owned()]);
    domain.start_listener_with(&args).unwrap();
    domain.barrier();
    create_roles(&domain, "slow", 100);
    // The listener takes in the transactions only as fast as the workers make room: the
    // queue never holds more than its limit and one transaction's calls.
    let mut deepest = 0;
    let mut paused_behind = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = domain.status();
        let depth = status["modules"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["name"] == "recording_slowly"))
            .and_then(|m| m["queue"]["depth"].as_u64())
            .unwrap_or(0);
        deepest = deepest.max(depth);
        paused_behind |= status["lag_ids"].as_u64() > Some(20);
        if calls(&calls_file(&domain)).len() >= 100 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(deepest <= 6, "the queue held {deepest} calls");
    assert!(paused_behind, "the listener never fell behind the notifier");
    domain.barrier();
    assert!(domain.wait_for_queues(Duration::from_secs(60)));
    let calls = calls(&calls_file(&domain));
    let dns: BTreeSet<&str> = calls.iter().map(|c| c.dn.as_str()).collect();
    assert_eq!((calls.len(), dns.len()), (100, 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_has_its_call_handed_out_again() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    domain.barrier();
    write_workload(&mut domain, "slow");
    let path = calls_file(&domain);
    wait_for_lines(&path, 100);
    let victim = calls(&path)[0].pid;
    // SAFETY: sends a signal to a worker of this test's listener.
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    assert!(domain.wait_for_queues(Duration::from_secs(120)));
    let calls = calls(&path);
    let repeats = assert_ordered_and_complete(&calls);
    assert!(calls.len() >= OBJECTS * VERSIONS);
    let status = domain.status();
    let module = status["modules"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "recording_slowly"))
        .cloned()
        .unwrap_or_default();
    assert!(module["queue"]["restarts"].as_u64() >= Some(1), "{module}");
    assert_eq!(module["failed"], 0, "{module}");
    eprintln!(
        "worker {victim} killed: {} calls, {repeats} repeated",
        calls.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_killed_mid_stream_loses_no_call_and_its_workers_die_with_it() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    domain.barrier();
    write_workload(&mut domain, "slow");
    let path = calls_file(&domain);
    wait_for_lines(&path, 100);
    let workers: BTreeSet<u32> = calls(&path).iter().map(|c| c.pid).collect();
    // The bind password is in neither a worker's command line nor its environment.
    let password = domain.slapd.root_password();
    for pid in &workers {
        for what in ["cmdline", "environ"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(password), "worker {pid}'s {what}: {text}");
        }
    }
    domain.listener().unwrap().kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        workers.iter().all(|&p| !alive(p)),
        "workers {workers:?} outlived the listener"
    );
    domain.listener().unwrap().restart().unwrap();
    domain.barrier();
    assert!(domain.wait_for_queues(Duration::from_secs(120)));
    let calls = calls(&path);
    let repeats = assert_ordered_and_complete(&calls);
    eprintln!("listener killed: {} calls, {repeats} repeated", calls.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_and_a_re_create_at_one_dn_arrive_in_order() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    domain.barrier();
    let base = domain.slapd.base().to_owned();
    let dn = format!("cn=phoenix,{base}");
    let add = |version: u64| {
        format!(
            "dn: {dn}\nobjectClass: organizationalRole\ncn: phoenix\ndescription: slow\nl: {version}\n\n"
        )
    };
    let modify =
        |version: u64| format!("dn: {dn}\nchangetype: modify\nreplace: l\nl: {version}\n\n");
    let delete = format!("dn: {dn}\nchangetype: delete\n\n");
    // A barrier after each change: the listener sees every state (see write_workload),
    // while the module, 20 ms a call, falls behind.
    for ldif in [
        add(0),
        modify(1),
        delete.clone(),
        add(2),
        modify(3),
        delete,
        add(4),
    ] {
        domain.slapd.ldapmodify(&ldif).unwrap();
        domain.barrier();
    }
    assert!(domain.wait_for_queues(Duration::from_secs(60)));
    let mut calls = calls(&calls_file(&domain));
    calls.sort_by_key(|c| c.start);
    let seen: Vec<(String, Option<u64>)> =
        calls.iter().map(|c| (c.call.clone(), c.version)).collect();
    let expected: Vec<(String, Option<u64>)> = [
        ("create", 0),
        ("modify", 1),
        ("remove", 1),
        ("create", 2),
        ("modify", 3),
        ("remove", 3),
        ("create", 4),
    ]
    .iter()
    .map(|(c, v)| ((*c).to_owned(), Some(*v)))
    .collect();
    assert_eq!(seen, expected);
    for pair in calls.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "{:?} overlaps {:?}",
            pair[0],
            pair[1]
        );
    }
    let uuids: BTreeSet<&str> = calls.iter().map(|c| c.uuid.as_str()).collect();
    assert_eq!(uuids.len(), 3, "three objects at one DN: {calls:?}");
    assert!(calls.iter().all(|c| c.dn.starts_with("cn=phoenix")));
}

/// Creates `count` roles described `description` (one call each).
fn create_roles(domain: &Domain, description: &str, count: usize) {
    let base = domain.slapd.base().to_owned();
    let ldif: String = (0..count)
        .map(|i| {
            format!("dn: cn=c{i},{base}\nobjectClass: organizationalRole\ncn: c{i}\ndescription: {description}\n\n")
        })
        .collect();
    domain.slapd.ldapmodify(&ldif).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counter_is_exact_under_the_lock_and_loses_updates_without_on_memcached() {
    for (description, exact) in [("slow", true), ("racy", false)] {
        let memcached = Memcached::start().unwrap();
        let addr = memcached.address();
        let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
        let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
        args.extend(["--memcached".to_owned(), addr.clone()]);
        domain.start_listener_with(&args).unwrap();
        domain.barrier();
        create_roles(&domain, description, 200);
        domain.barrier();
        assert!(domain.wait_for_queues(Duration::from_secs(60)));
        let count: Option<u64> = SharedStore::memcached(&addr)
            .context("recording_slowly")
            .get_shared_var("calls")
            .await
            .unwrap();
        let pids: BTreeSet<u32> = calls(&calls_file(&domain)).iter().map(|c| c.pid).collect();
        assert!(pids.len() >= 2, "{pids:?}");
        match exact {
            true => assert_eq!(count, Some(200), "under the lock"),
            false => assert!(count < Some(200), "without the lock: {count:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_lock_the_embedded_counter_loses_updates() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    domain.barrier();
    create_roles(&domain, "racy", 200);
    domain.barrier();
    assert!(domain.wait_for_queues(Duration::from_secs(60)));
    assert!(domain.stop_listener());
    let count = embedded_count(&domain).await;
    assert!(count < Some(200), "{count:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_keeps_killing_its_worker_becomes_a_failed_event() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener_with_log("info").unwrap();
    domain.barrier();
    let base = domain.slapd.base().to_owned();
    let ldif = format!(
        "dn: cn=poison,{base}\nobjectClass: organizationalRole\ncn: poison\ndescription: crash\n\n"
    );
    domain.slapd.ldapmodify(&ldif).unwrap();
    create_roles(&domain, "slow", 20);
    domain.barrier();
    assert!(domain.wait_for_queues(Duration::from_secs(60)));
    // The other calls went on; the poisonous one is a failed event.
    assert_eq!(calls(&calls_file(&domain)).len(), 20);
    let status = domain.status();
    let module = status["modules"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == "recording_slowly"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(module["failed"], 1, "{module}");
    assert!(module["queue"]["restarts"].as_u64() >= Some(3), "{module}");
    let out = std::process::Command::new(tests::listener_binary!())
        .args(["failed", "--cache-dir"])
        .arg(domain.cache_dir())
        .args(["list", "recording_slowly", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0]["dn"]
            .as_str()
            .unwrap_or_default()
            .starts_with("cn=poison")
    );
    let error = events[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("died 3 times"), "{error}");
    // Each dead worker held the lock the others need: the listener released it at once
    // instead of leaving it to its lease.
    let released = domain
        .log()
        .iter()
        .filter(|l| l.contains("released a lock its dead worker held"))
        .count();
    assert_eq!(released, 3, "{:#?}", domain.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_runs_the_queued_calls_first_then_initializes_in_the_workers() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    domain.barrier();
    create_roles(&domain, "slow", 100);
    domain.barrier();
    let out = std::process::Command::new(tests::listener_binary!())
        .args(["resync", "--cache-dir"])
        .arg(domain.cache_dir())
        .arg("recording_slowly")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("recording_slowly re-initialized: 100 objects delivered, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("queued calls were run first"), "{stdout}");
    let calls = calls(&calls_file(&domain));
    // The 100 creates of the changes, then the 100 of the initialization, all in
    // workers; per object the change's create ended before the initialization's began.
    assert_eq!(calls.len(), 200);
    let listener = domain.listener().unwrap().pid();
    assert!(calls.iter().all(|c| c.pid != listener));
    let mut by_dn: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for call in &calls {
        by_dn.entry(&call.dn).or_default().push(call);
    }
    let mut initial = Vec::new();
    for (dn, own) in by_dn {
        assert_eq!(own.len(), 2, "{dn}");
        assert!(own[0].end <= own[1].start, "{dn}: {own:?}");
        initial.push(own[1]);
    }
    // clean and initialize ran alone: no call of the module ran meanwhile.
    let records = records(&calls_file(&domain));
    for step in ["clean_run", "initialize_run"] {
        // At the first start and at the resync.
        let ran: Vec<&Call> = records.iter().filter(|c| c.call == step).collect();
        assert_eq!(ran.len(), 2, "{step}: {ran:?}");
        let alone = calls
            .iter()
            .all(|c| c.end <= ran[1].start || c.start >= ran[1].end);
        assert!(alone, "a call overlapped {step}");
    }
    // The initialization's creates ran side by side.
    initial.sort_by_key(|c| c.start);
    assert!(
        initial.windows(2).any(|w| w[1].start < w[0].end),
        "the initialization ran one call at a time"
    );
}
