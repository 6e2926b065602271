//! `run`: the listener's main loop (semantics §4), as a value: [`Listener::start`] locks
//! and opens the cache, loads the modules and takes the starting point;
//! [`Listener::initialize_modules`] initializes every module that is not READY;
//! [`Listener::step`] processes the transactions in order (look the old state up, fetch
//! the current one, decide, dispatch, commit), one step at a time; [`Listener::stop`]
//! gives `post_run` where due and makes everything applied durable. After 15 s without a
//! transaction every module that ran gets `post_run` too.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use listener_core::{Command, Dn, Schema};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use super::apply::{Applier, Halted};
use super::cache::{Cache, CacheError};
use super::call::{Module, RetryPolicy};
use super::control::{self, ControlSocket};
use super::decide::{self, FetchBy, ProcessError, Stash, Step};
use super::dispatch::{ModuleSpec, SpecError};
use super::fetch::{FetchError, Fetcher};
pub(crate) use super::group::Durability;
use super::group::{Durable, Group};
use super::lifecycle::{self, InitError};
use super::progress::Progress;
use super::stats::{Halt, Stage, Stats};
use super::window::Window;
use crate::api::context::Settings;
use crate::api::registry::{ApiKind, ModuleRegistration};
use crate::ldap::{Backoff, LdapSettings, Retry};
use crate::ops::metrics::MetricsServer;
use crate::protocol::client::{
    ClientError, ClientOptions, NotifierClient, TransactionRef, connect_with_backoff,
};
use crate::replication::{Mark, Pipeline};
use crate::workers::lanes::Row;
use crate::workers::wire::Hello;
use crate::workers::{Pool, PoolConfig, Results};

/// Everything `run` runs with.
#[derive(Debug, Clone)]
pub(crate) struct RunConfig {
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
    /// The memcached holding shared variables and locks (`host:port`); `None`: the
    /// embedded store in the cache directory.
    pub memcached: Option<String>,
    /// Most calls an asynchronous module's queue holds before the listener pauses.
    pub queue_limit: usize,
    /// `--replicate-to`: the built-in `replication` module runs first of all modules.
    pub replication: Option<crate::replication::ReplicationConfig>,
}

impl RunConfig {
    /// The defaults around the required settings.
    pub(crate) fn new(
        ldap: LdapSettings,
        base: Dn,
        notifier: String,
        cache_dir: PathBuf,
    ) -> RunConfig {
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
            memcached: None,
            queue_limit: 10_000,
            replication: None,
        }
    }
}

