//! `run`: the listener daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use listener_core::Dn;

use super::notifier::{Bind, fail, shutdown_signal};
use crate::listener::run::{RunConfig, run};
use crate::registry::ModuleRegistration;

/// `run`: follow the notifier and call the modules.
#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    bind: Bind,
    /// The subtree to follow (UCS: the LDAP base).
    #[arg(long, env = "LISTENER_BASE")]
    base: String,
    /// The notifier's `host:port`.
    #[arg(long, env = "LISTENER_NOTIFIER", default_value = "127.0.0.1:6669")]
    notifier: String,
    /// Where the listener keeps its cache (one listener per directory).
    #[arg(long, env = "LISTENER_CACHE_DIR")]
    cache_dir: PathBuf,
    /// Calls of a failing module before the change goes to its failed events.
    #[arg(long, default_value_t = 3)]
    attempts: u32,
    /// Seconds without a transaction after which modules get `post_run`.
    #[arg(long, default_value_t = 15)]
    idle: u64,
    /// Also write each module's log lines to `<DIR>/<module>.log` (as UCS does).
    #[arg(long, env = "LISTENER_LOG_DIR", value_name = "DIR")]
    log_dir: Option<PathBuf>,
}

impl RunArgs {
    /// Where per-module log files go, if anywhere.
    pub(super) fn log_dir(&self) -> Option<PathBuf> {
        self.log_dir.clone()
    }
}

pub(super) fn run_listener(args: RunArgs, modules: &[&'static ModuleRegistration]) -> ExitCode {
    let ldap = match args.bind.settings() {
        Ok(ldap) => ldap,
        Err(e) => return fail(&e),
    };
    let base = match Dn::parse(&args.base) {
        Ok(base) => base,
        Err(e) => return fail(&format!("--base: {e}")),
    };
    let mut config = RunConfig::new(ldap, base, args.notifier, args.cache_dir);
    config.retry.attempts = args.attempts.max(1);
    config.idle = Duration::from_secs(args.idle.max(1));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal();
        run(config, modules, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}
