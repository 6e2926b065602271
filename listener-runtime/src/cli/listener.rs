//! `run`: the listener daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use listener_core::Dn;

use super::common::{Bind, ReplicaBind, fail, shutdown_signal};
use crate::api::registry::ModuleRegistration;
use crate::listener::run::{Durability, RunConfig, run};
use crate::replication::ReplicationConfig;

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
    /// Transactions whose objects are fetched from LDAP ahead of the one being applied
    /// (1: fetch each object only when its transaction is applied, as UDL does).
    /// Modules see the same calls either way.
    #[arg(
        long,
        env = "LISTENER_FETCH_WINDOW",
        default_value_t = 64,
        value_name = "N"
    )]
    fetch_window: usize,
    /// LDAP connections the fetches ahead are spread over (each runs up to 4 searches at
    /// once: slapd stalls a connection with many more outstanding).
    #[arg(
        long,
        env = "LISTENER_FETCH_CONNECTIONS",
        default_value_t = 4,
        value_name = "N"
    )]
    fetch_connections: usize,
    /// When cache commits are made durable (fsync): `each` transaction, or in groups
    /// (when caught up, or every 10,000 transactions / 1 s). A transaction is reported
    /// as processed only once durable; after a crash the rest is processed again.
    #[arg(long, env = "LISTENER_DURABILITY", value_enum, default_value_t = Durability::Group)]
    durability: Durability,
    /// Also write each module's log lines to `<DIR>/<module>.log` (as UCS does).
    #[arg(long, env = "LISTENER_LOG_DIR", value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on `http://ADDR/metrics` (e.g. `127.0.0.1:9469`): IDs,
    /// lag, processed transactions, per-module calls, errors and call latency.
    #[arg(long, env = "LISTENER_METRICS", value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Keep the shared variables and locks of modules on this memcached (`HOST:PORT`;
    /// run it with `-M`). Without it they are kept in the cache directory.
    #[arg(long, env = "LISTENER_MEMCACHED", value_name = "HOST:PORT")]
    memcached: Option<String>,
    /// Most calls an asynchronous module's queue holds; when one is full, the listener
    /// pauses taking in transactions until the module's workers make room.
    #[arg(
        long,
        env = "LISTENER_QUEUE_LIMIT",
        value_name = "CALLS",
        default_value_t = 10_000
    )]
    queue_limit: usize,
    #[command(flatten)]
    replication: ReplicationArgs,
}

/// Domain replication: the built-in `replication` module.
#[derive(Debug, Args)]
struct ReplicationArgs {
    /// Replicate the directory (or the part `--replication-filter` selects) into the slapd
    /// at this URI, as the module `replication`: first of all modules, blocking.
    #[arg(long, env = "LISTENER_REPLICATE_TO", value_name = "URI")]
    replicate_to: Option<String>,
    #[command(flatten)]
    bind: ReplicaBind,
    /// Replicate only the objects this LDAP filter matches, and their parents (UCS:
    /// `ldap/slave/filter`).
    #[arg(long, env = "LISTENER_REPLICATION_FILTER", value_name = "FILTER")]
    replication_filter: Option<String>,
    /// The replica's `cn=config` (e.g. `ldapi://%2Frun%2Fslapd%2Fldapi`, bound with SASL
    /// EXTERNAL): where attribute types and object classes new on the primary are
    /// added, before the first entry that needs them.
    #[arg(long, env = "LISTENER_REPLICA_CONFIG_URI", value_name = "URI")]
    replica_config_uri: Option<String>,
}

impl ReplicationArgs {
    /// The module's configuration; `None` without `--replicate-to`.
    fn config(&self, base: &Dn, starttls: bool) -> Result<Option<ReplicationConfig>, String> {
        let Some(uri) = &self.replicate_to else {
            if self.replication_filter.is_some() {
                return Err("--replication-filter needs --replicate-to".into());
            }
            return Ok(None);
        };
        if let Some(filter) = &self.replication_filter {
            listener_core::Filter::parse(filter)
                .map_err(|e| format!("--replication-filter: {e}"))?;
        }
        let replica = self.bind.settings(uri, base, starttls)?;
        Ok(Some(ReplicationConfig {
            replica,
            base: base.clone(),
            filter: self.replication_filter.clone(),
            config_uri: self.replica_config_uri.clone(),
            primary: None,
        }))
    }
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
    config.window = args.fetch_window.max(1);
    config.durability = args.durability;
    config.fetch_connections = args.fetch_connections.max(1);
    config.metrics = args.metrics;
    config.memcached = args.memcached;
    config.queue_limit = args.queue_limit.max(1);
    config.replication = match args.replication.config(&config.base, config.ldap.starttls) {
        Ok(replication) => replication,
        Err(e) => return fail(&e),
    };
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