/// Why the listener stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
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
    /// The embedded store of shared state cannot be opened.
    #[error(transparent)]
    Shared(#[from] crate::shared::SharedError),
    /// `--metrics` cannot be served.
    #[error(transparent)]
    Metrics(#[from] crate::ops::metrics::MetricsError),
    /// The replication mark (`<cache-dir>/replication.mark`) cannot be removed.
    #[error(transparent)]
    ReplicationMark(#[from] crate::replication::MarkError),
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
pub(crate) async fn run(
    config: RunConfig,
    registrations: &[&'static ModuleRegistration],
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let mut shutdown = Shutdown::new(shutdown);
    let mut registrations = registrations.to_vec();
    if let Some(mut replication) = config.replication.clone() {
        replication.primary = Some(config.ldap.clone());
        registrations.push(crate::replication::registration(replication));
        crate::api::registry::sort_modules(&mut registrations);
        crate::api::registry::check_unique_names(&registrations)
            .map_err(|e| RunError::Internal(e.to_string()))?;
    }
    let Some(mut listener) = Listener::start(config, &registrations, &mut shutdown).await? else {
        tracing::info!("listener stopped during start-up");
        return Ok(());
    };
    let mut flow = listener.initialize_modules(&mut shutdown).await?;
    listener.hand_over_replica_writes(true);
    while flow == Flow::Continue {
        flow = listener.step(&mut shutdown).await?;
    }
    listener.stop(flow).await
}

/// What the main loop does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Go on with the next step.
    Continue,
    /// Stop cleanly; the text says where the stop came (for the log).
    Stop(&'static str),
}

/// The outcome of one attempt at the window's front transaction.
enum Processed {
    /// Applied (and committed, or part of the open group).
    Applied {
        id: u64,
        /// When its change was made, if known.
        change_time: Option<SystemTime>,
    },
    /// An `r` kept until its `a` arrives; nothing is committed yet.
    Stashed,
    /// A blocking module failed every attempt: nothing was committed, and the same
    /// transaction is tried again after a wait.
    Halted { id: u64, halted: Halted },
    /// A write the `replication` module handed over failed: nothing was committed, and
    /// the listener goes back to its last durable transaction.
    Rewind,
}

/// The shutdown signal. Its first poll installs the signal handlers: from then on
/// SIGTERM stops the listener cleanly, during start-up and initialization too.
struct Shutdown<F> {
    signal: Pin<Box<F>>,
    requested: bool,
}

impl<F: Future<Output = ()>> Shutdown<F> {
    fn new(signal: F) -> Shutdown<F> {
        Shutdown {
            signal: Box::pin(signal),
            requested: false,
        }
    }

    /// Whether a shutdown has been asked for, without waiting.
    fn requested(&mut self) -> bool {
        if !self.requested && self.signal.as_mut().now_or_never().is_some() {
            self.requested = true;
        }
        self.requested
    }

    /// Completes when a shutdown is asked for (at once if it was).
    async fn wait(&mut self) {
        if !self.requested {
            self.signal.as_mut().await;
            self.requested = true;
        }
    }
}

/// The running listener: its cache, modules and connections, and where processing
/// stands. [`run`] drives it: [`Listener::start`], [`Listener::initialize_modules`],
/// then [`Listener::step`] until it says stop, then [`Listener::stop`].
struct Listener {
    config: RunConfig,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    settings: Arc<Settings>,
    /// The connection that module contexts and single fetches use.
    fetcher: Fetcher,
    applier: Applier,
    group: Group,
    /// What the pools of asynchronous modules finished, for the group to write.
    results: Arc<Results>,
    /// The writes the `replication` module hands over (with group commit).
    replica_writes: Option<Arc<Pipeline>>,
    /// Transactions taken in, their objects fetched ahead.
    window: Window,
    /// What the notifier reader has read, in order.
    queue: mpsc::Receiver<Result<TransactionRef, ClientError>>,
    /// Requests of the administrator's tools that change the cache or the modules: carried
    /// out by this loop, between transactions.
    control: mpsc::Receiver<control::Request>,
    /// The first half of a move, waiting for its `a`.
    stash: Option<Stash>,
    /// Whether modules got `post_run` since the last transaction.
    idle: bool,
    /// The last transaction applied.
    last: u64,
    /// Reconnecting to LDAP after it went away.
    ldap_retry: Retry,
    /// Trying a transaction again that a blocking module halted.
    halt_retry: Retry,
    _reader: AbortOnDropHandle<()>,
    _control_socket: Option<ControlSocket>,
    _metrics: Option<MetricsServer>,
}

impl Listener {
    /// Locks and opens the cache, loads the modules, connects to the notifier and LDAP,
    /// and checks that the notifier is the one whose IDs the cache holds. A new cache
    /// starts at the notifier's current ID, taken *before* modules are initialized, so
    /// what changes meanwhile is processed afterwards. `None`: stopped during start-up.
    async fn start<F: Future<Output = ()>>(
        config: RunConfig,
        registrations: &[&'static ModuleRegistration],
        shutdown: &mut Shutdown<F>,
    ) -> Result<Option<Listener>, RunError> {
        if registrations.is_empty() {
            return Err(RunError::NoModules);
        }
        let cache = Arc::new(Cache::open(&config.cache_dir)?);
        let results = Arc::new(Results::default());
        let stats = Arc::new(Stats::new(registrations.iter().map(|r| r.name)));
        // Shared state is for asynchronous methods: without such a module, no store.
        let shared = registrations
            .iter()
            .any(|r| r.kind == ApiKind::Async)
            .then(|| crate::shared::open(config.memcached.as_deref(), &config.cache_dir))
            .transpose()?;
        if let Some((_, health)) = &shared {
            stats.set_shared(health.clone());
        }
        // Replica writes run several at a time only where a group's commit can wait for
        // them; with a durable commit per transaction each is written inline.
        let replica_writes = match (&config.replication, config.durability) {
            (Some(_), Durability::Group) => {
                Some(Pipeline::new(&config.cache_dir, cache.read()?.last_id()?))
            }
            (Some(_), _) => {
                Mark::forget(&config.cache_dir)?;
                None
            }
            (None, _) => None,
        };
        let mut specs = Vec::new();
        let mut modules = Vec::new();
        for registration in registrations {
            specs.push(ModuleSpec::from_registration(
                registration,
                Schema::builtin(),
            )?);
            let counters = stats.module(registration.name).cloned();
            let mut module = match &shared {
                // Asynchronous: its calls run in worker processes.
                Some((store, _)) if registration.kind == ApiKind::Async => {
                    let pool = Pool::start(
                        &cache,
                        results.clone(),
                        store.clone(),
                        pool_config(&config, registration),
                        counters.clone(),
                    )?;
                    Module::in_workers(registration, pool)
                }
                _ => match &replica_writes {
                    Some(writes) if registration.name == crate::replication::NAME => {
                        Module::with_instance(
                            registration,
                            crate::replication::instance(writes.clone()),
                        )
                    }
                    _ => Module::load(registration),
                },
            };
            if let Some(counters) = counters {
                module.set_stats(counters);
            }
            modules.push(module);
        }
        let (control_tx, control) = mpsc::channel::<control::Request>(16);
        let control_socket = control::spawn_server(
            &config,
            registrations,
            cache.clone(),
            stats.clone(),
            control_tx,
        );
        let metrics = super::metrics::spawn(config.metrics, &stats)?;
        if shutdown.requested() {
            return Ok(None);
        }
        let backoff = Backoff::default();
        let client = tokio::select! {
            biased;
            () = shutdown.wait() => return Ok(None),
            client = connect_with_backoff(&config.notifier, &config.client, &backoff) => client?,
        };
        let fetcher = tokio::select! {
            biased;
            () = shutdown.wait() => return Ok(None),
            fetcher = connect_ldap(&config) => fetcher?,
        };
        let Some((client, last)) = take_position(&config, &cache, &stats, client, shutdown).await?
        else {
            return Ok(None);
        };
        stats.set_durable(last);
        stats.applied_id.store(last, Ordering::Relaxed);

        let settings = Arc::new(Settings {
            base: config.base.clone(),
            ldap_uri: config.ldap.uri.clone(),
            bind_dn: config.ldap.bind_dn.clone(),
            notifier: config.notifier.clone(),
            cache_dir: config.cache_dir.clone(),
        });
        for module in &mut modules {
            module.connect(fetcher.clone(), settings.clone());
        }
        let group = Group::open(config.durability, &config.cache_dir, last, results.clone())?;
        let (reader, queue) = spawn_reader(client, last + 1, &config, &stats);
        let window = Window::new(fetcher.clone(), connect_pool(&config).await?, config.window);
        let mut applier = Applier::new(modules, specs, config.retry.clone());
        applier.replica_writes = replica_writes.clone();
        Ok(Some(Listener {
            applier,
            replica_writes,
            config,
            cache,
            stats,
            settings,
            fetcher,
            group,
            results,
            window,
            queue,
            control,
            stash: None,
            idle: false,
            last,
            ldap_retry: Backoff::default().start(),
            halt_retry: Backoff::halted().start(),
            _reader: reader,
            _control_socket: control_socket,
            _metrics: metrics,
        }))
    }

    /// Initializes every module that is not READY; a module whose initialization fails
    /// gets no events until it is initialized again. A shutdown is honoured after the
    /// batch being delivered is committed.
    async fn initialize_modules<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Shutdown<F>,
    ) -> Result<Flow, RunError> {
        let mut ready = vec![false; self.applier.modules.len()];
        for (index, ready) in ready.iter_mut().enumerate() {
            let registration = self.applier.modules[index].registration();
            let state = self.cache.read()?.module_state(registration.name)?;
            *ready = match lifecycle::needs_initialization(registration, state.as_ref()) {
                None => true,
                Some(reason) => match self.initialize_module(index, reason, shutdown).await? {
                    Some(ready) => ready,
                    None => return Ok(Flow::Stop("")),
                },
            };
        }
        self.applier.retain(&ready);
        Ok(Flow::Continue)
    }

    /// Initializes module `index`, reconnecting to LDAP when it goes away meanwhile.
    /// Whether the module is ready, or `None` when a shutdown stopped the initialization.
    async fn initialize_module<F: Future<Output = ()>>(
        &mut self,
        index: usize,
        mut reason: lifecycle::Reason,
        shutdown: &mut Shutdown<F>,
    ) -> Result<Option<bool>, RunError> {
        let registration = self.applier.modules[index].registration();
        let name = registration.name;
        if let Some(pool) = self.applier.modules[index].pool() {
            tokio::select! {
                biased;
                () = shutdown.wait() => return Ok(None),
                _ = control::actions::drain(pool, name) => {}
            }
        }
        tracing::info!(module = name, ?reason, "initializing module");
        let mut progress = Progress::new(name);
        let mut retry = Backoff::default().start();
        let result = loop {
            let objects = self.fetcher.initialization_stream(registration.ldap_filter);
            let result = lifecycle::initialize(
                &mut self.applier.modules[index],
                &reason,
                objects,
                &self.cache,
                &self.config.retry,
                |done| {
                    progress.update(done);
                    match shutdown.requested() {
                        true => ControlFlow::Break(()),
                        false => ControlFlow::Continue(()),
                    }
                },
            )
            .await;
            match result {
                // LDAP went away: reconnect and resume from what was committed.
                Err(InitError::Fetch(e)) if e.is_transient() => {
                    let delay = retry.failed().unwrap_or_default();
                    tracing::warn!(module = name, error = %e, retry_in = ?delay, "lost LDAP while initializing; reconnecting");
                    tokio::select! {
                        biased;
                        () = shutdown.wait() => return Ok(None),
                        () = tokio::time::sleep(delay) => {}
                    }
                    self.reconnect_ldap().await?;
                    let state = self.cache.read()?.module_state(name)?;
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
                Ok(Some(true))
            }
            Err(InitError::Module {
                module,
                step,
                error,
            }) => {
                tracing::error!(%module, step, %error, "module initialization failed; it gets no events until it is initialized again");
                Ok(Some(false))
            }
            Err(e @ InitError::Stopped { .. }) => {
                tracing::info!("{e}");
                Ok(None)
            }
            Err(InitError::Cache(e)) => Err(e.into()),
            Err(InitError::Fetch(e)) => Err(e.into()),
        }
    }

    /// One step of processing: take in what the notifier reader queued, then either
    /// wait (caught up) or try the window's front transaction once: look its object up,
    /// fetch it (or take what was fetched ahead), decide, apply.
    async fn step<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Shutdown<F>,
    ) -> Result<Flow, RunError> {
        let started = Instant::now();
        self.take_in()?;
        self.stats.stages.add(Stage::Read, started);
        if self
            .replica_writes
            .as_ref()
            .is_some_and(|writes| writes.has_failed())
        {
            self.settle_replica_writes().await?;
            return Ok(Flow::Continue);
        }
        if self.window.is_empty() {
            return self.wait(shutdown).await;
        }
        if shutdown.requested() {
            return Ok(Flow::Stop(""));
        }
        if let Some(full) = self.full_queue() {
            return self.wait_for_room(full, shutdown).await;
        }
        match self.process_front().await {
            Ok(Processed::Halted { id, halted }) => return self.halt(id, halted, shutdown).await,
            Ok(Processed::Rewind) => {
                self.settle_replica_writes().await?;
                return Ok(Flow::Continue);
            }
            Ok(processed) => {
                self.halt_retry.reset();
                self.ldap_retry.reset();
                self.stats.set_halted(None);
                self.window.pop();
                if let Processed::Applied { id, change_time } = processed {
                    self.stats.applied(id, change_time);
                    self.last = id;
                    let rewound_to = self
                        .replica_writes
                        .as_ref()
                        .is_some_and(|writes| writes.is_rewound_to(id));
                    let started = Instant::now();
                    if self.group.applied(&self.cache, self.last)? || rewound_to {
                        self.make_durable().await?;
                    }
                    self.hand_over();
                    self.stats.stages.add(Stage::Commit, started);
                }
            }
            // LDAP went away before anything was applied: reconnect and retry the same
            // transaction (the stash is taken only after the fetch).
            Err(RunError::Fetch(e)) if e.is_transient() => {
                let delay = self.ldap_retry.failed().unwrap_or_default();
                tracing::warn!(error = %e, retry_in = ?delay, "lost LDAP; reconnecting");
                tokio::time::sleep(delay).await;
                self.reconnect_ldap().await?;
                return Ok(Flow::Continue);
            }
            Err(e) => return Err(e),
        }
        // Not between the halves of a move (`r` stashed, its `a` to come): a request's
        // cache writes would be overwritten by the pair's commit.
        while self.stash.is_none()
            && let Ok(request) = self.control.try_recv()
        {
            // The request writes the cache itself: the group's transaction goes first.
            self.make_durable().await?;
            self.handle(request).await;
        }
        Ok(Flow::Continue)
    }

    /// The pool of an asynchronous module whose queue is full, if any.
    fn full_queue(&self) -> Option<Pool> {
        self.applier
            .modules
            .iter()
            .filter_map(Module::pool)
            .find(|p| p.is_full())
            .cloned()
    }

    /// An asynchronous module's queue is full: processing pauses (what is applied made
    /// durable first) until its workers have made room. No row is ever dropped.
    async fn wait_for_room<F: Future<Output = ()>>(
        &mut self,
        full: Pool,
        shutdown: &mut Shutdown<F>,
    ) -> Result<Flow, RunError> {
        self.make_durable().await?;
        tracing::debug!(
            queued = full.len(),
            "an asynchronous module's queue is full; pausing"
        );
        tokio::select! {
            () = full.room() => Ok(Flow::Continue),
            () = shutdown.wait() => Ok(Flow::Stop(" while a queue was full")),
        }
    }

    /// Takes in what the reader has queued, as far as the window has room, and starts
    /// the fetches ahead.
    fn take_in(&mut self) -> Result<(), RunError> {
        while self.window.has_room() {
            match self.queue.try_recv() {
                Ok(Ok(t)) => self.window.push(t, &self.group.view(&self.cache))?,
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        self.window.flush();
        let queued = self.window.len() + self.queue.len();
        self.stats.queued.store(queued as u64, Ordering::Relaxed);
        let fetches = self.window.fetches() as u64;
        self.stats
            .fetches_in_flight
            .store(fetches, Ordering::Relaxed);
        Ok(())
    }

    /// Caught up: what is applied becomes durable, then the listener waits for the next
    /// transaction, a tool's request, the idle time (`post_run`) or a shutdown.
    async fn wait<F: Future<Output = ()>>(
        &mut self,
        shutdown: &mut Shutdown<F>,
    ) -> Result<Flow, RunError> {
        let started = Instant::now();
        self.make_durable().await?;
        self.stats.stages.add(Stage::Commit, started);
        tokio::select! {
            received = self.queue.recv() => match received {
                Some(Ok(t)) => {
                    self.idle = false;
                    self.window.push(t, &self.group.view(&self.cache))?;
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(RunError::Internal("the notifier reader stopped".into())),
            },
            () = tokio::time::sleep(self.config.idle), if !self.idle => {
                self.idle = true;
                post_run(&mut self.applier.modules).await;
            }
            Some(request) = self.control.recv(), if self.stash.is_none() => {
                self.handle(request).await;
            }
            () = self.results.due() => self.group.write_results(&self.cache)?,
            () = shutdown.wait() => return Ok(Flow::Stop("")),
        }
        Ok(Flow::Continue)
    }

    /// A blocking module halted processing at `id`: nothing was committed. Record why,
    /// make what the group applied before durable, and wait before the same transaction
    /// is tried again (a shutdown still stops the listener).
    async fn halt<F: Future<Output = ()>>(
        &mut self,
        id: u64,
        Halted { module, error }: Halted,
        shutdown: &mut Shutdown<F>,
    ) -> Result<Flow, RunError> {
        // `since` stays that of the first failure of this halt.
        let since = self
            .stats
            .halted()
            .filter(|h| h.id == id && h.module == module)
            .map_or_else(SystemTime::now, |h| h.since);
        let delay = self.halt_retry.failed().unwrap_or_default();
        tracing::error!(
            error = %format!("processing is halted at transaction {id}: the blocking module {module} failed: {error}"),
            retry_in = ?delay,
            "processing halted by a blocking module; retrying"
        );
        self.stats.set_halted(Some(Halt {
            id,
            module,
            error,
            since,
        }));
        self.make_durable().await?;
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(Flow::Continue),
            () = shutdown.wait() => Ok(Flow::Stop(" while halted")),
            // `failed skip` or `failed retry` (or another tool's request): carried out,
            // then the held transaction is tried again at once.
            Some(request) = self.control.recv() => {
                if self.stash.is_some() && request.writes_cache() {
                    request.refuse("processing is halted between the two halves of a move; skip or retry the held change first");
                } else {
                    self.handle(request).await;
                }
                Ok(Flow::Continue)
            }
        }
    }

    /// The window's front transaction: look up, fetch (or take what was fetched ahead),
    /// decide, apply.
    async fn process_front(&mut self) -> Result<Processed, RunError> {
        let txn = match self.window.front() {
            Some(Ok(txn)) => txn.clone(),
            Some(Err(bad)) => {
                return Err(RunError::BadDn {
                    id: bad.id,
                    message: bad.message.clone(),
                });
            }
            None => return Err(RunError::Internal("no transaction to process".into())),
        };
        let stages = &self.stats.stages;
        let started = Instant::now();
        let cached = self.group.entry(&self.cache, &txn.dn)?;
        let by = decide::fetch_by(&txn, cached.as_ref(), self.stash.as_ref());
        let started = stages.add(Stage::Decide, started);
        let fetched = match by {
            None => None,
            Some(by) => {
                // The cached state of the object the fetch is about (for a move: at its
                // old DN).
                let known = match (&by, self.stash.as_ref()) {
                    (FetchBy::Uuid(_), Some(s)) if txn.command == Command::Add => s.cached.as_ref(),
                    _ => cached.as_ref(),
                };
                self.window.fetch_front(&by, known).await?
            }
        };
        let started = stages.add(Stage::Fetch, started);
        // Kept to try the transaction again if a blocking module halts processing.
        let saved_stash = self.stash.clone();
        let mut step = decide::decide(&txn, self.stash.take(), cached, fetched)?;
        if step == Step::Nothing {
            let pending = self.group.pending_create(&self.cache, txn.id)?;
            step = decide::replay_pending_create(step, txn.id, pending);
        }
        stages.add(Stage::Decide, started);
        if let Step::Stash(s) = step {
            self.stash = Some(s);
            return Ok(Processed::Stashed);
        }
        let change_time = step_entry(&step).and_then(super::stats::change_time);
        let span =
            tracing::debug_span!("transaction", id = txn.id, dn = %txn.dn, command = %txn.command);
        if let Some(writes) = &self.replica_writes {
            writes.set_current(txn.id);
        }
        let applied = self
            .group
            .apply(&self.cache, &mut self.applier, txn.id, txn.command, step)
            .instrument(span)
            .await?;
        self.stats
            .stages
            .add_time(Stage::Modules, applied.modules_time);
        self.stats.stages.add_time(Stage::Cache, applied.cache_time);
        if applied.rewind {
            return Ok(Processed::Rewind);
        }
        if let Some(halted) = applied.halted {
            self.stash = saved_stash;
            return Ok(Processed::Halted { id: txn.id, halted });
        }
        tracing::debug!(
            id = txn.id,
            calls = applied.calls,
            failures = applied.failures,
            "transaction processed"
        );
        Ok(Processed::Applied {
            id: txn.id,
            change_time,
        })
    }

    /// Makes what the group applied durable, and hands the rows it stored to the pools;
    /// first the replica writes handed over are waited for (when one failed, the group
    /// is dropped instead: see [`Listener::settle_replica_writes`]).
    async fn make_durable(&mut self) -> Result<(), RunError> {
        if self.settle_replica_writes().await? {
            self.group.flush(&self.cache, self.last)?;
        }
        self.hand_over();
        Ok(())
    }

    /// Whether the `replication` module hands its writes over (in the main loop) or
    /// writes inline (initializations, the tools' requests: they commit on their own).
    fn hand_over_replica_writes(&self, on: bool) {
        if let Some(writes) = &self.replica_writes {
            writes.enable(on);
        }
    }

    /// Waits for the replica writes handed over. Whether they all succeeded; if one
    /// failed, the listener goes back to its last durable transaction: the group is
    /// dropped, the window emptied, the notifier read again from there, and the
    /// `replication` module writes inline up to the failed transaction, so that a
    /// refusal halts processing at its own transaction (semantics §8). Calls of other
    /// modules in the dropped group are made again (at least once).
    async fn settle_replica_writes(&mut self) -> Result<bool, RunError> {
        let Some(writes) = &self.replica_writes else {
            return Ok(true);
        };
        let Err(failed) = writes.settle().await else {
            return Ok(true);
        };
        writes.rewind(failed);
        self.group.abort()?;
        self.stash = None;
        self.window.clear();
        self.last = self.cache.read()?.last_id()?;
        self.stats.applied_id.store(self.last, Ordering::Relaxed);
        tracing::warn!(
            failed,
            from = self.last + 1,
            "a replica write failed; applying again from the last durable transaction"
        );
        let client = connect_with_backoff(
            &self.config.notifier,
            &self.config.client,
            &Backoff::default(),
        )
        .await?;
        (self._reader, self.queue) = spawn_reader(client, self.last + 1, &self.config, &self.stats);
        Ok(false)
    }

    /// Hands the rows stored durably to their pools, each pool's in one go (one wake-up
    /// of a pool for a whole group in a catch-up); then reports what is durable as
    /// processed.
    fn hand_over(&mut self) {
        let Durable { rows, last } = self.group.take_durable();
        if !rows.is_empty() {
            self.enqueue(rows);
        }
        if let Some(last) = last {
            self.stats.set_durable(last);
        }
    }

    /// Gives each pool its rows of `ready` (by module index).
    fn enqueue(&self, ready: BTreeMap<usize, Vec<Row>>) {
        for (index, rows) in ready {
            if let Some(pool) = self.applier.modules.get(index).and_then(Module::pool) {
                pool.enqueue(rows);
            }
        }
    }

    /// Carries out a request of an administrator's tool (with every queued row handed
    /// over: a `resync` waits for the module's queue to drain).
    async fn handle(&mut self, request: control::Request) {
        self.hand_over();
        self.hand_over_replica_writes(false);
        // What the pools finished first: the tools see failed events and queues as they are.
        if let Err(e) = self.group.write_results(&self.cache) {
            tracing::error!(error = %e, "cannot record finished asynchronous calls; they run again after a restart");
        }
        control::handle(
            request,
            &mut self.applier,
            &self.cache,
            &self.stats,
            &self.fetcher,
        )
        .await;
        self.hand_over_replica_writes(true);
    }

    /// Connects to LDAP again; the window and every module use the new connections.
    async fn reconnect_ldap(&mut self) -> Result<(), RunError> {
        self.fetcher = connect_ldap(&self.config).await?;
        let pool = connect_pool(&self.config).await?;
        self.window.set_fetchers(self.fetcher.clone(), pool);
        for module in &mut self.applier.modules {
            module.connect(self.fetcher.clone(), self.settings.clone());
        }
        Ok(())
    }

    /// A clean stop: `post_run` for every module that ran, everything applied made
    /// durable.
    async fn stop(mut self, flow: Flow) -> Result<(), RunError> {
        // A replica write that failed: what the group applied is applied again after
        // the restart.
        let settled = match &self.replica_writes {
            Some(writes) => writes.settle().await.is_ok(),
            None => true,
        };
        match settled {
            true => self.group.sync(&self.cache, self.last)?,
            false => self.group.abort()?,
        }
        if let Some(writes) = &self.replica_writes
            && settled
            && let Err(e) = writes.settle_mark(self.last)
        {
            // The mark stays ahead: the next start looks up more than it needs to.
            tracing::warn!(error = %e, "cannot set the replication mark");
        }
        self.hand_over();
        post_run(&mut self.applier.modules).await;
        for pool in self.applier.modules.iter().filter_map(Module::pool) {
            pool.stop().await;
        }
        // What the workers finished while stopping.
        if !self.results.is_empty() {
            self.group.sync(&self.cache, self.last)?;
        }
        let why = match flow {
            Flow::Stop(why) => why,
            Flow::Continue => "",
        };
        tracing::info!(last_id = self.last, "listener stopped{why}");
        Ok(())
    }
}

/// The master record: checks whose IDs the cache holds and returns where processing
/// resumes; a new cache starts at the notifier's current ID. `None`: a shutdown came.
async fn take_position<F: Future<Output = ()>>(
    config: &RunConfig,
    cache: &Cache,
    stats: &Stats,
    mut client: NotifierClient,
    shutdown: &mut Shutdown<F>,
) -> Result<Option<(NotifierClient, u64)>, RunError> {
    let identity = client.identity().map_or_else(
        || format!("notifier {}", config.notifier),
        |id| format!("log {id}"),
    );
    let (stored_identity, last) = {
        let r = cache.read()?;
        r.check_notifier_identity(&identity)?;
        (r.notifier_identity()?, r.last_id()?)
    };
    let current = tokio::select! {
        biased;
        () = shutdown.wait() => return Ok(None),
        current = client.current_id() => current?,
    };
    stats.saw_notifier_id(current);
    if stored_identity.is_none() {
        // Taken before the modules are initialized: what changes meanwhile is processed
        // afterwards (at least once).
        let mut w = cache.write()?;
        w.set_notifier_identity(&identity)?;
        w.set_last_id(current)?;
        w.commit()?;
        tracing::info!(notifier = %config.notifier, id = current, "new cache starts at the notifier's current ID");
        return Ok(Some((client, current)));
    }
    if current < last {
        return Err(RunError::NotifierBehind {
            notifier: config.notifier.clone(),
            notifier_id: current,
            cache_id: last,
        });
    }
    Ok(Some((client, last)))
}

/// The notifier is read by a task of its own, from `from` on, batch after batch, into a
/// queue that the window takes from: waiting for the notifier never stalls applying, and
/// going idle (`post_run`) never cancels a request. The task (aborted when dropped) and
/// the queue.
fn spawn_reader(
    client: NotifierClient,
    from: u64,
    config: &RunConfig,
    stats: &Arc<Stats>,
) -> (
    AbortOnDropHandle<()>,
    mpsc::Receiver<Result<TransactionRef, ClientError>>,
) {
    let (queue_tx, queue) = mpsc::channel(config.batch.max(1) * 2);
    let reader = tokio::spawn(read_notifier(
        client,
        from,
        config.clone(),
        queue_tx,
        stats.clone(),
    ));
    (AbortOnDropHandle::new(reader), queue)
}

/// Reads transactions from `from` on, batch after batch, into `queue`; reconnects to the
/// notifier with backoff when it goes away. Ends when the queue's receiver is dropped or
/// with a fatal error sent down the queue.
async fn read_notifier(
    mut client: NotifierClient,
    mut from: u64,
    config: RunConfig,
    queue: mpsc::Sender<Result<TransactionRef, ClientError>>,
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

/// How the pool of the asynchronous module `registration` runs: its workers reach LDAP
/// as the listener does (the credentials go over their channel) and retry as it does.
fn pool_config(config: &RunConfig, registration: &ModuleRegistration) -> PoolConfig {
    let hello = Hello {
        module: registration.name.to_owned(),
        ldap: config.ldap.clone(),
        base: config.base.to_string(),
        notifier: config.notifier.clone(),
        cache_dir: config.cache_dir.clone(),
        retry: config.retry.clone(),
    };
    PoolConfig {
        hello,
        parallelism: registration.workers().unwrap_or(1) as usize,
        capacity: config.queue_limit,
        idle: config.idle,
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
    let mut retry = Backoff::default().start();
    loop {
        match Fetcher::connect(&config.ldap, config.base.clone()).await {
            Ok(fetcher) => return Ok(fetcher),
            Err(e) if e.is_transient() => {
                let delay = retry.failed().unwrap_or_default();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reach LDAP; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `post_run` for every module that ran (`pre_run`) since start or its last `post_run`.
async fn post_run(modules: &mut [Module]) {
    for module in modules {
        if let Err(e) = module.post_run().await {
            tracing::warn!(module = module.name(), error = %format!("{e:#}"), "post_run failed");
        }
    }
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
