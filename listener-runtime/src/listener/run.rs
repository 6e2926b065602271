//! `run`: the listener's main loop (semantics §4). Start-up locks and opens the cache,
//! loads the modules, checks that the notifier is the one whose IDs the cache holds, takes
//! the notifier's current ID as the starting point of a new cache *before* initializing
//! modules (so changes during initialization are replayed afterwards), initializes every
//! module that is not READY, then processes transactions in order: look the old state up,
//! fetch the current one, decide, dispatch, commit. After 15 s without a transaction every
//! module that ran gets `post_run`; so does every module at shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use listener_core::{Command, Dn, Schema};
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::apply::Applier;
use super::cache::{Cache, CacheError, Intents};
use super::call::{Module, RetryPolicy};
use super::control;
use super::decide::{self, FetchBy, ProcessError, Stash, Step};
use super::dispatch::{ModuleSpec, SpecError};
use super::fetch::{FetchError, Fetcher};
use super::group::Group;
use super::lifecycle::{self, InitError};
use super::stats::{Halt, Stats};
use super::window::Window;
use crate::api::registry::ModuleRegistration;
use crate::ldap::Backoff;
use crate::ldap::LdapSettings;
use crate::protocol::client::{
    ClientError, ClientOptions, NotifierClient, TransactionRef, connect_with_backoff,
};

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
    /// Transactions whose objects are fetched ahead of the one being applied (1: none).
    pub window: usize,
    /// When commits of the cache are made durable.
    pub durability: Durability,
    /// LDAP connections the fetches ahead are spread over.
    pub fetch_connections: usize,
}

