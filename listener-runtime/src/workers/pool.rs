//! The listener's handle on one asynchronous module's queue and workers: it loads the
//! rows left in the cache, starts the pool's task ([`super::executor`]), hands it the
//! rows the listener queues, and tells the listener when the queue is full, has room or
//! has drained. What the task finishes, the listener writes ([`super::results`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use super::executor::Executor;
use super::job::Job;
use super::lanes::{Lanes, Row};
use super::results::Results;
use super::wire::{Hello, Lifecycle};
use crate::listener::cache::{Cache, CacheError};
use crate::listener::call::Failure;
use crate::listener::stats::ModuleStats;
use crate::shared::SharedStore;

/// How a module's pool runs.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    /// What every worker is told first (module, LDAP, retries).
    pub hello: Hello,
    /// Worker processes.
    pub parallelism: usize,
    /// Rows queued (waiting and running) above which the listener pauses.
    pub capacity: usize,
    /// Quiet time after which workers get `post_run`.
    pub idle: Duration,
}

/// The listener's handle on one module's pool.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

/// What the listener and the pool's task both see.
#[derive(Debug)]
pub(super) struct Shared {
    /// Rows queued and not yet done.
    pub(super) len: AtomicUsize,
    pub(super) capacity: usize,
    /// Told when rows are done (room for the listener, or an empty queue).
    pub(super) done: Notify,
    /// The module's figures, whose queue depth moves with `len`, at the same moment: a
    /// call the listener has queued is never missing from `status`.
    pub(super) stats: Option<Arc<ModuleStats>>,
}

impl Shared {
    /// `n` rows more are queued.
    fn added(&self, n: usize) {
        self.len.fetch_add(n, Ordering::Relaxed);
        if let Some(stats) = &self.stats {
            stats.queue.depth.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// A row is done (removed or failed for good).
    pub(super) fn removed(&self) {
        self.len.fetch_sub(1, Ordering::Relaxed);
        if let Some(stats) = &self.stats {
            stats.queue.depth.fetch_sub(1, Ordering::Relaxed);
        }
        self.done.notify_waiters();
    }
}

/// Figures for `status` and the metrics.
#[derive(Debug, Default)]
pub(crate) struct QueueStats {
    /// Set when the module's pool starts: the module is asynchronous.
    pub asynchronous: std::sync::atomic::AtomicBool,
    /// Calls the pool recorded as failed events since the listener started.
    pub failed: AtomicU64,
    /// Rows waiting and running.
    pub depth: AtomicU64,
    /// Calls running in workers.
    pub in_flight: AtomicU64,
    /// When the oldest row was queued (Unix ms; 0: none).
    pub oldest_ms: AtomicU64,
    /// Worker processes started again after one died.
    pub restarts: AtomicU64,
    /// Workers ready for calls.
    pub workers: AtomicU64,
}

pub(super) enum Command {
    Enqueue(Vec<Row>),
    Direct(Direct),
    Stop(oneshot::Sender<()>),
}

/// A call or lifecycle method outside the queue (initialization, replay), answered.
pub(super) struct Direct {
    pub(super) what: DirectWhat,
    pub(super) reply: oneshot::Sender<Result<(), Failure>>,
}

pub(super) enum DirectWhat {
    Call(Box<Job>),
    /// `initialize` or `clean`: runs alone.
    Lifecycle(Lifecycle),
}

impl Pool {
    /// Starts `module`'s pool: its rows left in the cache first, its workers; what they
    /// finish goes to `results`.
    pub(crate) fn start(
        cache: &Cache,
        results: Arc<Results>,
        store: Arc<dyn SharedStore>,
        config: PoolConfig,
        stats: Option<Arc<ModuleStats>>,
    ) -> Result<Pool, CacheError> {
        let module = config.hello.module.clone();
        let mut lanes = Lanes::default();
        for (seq, bytes) in cache.read()?.jobs(&module)? {
            match Job::decode(&bytes) {
                Ok(job) => lanes.push(Row::new(seq, &job, bytes)),
                Err(e) => {
                    tracing::error!(module, seq, error = %e, "a queued call does not read back; it stays in the queue")
                }
            }
        }
        if lanes.len() > 0 {
            tracing::info!(
                module,
                rows = lanes.len(),
                "asynchronous module: calls queued before the last stop go on"
            );
        }
        if let Some(stats) = &stats {
            stats.queue.asynchronous.store(true, Ordering::Relaxed);
        }
        let shared = Arc::new(Shared {
            len: AtomicUsize::new(0),
            capacity: config.capacity.max(1),
            done: Notify::new(),
            stats: stats.clone(),
        });
        shared.added(lanes.len());
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let executor = Executor::new(
            module,
            store,
            config,
            shared.clone(),
            stats,
            lanes,
            commands,
            results,
        );
        tokio::spawn(executor.run());
        Ok(Pool {
            commands: commands_tx,
            shared,
        })
    }

    /// Counts `n` calls the listener has queued in its cache transaction: they count
    /// towards the queue's depth and limit from then on, before they are handed over
    /// ([`Pool::enqueue`], once that transaction is durable).
    pub(crate) fn reserve(&self, n: usize) {
        self.shared.added(n);
    }

    /// Hands the rows the listener queued ([`Pool::reserve`]) and made durable to the
    /// pool, in order.
    pub(crate) fn enqueue(&self, rows: Vec<Row>) {
        if rows.is_empty() {
            return;
        }
        let _ = self.commands.send(Command::Enqueue(rows));
    }

    /// Whether the queue holds as many rows as it may.
    pub(crate) fn is_full(&self) -> bool {
        self.shared.len.load(Ordering::Relaxed) >= self.shared.capacity
    }

    /// Rows queued and not yet done.
    pub(crate) fn len(&self) -> usize {
        self.shared.len.load(Ordering::Relaxed)
    }

    /// Completes when the queue has room again.
    pub(crate) async fn room(&self) {
        self.until(|p| !p.is_full()).await;
    }

    /// Completes when every queued row is done.
    pub(crate) async fn drained(&self) {
        self.until(|p| p.len() == 0).await;
    }

    async fn until(&self, condition: impl Fn(&Pool) -> bool) {
        loop {
            let done = self.shared.done.notified();
            if condition(self) || self.commands.is_closed() {
                return;
            }
            done.await;
        }
    }

    /// Runs `job` in a worker now, outside the queue's ordering (initialization, replay).
    pub(crate) async fn call(&self, job: Job) -> Result<(), Failure> {
        self.direct(DirectWhat::Call(Box::new(job))).await
    }

    /// Runs `initialize` or `clean` in one worker, while no other call of the module runs.
    pub(crate) async fn lifecycle(&self, step: Lifecycle) -> Result<(), Failure> {
        self.direct(DirectWhat::Lifecycle(step)).await
    }

    async fn direct(&self, what: DirectWhat) -> Result<(), Failure> {
        let (reply, answer) = oneshot::channel();
        let gone = || Failure {
            error: "the module's workers are stopped".to_owned(),
            attempts: 0,
        };
        self.commands
            .send(Command::Direct(Direct { what, reply }))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Stops handing out rows, waits (up to 10 s) for the calls in flight, gives
    /// `post_run` where due and writes what is done to the cache. The rows left stay
    /// queued for the next start.
    pub(crate) async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
