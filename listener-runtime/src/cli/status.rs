//! `status`: how far the listener is, whether it keeps up, and whether anything needs the
//! administrator (semantics §9: UCS's `univention-directory-listener-ctrl status`). Also a
//! monitoring check through its exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::table;
use crate::api::registry::ModuleRegistration;
use crate::listener::cache::{Cache, CacheError};
use crate::listener::control::Client;
use crate::listener::control::protocol::{Query, StatusReport};
use crate::listener::control::report;

/// The exit codes and the JSON fields, for `status --help`.
pub(super) const HELP: &str = "\
Exit codes (usable as a monitoring check):
  0  healthy: the listener runs and is not stalled
  1  halted: a blocking module fails a transaction and processing waits for it
  2  stalled: the listener is behind the notifier and its last processed ID has not
     moved for --stalled-after seconds
  3  cannot tell: no cache, the listener is not running (the figures then come from the
     cache) or it does not answer

--json prints one object with these fields:
  health                  \"healthy\", \"halted\", \"stalled\" or \"unknown\" (exit codes 0-3)
  running                 whether a listener answered on <cache-dir>/control.sock
  last_id                 last transaction ID processed durably
  notifier_id             the notifier's current ID, or null when unknown
  lag_ids                 notifier_id - last_id, or null
  lag_seconds             age of the change last applied while behind (0 when caught
                          up), or null when not running
  rate                    transactions per second since start, or null
  uptime_seconds          seconds since start, or null
  seconds_since_progress  seconds since last_id moved, or null
  schema_id               the schema ID the cache holds
  entries                 objects in the cache
  halted                  null, or {id, module, error, since}
  shared                  null when not running or without asynchronous modules, else
                          {backend, error, since}: the
                          store of modules' shared variables and locks; error and
                          since are null while it answers
  modules                 [{name, state, failed, registered, queue}] in call order; state
                          is NEW, INITIALIZING (<n> done), READY or FAILED: <error>;
                          queue is null except for asynchronous modules: {depth,
                          in_flight, oldest_seconds, workers, restarts}, the calls
                          queued (running ones included), running, the age of the
                          oldest, the worker processes ready and restarted (all but
                          depth null when the listener is not running)";

/// `status`: IDs, lag, rate, module states, failed events, halt.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// The listener's cache directory.
    #[arg(long, env = "LISTENER_CACHE_DIR")]
    cache_dir: PathBuf,
    /// The notifier to ask for its current ID when the listener is not running (a
    /// running listener reports the newest ID it has seen).
    #[arg(long, value_name = "HOST:PORT")]
    notifier: Option<String>,
    /// Print one JSON object (fields below) instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds the last processed ID may stand still while the listener is behind before
    /// it counts as stalled (exit code 2).
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    stalled_after: u64,
}

/// What the status means, as an exit code and a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Healthy,
    Halted,
    Stalled,
    Unknown,
}

impl Health {
    fn of(report: &StatusReport, stalled_after: u64) -> Health {
        if !report.running {
            Health::Unknown
        } else if report.halted.is_some() {
            Health::Halted
        } else if report.lag_ids.unwrap_or(0) > 0
            && report.seconds_since_progress.unwrap_or(0.0) >= stalled_after as f64
        {
            Health::Stalled
        } else {
            Health::Healthy
        }
    }

    fn word(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Halted => "halted",
            Health::Stalled => "stalled",
            Health::Unknown => "unknown",
        }
    }

    fn code(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Halted => 1,
            Health::Stalled => 2,
            Health::Unknown => 3,
        }
    }
}

pub(super) fn run_status(args: StatusArgs, modules: &[&'static ModuleRegistration]) -> ExitCode {
    let report = match Client::connect(&args.cache_dir) {
        Some(mut client) => client.call::<StatusReport>(&Query::Status),
        None => from_cache(&args, modules),
    };
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(Health::Unknown.code());
        }
    };
    let health = Health::of(&report, args.stalled_after);
    if args.json {
        println!("{}", json(&report, health));
    } else {
        print!("{}", text(&report, health));
    }
    ExitCode::from(health.code())
}