/// When the listener makes its cache commits durable (fsync). Either way a transaction
/// ID is reported as processed (`status`, metrics) only once it is durable, and a crash
/// replays what was not: modules see every change at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Durability {
    /// Every transaction's commit, as UDL does: one fsync per transaction.
    Each,
    /// Group commit: durable when the listener has caught up, after 10,000 transactions
    /// or after 1 s, whichever comes first.
    #[default]
    Group,
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
            window: 64,
            durability: Durability::default(),
            fetch_connections: 4,
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
    /// `--metrics` cannot be served.
    #[error(transparent)]
    Metrics(#[from] crate::ops::metrics::MetricsError),
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
    let _control_socket = control::spawn_server(
        &config,
        registrations,
        cache.clone(),
        stats.clone(),
        control_tx,
    );
    let _metrics = super::metrics::spawn(config.metrics, &stats)?;
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
    let settings = std::sync::Arc::new(crate::api::context::Settings {
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
    let mut applier = Applier::new(
        ready.iter().filter_map(|&i| loaded[i].take()).collect(),
        ready.iter().map(|&i| specs[i].clone()).collect(),
        config.retry.clone(),
    );

    let mut recovered = BTreeMap::new();
    if config.durability == Durability::Group {
        let (intents, found) = Intents::open(&config.cache_dir)?;
        recovered.extend(
            found
                .into_iter()
                .filter(|p| p.transaction_id > last)
                .map(|p| (p.transaction_id, p)),
        );
        applier.intents = Some(intents);
    }

    // The notifier is read by its own task, batch after batch, into a queue that the
    // window below takes from: waiting for the notifier never stalls applying, and going
    // idle (post_run) never cancels a request.
    let (queue_tx, mut queue) = tokio::sync::mpsc::channel(config.batch.max(1) * 2);
    let _reader = AbortOnDropHandle::new(tokio::spawn(read_notifier(
        client,
        last + 1,
        config.clone(),
        queue_tx,
        stats.clone(),
    )));
    let mut window = Window::new(fetcher.clone(), connect_pool(&config).await?, config.window);
    let mut stash: Option<Stash> = None;
    let mut idle = false;
    let mut group = Group::new(recovered);
    loop {
        // Take in what the reader has queued, as far as the window has room.
        while window.has_room() {
            match queue.try_recv() {
                Ok(Ok(t)) => window.push(t, &cache)?,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        window.flush();
        stats
            .queued
            .store((window.len() + queue.len()) as u64, Ordering::Relaxed);
        stats
            .fetches_in_flight
            .store(window.fetches() as u64, Ordering::Relaxed);
        if window.is_empty() {
            // Caught up: what is applied becomes durable before the listener waits.
            group.flush(&cache, &mut applier, &stats, last)?;
            tokio::select! {
                received = queue.recv() => match received {
                    Some(Ok(t)) => {
                        idle = false;
                        window.push(t, &cache)?;
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(RunError::Internal("the notifier reader stopped".into())),
                },
                () = tokio::time::sleep(config.idle), if !idle => {
                    idle = true;
                    post_run_all(&mut applier).await;
                }
                // Not between the halves of a move (`r` stashed, its `a` to come): a
                // request's cache writes would be overwritten by the pair's commit.
                Some(request) = control_rx.recv(), if stash.is_none() => {
                    control::handle(request, &mut applier, &cache, &stats, &fetcher).await;
                }
                () = &mut shutdown => return stop(&mut applier, &cache, &mut group, &stats, last, "").await,
            }
            continue;
        }
        if shutdown.as_mut().now_or_never().is_some() {
            return stop(&mut applier, &cache, &mut group, &stats, last, "").await;
        }

        let mut delay = Duration::from_millis(100);
        let mut halt_delay = Duration::from_secs(1);
        let id = loop {
            match process_front(&cache, &mut group, &mut window, &mut applier, &mut stash).await {
                Ok((id, change_time)) => {
                    stats.set_halted(None);
                    if stash.is_none() {
                        stats.applied(id, change_time);
                    }
                    break id;
                }
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
                    // What the group applied before stays applied while this waits.
                    group.flush(&cache, &mut applier, &stats, last)?;
                    tokio::select! {
                        () = tokio::time::sleep(halt_delay) => {}
                        () = &mut shutdown => return stop(&mut applier, &cache, &mut group, &stats, last, " while halted").await,
                    }
                    halt_delay = (halt_delay * 2).min(Duration::from_secs(60));
                }
                // LDAP went away before anything was applied: reconnect and retry the
                // same transaction (the stash is taken only after the fetch).
                Err(RunError::Fetch(e)) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?delay, "lost LDAP; reconnecting");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    fetcher = connect_ldap(&config).await?;
                    window.set_fetchers(fetcher.clone(), connect_pool(&config).await?);
                    for module in &mut applier.modules {
                        module.connect(fetcher.clone(), settings.clone());
                    }
                }
                Err(e) => return Err(e),
            }
        };
        window.pop();
        if stash.is_none() {
            last = id;
            group.applied(&cache, &mut applier, &stats, last)?;
        }
        while stash.is_none()
            && let Ok(request) = control_rx.try_recv()
        {
            // The request writes the cache itself: the group's transaction goes first.
            group.flush(&cache, &mut applier, &stats, last)?;
            control::handle(request, &mut applier, &cache, &stats, &fetcher).await;
        }
    }
}

/// A clean stop: `post_run` where due, everything applied made durable.
async fn stop(
    applier: &mut Applier,
    cache: &Cache,
    group: &mut Group,
    stats: &Stats,
    last: u64,
    why: &str,
) -> Result<(), RunError> {
    post_run_all(applier).await;
    group.sync(cache, applier, stats, last)?;
    tracing::info!(last_id = last, "listener stopped{why}");
    Ok(())
}

/// Reads transactions from `from` on, batch after batch, into `queue`; reconnects to the
/// notifier with backoff when it goes away. Ends when the queue's receiver is dropped or
/// with a fatal error sent down the queue.
async fn read_notifier(
    mut client: NotifierClient,
    mut from: u64,
    config: RunConfig,
    queue: tokio::sync::mpsc::Sender<Result<TransactionRef, ClientError>>,
    stats: Arc<Stats>,
) {
    let backoff = Backoff::default();
    loop {
        match client.next_transactions(from, config.batch).await {
            Ok(transactions) => {
                if let Some(newest) = transactions.last() {
                    stats.saw_notifier_id(newest.id);
                    from = newest.id + 1;
                }
                for t in transactions {
                    if queue.send(Ok(t)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "lost the notifier; reconnecting");
                match connect_with_backoff(&config.notifier, &config.client, &backoff).await {
                    Ok(reconnected) => client = reconnected,
                    Err(e) => {
                        let _ = queue.send(Err(e)).await;
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = queue.send(Err(e)).await;
                return;
            }
        }
    }
}

/// The connections fetches ahead are spread over (none with a window of 1).
async fn connect_pool(config: &RunConfig) -> Result<Vec<Fetcher>, RunError> {
    let mut pool = Vec::new();
    if config.window > 1 {
        for _ in 0..config.fetch_connections {
            pool.push(connect_ldap(config).await?);
        }
    }
    Ok(pool)
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

/// The window's front transaction: look up, fetch (or take what was fetched ahead),
/// decide, apply. Returns its ID and when its change was made, if known.
async fn process_front(
    cache: &Cache,
    group: &mut Group,
    window: &mut Window,
    applier: &mut Applier,
    stash: &mut Option<Stash>,
) -> Result<(u64, Option<std::time::SystemTime>), RunError> {
    let txn = match window.front() {
        Some(Ok(txn)) => txn.clone(),
        Some(Err(bad)) => {
            return Err(RunError::BadDn {
                id: bad.id,
                message: bad.message.clone(),
            });
        }
        None => return Err(RunError::Internal("no transaction to process".into())),
    };
    let cached = match group.open.as_ref() {
        Some(w) => w.entry(&txn.dn)?,
        None => cache.read()?.entry(&txn.dn)?,
    };
    let fetched = match decide::fetch_by(&txn, cached.as_ref(), stash.as_ref()) {
        None => None,
        Some(by) => {
            // The cached state of the object the fetch is about (for a move: at its old DN).
            let known = match (&by, stash.as_ref()) {
                (FetchBy::Uuid(_), Some(s)) if txn.command == Command::Add => s.cached.as_ref(),
                _ => cached.as_ref(),
            };
            window.fetch_front(&by, known).await?
        }
    };
    // Kept to try the transaction again if a blocking module halts processing.
    let saved_stash = stash.clone();
    let mut step = decide::decide(&txn, stash.take(), cached, fetched)?;
    if step == Step::Nothing {
        let pending = match group.recovered.get(&txn.id) {
            Some(pending) => Some(pending.clone()),
            None => cache.read()?.pending_create()?,
        };
        step = decide::replay_pending_create(step, txn.id, pending);
    }
    if let Step::Stash(s) = step {
        *stash = Some(s);
        return Ok((txn.id, None));
    }
    let change_time = step_entry(&step).and_then(super::stats::change_time);
    let span =
        tracing::debug_span!("transaction", id = txn.id, dn = %txn.dn, command = %txn.command);
    let applied = if applier.groups() {
        let w = match &mut group.open {
            Some(w) => w,
            None => group.open.insert(cache.write()?),
        };
        applier
            .apply_in(w, txn.id, txn.command, step)
            .instrument(span)
            .await?
    } else {
        applier
            .apply(cache, txn.id, txn.command, step)
            .instrument(span)
            .await?
    };
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
    Ok((txn.id, change_time))
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
