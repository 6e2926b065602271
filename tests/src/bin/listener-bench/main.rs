//! `listener-bench`: end-to-end figures of the listener against a real slapd (no-sync
//! mode), with our notifier and listener as separate processes, each figure beside a
//! baseline measured in the same run:
//!
//! * **init**: initializing a module over the preloaded entries, against
//!   `ldapsearch -Y EXTERNAL … '*' '+' > /dev/null` of the same entries;
//! * **memory**: the listener's peak RSS (VmHWM) after the initialization and after the
//!   catch-up;
//! * **catchup**: draining N mixed changes made while the listener was stopped, against
//!   the fastest sequential client making the same fetches one after the other over one
//!   connection (a sequential UDL-style design): ldap3 on a multi-thread and on a
//!   current-thread runtime, and libldap (`ldapsearch -f`), each printed (`floor.rs`);
//! * **shapes**: the same on workloads of other shapes, each on its own (`shapes.rs`):
//!   adds; renames and moves, including subtree moves; deletes and re-creations; one
//!   member more or less of 1,000-member groups;
//! * **live**: the latency from a write's completion to the module call, at steady rates,
//!   and at the writer's top rate (`--rates …,0`) how far behind the last write the
//!   listener is when the writer stops.
//!
//! ```text
//! cargo run --release -p tests --bin listener-bench -- [--quick] [--json FILE]
//!     [--only init,memory,catchup,shapes,live] [--run-args "--fetch-window 32"]
//! ```
//!
//! Started with a listener subcommand (`notifier`, `run`, …) the binary is the listener
//! with the benchmark's modules (`modules.rs`) linked in, which is how it starts its own
//! daemons.

mod directory;
mod floor;
mod measure;
mod modules;
mod shapes;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};
use tests::Slapd;
use tests::domain::Domain;
use tests::syncrepl;

use directory::{Changes, Layout};
use measure::CallsTail;
use shapes::Shape;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUBCOMMANDS: &[&str] = &[
    "run",
    "notifier",
    "modules",
    "resync",
    "translog",
    "notifier-id",
    "dump",
    "status",
    "failed",
    "verify",
    "worker",
];
const PHASES: &[&str] = &["init", "memory", "catchup", "shapes", "live"];
/// Modules in this binary (ten no-op ones, one appending a line to a file per call, and
/// the latency recorder).
const MODULES: usize = 12;
const LATENCY_MODULE: &str = "bench_latency";
/// The first module initialized over every entry (`(objectClass=*)`, in name order
/// before the latency module, which has a higher priority).
const FIRST_FULL_MODULE: &str = "bench_descriptions";
const GOAL_CATCHUP_RATIO: f64 = 2.0;
const GOAL_P99_MS_AT_200: f64 = 10.0;
const GOAL_LAG_SECONDS: f64 = 0.5;
const GOAL_INIT_RATIO: f64 = 3.0;
/// The goal for a module initialized over entries already cached.
const GOAL_INIT_CACHED_RATIO: f64 = 2.0;
const GOAL_MEMORY_MIB: f64 = 150.0;