/// The status of a listener that is not running: its cache, and the notifier if given.
fn from_cache(
    args: &StatusArgs,
    modules: &[&'static ModuleRegistration],
) -> Result<StatusReport, String> {
    let cache = Cache::open_read_only(&args.cache_dir)
        .map_err(|e| match e {
            CacheError::InUse { .. } => format!(
                "a listener has the cache in {} open but does not answer on its control \
                 socket (it is starting up, or stopping); try again",
                args.cache_dir.display()
            ),
            e => e.to_string(),
        })?
        .ok_or_else(|| format!("there is no listener cache in {}", args.cache_dir.display()))?;
    let r = cache.read().map_err(|e| e.to_string())?;
    let mut report = report::status(modules, &r, None).map_err(|e| e.to_string())?;
    if let Some(notifier) = &args.notifier {
        match super::common::ask_notifier(notifier, false) {
            Ok(id) => {
                report.notifier_id = Some(id);
                report.lag_ids = Some(id.saturating_sub(report.last_id));
            }
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    Ok(report)
}

/// The `--json` object: the report plus `health`.
fn json(report: &StatusReport, health: Health) -> String {
    let mut value = serde_json::to_value(report).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("health".into(), health.word().into());
    }
    value.to_string()
}

/// The human form: the figures, then one row per module.
fn text(report: &StatusReport, health: Health) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let mut rows = vec![
        (
            "listener",
            match report.uptime_seconds {
                Some(up) if report.running => format!("running (for {up:.0} s)"),
                _ => "not running (figures from the cache)".to_owned(),
            },
        ),
        ("health", health.word().to_owned()),
        ("last ID", report.last_id.to_string()),
        (
            "notifier ID",
            opt(report.notifier_id.map(|id| id.to_string())),
        ),
        (
            "lag",
            match (report.lag_ids, report.lag_seconds) {
                (Some(ids), Some(secs)) => format!("{ids} IDs, {secs:.1} s"),
                (Some(ids), None) => format!("{ids} IDs"),
                _ => "-".to_owned(),
            },
        ),
        (
            "rate",
            opt(report.rate.map(|r| format!("{r:.1} transactions/s"))),
        ),
        (
            "last progress",
            opt(report
                .seconds_since_progress
                .map(|s| format!("{s:.0} s ago"))),
        ),
        ("schema ID", report.schema_id.to_string()),
        ("cached objects", report.entries.to_string()),
    ];
    if let Some(h) = &report.halted {
        rows.push((
            "halted",
            format!(
                "at transaction {} by the blocking module {} since {}: {}",
                h.id, h.module, h.since, h.error
            ),
        ));
    }
    if let Some(shared) = &report.shared {
        let state = match (&shared.error, &shared.since) {
            (Some(error), Some(since)) => format!("failing since {since}: {error}"),
            (Some(error), None) => format!("failing: {error}"),
            _ => "answers".to_owned(),
        };
        rows.push(("shared state", format!("{}, {state}", shared.backend)));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in rows {
        out.push_str(&format!("{key:width$}  {value}\n"));
    }
    out.push('\n');
    let modules: Vec<Vec<String>> = report
        .modules
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.failed.to_string(),
                m.registered.to_string(),
                m.state.clone(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["MODULE", "FAILED", "REGISTERED", "STATE"],
        &modules,
    ));
    for m in &report.modules {
        if let Some(q) = &m.queue {
            out.push_str(&format!("queue of {}: {} calls queued", m.name, q.depth));
            if let Some(in_flight) = q.in_flight {
                out.push_str(&format!(", {in_flight} running"));
            }
            if let Some(oldest) = q.oldest_seconds {
                out.push_str(&format!(", the oldest for {oldest:.1} s"));
            }
            if let (Some(workers), Some(restarts)) = (q.workers, q.restarts) {
                out.push_str(&format!(", {workers} workers ready, {restarts} restarts"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::control::protocol::{HaltReport, ModuleStatus};

    fn report() -> StatusReport {
        StatusReport {
            running: true,
            last_id: 40,
            notifier_id: Some(42),
            lag_ids: Some(2),
            lag_seconds: Some(1.26),
            rate: Some(3.0),
            uptime_seconds: Some(60.0),
            seconds_since_progress: Some(10.0),
            schema_id: 1,
            entries: 7,
            halted: None,
            shared: None,
            modules: vec![ModuleStatus {
                name: "printer".into(),
                state: "READY".into(),
                failed: 0,
                registered: 7,
                queue: None,
            }],
        }
    }

    #[test]
    fn health_follows_halt_stall_and_running() {
        let mut r = report();
        assert_eq!(Health::of(&r, 300), Health::Healthy);
        assert_eq!(Health::of(&r, 5), Health::Stalled);
        r.lag_ids = Some(0);
        assert_eq!(
            Health::of(&r, 5),
            Health::Healthy,
            "caught up is never stalled"
        );
        r.halted = Some(HaltReport {
            id: 41,
            module: "replication".into(),
            error: "e".into(),
            since: "t".into(),
        });
        assert_eq!(Health::of(&r, 5), Health::Halted);
        r.running = false;
        assert_eq!(Health::of(&r, 5), Health::Unknown);
        assert_eq!(
            [
                Health::Healthy,
                Health::Halted,
                Health::Stalled,
                Health::Unknown
            ]
            .map(Health::code),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn json_is_the_report_plus_health() {
        let value: serde_json::Value =
            serde_json::from_str(&json(&report(), Health::Stalled)).unwrap();
        assert_eq!(value["health"], "stalled");
        assert_eq!(value["last_id"], 40);
        assert_eq!(value["notifier_id"], 42);
        assert_eq!(value["halted"], serde_json::Value::Null);
        assert_eq!(value["modules"][0]["state"], "READY");
    }

    #[test]
    fn text_is_aligned_and_names_the_halt() {
        let mut r = report();
        r.halted = Some(HaltReport {
            id: 41,
            module: "replication".into(),
            error: "server down".into(),
            since: "2026-11-28 09:00:00.000000 UTC".into(),
        });
        let out = text(&r, Health::Halted);
        assert!(out.contains("\nlast ID         40\n"), "{out}");
        assert!(out.contains("\nlag             2 IDs, 1.3 s\n"), "{out}");
        assert!(
            out.contains("halted          at transaction 41 by the blocking module replication"),
            "{out}"
        );
        assert!(
            out.contains(
                "MODULE   FAILED  REGISTERED  STATE\nprinter  0       7           READY\n"
            ),
            "{out}"
        );
    }
}
