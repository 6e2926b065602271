//! kill -9 of the listener at random moments while 2,000 mixed changes (adds, modifies,
//! renames, moves, deletes) stream in, restarted each time. At the end:
//!
//! * **In order, at least once.** Every object the writer touches is named
//!   `cn=o<k>-v<version>` (a new version per rename), so a DN names exactly one object and
//!   one stretch of its life. Per object, the notifier's transaction log gives the DNs it
//!   lived at, in transaction order. Within one run of the listener (the test marks each
//!   restart in the printer's output), the printer's lines about an object must follow
//!   that history forwards (a `d` matches the object's delete, or its leaving that DN:
//!   the object was found gone or moved on); after a restart the listener may
//!   replay what it had not committed, so the position may go back there — never within
//!   a run.
//! * **Final state.** The last line about an object still in LDAP is a create/modify at
//!   its current DN; the last line about a deleted object (if the printer ever saw it) is
//!   its `d`. States superseded before the listener fetched them are legitimately never
//!   delivered (the listener delivers the state LDAP has when it processes a
//!   transaction, semantics §4), so "every transaction's DN appears" is not a property.
//! * **Cache equals LDAP.** The cache holds exactly the objects under the base, each with
//!   the attribute value sets LDAP returns for `*` and `+` — see [`IGNORED`] for the two
//!   attributes that change without a transaction — and the printer registered on each.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, Mod};
use listener_core::{Dn, Entry};
use listener_runtime::testing::Cache;
use listener_runtime::testing::Fetcher;
use listener_runtime::testing::LdapSettings;
use listener_runtime::testing::Translog;
use tests::Slapd;
use tests::domain::Domain;
use tests::rng::Lcg;

/// What the test marks in the printer's output before each restart.
const RESTART: &str = "#restart";

/// Operational attributes that change without a transaction about the object, so the
/// cache cannot follow them: `hasSubordinates` (derived from the children) and
/// `contextCSN` (syncprov's checkpoint on the suffix).
const IGNORED: &[&str] = &["hassubordinates", "contextcsn"];

/// The object `k` of a DN `cn=o<k>-v<version>,…`.
fn object_of(dn: &str) -> Option<u64> {
    let rdn = dn.split(',').next()?;
    let name = rdn.strip_prefix("cn=o")?;
    name.split_once('-')?.0.parse().ok()
}

/// The object `o<k> ` a problem report names.
fn object_named(problem: &str) -> Option<u64> {
    problem
        .split(' ')
        .find_map(|word| word.strip_prefix('o')?.parse().ok())
}

fn mark_restart(calls: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(calls)
        .unwrap();
    writeln!(f, "{RESTART}").unwrap();
}

/// An object's attributes as comparable value sets (names lower-cased).
fn attribute_sets(entry: &Entry) -> BTreeMap<String, BTreeSet<Vec<u8>>> {
    entry
        .attributes()
        .map(|a| a.desc.key().to_ascii_lowercase())
        .filter(|name| !IGNORED.contains(&name.as_str()))
        .map(|name| {
            let values = entry
                .get(&name)
                .unwrap_or_default()
                .iter()
                .cloned()
                .collect();
            (name, values)
        })
        .collect()
}

