//! `async-bench`: the throughput of an asynchronous module whose handler waits 5 ms
//! (I/O-bound), in calls/s, with `parallelism` 1, 4 and 8, beside the same handler as a
//! synchronous module; and the listener's own catch-up rate with the parallelism-8
//! module taking every change, beside its rate when no module takes them. One run,
//! against a real slapd (no-sync), our notifier and our listener as separate processes.
//!
//! ```text
//! cargo run --release -p tests --bin async-bench -- [--calls N] [--catchup N] [--json FILE]
//! ```
//!
//! Started with a listener subcommand (`run`, `worker`, …) the binary is the listener
//! with the benchmark's modules (`modules.rs`) linked in.

mod modules;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use tests::Slapd;
use tests::domain::Domain;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUBCOMMANDS: &[&str] = &["run", "worker", "notifier", "status", "modules"];
/// The goal: parallelism 8 at least this many times parallelism 1.
const GOAL_P8_OVER_P1: f64 = 6.0;

/// Throughput of asynchronous modules in worker processes.
#[derive(Debug, Parser)]
#[command(about = "Throughput of asynchronous modules in worker processes, against a real slapd")]
struct Options {
    /// Calls per variant (sync, parallelism 1, 4, 8).
    #[arg(long, default_value_t = 2_000)]
    calls: usize,
    /// Changes of each catch-up run. The listener runs with `--queue-limit 1000000`, so
    /// that the module's queue never pauses it: the figure is the listener's own rate.
    #[arg(long, default_value_t = 40_000)]
    catchup: usize,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    // A worker is started with the log options first: look for the subcommand anywhere.
    if std::env::args()
        .skip(1)
        .any(|a| SUBCOMMANDS.contains(&a.as_str()))
    {
        return listener_runtime::main();
    }
    let options = Options::parse();
    match bench(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("async-bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(options: &Options) -> Result<()> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut domain =
        Domain::start(&me, Slapd::builder().no_sync(true)).map_err(|e| e.to_string())?;
    let metrics = tests::free_port().map_err(|e| e.to_string())?;
    start_listener(&mut domain, metrics)?;
    if !domain.wait_caught_up(Duration::from_secs(120)) {
        return Err("the listener did not start".into());
    }
    let mut roles = Roles::default();

    let mut rates = Vec::new();
    for (variant, module) in [
        ("sync", "bench_wait_sync"),
        ("p1", "bench_wait_p1"),
        ("p4", "bench_wait_p4"),
        ("p8", "bench_wait_p8"),
    ] {
        eprintln!(
            "== {} calls of {module} ({} ms each)",
            options.calls,
            modules::WAIT.as_millis()
        );
        roles.create(&domain, variant, options.calls)?;
        let rate = calls_per_second(&domain, module, options.calls)?;
        eprintln!("   {rate:.0} calls/s");
        rates.push((variant, rate));
    }

    // Each catch-up runs on a larger directory and cache than the one before, and a
    // second catch-up measured 0.79–0.94× the first with no module in either: the order
    // without, with, with, without (ABBA) cancels that drift, and each side's figure is
    // the mean of its two runs.
    let mut catchups: Vec<(&str, f64)> = Vec::new();
    for (variant, description) in [
        ("without", "none"),
        ("with", "p8"),
        ("with", "p8"),
        ("without", "none"),
    ] {
        let module = if description == "none" {
            "no module"
        } else {
            "bench_wait_p8"
        };
        eprintln!("== catch-up of {} creates {module} takes", options.catchup);
        let rate = catch_up(
            &mut domain,
            metrics,
            &mut roles,
            description,
            options.catchup,
        )?;
        eprintln!("   {rate:.0} transactions/s");
        catchups.push((variant, rate));
        // The next catch-up starts, as this one did, with no call queued or running.
        if !domain.wait_for_queues(Duration::from_secs(600)) {
            return Err("the queue of bench_wait_p8 did not drain".into());
        }
    }
    let mean = |v: &str| {
        let runs: Vec<f64> = catchups
            .iter()
            .filter(|(n, _)| *n == v)
            .map(|(_, r)| *r)
            .collect();
        runs.iter().sum::<f64>() / runs.len().max(1) as f64
    };
    let runs = |v: &str| -> Vec<f64> {
        catchups
            .iter()
            .filter(|(n, _)| *n == v)
            .map(|(_, r)| *r)
            .collect()
    };
    let (without, with) = (mean("without"), mean("with"));
    domain.stop_listener();

    let rate = |v: &str| rates.iter().find(|(n, _)| *n == v).map_or(0.0, |(_, r)| *r);
    let (sync, p1, p4, p8) = (rate("sync"), rate("p1"), rate("p4"), rate("p8"));
    println!();
    println!(
        "{:<44} {:>14} {:>24} {:>8} {:>8}",
        "figure", "value", "baseline", "ratio", "goal"
    );
    let line = |figure: &str, value: String, baseline: String, ratio: f64, goal: &str| {
        println!("{figure:<44} {value:>14} {baseline:>24} {ratio:>7.2}× {goal:>8}");
    };
    line(
        "async, parallelism 1, 5 ms handler",
        format!("{p1:.0} calls/s"),
        format!("sync module {sync:.0}/s"),
        p1 / sync,
        "",
    );
    line(
        "async, parallelism 4",
        format!("{p4:.0} calls/s"),
        format!("parallelism 1 {p1:.0}/s"),
        p4 / p1,
        "",
    );
    line(
        "async, parallelism 8",
        format!("{p8:.0} calls/s"),
        format!("parallelism 1 {p1:.0}/s"),
        p8 / p1,
        "≥ 6×",
    );
    line(
        "listener catch-up, parallelism-8 module on",
        format!("{with:.0} tx/s"),
        format!("no module takes {without:.0}/s"),
        with / without,
        "≥ 1×",
    );
    let goals = json!({
        "p8_over_p1": {"value": p8 / p1, "goal": GOAL_P8_OVER_P1, "met": p8 / p1 >= GOAL_P8_OVER_P1},
        "catchup_with_over_without": {"value": with / without, "goal": 1.0, "met": with >= without},
    });
    if let Some(path) = &options.json {
        let report = json!({
            "calls_per_variant": options.calls,
            "handler_ms": modules::WAIT.as_millis() as u64,
            "calls_per_second": {"sync": sync, "p1": p1, "p4": p4, "p8": p8},
            "catchup_changes": options.catchup,
            "catchup_transactions_per_second": {"without_module": without, "with_p8_module": with},
            "catchup_runs": {"order": catchups.iter().map(|(n, _)| *n).collect::<Vec<_>>(), "without_module": runs("without"), "with_p8_module": runs("with")},
            "goals": goals,
        });
        std::fs::write(path, format!("{report:#}\n"))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn start_listener(domain: &mut Domain, metrics: u16) -> Result<()> {
    let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
    args.extend(["--queue-limit".to_owned(), "1000000".to_owned()]);
    args.extend(["--metrics".to_owned(), format!("127.0.0.1:{metrics}")]);
    domain.start_listener_with(&args).map_err(|e| e.to_string())
}

/// Names of the roles made so far, so that every batch creates new objects.
#[derive(Default)]
struct Roles {
    made: usize,
}

impl Roles {
    /// Creates `count` organizational roles described `description`, in one ldapmodify.
    fn create(&mut self, domain: &Domain, description: &str, count: usize) -> Result<()> {
        let base = domain.slapd.base().to_owned();
        let mut ldif = String::new();
        for i in self.made..self.made + count {
            ldif.push_str(&format!(
                "dn: cn=r{i},{base}\nobjectClass: organizationalRole\ncn: r{i}\ndescription: {description}\n\n"
            ));
        }
        self.made += count;
        domain.slapd.ldapmodify(&ldif).map_err(|e| e.to_string())
    }
}

/// Waits until `module` recorded `calls` calls; their rate from the first start to the
/// last end.
fn calls_per_second(domain: &Domain, module: &str, calls: usize) -> Result<f64> {
    let path = domain
        .cache_dir()
        .parent()
        .map(|d| d.join(format!("bench-{module}.txt")))
        .ok_or("no domain directory")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let spans = spans(&path);
        if spans.len() >= calls {
            let first = spans.iter().map(|s| s.0).min().unwrap_or(0);
            let last = spans.iter().map(|s| s.1).max().unwrap_or(0);
            let seconds = (last.saturating_sub(first)) as f64 / 1e6;
            return Ok(spans.len() as f64 / seconds.max(1e-6));
        }
        if Instant::now() > deadline {
            return Err(format!("{module} made {} of {calls} calls", spans.len()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn spans(path: &Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// Stops the listener, creates `count` roles described `description`, starts it again
/// and measures how fast its durable ID climbs to the notifier's (from the first
/// progress it reports, so its start-up is not counted, unless the run is too short to
/// see any).
fn catch_up(
    domain: &mut Domain,
    metrics: u16,
    roles: &mut Roles,
    description: &str,
    count: usize,
) -> Result<f64> {
    domain.stop_listener();
    roles.create(domain, description, count)?;
    let target = domain.notifier_id();
    let started = Instant::now();
    start_listener(domain, metrics)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let start = target - count as u64;
    let mut first: Option<(u64, Instant)> = None;
    loop {
        let last = tests::domain::metrics_durable_id(metrics);
        let now = Instant::now();
        if let Some(last) = last {
            if first.is_none() && last > start && last < target {
                first = Some((last, now));
            }
            if last >= target {
                // Caught up before any progress was seen (a small run): count from the
                // start, start-up included.
                let (from, since) = first.unwrap_or((start, started));
                let seconds = now.duration_since(since).as_secs_f64();
                return Ok((target - from) as f64 / seconds.max(1e-6));
            }
        }
        if now > deadline {
            return Err(format!("the listener is at {last:?}, not {target}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
