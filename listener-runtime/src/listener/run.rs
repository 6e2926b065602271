//! `run`: the listener's main loop (semantics §4). Start-up locks and opens the cache,
//! loads the modules, checks that the notifier is the one whose IDs the cache holds, takes
//! the notifier's current ID as the starting point of a new cache *before* initializing
//! modules (so changes during initialization are replayed afterwards), initializes every
//! module that is not READY, then processes transactions in order: look the old state up,
//! fetch the current one, decide, dispatch, commit. After 15 s without a transaction every
//! module that ran gets `post_run`; so does every module at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use listener_core::{Dn, Schema};
use tracing::Instrument;

use super::apply::Applier;
use super::cache::{Cache, CacheError};
use super::control;
use super::dispatch::{ModuleSpec, SpecError};
use super::fetch::{FetchError, Fetcher};
use super::invoke::{Module, RetryPolicy};
use super::lifecycle::{self, InitError};
use super::notifier_client::{
    Backoff, ClientError, ClientOptions, TransactionRef, connect_with_backoff,
};
use super::process::{self, FetchBy, ProcessError, Stash, Step, Transaction};
use super::stats::{Halt, Stats};
use crate::notifier::LdapSettings;
use crate::registry::ModuleRegistration;

/// Everything `run` runs with.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// How to reach LDAP (to fetch objects and initialize modules).
    pub ldap: LdapSettings,
    /// The subtree the listener follows.
    pub base: Dn,
    /// The notifier's `host:port`.
    pub notifier: String,
    /// Where the cache lives.
    pub cache_dir: PathBuf,
    /// Protocol options.
    pub client: ClientOptions,
    /// Retries of a failing module call.
    pub retry: RetryPolicy,
    /// Idle time after which modules get `post_run`.
    pub idle: Duration,
    /// Most transactions asked for at once.
    pub batch: usize,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
}

impl RunConfig {
    /// The defaults around the required settings.
    pub fn new(ldap: LdapSettings, base: Dn, notifier: String, cache_dir: PathBuf) -> RunConfig {
        RunConfig {
            ldap,
            base,
            notifier,
            cache_dir,
            client: ClientOptions::default(),
            retry: RetryPolicy::default(),
            idle: Duration::from_secs(15),
            batch: 100,
            metrics: None,
        }
    }
}

/// Why the listener stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `run` with no modules linked in.
    #[error(
        "no listener modules are registered in this binary, so there is nothing to run; \
         add `use my_modules as _;` (your module crate) to the binary's main.rs"
    )]
    NoModules,
    /// A module's configuration does not compile.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The cache failed (or belongs to another listener or notifier).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The notifier connection failed for good.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// LDAP failed for good.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The notifier sent an impossible sequence.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A DN from the notifier does not parse.
    #[error("transaction {id}: the notifier sent a DN that is not a DN: {message}")]
    BadDn {
        /// The transaction.
        id: u64,
        /// Why.
        message: String,
    },
    /// A `blocking` module failed every attempt: processing waits and tries again.
    #[error(
        "processing is halted at transaction {id}: the blocking module {module} failed: {error}"
    )]
    Halted {
        /// The transaction.
        id: u64,
        /// The module.
        module: String,
        /// Its error.
        error: String,
    },
    /// A bug in the listener itself.
    #[error("internal error: {0}")]
    Internal(String),
    /// The notifier's IDs are behind the cache's.
    #[error(
        "the notifier at {notifier} is at transaction {notifier_id}, behind this cache's \
         {cache_id}: it is not the notifier this listener followed, or its log was reset. \
         Point the listener at the right notifier, or remove the cache directory to start \
         over (every module is then re-initialized)"
    )]
    NotifierBehind {
        /// The notifier's address.
        notifier: String,
        /// Its current ID.
        notifier_id: u64,
        /// The cache's last ID.
        cache_id: u64,
    },
}

