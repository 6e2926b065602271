//! Fetching ahead must not change what modules see: the same backlog,
//! processed from the same cache once with `--fetch-window 1` (each object fetched when
//! its transaction is applied, as UDL does) and once with the default window, gives the
//! same module calls, byte for byte — the printer's output and every module's `module
//! call` trace line.
//!
//! The backlog is made while the listener is stopped, so LDAP does not change while
//! either run processes it: several hundred random adds, modifies (the same objects over
//! and over), renames, moves between containers, moves of a container with its
//! children, deletes, re-creations at DNs used before, changes of one value of a role
//! with 1,000 occupants (a large group changing one member), and changes that make
//! objects enter and leave the `failing_on_demand` module's filter.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tests::Slapd;
use tests::daemon::Daemon;
use tests::domain::Domain;
use tests::ldif;
use tests::rng::Lcg;

/// Objects there are before the backlog.
const OBJECTS: u64 = 90;
/// Occupants of the large role before the backlog.
const OCCUPANTS: u64 = 1_000;

/// The large role: `cn=big` with `OCCUPANTS` values of `roleOccupant`.
fn big_role(base: &str) -> String {
    let mut ldif = ldif::role(&format!("cn=big,{base}"));
    for p in 0..OCCUPANTS {
        ldif += &format!("roleOccupant: cn=p{p},{base}\n");
    }
    ldif
}

/// Random changes over objects `cn=o<k>-v<version>` in the base and two containers.
fn backlog(base: &str, rng: &mut Lcg, count: usize) -> String {
    let boxes = [
        base.to_owned(),
        format!("cn=box1,{base}"),
        format!("cn=box2,{base}"),
    ];
    // (object, version, box); boxes 1 and 2 move as a whole now and then (a subtree
    // move), which the DNs below follow through `boxes`.
    let mut live: Vec<(u64, u64, usize)> = (0..OBJECTS).map(|k| (k, 0, (k % 3) as usize)).collect();
    let mut gone: Vec<(u64, u64, usize)> = Vec::new();
    let mut next = OBJECTS;
    // The large role's occupants, and the next one to add.
    let mut occupants: Vec<u64> = (0..OCCUPANTS).collect();
    let mut next_occupant = OCCUPANTS;
    let big = format!("cn=big,{base}");
    let mut out = String::new();
    let dn =
        |boxes: &[String; 3], (k, v, b): (u64, u64, usize)| format!("cn=o{k}-v{v},{}", boxes[b]);
    let mut boxes = boxes;
    for n in 0..count {
        let pick = rng.next(live.len().max(1) as u64) as usize;
        let change = match rng.next(100) {
            _ if live.len() < 5 => 0,
            x => x,
        };
        match change {
            0..15 => {
                let object = (next, 0, rng.next(3) as usize);
                next += 1;
                out += &ldif::role(&dn(&boxes, object));
                live.push(object);
            }
            15..20 if !gone.is_empty() => {
                // Something new where an object was deleted before.
                let object = gone.swap_remove(rng.next(gone.len() as u64) as usize);
                out += &ldif::role(&dn(&boxes, object));
                live.push(object);
            }
            50..55 => {
                // One occupant more or less of the large role.
                if rng.next(2) == 0 || occupants.is_empty() {
                    let value = format!("cn=p{next_occupant},{base}");
                    out += &ldif::add_value(&big, "roleOccupant", &value);
                    occupants.push(next_occupant);
                    next_occupant += 1;
                } else {
                    let p = occupants.swap_remove(rng.next(occupants.len() as u64) as usize);
                    out += &ldif::delete_value(&big, "roleOccupant", &format!("cn=p{p},{base}"));
                }
            }
            15..55 => {
                let value = match rng.next(4) {
                    0 => "fail".to_owned(),
                    _ => format!("change {n}"),
                };
                out += &ldif::replace(&dn(&boxes, live[pick]), "description", &value);
            }
            55..75 => {
                let (k, v, b) = live[pick];
                let to = if rng.next(2) == 0 {
                    b
                } else {
                    rng.next(3) as usize
                };
                let superior = (to != b).then(|| boxes[to].clone());
                out += &ldif::rename(
                    &dn(&boxes, (k, v, b)),
                    &format!("cn=o{k}-v{}", v + 1),
                    superior.as_deref(),
                );
                live[pick] = (k, v + 1, to);
            }
            75..78 => {
                // Move box 1 or 2 (and everything in it) by renaming it.
                let b = 1 + rng.next(2) as usize;
                let old = boxes[b].clone();
                let new_rdn = format!("cn=box{b}-{n}");
                out += &ldif::rename(&old, &new_rdn, None);
                boxes[b] = format!("{new_rdn},{base}");
            }
            _ => {
                let object = live.swap_remove(pick);
                out += &ldif::delete(&dn(&boxes, object));
                gone.push(object);
            }
        }
        out += "\n";
    }
    out
}

