//! `notifier`, `translog` and `notifier-id`: running the notifier and inspecting it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::common::{Bind, ask_notifier, fail, shutdown_signal};
use crate::notifier::server::ServerConfig;
use crate::notifier::translog::{self, Translog};
use crate::notifier::{self, NotifierConfig};

/// `notifier`: follow slapd's accesslog and serve transactions.
#[derive(Debug, Args)]
pub(super) struct NotifierArgs {
    #[command(flatten)]
    bind: Bind,
    /// Where the transaction log and the schema ID are kept.
    #[arg(long, env = "LISTENER_DATA_DIR")]
    data_dir: PathBuf,
    /// Address of the notifier protocol; `0.0.0.0:6669` serves every interface.
    #[arg(long, env = "LISTENER_LISTEN", default_value = "127.0.0.1:6669")]
    listen: SocketAddr,
    /// Oldest protocol version accepted from clients (UCS listeners speak 2 and 3).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(2..=3))]
    min_protocol: u32,
    /// Most client connections at once.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds between checks of cn=Subschema for changes.
    #[arg(long, default_value_t = 60)]
    schema_interval: u64,
    /// On the very first start, number the writes the accesslog already holds instead
    /// of starting with the next write.
    #[arg(long)]
    replay_accesslog: bool,
    /// Serve Prometheus metrics on `http://ADDR/metrics` (e.g. `127.0.0.1:9470`): the
    /// last transaction ID, the schema ID and the clients connected.
    #[arg(long, env = "LISTENER_NOTIFIER_METRICS", value_name = "ADDR")]
    metrics: Option<SocketAddr>,
}

pub(super) fn run_notifier(args: NotifierArgs) -> ExitCode {
    let ldap = match args.bind.settings() {
        Ok(ldap) => ldap,
        Err(e) => return fail(&e),
    };
    let mut config = NotifierConfig::new(ldap, args.data_dir);
    config.listen = args.listen;
    config.server = ServerConfig {
        min_version: args.min_protocol,
        max_connections: args.max_connections,
        ..ServerConfig::default()
    };
    config.schema_interval = Duration::from_secs(args.schema_interval.max(1));
    config.replay_existing = args.replay_accesslog;
    config.metrics = args.metrics;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal();
        notifier::run(config, |_| {}, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

/// `translog`: inspect, check and prune the transaction log.
#[derive(Debug, Args)]
pub(super) struct TranslogArgs {
    /// The notifier's data directory.
    #[arg(long, env = "LISTENER_DATA_DIR")]
    data_dir: PathBuf,
    #[command(subcommand)]
    action: TranslogAction,
}

#[derive(Debug, Subcommand)]
enum TranslogAction {
    /// First and last ID, number of transactions, file sizes.
    Stat,
    /// Print transactions by ID: `<id> <dn> <cmd>`, then entryUUID, CSN and time.
    Lookup {
        /// Transaction IDs.
        #[arg(required = true)]
        ids: Vec<u64>,
    },
    /// Print every transaction in UDN's text form `<id> <dn> <cmd>`.
    Export,
    /// Read every record; report damage, holes and repeats (exit code 1 if any).
    Check,
    /// Remove old transactions (the notifier must be stopped; the newest one is always
    /// kept so IDs continue).
    Prune {
        /// Keep only the newest N transactions.
        #[arg(long, conflicts_with = "before", required_unless_present = "before")]
        keep: Option<u64>,
        /// Remove transactions with an ID below this one.
        #[arg(long)]
        before: Option<u64>,
    },
}

pub(super) fn run_translog(args: TranslogArgs) -> ExitCode {
    let dir = args.data_dir.as_path();
    let result = match args.action {
        TranslogAction::Stat => stat(dir),
        TranslogAction::Lookup { ids } => lookup(dir, &ids),
        TranslogAction::Export => export(dir),
        TranslogAction::Check => check(dir),
        TranslogAction::Prune { keep, before } => prune(dir, keep, before),
    };
    result.unwrap_or_else(|e| fail(&e))
}

fn stat(dir: &Path) -> Result<ExitCode, String> {
    let log = Translog::open_read_only(dir).map_err(|e| e.to_string())?;
    let size = |name: &str| std::fs::metadata(dir.join(name)).map_or(0, |m| m.len());
    let count = log.first_id().map_or(0, |first| log.last_id() - first + 1);
    println!("first ID:     {}", log.first_id().unwrap_or(0));
    println!("last ID:      {}", log.last_id());
    println!("transactions: {count}");
    println!(
        "cookie:       {}",
        log.cookie().map_or_else(
            || "(none)".into(),
            |c| String::from_utf8_lossy(c).into_owned()
        )
    );
    println!("log size:     {} bytes", size("translog.dat"));
    println!("index size:   {} bytes", size("translog.idx"));
    Ok(ExitCode::SUCCESS)
}

fn lookup(dir: &Path, ids: &[u64]) -> Result<ExitCode, String> {
    let log = Translog::open_read_only(dir).map_err(|e| e.to_string())?;
    let mut missing = false;
    for &id in ids {
        match log.get(id).map_err(|e| e.to_string())? {
            Some(t) => {
                println!("{}", t.to_line());
                println!("  entryUUID: {}", t.entry_uuid);
                println!("  CSN:       {}", t.csn);
                println!("  time:      {}", format_time(t.time_us));
            }
            None => {
                eprintln!("transaction {id} is not in the log");
                missing = true;
            }
        }
    }
    Ok(if missing {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn export(dir: &Path) -> Result<ExitCode, String> {
    let log = Translog::open_read_only(dir).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    log.export(&mut out).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn check(dir: &Path) -> Result<ExitCode, String> {
    let report = translog::check(dir).map_err(|e| e.to_string())?;
    println!(
        "{} transactions ({}..{}), {} commits",
        report.transactions, report.first_id, report.last_id, report.commits
    );
    for problem in &report.problems {
        println!("problem: {problem}");
    }
    Ok(if report.problems.is_empty() {
        println!("ok");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn prune(dir: &Path, keep: Option<u64>, before: Option<u64>) -> Result<ExitCode, String> {
    let mut log = Translog::open(dir).map_err(|e| e.to_string())?;
    let removed = match (keep, before) {
        (Some(keep), _) => log.prune_keep_last(keep),
        (None, Some(before)) => log.prune_before(before),
        (None, None) => return Err("give --keep N or --before ID".into()),
    }
    .map_err(|e| e.to_string())?;
    println!(
        "removed {removed} transactions; the log now holds {}..{}",
        log.first_id().unwrap_or(0),
        log.last_id()
    );
    Ok(ExitCode::SUCCESS)
}

use crate::utc::format_micros as format_time;

/// `notifier-id`: print the notifier's current transaction ID, like UCS's
/// `get_notifier_id`.
#[derive(Debug, Args)]
pub(super) struct NotifierIdArgs {
    /// The notifier's address.
    #[arg(long, env = "LISTENER_NOTIFIER", default_value = "127.0.0.1:6669")]
    notifier: String,
    /// Print the schema ID instead.
    #[arg(long)]
    schema: bool,
}

pub(super) fn run_notifier_id(args: NotifierIdArgs) -> ExitCode {
    match ask_notifier(&args.notifier, args.schema) {
        Ok(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000000 UTC");
        assert_eq!(
            format_time(1_795_841_804_000_003),
            "2026-11-28 04:56:44.000003 UTC"
        );
    }
}