/// End-to-end listener benchmark against a real slapd.
#[derive(Debug, Parser)]
#[command(about = "End-to-end listener benchmark against a real slapd (no-sync mode)")]
struct Options {
    /// Small sizes for a smoke test (2,000 entries, 500 changes, 1 s per rate).
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Only these phases (comma-separated): init, memory, catchup, shapes, live. The listener
    /// always initializes its modules first; `init` adds its baselines.
    #[arg(long, value_delimiter = ',', value_name = "PHASES")]
    only: Vec<String>,
    /// Extra arguments for the listener's `run`, split at whitespace (e.g.
    /// `--run-args "--fetch-window 32"`).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    run_args: Option<String>,
    /// Preloaded users and groups (default 100,000; quick 2,000).
    #[arg(long)]
    entries: Option<usize>,
    /// Changes made while the listener is stopped (default 20,000; quick 500).
    #[arg(long)]
    changes: Option<usize>,
    /// Workload shapes of the shapes phase (comma-separated; default all).
    #[arg(long, value_delimiter = ',', value_enum)]
    shapes: Vec<Shape>,
    /// Changes of each shape (default 10,000; quick 200).
    #[arg(long)]
    shape_changes: Option<usize>,
    /// 1,000-member groups the groups shape changes (default 10; quick 2).
    #[arg(long)]
    large_groups: Option<usize>,
    /// Write rates of the live phase, per second; 0 is the writer's top rate (one
    /// connection writing as fast as slapd answers), for `--top-changes` changes.
    #[arg(long, value_delimiter = ',', default_values_t = [200u32, 1000, 0])]
    rates: Vec<u32>,
    /// Changes written at the top rate (default 5,000; quick 500).
    #[arg(long)]
    top_changes: Option<usize>,
    /// Seconds per live rate (default 3; quick 1).
    #[arg(long)]
    live_seconds: Option<u64>,
    /// Seed of the catch-up's change mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    // A worker process is started with the log options before its subcommand.
    if std::env::args()
        .skip(1)
        .any(|a| SUBCOMMANDS.contains(&a.as_str()))
    {
        return listener_runtime::main();
    }
    let options = Options::parse();
    if let Some(bad) = options.only.iter().find(|p| !PHASES.contains(&p.as_str())) {
        eprintln!(
            "error: --only: unknown phase {bad:?} (phases: {})",
            PHASES.join(", ")
        );
        return ExitCode::from(2);
    }
    match bench(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("listener-bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The catch-up's baseline: the fastest sequential client, and every client's rate.
struct Floor {
    client: &'static str,
    per_second: f64,
    clients: serde_json::Map<String, Value>,
}

/// One row of the printed table.
struct Row {
    figure: String,
    value: String,
    baseline: String,
    ratio: String,
    goal: String,
}

fn row(figure: String, value: String, baseline: String, ratio: String, goal: &str) -> Row {
    Row {
        figure,
        value,
        baseline,
        ratio,
        goal: goal.to_owned(),
    }
}

/// Seconds of the listener's processing loop per stage (`listener_stage_seconds_total`).
type Stages = Vec<(String, f64)>;

/// The stage profile as a JSON object (stage to seconds).
fn stage_json(stages: &[(String, f64)]) -> Value {
    Value::Object(
        stages
            .iter()
            .map(|(stage, seconds)| (stage.clone(), json!(seconds)))
            .collect(),
    )
}

struct Bench<'o> {
    options: &'o Options,
    domain: Domain,
    layout: Layout,
    run_args: Vec<String>,
    /// The port of the listener's metrics endpoint (its stage counters).
    metrics: u16,
    rows: Vec<Row>,
    json: serde_json::Map<String, Value>,
    runtime: tokio::runtime::Runtime,
}

type Result<T> = std::result::Result<T, String>;

fn bench(options: &Options) -> Result<()> {
    let quick = options.quick;
    let entries = options
        .entries
        .unwrap_or(if quick { 2_000 } else { 100_000 });
    let changes = options.changes.unwrap_or(if quick { 500 } else { 20_000 });
    let live_seconds = options.live_seconds.unwrap_or(if quick { 1 } else { 3 });
    let top = options
        .top_changes
        .unwrap_or(if quick { 500 } else { 5_000 });
    let wants = |phase: &str| options.only.is_empty() || options.only.iter().any(|p| p == phase);
    let reserved: usize = options
        .rates
        .iter()
        .map(|&r| live_count(r, live_seconds, top) / 2 + 1)
        .sum();
    let layout = Layout::new("dc=example,dc=com", entries, reserved);
    if layout.users <= reserved + 10 {
        return Err(format!(
            "--entries {entries} leaves too few users for the live phase ({reserved} needed)"
        ));
    }
    let shape_changes = options
        .shape_changes
        .unwrap_or(if quick { 200 } else { 10_000 });
    let shapes_chosen = match options.shapes.is_empty() {
        true => shapes::ALL.to_vec(),
        false => options.shapes.clone(),
    };
    if wants("shapes") && shapes_chosen.contains(&shapes::Shape::Deletes) {
        // Each delete leaves its user gone for good with odds 1/2: about half the
        // deletes, and a margin of four standard deviations.
        let needed = shape_changes / 2 + 2 * (shape_changes as f64).sqrt() as usize + 10;
        let [_, _, deletable] = layout.catchup_users();
        if deletable.len() < needed {
            return Err(format!(
                "--shape-changes {shape_changes} needs about {needed} users for the deletes shape, \
                 and --entries {entries} leaves it {}: raise --entries or lower --shape-changes",
                deletable.len()
            ));
        }
    }
    let me = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;

    eprintln!(
        "== preloading {entries} users and groups with slapadd; starting slapd and the notifier"
    );
    let started = Instant::now();
    let domain = Domain::start(
        &me,
        Slapd::builder()
            .base(&layout.base)
            .no_sync(true)
            .entries(&layout.ldif()),
    )
    .map_err(|e| e.to_string())?;
    let preload = started.elapsed().as_secs_f64();
    eprintln!("   {preload:.1} s");
    let run_args: Vec<String> = options
        .run_args
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut json = serde_json::Map::new();
    json.insert(
        "config".into(),
        json!({
            "quick": quick,
            "entries": entries,
            "changes": changes,
            "rates": options.rates,
            "live_seconds": live_seconds,
            "run_args": run_args,
            "modules": MODULES,
            "slapd": "OpenLDAP, olcDbNoSync TRUE, accesslog + syncprov",
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "preload_seconds": preload,
        }),
    );
    let mut b = Bench {
        options,
        domain,
        layout,
        run_args,
        metrics: tests::free_port().map_err(|e| e.to_string())?,
        rows: Vec::new(),
        json,
        runtime,
    };
    if wants("init") {
        b.init_baselines()?;
    }
    b.initialize(wants("init"), wants("memory"))?;
    if wants("catchup") || wants("memory") {
        b.catch_up(changes, wants("catchup"), wants("memory"))?;
    }
    if wants("shapes") {
        let groups = options.large_groups.unwrap_or(if quick { 2 } else { 10 });
        for shape in shapes_chosen {
            b.catch_up_shape(shape, shape_changes, groups)?;
        }
    }
    if wants("live") {
        for &rate in &options.rates {
            b.live(rate, live_seconds, top)?;
        }
    }
    if !b.domain.stop_listener() {
        eprintln!("warning: the listener did not stop cleanly");
    }
    // The file module's work: a line per call.
    let lines = b.domain.cache_dir().parent().map_or(0, |d| {
        std::fs::read_to_string(d.join("bench-files.log")).map_or(0, |text| text.lines().count())
    });
    b.json
        .insert("bench_files_module".into(), json!({ "lines": lines }));
    b.report()
}

/// Changes of a live run at `rate` for `seconds` (`top` at the top rate, 0).
fn live_count(rate: u32, seconds: u64, top: usize) -> usize {
    match rate {
        0 => top,
        rate => (u64::from(rate) * seconds) as usize,
    }
}

impl Bench<'_> {
    fn ldap(&self) -> Result<ldap3::Ldap> {
        let slapd = &self.domain.slapd;
        self.runtime.block_on(directory::connect(
            slapd.url(),
            &slapd.root_dn(),
            slapd.root_password(),
        ))
    }

    /// `ldapsearch` of every entry over ldapi (best of two, so both it and the listener
    /// read a warm server), and one ldap3 streaming search for comparison.
    fn init_baselines(&mut self) -> Result<()> {
        eprintln!("== baseline: ldapsearch of every entry ('*' '+', to /dev/null)");
        let mut best = f64::INFINITY;
        for _ in 0..2 {
            let started = Instant::now();
            let status = std::process::Command::new("ldapsearch")
                .args(["-Q", "-LLL", "-Y", "EXTERNAL", "-H"])
                .arg(self.domain.slapd.ldapi_url())
                .args(["-b", &self.layout.base, "(objectClass=*)", "*", "+"])
                .stdout(std::process::Stdio::null())
                .status()
                .map_err(|e| format!("cannot run ldapsearch: {e}"))?;
            if !status.success() {
                return Err(format!("ldapsearch failed: {status}"));
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        let mut ldap = self.ldap()?;
        let (count, stream) = self
            .runtime
            .block_on(directory::streaming_search(&mut ldap, &self.layout.base))?;
        eprintln!(
            "   ldapsearch {best:.2} s; one ldap3 streaming search {:.2} s ({count} entries)",
            stream.as_secs_f64()
        );
        self.json.insert(
            "init_baselines".into(),
            json!({
                "ldapsearch_seconds": best,
                "ldap3_streaming_search_seconds": stream.as_secs_f64(),
                "entries_under_base": count,
            }),
        );
        Ok(())
    }

    /// Starts the listener on a new cache, waits until every module is initialized and a
    /// change went through, and reads the module's initialization time from the log.
    fn initialize(&mut self, report_init: bool, report_memory: bool) -> Result<()> {
        eprintln!("== initialization: the listener initializes its {MODULES} modules");
        let spawned = measure::now_ns() as f64 / 1e9;
        let started = Instant::now();
        self.start_listener()?;
        let deadline = Duration::from_secs(if self.options.quick { 120 } else { 1800 });
        loop {
            let log = self.domain.log();
            if log.iter().any(|l| l.contains("initialization failed")) {
                return Err(format!(
                    "a module's initialization failed:\n{}",
                    log.join("\n")
                ));
            }
            if log
                .iter()
                .filter(|l| l.contains("module initialized"))
                .count()
                >= MODULES
            {
                break;
            }
            self.check_listener(started, deadline, "initializing")?;
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = self.domain.log();
        let all = log
            .iter()
            .filter(|l| l.contains("module initialized"))
            .filter_map(|l| measure::log_time(l))
            .fold(f64::NAN, f64::max)
            - spawned;
        // Each module's initialization, in the order they ran, from the log.
        let field = |line: &str| {
            line.split("module=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(|name| name.trim_matches('"').to_owned())
        };
        let mut per_module: Vec<(String, f64)> = Vec::new();
        let mut started_at: HashMap<String, f64> = HashMap::new();
        for line in &log {
            let (Some(name), Some(t)) = (field(line), measure::log_time(line)) else {
                continue;
            };
            // (Progress lines read "initializing module=…" too, without a reason.)
            if line.contains("initializing module") && line.contains("reason=") {
                started_at.insert(name, t);
            } else if line.contains("module initialized")
                && let Some(from) = started_at.get(&name)
            {
                per_module.push((name, t - from));
            }
        }
        let time_of = |name: &str| per_module.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
        let module =
            time_of(LATENCY_MODULE).ok_or("the listener's log lacks the initialization lines")?;
        // The first module over every entry fills the cache; the later ones find the
        // entries cached and only register on them.
        let first = time_of(FIRST_FULL_MODULE).unwrap_or(f64::NAN);
        // A change after the initialization: the listener is in its loop.
        self.sync_marker("after-init")?;
        let pid = self.listener_pid()?;
        let (hwm, rss) = measure::memory_mib(pid).ok_or("cannot read the listener's memory")?;
        // Steadier than the times on a shared machine: what the listener itself used.
        let cpu = measure::cpu_seconds(pid).ok_or("cannot read the listener's CPU time")?;
        let cache_mib = self.cache_mib();
        eprintln!(
            "   {FIRST_FULL_MODULE} (first over every entry): {first:.2} s; {LATENCY_MODULE} (every entry, cached): {module:.2} s; all {MODULES} modules: {all:.2} s, \
             listener CPU {cpu:.2} s; VmHWM {hwm:.0} MiB, VmRSS {rss:.0} MiB, cache file {cache_mib:.0} MiB"
        );
        let entries = self.layout.users + self.layout.groups;
        if report_init {
            let baseline_of = |key: &str| {
                self.json
                    .get("init_baselines")
                    .and_then(|b| b.get(key))
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::NAN)
            };
            let baseline = baseline_of("ldapsearch_seconds");
            let stream = baseline_of("ldap3_streaming_search_seconds");
            let ratio = module / baseline;
            self.rows.push(row(
                format!("init: one module, {entries} entries, not yet cached"),
                format!("{first:.2} s"),
                format!("ldapsearch {baseline:.2} s"),
                format!("{:.2}x", first / baseline),
                "<= 3x",
            ));
            self.rows.push(row(
                format!("init: one module, {entries} entries, cached"),
                format!("{module:.2} s"),
                format!("ldapsearch {baseline:.2} s"),
                format!("{ratio:.2}x"),
                "<= 2x",
            ));
            self.rows.push(row(
                format!("init: all {MODULES} modules (start to ready)"),
                format!("{all:.2} s, CPU {cpu:.2} s"),
                format!("ldap3 1 search {stream:.2} s"),
                String::new(),
                "",
            ));
            self.json.insert(
                "init".into(),
                json!({
                    "entries": entries,
                    "module": LATENCY_MODULE,
                    "module_seconds": module,
                    "first_module": FIRST_FULL_MODULE,
                    "first_module_seconds": first,
                    "first_module_ratio": first / baseline,
                    "per_module_seconds": per_module
                        .iter()
                        .map(|(name, t)| json!({"module": name, "seconds": t}))
                        .collect::<Vec<_>>(),
                    "first_module_goal_ratio_at_most": GOAL_INIT_RATIO,
                    "first_module_met": first / baseline <= GOAL_INIT_RATIO,
                    "all_modules_seconds": all,
                    "listener_cpu_seconds": cpu,
                    "ldapsearch_seconds": baseline,
                    "ratio": ratio,
                    "goal_ratio_at_most": GOAL_INIT_CACHED_RATIO,
                    "met": ratio <= GOAL_INIT_CACHED_RATIO,
                }),
            );
        }
        if report_memory {
            self.memory_row("after init", entries, hwm, rss, cache_mib);
        }
        Ok(())
    }

    fn memory_row(&mut self, when: &str, entries: usize, hwm: f64, rss: f64, cache_mib: f64) {
        self.rows.push(row(
            format!("memory {when}: VmHWM ({entries}+ cached)"),
            format!("{hwm:.0} MiB"),
            format!("VmRSS {rss:.0} MiB, cache {cache_mib:.0} MiB"),
            String::new(),
            "< 150 MiB",
        ));
        let memory = self
            .json
            .entry("memory")
            .or_insert_with(|| json!({"goal_mib_below": GOAL_MEMORY_MIB}));
        memory[when.replace(' ', "_")] = json!({
            "vm_hwm_mib": hwm,
            "vm_rss_mib": rss,
            "cache_file_mib": cache_mib,
            "met": hwm < GOAL_MEMORY_MIB,
        });
    }

    /// Stops the listener, makes `changes` mixed changes, starts it and times until it
    /// called the latency module for the final marker change.
    fn catch_up(&mut self, changes: usize, report: bool, report_memory: bool) -> Result<()> {
        eprintln!("== catch-up: {changes} mixed changes while the listener is stopped");
        // OpenLDAP's own consumer, holding what the primary holds before the changes.
        let consumer = match report {
            true => Some(self.start_consumer()?),
            false => None,
        };
        if !self.domain.stop_listener() {
            return Err("the listener did not stop cleanly".into());
        }
        let before = self.domain.notifier_id();
        let mut ldap = self.ldap()?;
        let [users, _, _] = self.layout.catchup_users();
        let started = Instant::now();
        let made = self.runtime.block_on(directory::mixed_changes(
            &mut ldap,
            &self.layout,
            users,
            changes,
            self.options.seed,
        ))?;
        let (transactions, seconds, stages) = self.drain(before, &made, "catch-up", started)?;
        let rate = transactions as f64 / seconds;
        let pid = self.listener_pid()?;
        let (hwm, rss) = measure::memory_mib(pid).ok_or("cannot read the listener's memory")?;
        let cache_mib = self.cache_mib();
        let floor = match report {
            true => Some(self.floor(&made)?),
            false => None,
        };
        let syncrepl = match consumer {
            Some(consumer) => Some(self.consumer_catch_up(consumer)?),
            None => None,
        };
        let syncrepl_rate = syncrepl.map(|seconds| transactions as f64 / seconds);
        if let (Some(seconds), Some(theirs)) = (syncrepl, syncrepl_rate) {
            eprintln!(
                "   syncrepl consumer caught up in {seconds:.2} s: {theirs:.0} transactions/s; ours/theirs {:.2}",
                rate / theirs
            );
        }
        if let Some(floor) = floor {
            let (baseline, ratio) = (floor.per_second, rate / floor.per_second);
            self.rows.push(row(
                format!("catch-up: {transactions} transactions ({changes} changes)"),
                format!("{rate:.0}/s ({seconds:.2} s)"),
                format!("fastest seq. fetch {baseline:.0}/s"),
                format!("{ratio:.2}"),
                ">= 2.0",
            ));
            if let (Some(seconds), Some(theirs)) = (syncrepl, syncrepl_rate) {
                self.rows.push(row(
                    "catch-up: the same, against syncrepl".to_owned(),
                    format!("{rate:.0}/s ({seconds:.2} s theirs)"),
                    format!("syncrepl consumer {theirs:.0}/s"),
                    format!("{:.2}", rate / theirs),
                    ">= 1.0",
                ));
            }
            self.json.insert(
                "catchup".into(),
                json!({
                    "changes": changes,
                    "transactions": transactions,
                    "seconds": seconds,
                    "rate_per_second": rate,
                    "baseline_sequential_fetch_per_second": baseline,
                    "baseline_client": floor.client,
                    "sequential_fetch_per_second": floor.clients,
                    "syncrepl_seconds": syncrepl,
                    "syncrepl_rate_per_second": syncrepl_rate,
                    "ratio_to_syncrepl": syncrepl_rate.map(|theirs| rate / theirs),
                    "listener_stage_seconds": stage_json(&stages),
                    "baseline_fetches": made.transaction_dns.len(),
                    "ratio": ratio,
                    "goal_ratio_at_least": GOAL_CATCHUP_RATIO,
                    "met": ratio >= GOAL_CATCHUP_RATIO,
                }),
            );
        }
        if report_memory {
            let entries = self.layout.users + self.layout.groups;
            self.memory_row("after catch-up", entries, hwm, rss, cache_mib);
        }
        Ok(())
    }

    /// Stops the listener, makes `count` changes of `shape` (after what it needs, made
    /// while the listener runs), starts it and times until the marker's call; beside it,
    /// the fastest sequential client fetching the same transactions' objects.
    fn catch_up_shape(&mut self, shape: Shape, count: usize, groups: usize) -> Result<()> {
        eprintln!(
            "== catch-up of one shape: {count} changes, {}",
            shape.describe()
        );
        let mut ldap = self.ldap()?;
        self.runtime
            .block_on(shape.prepare(&mut ldap, &self.layout, groups))?;
        self.sync_marker(&format!("prepared {}", shape.name()))?;
        if !self.domain.stop_listener() {
            return Err("the listener did not stop cleanly".into());
        }
        let before = self.domain.notifier_id();
        let [_, renames, deletes] = self.layout.catchup_users();
        let users = match shape {
            Shape::Deletes => deletes,
            _ => renames,
        };
        let started = Instant::now();
        let made = self.runtime.block_on(shape.changes(
            &mut ldap,
            &self.layout,
            users,
            groups,
            count,
            self.options.seed,
        ))?;
        let (transactions, seconds, stages) = self.drain(before, &made, shape.name(), started)?;
        let rate = transactions as f64 / seconds;
        let floor = self.floor(&made)?;
        let ratio = rate / floor.per_second;
        self.rows.push(row(
            format!(
                "catch-up, {}: {transactions} transactions",
                shape.describe()
            ),
            format!("{rate:.0}/s ({seconds:.2} s)"),
            format!("fastest seq. fetch {:.0}/s", floor.per_second),
            format!("{ratio:.2}"),
            ">= 2.0",
        ));
        let shapes = self
            .json
            .entry("catchup_shapes")
            .or_insert_with(|| json!({}));
        shapes[shape.name()] = json!({
            "description": shape.describe(),
            "changes": count,
            "large_groups": (shape == Shape::Groups).then_some(groups),
            "group_members": (shape == Shape::Groups).then_some(shapes::GROUP_MEMBERS),
            "transactions": transactions,
            "seconds": seconds,
            "rate_per_second": rate,
            "baseline_sequential_fetch_per_second": floor.per_second,
            "baseline_client": floor.client,
            "sequential_fetch_per_second": floor.clients,
            "listener_stage_seconds": stage_json(&stages),
            "ratio": ratio,
            "goal_ratio_at_least": GOAL_CATCHUP_RATIO,
            "met": ratio >= GOAL_CATCHUP_RATIO,
        });
        Ok(())
    }

    /// After the changes `made` (with the listener stopped, the notifier at `before`
    /// when they began at `started`): changes the marker, waits for the notifier, starts
    /// the listener and waits for the marker's call. The transactions and the seconds
    /// from the listener's start to that call.
    fn drain(
        &mut self,
        before: u64,
        made: &Changes,
        marker_value: &str,
        started: Instant,
    ) -> Result<(u64, f64, Stages)> {
        let mut ldap = self.ldap()?;
        self.runtime.block_on(directory::touch_marker(
            &mut ldap,
            &self.layout.base,
            marker_value,
        ))?;
        let transactions = made.transaction_dns.len() as u64 + 1;
        eprintln!(
            "   {} transactions written in {:.1} s",
            transactions,
            started.elapsed().as_secs_f64()
        );
        let expected = before + transactions;
        let waited = Instant::now();
        while self.domain.notifier_id() < expected {
            if waited.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "the notifier is at {} of {expected}",
                    self.domain.notifier_id()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut tail = CallsTail::from_end(&self.domain.calls_file());
        let marker = format!("{},{}", directory::MARKER, self.layout.base);
        let spawned = measure::now_ns();
        let started = Instant::now();
        self.start_listener()?;
        let done = loop {
            if let Some(call) = tail
                .read_new()
                .into_iter()
                .find(|c| c.dn.eq_ignore_ascii_case(&marker))
            {
                break call.ns;
            }
            self.check_listener(started, Duration::from_secs(1800), "catching up")?;
            std::thread::sleep(Duration::from_millis(5));
        };
        let seconds = (done.saturating_sub(spawned)) as f64 / 1e9;
        eprintln!(
            "   drained in {seconds:.2} s: {:.0}/s",
            transactions as f64 / seconds
        );
        let stages = self.stages(expected)?;
        Ok((transactions, seconds, stages))
    }

    /// The fastest sequential client fetching the objects of the transactions `made`,
    /// each client printed.
    fn floor(&self, made: &Changes) -> Result<Floor> {
        let fetches = made.transaction_dns.len() as f64;
        let clients = floor::measure(&self.runtime, &self.domain.slapd, &made.transaction_dns)?;
        let mut all = serde_json::Map::new();
        for client in &clients {
            let per_second = fetches / client.time.as_secs_f64();
            eprintln!("   sequential fetches, {}: {per_second:.0}/s", client.name);
            all.insert(client.name.into(), json!(per_second));
        }
        let fastest = clients
            .iter()
            .min_by_key(|c| c.time)
            .ok_or("no sequential client measured")?;
        Ok(Floor {
            client: fastest.name,
            per_second: fetches / fastest.time.as_secs_f64(),
            clients: all,
        })
    }

    /// A native syncrepl consumer of the primary (no-sync), once it holds what the
    /// primary holds; stopped, for [`Bench::consumer_catch_up`].
    fn start_consumer(&mut self) -> Result<Slapd> {
        let started = Instant::now();
        let mut consumer = syncrepl::start_consumer(&self.domain.slapd)?;
        let want = self
            .runtime
            .block_on(syncrepl::contextcsn(&self.domain.slapd))?;
        let seconds = self.runtime.block_on(syncrepl::converged(
            &consumer,
            &want,
            started,
            Duration::from_secs(1800),
        ))?;
        eprintln!("   a syncrepl consumer took the primary's entries in {seconds:.1} s");
        consumer.stop();
        Ok(consumer)
    }

    /// Restarts `consumer` (stopped before the changes): the seconds until it holds what
    /// the primary holds now, alone on the machine but for our idle listener.
    fn consumer_catch_up(&mut self, mut consumer: Slapd) -> Result<f64> {
        let want = self
            .runtime
            .block_on(syncrepl::contextcsn(&self.domain.slapd))?;
        let started = Instant::now();
        consumer.restart().map_err(|e| e.to_string())?;
        self.runtime.block_on(syncrepl::converged(
            &consumer,
            &want,
            started,
            Duration::from_secs(1800),
        ))
    }

    /// Changes at `rate` per second for `seconds`; the latency of each from the write's
    /// answer to the latency module's call.
    fn live(&mut self, rate: u32, seconds: u64, top: usize) -> Result<()> {
        let count = live_count(rate, seconds, top);
        let at = match rate {
            0 => "at the writer's top rate".to_owned(),
            rate => format!("{rate}/s"),
        };
        eprintln!("== live: {count} changes, {at}");
        // What earlier phases left dirty in the page cache is written out first: the
        // kernel flushing it would stall the fsyncs of this phase.
        let _ = std::process::Command::new("sync").status();
        let previous: usize = self
            .options
            .rates
            .iter()
            .take_while(|&&r| r != rate)
            .map(|&r| live_count(r, seconds, top) / 2 + 1)
            .sum();
        let mut tail = CallsTail::from_end(&self.domain.calls_file());
        let mut ldap = self.ldap()?;
        let (done, achieved) = self.runtime.block_on(directory::paced_changes(
            &mut ldap,
            &self.layout,
            rate,
            count,
            previous,
        ))?;
        let mut waiting: HashMap<(String, char), u128> = done
            .iter()
            .map(|(dn, command, ns)| ((dn.to_ascii_lowercase(), *command), *ns))
            .collect();
        let mut latencies = Vec::with_capacity(count);
        // The last write's answer and the last call seen of the run's changes.
        let last_write = done.iter().map(|(_, _, ns)| *ns).max().unwrap_or_default();
        let mut last_call = last_write;
        let started = Instant::now();
        while !waiting.is_empty() && started.elapsed() < Duration::from_secs(60) {
            for call in tail.read_new() {
                let command = call.command.chars().next().unwrap_or('?');
                if let Some(written) = waiting.remove(&(call.dn.to_ascii_lowercase(), command)) {
                    latencies.push((call.ns as f64 - written as f64) / 1e6);
                    last_call = last_call.max(call.ns);
                }
            }
            self.check_listener(started, Duration::from_secs(120), "live")?;
            std::thread::sleep(Duration::from_millis(20));
        }
        latencies.sort_by(f64::total_cmp);
        let (p50, p99) = (
            measure::percentile(&latencies, 50.0),
            measure::percentile(&latencies, 99.0),
        );
        let max = latencies.last().copied().unwrap_or(f64::NAN);
        let missing = waiting.len();
        // Behind the writer when it stopped: its last answer to the last module call.
        let lag = last_call.saturating_sub(last_write) as f64 / 1e9;
        eprintln!(
            "   achieved {achieved:.0}/s; p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; {missing} not seen; the last call {lag:.3} s after the last write"
        );
        if rate == 0 {
            self.rows.push(row(
                "live at the writer's top rate: behind the last write".to_owned(),
                format!("{lag:.3} s"),
                format!("writer {achieved:.0}/s"),
                String::new(),
                "< 0.5 s",
            ));
        }
        let goal = if rate == 200 { "p99 < 10 ms" } else { "" };
        self.rows.push(row(
            format!("live {at}: write to module call"),
            format!("p50 {p50:.2} / p99 {p99:.2} / max {max:.2} ms"),
            format!("achieved {achieved:.0}/s"),
            if missing > 0 {
                format!("{missing} unseen")
            } else {
                String::new()
            },
            goal,
        ));
        let live = self.json.entry("live").or_insert_with(|| json!([]));
        if let Some(list) = live.as_array_mut() {
            list.push(json!({
                "rate_per_second": rate,
                "achieved_per_second": achieved,
                "changes": count,
                "seen": latencies.len(),
                "missing": missing,
                "p50_ms": p50,
                "p99_ms": p99,
                "max_ms": max,
                "lag_seconds": lag,
                "goal_lag_seconds_below": (rate == 0).then_some(GOAL_LAG_SECONDS),
                "goal_p99_ms_below": (rate == 200).then_some(GOAL_P99_MS_AT_200),
                "met": match rate {
                    200 => Some(p99 < GOAL_P99_MS_AT_200 && missing == 0),
                    0 => Some(lag < GOAL_LAG_SECONDS && missing == 0),
                    _ => None,
                },
            }));
        }
        Ok(())
    }

    /// Changes the marker and waits until the latency module saw it.
    fn sync_marker(&mut self, value: &str) -> Result<()> {
        let mut tail = CallsTail::from_end(&self.domain.calls_file());
        let marker = format!("{},{}", directory::MARKER, self.layout.base);
        let mut ldap = self.ldap()?;
        self.runtime
            .block_on(directory::touch_marker(&mut ldap, &self.layout.base, value))?;
        let started = Instant::now();
        loop {
            if tail
                .read_new()
                .iter()
                .any(|c| c.dn.eq_ignore_ascii_case(&marker))
            {
                return Ok(());
            }
            self.check_listener(started, Duration::from_secs(120), "waiting for the marker")?;
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn start_listener(&mut self) -> Result<()> {
        let mut args = self.run_args.clone();
        args.extend([
            "--metrics".to_owned(),
            format!("127.0.0.1:{}", self.metrics),
        ]);
        self.domain
            .start_listener_with_log_and("info", &args)
            .map_err(|e| e.to_string())
    }

    /// Where the listener's processing loop spent its time since it started, once
    /// everything up to `expected` is durable (the last commit included); printed.
    fn stages(&self, expected: u64) -> Result<Stages> {
        let started = Instant::now();
        loop {
            let text = tests::domain::metrics_text(self.metrics).unwrap_or_default();
            let durable = tests::domain::metrics_durable_id_in(&text).unwrap_or(0);
            if durable >= expected {
                let stages = tests::domain::metrics_stages(&text);
                let busy: f64 = stages.iter().map(|(_, s)| s).sum();
                let list: Vec<String> = stages
                    .iter()
                    .map(|(stage, s)| format!("{stage} {s:.2}"))
                    .collect();
                eprintln!(
                    "   the listener's loop since its start, s: {} (together {busy:.2})",
                    list.join(", ")
                );
                return Ok(stages);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the listener's durable ID is {durable}, not {expected}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn listener_pid(&mut self) -> Result<u32> {
        self.domain
            .listener()
            .map(|l| l.pid())
            .ok_or_else(|| "the listener is not running".to_owned())
    }

    fn cache_mib(&self) -> f64 {
        std::fs::metadata(self.domain.cache_dir().join("cache.redb"))
            .map_or(f64::NAN, |m| m.len() as f64 / 1_048_576.0)
    }

    /// Fails when the listener exited or `timeout` passed since `started`.
    fn check_listener(&mut self, started: Instant, timeout: Duration, what: &str) -> Result<()> {
        if let Some(why) = self.domain.listener().and_then(|l| l.exited()) {
            let log = self.domain.log();
            let tail = &log[log.len().saturating_sub(20)..];
            return Err(format!(
                "the listener exited while {what}: {why}\n{}",
                tail.join("\n")
            ));
        }
        if started.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} while {what}"));
        }
        Ok(())
    }

    fn report(self) -> Result<()> {
        let header = row(
            "figure".into(),
            "value".into(),
            "baseline (same run)".into(),
            "ratio".into(),
            "goal",
        );
        let rows: Vec<&Row> = std::iter::once(&header).chain(&self.rows).collect();
        let width =
            |f: fn(&Row) -> &str| rows.iter().map(|r| f(r).chars().count()).max().unwrap_or(0);
        let w = [
            width(|r| &r.figure),
            width(|r| &r.value),
            width(|r| &r.baseline),
            width(|r| &r.ratio),
        ];
        println!();
        for r in &rows {
            println!(
                "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}",
                r.figure,
                r.value,
                r.baseline,
                r.ratio,
                r.goal,
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3]
            );
        }
        println!(
            "(slapd with olcDbNoSync; {} cores; listener run args: {:?})",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.run_args
        );
        if let Some(path) = &self.options.json {
            let text = serde_json::to_string_pretty(&Value::Object(self.json))
                .map_err(|e| format!("cannot encode the results: {e}"))?;
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }
}