/// Runs the listener with `registrations` until `shutdown` completes (then finishes the
/// current transaction, calls `post_run` where due and returns `Ok`).
pub async fn run(
    config: RunConfig,
    registrations: &[&'static ModuleRegistration],
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    if registrations.is_empty() {
        return Err(RunError::NoModules);
    }
    let cache = Arc::new(Cache::open(&config.cache_dir)?);
    let stats = Arc::new(Stats::new(registrations.iter().map(|r| r.name)));
    let mut specs = Vec::new();
    let mut modules = Vec::new();
    for registration in registrations {
        specs.push(ModuleSpec::from_registration(
            registration,
            Schema::builtin(),
        )?);
        let mut module = Module::load(registration);
        if let Some(counters) = stats.module(registration.name) {
            module.set_stats(counters.clone());
        }
        modules.push(module);
    }
    // Requests of the administrator's tools (control socket) that change the cache or the
    // modules are carried out by this loop, between transactions.
    let (control_tx, mut control_rx) = tokio::sync::mpsc::channel::<control::Request>(16);
    control::spawn_server(&config, cache.clone(), stats.clone(), control_tx);
    // The first poll installs the signal handlers: from here on SIGTERM stops the listener
    // cleanly, also during start-up and initialization (before, a SIGTERM there killed it
    // with the default action). Each start-up wait below gives way to it.
    tokio::pin!(shutdown);
    if shutdown.as_mut().now_or_never().is_some() {
        return Ok(());
    }
    let backoff = Backoff::default();
    let mut client = tokio::select! {
        biased;
        () = &mut shutdown => return stopped_during_start(),
        client = connect_with_backoff(&config.notifier, &config.client, &backoff) => client?,
    };
    let identity = client.identity().map_or_else(
        || format!("notifier {}", config.notifier),
        |id| format!("log {id}"),
    );
    let mut fetcher = tokio::select! {
        biased;
        () = &mut shutdown => return stopped_during_start(),
        fetcher = connect_ldap(&config) => fetcher?,
    };
    let settings = std::sync::Arc::new(crate::context::Settings {
        base: config.base.clone(),
        ldap_uri: config.ldap.uri.clone(),
        bind_dn: config.ldap.bind_dn.clone(),
        notifier: config.notifier.clone(),
        cache_dir: config.cache_dir.clone(),
    });
    for module in &mut modules {
        module.connect(fetcher.clone(), settings.clone());
    }

    // The master record: whose IDs, and where we are.
    let (stored_identity, mut last) = {
        let r = cache.read()?;
        r.check_notifier_identity(&identity)?;
        (r.notifier_identity()?, r.last_id()?)
    };
    let current = tokio::select! {
        biased;
        () = &mut shutdown => return stopped_during_start(),
        current = client.current_id() => current?,
    };
    if stored_identity.is_none() {
        // A new cache starts at the notifier's current ID, taken before the modules are
        // initialized: what changes meanwhile is processed afterwards (at least once).
        let mut w = cache.write()?;
        w.set_notifier_identity(&identity)?;
        w.set_last_id(current)?;
        w.commit()?;
        last = current;
        tracing::info!(notifier = %config.notifier, id = current, "new cache starts at the notifier's current ID");
    } else if current < last {
        return Err(RunError::NotifierBehind {
            notifier: config.notifier.clone(),
            notifier_id: current,
            cache_id: last,
        });
    }
    stats.saw_notifier_id(current);
    stats.set_durable(last);
    stats.applied_id.store(last, Ordering::Relaxed);

    // Initialize what is not READY; a module whose initialization fails gets no events.
    let mut ready = Vec::new();
    for index in 0..modules.len() {
        let registration = modules[index].registration();
        let state = cache.read()?.module_state(registration.name)?;
        let Some(reason) = lifecycle::needs_initialization(registration, state.as_ref()) else {
            ready.push(index);
            continue;
        };
        tracing::info!(module = registration.name, ?reason, "initializing module");
        let name = registration.name;
        let mut progress = Progress::new(name);
        let mut reason = reason;
        let mut delay = Duration::from_millis(100);
        // A shutdown is honoured after the batch being delivered is committed.
        let result = loop {
            let objects = fetcher.initialization_stream(registration.ldap_filter);
            let result = lifecycle::initialize(
                &mut modules[index],
                &reason,
                objects,
                &cache,
                &config.retry,
                |done| {
                    progress.update(done);
                    match shutdown.as_mut().now_or_never() {
                        Some(()) => ControlFlow::Break(()),
                        None => ControlFlow::Continue(()),
                    }
                },
            )
            .await;
            match result {
                // LDAP went away: reconnect and resume from what was committed.
                Err(InitError::Fetch(e)) if e.is_transient() => {
                    tracing::warn!(module = name, error = %e, retry_in = ?delay, "lost LDAP while initializing; reconnecting");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => {
                            post_run_modules(&mut modules).await;
                            return stopped_during_start();
                        }
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(30));
                    fetcher = connect_ldap(&config).await?;
                    // Every module uses the current connection.
                    for module in &mut modules {
                        module.connect(fetcher.clone(), settings.clone());
                    }
                    let state = cache.read()?.module_state(name)?;
                    reason = lifecycle::needs_initialization(registration, state.as_ref())
                        .unwrap_or(lifecycle::Reason::Resume(None));
                }
                result => break result,
            }
        };
        progress.finish();
        match result {
            Ok(done) => {
                tracing::info!(
                    module = name,
                    delivered = done.delivered,
                    failed = done.failed,
                    "module initialized"
                );
                ready.push(index);
            }
            Err(InitError::Module {
                module,
                step,
                error,
            }) => {
                tracing::error!(%module, step, %error, "module initialization failed; it gets no events until it is initialized again");
            }
            Err(e @ InitError::Stopped { .. }) => {
                tracing::info!("{e}");
                // What ran since start (pre_run) gets its post_run.
                post_run_modules(&mut modules).await;
                tracing::info!(last_id = last, "listener stopped");
                return Ok(());
            }
            Err(InitError::Cache(e)) => return Err(e.into()),
            Err(InitError::Fetch(e)) => return Err(e.into()),
        }
    }
    let mut loaded = modules.into_iter().map(Some).collect::<Vec<_>>();
    let mut applier = Applier {
        modules: ready.iter().filter_map(|&i| loaded[i].take()).collect(),
        specs: ready.iter().map(|&i| specs[i].clone()).collect(),
        policy: config.retry.clone(),
    };

    let mut stash: Option<Stash> = None;
    let mut idle = false;
    loop {
        // The request runs as its own task, so going idle (post_run) does not cancel it.
        let from = process::next_id(last, stash.as_ref());
        let batch = config.batch;
        let mut request = tokio::spawn(async move {
            let result = client.next_transactions(from, batch).await;
            (client, result)
        });
        let (returned, result) = loop {
            tokio::select! {
                joined = &mut request => match joined {
                    Ok(pair) => break pair,
                    Err(e) => return Err(RunError::Internal(format!("the notifier request failed: {e}"))),
                },
                () = tokio::time::sleep(config.idle), if !idle => {
                    idle = true;
                    post_run_all(&mut applier).await;
                }
                Some(request) = control_rx.recv() => {
                    control::handle(request, &mut applier, &cache, &stats).await;
                }
                () = &mut shutdown => {
                    request.abort();
                    post_run_all(&mut applier).await;
                    tracing::info!(last_id = last, "listener stopped");
                    return Ok(());
                }
            }
        };
        client = returned;
        let transactions = match result {
            Ok(transactions) => transactions,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "lost the notifier; reconnecting");
                client = connect_with_backoff(&config.notifier, &config.client, &backoff).await?;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        idle = false;
        if let Some(newest) = transactions.last() {
            stats.saw_notifier_id(newest.id);
        }
        for t in transactions {
            let id = t.id;
            let mut delay = Duration::from_millis(100);
            let mut halt_delay = Duration::from_secs(1);
            loop {
                match process_one(&cache, &fetcher, &mut applier, &mut stash, t.clone()).await {
                    Ok(change_time) => {
                        stats.set_halted(None);
                        if stash.is_none() {
                            stats.applied(id, change_time);
                            stats.set_durable(id);
                        }
                        break;
                    }
                    // LDAP went away before anything was applied: reconnect and retry the
                    // same transaction (the stash is taken only after the fetch).
                    // Nothing was committed: wait (a SIGTERM still stops the listener) and
                    // apply the same transaction again, until the module takes it.
                    Err(e @ RunError::Halted { .. }) => {
                        if let RunError::Halted { id, module, error } = &e {
                            // `since` stays that of the first failure of this halt.
                            let since = stats
                                .halted()
                                .filter(|h| h.id == *id && h.module == *module)
                                .map_or_else(std::time::SystemTime::now, |h| h.since);
                            stats.set_halted(Some(Halt {
                                id: *id,
                                module: module.clone(),
                                error: error.clone(),
                                since,
                            }));
                        }
                        tracing::error!(error = %e, retry_in = ?halt_delay, "processing halted by a blocking module; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(halt_delay) => {}
                            () = &mut shutdown => {
                                post_run_all(&mut applier).await;
                                tracing::info!(last_id = last, "listener stopped while halted");
                                return Ok(());
                            }
                        }
                        halt_delay = (halt_delay * 2).min(Duration::from_secs(60));
                    }
                    Err(RunError::Fetch(e)) if e.is_transient() => {
                        tracing::warn!(id, error = %e, retry_in = ?delay, "lost LDAP; reconnecting");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                        fetcher = connect_ldap(&config).await?;
                        for module in &mut applier.modules {
                            module.connect(fetcher.clone(), settings.clone());
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            if stash.is_none() {
                last = id;
            }
            while let Ok(request) = control_rx.try_recv() {
                control::handle(request, &mut applier, &cache, &stats).await;
            }
        }
    }
}

/// Connects to LDAP, retrying with backoff while it is unreachable (a wrong password is
/// retried too: the connect error does not tell them apart; the log says which).
async fn connect_ldap(config: &RunConfig) -> Result<Fetcher, RunError> {
    let mut delay = Duration::from_millis(100);
    loop {
        match Fetcher::connect(&config.ldap, config.base.clone()).await {
            Ok(fetcher) => return Ok(fetcher),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reach LDAP; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A module initialization's progress: a counter on a terminal, a log line every
/// [`Progress::LOG_EVERY`] objects otherwise (journals and files get no bar noise). The
/// total is not known: the objects are delivered while the search runs.
struct Progress {
    name: &'static str,
    bar: Option<indicatif::ProgressBar>,
    logged: u64,
}

impl Progress {
    const LOG_EVERY: u64 = 10_000;

    fn new(name: &'static str) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} {msg}: {pos} objects, {per_sec}")
            {
                bar.set_style(style);
            }
            bar.set_message(format!("initializing {name}"));
            bar
        });
        Progress {
            name,
            bar,
            logged: 0,
        }
    }

    fn update(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if done / Self::LOG_EVERY > self.logged / Self::LOG_EVERY {
            self.logged = done;
            tracing::info!(module = self.name, done, "initializing");
        }
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

fn stopped_during_start() -> Result<(), RunError> {
    tracing::info!("listener stopped during start-up");
    Ok(())
}

async fn post_run_all(applier: &mut Applier) {
    post_run_modules(&mut applier.modules).await;
}

/// `post_run` for every module that ran (`pre_run`) since start or its last `post_run`.
async fn post_run_modules(modules: &mut [Module]) {
    for module in modules {
        if let Err(e) = module.post_run().await {
            tracing::warn!(module = module.name(), error = %format!("{e:#}"), "post_run failed");
        }
    }
}

/// One transaction: look up, fetch, decide, apply.
async fn process_one(
    cache: &Cache,
    fetcher: &Fetcher,
    applier: &mut Applier,
    stash: &mut Option<Stash>,
    t: TransactionRef,
) -> Result<Option<std::time::SystemTime>, RunError> {
    let dn = Dn::parse(&t.dn).map_err(|e| RunError::BadDn {
        id: t.id,
        message: e.to_string(),
    })?;
    let txn = Transaction {
        id: t.id,
        dn,
        command: t.command,
    };
    let cached = cache.read()?.entry(&txn.dn)?;
    let fetched = match process::fetch_by(&txn, cached.as_ref(), stash.as_ref()) {
        None => None,
        Some(FetchBy::Uuid(uuid)) => fetcher.fetch_by_uuid(&uuid).await?,
        Some(FetchBy::Dn(dn)) => fetcher.fetch_by_dn(&dn).await?,
    };
    // Kept to try the transaction again if a blocking module halts processing.
    let saved_stash = stash.clone();
    let mut step = process::decide(&txn, stash.take(), cached, fetched)?;
    if step == Step::Nothing {
        step = process::replay_pending_create(step, txn.id, cache.read()?.pending_create()?);
    }
    if let Step::Stash(s) = step {
        *stash = Some(s);
        return Ok(None);
    }
    let change_time = step_entry(&step).and_then(super::stats::change_time);
    let span =
        tracing::debug_span!("transaction", id = txn.id, dn = %txn.dn, command = %txn.command);
    let applied = applier
        .apply(cache, txn.id, txn.command, step)
        .instrument(span)
        .await?;
    if let Some((module, error)) = applied.halted {
        *stash = saved_stash;
        return Err(RunError::Halted {
            id: txn.id,
            module,
            error,
        });
    }
    tracing::debug!(
        id = txn.id,
        calls = applied.calls,
        failures = applied.failures,
        "transaction processed"
    );
    Ok(change_time)
}

/// The object's state a step leaves (or its last one, for a delete).
fn step_entry(step: &Step) -> Option<&listener_core::Entry> {
    match step {
        Step::Update { new, .. } => Some(new),
        Step::Delete { old, .. } => old.as_ref().map(|c| &c.entry),
        Step::Move { patched, fresh, .. } => Some(fresh.as_ref().unwrap_or(patched)),
        Step::Stash(_) | Step::Nothing => None,
    }
}