/// The writer: `count` mixed changes over one connection; returns the number of
/// transactions they make (a rename or move is two: `r` and `a`).
async fn write_changes(
    url: String,
    root_dn: String,
    password: String,
    base: String,
    seed: u64,
    count: usize,
) -> u64 {
    let (conn, mut ldap) = LdapConnAsync::new(&url).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&root_dn, &password)
        .await
        .unwrap()
        .success()
        .unwrap();
    let mut rng = Lcg::new(seed ^ 0x5eed_0fba_5e00);
    let box_dn = format!("ou=box,{base}");
    let dn = |k: u64, version: u64, in_box: bool| {
        format!(
            "cn=o{k}-v{version},{}",
            if in_box { &box_dn } else { &base }
        )
    };
    // (object, version, in ou=box)
    let mut live: Vec<(u64, u64, bool)> = Vec::new();
    let mut next = 0;
    let mut transactions = 0;
    for n in 0..count {
        // Paced, so the listener (between kills) processes while the changes stream in,
        // rather than after them (when superseded states are no longer there to deliver).
        tokio::time::sleep(Duration::from_millis(2)).await;
        let op = if live.len() < 10 { 0 } else { rng.next(100) };
        let pick = rng.next(live.len().max(1) as u64) as usize;
        match op {
            0..35 => {
                let in_box = rng.next(4) == 0;
                let name = format!("o{next}-v0");
                ldap.add(
                    &dn(next, 0, in_box),
                    vec![
                        ("objectClass", ["organizationalRole"].into()),
                        ("cn", [name.as_str()].into()),
                    ],
                )
                .await
                .unwrap()
                .success()
                .unwrap();
                live.push((next, 0, in_box));
                next += 1;
                transactions += 1;
            }
            35..65 => {
                let (k, v, b) = live[pick];
                ldap.modify(
                    &dn(k, v, b),
                    vec![Mod::Replace(
                        "description",
                        [format!("change {n}").as_str()].into(),
                    )],
                )
                .await
                .unwrap()
                .success()
                .unwrap();
                transactions += 1;
            }
            65..85 => {
                let (k, v, b) = live[pick];
                // Half of them also move between the base and ou=box.
                let moves = rng.next(2) == 0;
                let to_box = b != moves;
                let superior = if to_box { &box_dn } else { &base };
                ldap.modifydn(
                    &dn(k, v, b),
                    &format!("cn=o{k}-v{}", v + 1),
                    true,
                    moves.then_some(superior.as_str()),
                )
                .await
                .unwrap()
                .success()
                .unwrap();
                live[pick] = (k, v + 1, to_box);
                transactions += 2;
            }
            _ => {
                let (k, v, b) = live.swap_remove(pick);
                ldap.delete(&dn(k, v, b)).await.unwrap().success().unwrap();
                transactions += 1;
            }
        }
    }
    transactions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_the_modules_in_order_across_kill_9() {
    let mut rng = Lcg::from_env("KILL9_SEED");
    let seed = rng.seed();

    let base = "dc=example,dc=com";
    let mut domain = Domain::start(
        tests::listener_binary!(),
        Slapd::builder().base(base).entries(&format!(
            "dn: ou=box,{base}\nobjectClass: organizationalUnit\nou: box\n"
        )),
    )
    .unwrap();
    let start_id = domain.notifier_id();
    domain.start_listener().unwrap();
    domain.wait_for(Duration::from_secs(30), |calls| {
        calls
            .iter()
            .any(|l| l.starts_with("ou=box,") && l.ends_with("\tn"))
    });

    let writer = tokio::spawn(write_changes(
        domain.slapd.url().to_owned(),
        domain.slapd.root_dn(),
        domain.slapd.root_password().to_owned(),
        base.to_owned(),
        seed,
        2_000,
    ));

    // The killer: kill -9 at random moments while the changes stream in, and a few more
    // times while the listener catches up.
    let calls_file = domain.calls_file();
    let mut kills = 0;
    while !writer.is_finished() || kills < 12 {
        tokio::time::sleep(Duration::from_millis(50 + rng.next(500))).await;
        let listener = domain.listener().unwrap();
        if let Some(why) = listener.exited() {
            panic!("the listener exited by itself: {why}");
        }
        listener.kill9();
        mark_restart(&calls_file);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.next(100))).await;
        domain.listener().unwrap().restart().unwrap();
    }
    let transactions = writer.await.unwrap();
    let last = start_id + transactions;
    eprintln!("{transactions} transactions, {kills} kills");

    // Caught up: stop it (SIGTERM) when its output is quiet and look at the cache's ID.
    let deadline = Instant::now() + Duration::from_secs(120);
    let cache = loop {
        let mut size = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(700)).await;
            if let Some(why) = domain.listener().unwrap().exited() {
                panic!("the listener exited by itself: {why}");
            }
            let now = std::fs::metadata(&calls_file).map_or(0, |m| m.len());
            if now == size && domain.notifier_id() >= last {
                break;
            }
            size = now;
        }
        assert!(domain.stop_listener(), "SIGTERM stops the listener cleanly");
        let cache = Cache::open(&domain.cache_dir()).unwrap();
        let cached_id = cache.read().unwrap().last_id().unwrap();
        if cached_id >= last {
            assert_eq!(cached_id, last, "the cache is not ahead of the notifier");
            break cache;
        }
        assert!(
            Instant::now() < deadline,
            "the listener did not catch up: at {cached_id} of {last}"
        );
        drop(cache);
        mark_restart(&calls_file);
        domain.start_listener().unwrap();
    };

    // Each object's life from the transaction log: (DN, command) in transaction order.
    let log = Translog::open_read_only(&domain.notifier_dir()).unwrap();
    let logged = log.range(1, usize::MAX).unwrap();
    assert_eq!(
        logged.len() as u64,
        last,
        "the notifier numbered every write"
    );
    let mut history: HashMap<u64, Vec<(String, String)>> = HashMap::new();
    for t in &logged {
        let k = object_of(&t.dn).unwrap_or_else(|| panic!("unexpected transaction {t:?}"));
        history
            .entry(k)
            .or_default()
            .push((t.dn.to_lowercase(), t.command.to_string()));
    }

    // In order within each run.
    let calls = domain.calls();
    let mut problems = Vec::new();
    let mut last_seen: HashMap<u64, (String, String)> = HashMap::new();
    let mut position: HashMap<u64, usize> = HashMap::new();
    let mut run = 0;
    for (n, line) in calls.iter().enumerate() {
        if line == RESTART {
            position.clear();
            run += 1;
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [dn, _old, _new, command] = fields[..] else {
            panic!("line {n}: not a printer line: {line:?}");
        };
        let Some(k) = object_of(dn) else { continue };
        let dn = dn.to_lowercase();
        let Some(lived) = history.get(&k) else {
            problems.push(format!(
                "line {n} (run {run}): o{k} is in no transaction: {line}"
            ));
            continue;
        };
        let from = position.get(&k).copied().unwrap_or(0);
        // A line at a DN matches the first time from here on that the object lived
        // there. A `d` says the object left that DN: it matches the object's delete there
        // or its first transaction elsewhere after it. (The listener found it gone while
        // processing an older transaction, semantics §4; or, replaying a create after a
        // crash, found it gone or moved on and took the create back.)
        let at = (from..lived.len()).find(|&i| lived[i].0 == dn);
        let matched = match at {
            Some(i) if command == "d" => {
                (i..lived.len()).find(|&j| lived[j].1 == "d" || lived[j].0 != dn)
            }
            at => at,
        };
        match matched {
            Some(i) => {
                position.insert(k, i);
            }
            None => problems.push(format!(
                "line {n} (run {run}): {line} is out of order; o{k} lived at {lived:?}, \
                 this run had reached #{from}"
            )),
        }
        last_seen.insert(k, (dn, command.to_owned()));
    }

    // The final state of every object.
    let settings = LdapSettings {
        uri: domain.slapd.url().to_owned(),
        bind_dn: domain.slapd.root_dn(),
        bind_password: domain.slapd.root_password().to_owned(),
        starttls: false,
        timeout: Duration::from_secs(10),
    };
    let fetcher = Fetcher::connect(&settings, Dn::parse(base).unwrap())
        .await
        .unwrap();
    let in_ldap = fetcher.search_all("(objectClass=*)").await.unwrap();
    let mut alive = BTreeSet::new();
    for entry in &in_ldap {
        let Some(k) = object_of(entry.dn().as_str()) else {
            continue;
        };
        alive.insert(k);
        let dn = entry.dn().as_str().to_lowercase();
        match last_seen.get(&k) {
            Some((seen, command)) if *seen == dn && ["a", "m", "n"].contains(&command.as_str()) => {
            }
            other => problems.push(format!("o{k} is at {dn}; the printer last saw {other:?}")),
        }
    }
    for (k, (dn, command)) in &last_seen {
        if !alive.contains(k) && command != "d" {
            problems.push(format!(
                "o{k} is deleted; the printer last saw {command} at {dn}"
            ));
        }
    }
    // For a failure: the printer's lines about the first few objects with a problem, by
    // run, and their lives.
    let mut details = String::new();
    for k in problems
        .iter()
        .filter_map(|p| object_named(p))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .take(3)
    {
        details.push_str(&format!(
            "o{k} lived at {:?}; the printer:\n",
            history.get(&k)
        ));
        let mut run = 0;
        for line in &calls {
            if line == RESTART {
                run += 1;
            } else if line.split('\t').next().and_then(object_of) == Some(k) {
                details.push_str(&format!("  run {run}: {line}\n"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems (seed {seed}):\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
            + &details
    );

    // The cache equals LDAP.
    let r = cache.read().unwrap();
    let report = r.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let mut cached = BTreeMap::new();
    for c in r.entries().unwrap() {
        let c = c.unwrap();
        assert!(
            c.modules.contains("printer"),
            "printer not registered on {:?}",
            c.entry.dn()
        );
        cached.insert(c.entry.dn().normalized().to_owned(), c.entry);
    }
    let ldap: BTreeMap<String, Entry> = in_ldap
        .into_iter()
        .map(|e| (e.dn().normalized().to_owned(), e))
        .collect();
    let only_cached: Vec<_> = cached.keys().filter(|k| !ldap.contains_key(*k)).collect();
    let only_ldap: Vec<_> = ldap.keys().filter(|k| !cached.contains_key(*k)).collect();
    assert!(only_cached.is_empty(), "in the cache only: {only_cached:?}");
    assert!(only_ldap.is_empty(), "in LDAP only: {only_ldap:?}");
    for (key, entry) in &ldap {
        assert_eq!(
            attribute_sets(&cached[key]),
            attribute_sets(entry),
            "the cache differs from LDAP at {key}"
        );
    }
    let mut commands: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &calls {
        *commands
            .entry(line.rsplit('\t').next().unwrap_or(""))
            .or_default() += 1;
    }
    eprintln!(
        "{} printer lines {commands:?}, {} runs, {} objects in LDAP",
        calls.len(),
        run + 1,
        ldap.len()
    );
    // The listener kept up (more or less) while the changes streamed in: it delivered
    // moves as r/a and modifications, not only the final states (a listener that ran
    // only after the writes delivers next to none of either). The bounds are low: how
    // far it keeps up depends on the machine, and transactions taken in together share
    // a fetch (semantics §4), so an object changed several times in a row while the
    // listener was behind gets one modification.
    assert!(
        commands.get("r").copied().unwrap_or(0) > 20
            && commands.get("m").copied().unwrap_or(0) > 20,
        "the listener hardly ran during the writes: {commands:?}"
    );
}
