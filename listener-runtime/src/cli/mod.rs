//! The command line (docs/architecture.md): `main()` parses it and runs a subcommand.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::api::registry;
use crate::ops::logging::{LogConfig, LogFormat};

mod common;
mod dump;
mod failed;
mod listener;
mod modules;
mod notifier;
mod resync;
mod status;
mod table;
mod verify;
mod verify_replica;

/// Univention Directory Listener/Notifier.
#[derive(Debug, Parser)]
#[command(version, about = "Univention Directory Listener and Notifier")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Format of the log on stderr: `text` (human) or `json` (one object per line, for
    /// log collectors); `auto` is text.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "LISTENER_LOG_FORMAT",
        default_value = "auto",
        value_name = "FORMAT",
        help_heading = "Logging"
    )]
    log_format: LogFormat,
    /// What to log: comma-separated directives, e.g. `info,printer=debug`. A bare level
    /// (off, error, warn, info, debug, trace) sets the default (info if none is given);
    /// `MODULE=LEVEL` sets a listener module's level, for its own lines and the runtime's
    /// lines about it (`printer=trace` shows each call); `TARGET=LEVEL` works as in
    /// RUST_LOG (`listener_runtime::listener::fetch=debug`, `listener_module=debug` for
    /// every module's own lines). Without it RUST_LOG is read. Per-module log files
    /// (`run --log-dir`) follow the same levels.
    #[arg(
        long,
        global = true,
        env = "LISTENER_LOG",
        value_name = "DIRECTIVES",
        help_heading = "Logging"
    )]
    log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List the listener modules linked into this binary, in the order they are called:
    /// name, API, priority, workers, attributes, filter; with `--cache-dir`, also each
    /// module's state in that cache (NEW, INITIALIZING, READY or FAILED with the error).
    Modules {
        /// Print a JSON array of the modules' configurations instead of a table.
        #[arg(long)]
        json: bool,
        /// The listener cache whose module states to show (asked of the listener running
        /// on it, else read from the cache).
        #[arg(long, env = "LISTENER_CACHE_DIR")]
        cache_dir: Option<std::path::PathBuf>,
    },
    /// Follow the notifier, keep the cache and call the listener modules.
    Run(listener::RunArgs),
    /// Re-initialize modules (clean, initialize, every object again): now, in the running
    /// listener (the other modules go on undisturbed), or at its next start when it is
    /// not running.
    Resync(resync::ResyncArgs),
    /// The listener's state: last processed and notifier IDs, lag in IDs and seconds,
    /// rate, module states, failed-event counts, and why processing is halted if it is.
    #[command(after_long_help = status::HELP)]
    Status(status::StatusArgs),
    /// Print the listener cache as LDIF, each object followed by `listenerModule:` lines
    /// naming the modules registered on it (as univention-directory-listener-dump).
    Dump(dump::DumpArgs),
    /// Compare the listener cache with LDAP and check its consistency; prints each
    /// difference with its DN.
    #[command(after_long_help = verify::HELP)]
    Verify(verify::VerifyArgs),
    /// The changes modules could not take: list, show, replay or drop them.
    #[command(after_long_help = failed::HELP)]
    Failed(failed::FailedArgs),
    /// Follow slapd's accesslog, number every write as a transaction and serve them over
    /// the UCS notifier protocol.
    Notifier(notifier::NotifierArgs),
    /// Inspect, check and prune the notifier's transaction log.
    Translog(notifier::TranslogArgs),
    /// Print the notifier's current transaction ID (like UCS's `get_notifier_id`).
    NotifierId(notifier::NotifierIdArgs),
    /// A worker process of an asynchronous module, started by `run` with its channel to
    /// the listener as stdin; not for starting by hand.
    #[command(hide = true)]
    Worker {
        /// The asynchronous module it runs.
        #[arg(long)]
        module: String,
        /// Per-module log files (as `run --log-dir`).
        #[arg(long)]
        log_dir: Option<std::path::PathBuf>,
    },
}

/// Runs the command line: parses the arguments, sets up logging (`--log-format`,
/// `--log-level`; see docs/architecture.md) and runs the subcommand.
///
/// Refuses to run when two linked modules have the same name, naming both.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] with the given command line (the first item is the program name), for tests
/// and for binaries that add their own arguments.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    crate::ops::memory::no_transparent_huge_pages();
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are "errors" that print to stdout and succeed.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let modules = registry::registered_modules();
    let log = LogConfig {
        format: cli.log_format,
        directives: cli.log_level.clone(),
        module_logs: match &cli.command {
            Cmd::Run(args) => args.log_dir(),
            Cmd::Worker { log_dir, .. } => log_dir.clone(),
            _ => None,
        },
    };
    let names: Vec<&str> = modules.iter().map(|m| m.name).collect();
    if let Err(e) = crate::ops::logging::init(&log, &names) {
        eprintln!("error: --log-level (LISTENER_LOG): {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = registry::check_unique_names(&modules) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    match cli.command {
        Cmd::Modules { json, cache_dir } => {
            modules::list_modules(&modules, json, cache_dir.as_deref())
        }
        Cmd::Run(args) => listener::run_listener(args, &modules),
        Cmd::Resync(args) => resync::run_resync(args, &with_builtin(&modules)),
        Cmd::Status(args) => status::run_status(args, &modules),
        Cmd::Dump(args) => dump::run_dump(args),
        Cmd::Verify(args) => verify::run_verify(args, &modules),
        Cmd::Failed(args) => failed::run_failed(args, &with_builtin(&modules)),
        Cmd::Notifier(args) => notifier::run_notifier(args),
        Cmd::Translog(args) => notifier::run_translog(args),
        Cmd::NotifierId(args) => notifier::run_notifier_id(args),
        Cmd::Worker { module, .. } => crate::workers::run_worker(&module, &modules),
    }
}

/// The linked modules and the built-in `replication` module, for the tools that act on
/// a listener's modules (it is one of them when the listener runs with `--replicate-to`).
fn with_builtin(
    modules: &[&'static registry::ModuleRegistration],
) -> Vec<&'static registry::ModuleRegistration> {
    let mut all = modules.to_vec();
    if !all.iter().any(|m| m.name == crate::replication::NAME) {
        all.push(crate::replication::known());
        registry::sort_modules(&mut all);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