/// `run` arguments of `domain` with another cache directory and more options.
fn run_args(domain: &Domain, cache: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
    let at = args.iter().position(|a| a == "--cache-dir").unwrap() + 1;
    args[at] = cache.to_string_lossy().into_owned();
    // A failing call is recorded at once (no retry delays).
    args.extend(["--attempts".to_owned(), "1".to_owned()]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// Runs a listener on `cache` until the printer reported `marker`, stops it, and returns
/// its printer output and its `module call` trace lines.
fn drain(
    domain: &Domain,
    cache: &Path,
    out: &Path,
    extra: &[&str],
    marker: &str,
) -> (String, Vec<String>) {
    let calls = out.with_extension("calls");
    let log = out.with_extension("log");
    let mut listener = Daemon::start_logging_to(
        tests::listener_binary!(),
        &run_args(domain, cache, extra),
        &calls,
        "info,listener_runtime::listener::apply=trace",
        &log,
    )
    .unwrap();
    let started = Instant::now();
    loop {
        let printed = std::fs::read_to_string(&calls).unwrap_or_default();
        if printed.lines().any(|l| l.starts_with(marker)) {
            break;
        }
        if let Some(why) = listener.exited() {
            panic!("the listener exited: {why}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the listener did not reach the marker in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(listener.terminate().is_some_and(|s| s.success()));
    let printed = std::fs::read_to_string(&calls).unwrap();
    let module_calls = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| l.find("module call").map(|at| l[at..].to_owned()))
        .collect();
    (printed, module_calls)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        // The lock file is taken anew by the next listener; the control socket is gone.
        if item.file_type().unwrap().is_file() {
            std::fs::copy(item.path(), to.join(item.file_name())).unwrap();
        }
    }
}

#[test]
fn the_fetch_window_changes_no_module_call() {
    let mut rng = Lcg::from_env("PIPELINE_SEED");
    eprintln!(
        "seed {} (replay with PIPELINE_SEED={})",
        rng.seed(),
        rng.seed()
    );
    let mut domain =
        Domain::start(tests::listener_binary!(), Slapd::builder().no_sync(true)).unwrap();
    let base = domain.slapd.base().to_owned();
    let mut setup = big_role(&base) + "\n";
    setup += &(ldif::role(&format!("cn=box1,{base}")) + "\n");
    setup += &(ldif::role(&format!("cn=box2,{base}")) + "\n");
    for k in 0..OBJECTS {
        let parent = match k % 3 {
            0 => base.clone(),
            b => format!("cn=box{b},{base}"),
        };
        setup += &(ldif::role(&format!("cn=o{k}-v0,{parent}")) + "\n");
    }
    domain.slapd.ldapmodify(&setup).unwrap();
    domain.start_listener().unwrap();
    domain.barrier();
    assert!(domain.stop_listener());

    domain
        .slapd
        .ldapmodify(&backlog(&base, &mut rng, 600))
        .unwrap();
    let marker = format!("cn=marker,{base}");
    domain.slapd.ldapmodify(&ldif::role(&marker)).unwrap();

    let work = tempfile::tempdir().unwrap();
    let sequential_cache: PathBuf = work.path().join("cache-1");
    let pipelined_cache: PathBuf = work.path().join("cache-64");
    copy_dir(&domain.cache_dir(), &sequential_cache);
    copy_dir(&domain.cache_dir(), &pipelined_cache);

    let marker_line = format!("{marker}\t");
    let (seq_printed, seq_calls) = drain(
        &domain,
        &sequential_cache,
        &work.path().join("sequential"),
        &["--fetch-window", "1", "--durability", "each"],
        &marker_line,
    );
    let (pipe_printed, pipe_calls) = drain(
        &domain,
        &pipelined_cache,
        &work.path().join("pipelined"),
        &[],
        &marker_line,
    );
    // The backlog is not trivial: every kind of call is there.
    for command in ["\ta", "\tm", "\td", "\tr"] {
        assert!(
            seq_printed.lines().any(|l| l.ends_with(command)),
            "no {command:?} call in the backlog's output:\n{seq_printed}"
        );
    }
    assert!(
        seq_calls
            .iter()
            .any(|l| l.contains("module=failing_on_demand"))
    );
    let big = format!("cn=big,{base}\t");
    assert!(
        seq_printed
            .lines()
            .any(|l| l.starts_with(&big) && l.ends_with("\tm")),
        "the large role did not change in the backlog"
    );
    eprintln!(
        "{} printer lines, {} module calls",
        seq_printed.lines().count(),
        seq_calls.len()
    );
    assert!(
        seq_calls.len() > 100,
        "only {} module calls",
        seq_calls.len()
    );
    if seq_printed != pipe_printed {
        let first = seq_printed
            .lines()
            .zip(pipe_printed.lines())
            .position(|(a, b)| a != b);
        panic!(
            "the printer saw other calls with the fetch window (first difference at line {first:?})\n\
             --- window 1:\n{seq_printed}\n--- default window:\n{pipe_printed}"
        );
    }
    assert_eq!(seq_calls, pipe_calls, "module call traces differ");
}
