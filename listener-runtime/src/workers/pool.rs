//! One asynchronous module's queue and workers: the rows the listener queued (the
//! outbox), handed to `parallelism` worker processes as the ordering allows
//! ([`super::lanes`]); rows done are removed from the cache, rows that failed for good
//! become failed events; a worker that dies is started again with backoff and its row
//! handed out again. `post_run` goes to every worker that ran calls once the queue has
//! drained and the idle time has passed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::sleep_until;

use super::job::Job;
use super::lanes::{Lanes, Row};
use super::process::{self, Event};
use super::wire::{Hello, Lifecycle, Outcome, ToWorker};
use crate::ldap::{Backoff, Retry};
use crate::listener::cache::{Cache, CacheError, FailedEvent};
use crate::listener::call::Failure;
use crate::listener::stats::ModuleStats;
use crate::shared::SharedStore;

/// A row whose worker died this often is given up on (a failed event): it may be what
/// kills them.
const MAX_CRASHES: u32 = 3;
/// Longest wait at a clean stop for the calls in flight.
const STOP_GRACE: Duration = Duration::from_secs(10);

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
struct Shared {
    /// Rows queued and not yet done.
    len: AtomicUsize,
    capacity: usize,
    /// Told when rows are done (room for the listener, or an empty queue).
    done: Notify,
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

enum Command {
    Enqueue(Vec<Row>),
    Direct(Direct),
    Stop(oneshot::Sender<()>),
}

/// A call or lifecycle method outside the queue (initialization, replay), answered.
struct Direct {
    what: DirectWhat,
    reply: oneshot::Sender<Result<(), Failure>>,
}

enum DirectWhat {
    Call(Box<Job>),
    /// `initialize` or `clean`: runs alone.
    Lifecycle(Lifecycle),
}

impl Pool {
    /// Starts `module`'s pool: its rows left in the cache first, its workers.
    pub(crate) fn start(
        cache: Arc<Cache>,
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
            len: AtomicUsize::new(lanes.len()),
            capacity: config.capacity.max(1),
            done: Notify::new(),
        });
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (writes_tx, writes) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(cache, module.clone(), writes));
        let slots = (0..config.parallelism.max(1))
            .map(|_| Slot {
                generation: 0,
                state: SlotState::Down {
                    until: Instant::now(),
                },
                to_worker: None,
                retry: Backoff::default().start(),
                ran: false,
            })
            .collect();
        let executor = Executor {
            module,
            store,
            config,
            shared: shared.clone(),
            stats,
            lanes,
            slots,
            commands,
            events,
            events_tx,
            directs: VecDeque::new(),
            writes: Some(writes_tx),
            writer: Some(writer),
            quiet_since: None,
            stopping: None,
            stop_deadline: None,
        };
        tokio::spawn(executor.run());
        Ok(Pool {
            commands: commands_tx,
            shared,
        })
    }

    /// Hands the rows the listener just queued (in the cache) to the pool, in order.
    pub(crate) fn enqueue(&self, rows: Vec<Row>) {
        if rows.is_empty() {
            return;
        }
        self.shared.len.fetch_add(rows.len(), Ordering::Relaxed);
        let _ = self.commands.send(Command::Enqueue(rows));
    }

    /// Whether the queue holds as many rows as it may.
    pub(crate) fn is_full(&self) -> bool {
        self.shared.len.load(Ordering::Relaxed) >= self.shared.capacity
    }

    /// Rows the queue may hold before the listener pauses.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.capacity
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

struct Slot {
    /// Counts the processes started in this slot; events of an older one are stale.
    generation: u64,
    state: SlotState,
    to_worker: Option<mpsc::UnboundedSender<ToWorker>>,
    retry: Retry,
    /// Whether it ran a call since its start or its last `post_run`.
    ran: bool,
}

enum SlotState {
    Starting,
    Idle,
    Busy(Task),
    /// Not running; started again at `until`.
    Down {
        until: Instant,
    },
    Stopped,
}

enum Task {
    Row(u64),
    Direct(oneshot::Sender<Result<(), Failure>>, bool),
    PostRun,
}

/// A cache write of the pool.
enum Write {
    /// Row done.
    Remove(u64),
    /// Row failed for good.
    Fail(u64, Box<FailedEvent>),
}

struct Executor {
    module: String,
    store: Arc<dyn SharedStore>,
    config: PoolConfig,
    shared: Arc<Shared>,
    stats: Option<Arc<ModuleStats>>,
    lanes: Lanes,
    slots: Vec<Slot>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    events_tx: mpsc::UnboundedSender<Event>,
    directs: VecDeque<Direct>,
    writes: Option<mpsc::UnboundedSender<Write>>,
    writer: Option<tokio::task::JoinHandle<()>>,
    /// Since when nothing is queued or running.
    quiet_since: Option<Instant>,
    stopping: Option<oneshot::Sender<()>>,
    stop_deadline: Option<Instant>,
}

impl Executor {
    async fn run(mut self) {
        loop {
            self.start_due_workers();
            self.hand_out();
            self.post_run_when_quiet();
            self.publish();
            if self.stopping.is_some() && self.stopped() {
                break;
            }
            let wake = self.next_wake();
            let timer = async move {
                match wake {
                    Some(wake) => sleep_until(wake.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    // The listener is gone: stop at once.
                    None => break,
                },
                Some(event) = self.events.recv() => self.event(event),
                () = timer => {}
            }
        }
        self.finish().await;
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Enqueue(rows) => {
                for row in rows {
                    self.lanes.push(row);
                }
                self.quiet_since = None;
            }
            Command::Direct(direct) => {
                self.quiet_since = None;
                self.directs.push_back(direct);
            }
            Command::Stop(reply) => {
                self.stopping = Some(reply);
                self.stop_deadline = Some(Instant::now() + STOP_GRACE);
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Ready {
                slot,
                generation,
                pid,
            } => {
                let Some(s) = self.slot(slot, generation) else {
                    return;
                };
                s.state = SlotState::Idle;
                tracing::debug!(module = %self.module, slot, pid, "worker ready");
            }
            Event::Done {
                slot,
                generation,
                id,
                outcome,
            } => {
                let Some(s) = self.slot(slot, generation) else {
                    return;
                };
                let state = std::mem::replace(&mut s.state, SlotState::Idle);
                s.retry.reset();
                self.finished(state, id, outcome);
            }
            Event::Exited {
                slot,
                generation,
                why,
            } => self.exited(slot, generation, why),
        }
    }

    fn slot(&mut self, slot: usize, generation: u64) -> Option<&mut Slot> {
        self.slots
            .get_mut(slot)
            .filter(|s| s.generation == generation)
    }

    /// A worker finished `state`'s task.
    fn finished(&mut self, state: SlotState, id: u64, outcome: Outcome) {
        let took = Duration::from_micros(outcome.micros);
        match state {
            SlotState::Busy(Task::Row(seq)) if seq == id => {
                let Some(row) = self.lanes.finish(seq) else {
                    return;
                };
                if let Some(stats) = &self.stats {
                    stats.record(took, outcome.error.is_none());
                }
                match outcome.error {
                    None => self.write(Write::Remove(seq)),
                    Some(error) => {
                        let failure = Failure {
                            error,
                            attempts: outcome.attempts,
                        };
                        self.fail(&row, failure);
                    }
                }
                self.row_done();
            }
            SlotState::Busy(Task::Direct(reply, _)) => {
                let result = match outcome.error {
                    None => Ok(()),
                    Some(error) => Err(Failure {
                        error,
                        attempts: outcome.attempts,
                    }),
                };
                let _ = reply.send(result);
            }
            SlotState::Busy(Task::PostRun) => {
                if let Some(error) = outcome.error {
                    tracing::warn!(module = %self.module, %error, "post_run failed");
                }
            }
            _ => {
                tracing::warn!(module = %self.module, id, "a worker answered a call it was not given")
            }
        }
    }

    /// Records `row` as a failed event after `failure`.
    fn fail(&mut self, row: &Row, failure: Failure) {
        match Job::decode(&row.bytes) {
            Ok(job) => {
                tracing::warn!(module = %self.module, dn = %job.dn(), command = %job.command(), attempts = failure.attempts, error = %failure.error, "asynchronous call failed; recording it as a failed event");
                self.write(Write::Fail(row.seq, Box::new(job.failed_event(failure))));
            }
            // It was encoded by this process: cannot happen; never lose it silently.
            Err(e) => {
                tracing::error!(module = %self.module, seq = row.seq, error = %e, call_error = %failure.error, "a failed asynchronous call does not read back; it stays in the queue");
            }
        }
    }

    fn row_done(&mut self) {
        self.shared.len.fetch_sub(1, Ordering::Relaxed);
        self.shared.done.notify_waiters();
    }

    /// Worker `slot` is gone: its task is handed out again or given up on, and it is
    /// started again after a backoff (not while stopping).
    fn exited(&mut self, slot: usize, generation: u64, why: String) {
        let stopping = self.stopping.is_some();
        let Some(s) = self.slot(slot, generation) else {
            return;
        };
        let state = std::mem::replace(&mut s.state, SlotState::Stopped);
        s.to_worker = None;
        s.ran = false;
        let delay = s.retry.failed().unwrap_or_default();
        if !stopping {
            s.state = SlotState::Down {
                until: Instant::now() + delay,
            };
            tracing::warn!(module = %self.module, slot, %why, restart_in = ?delay, "worker process ended; starting it again");
        }
        match state {
            SlotState::Busy(Task::Row(seq)) => match self.lanes.give_back(seq) {
                Some(row) if row.crashes >= MAX_CRASHES => {
                    let crashes = row.crashes;
                    if let Some(row) = self.lanes.take_back(seq) {
                        let failure = Failure {
                            error: format!(
                                "the worker running it died {crashes} times (last: {why})"
                            ),
                            attempts: crashes,
                        };
                        self.fail(&row, failure);
                        self.row_done();
                    }
                }
                _ => {}
            },
            SlotState::Busy(Task::Direct(reply, _)) => {
                let _ = reply.send(Err(Failure {
                    error: format!("the worker running it died: {why}"),
                    attempts: 1,
                }));
            }
            _ => {}
        }
    }

    /// Starts the workers whose backoff is over.
    fn start_due_workers(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let now = Instant::now();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let SlotState::Down { until } = slot.state else {
                continue;
            };
            if until > now {
                continue;
            }
            if slot.generation > 0
                && let Some(stats) = &self.stats
            {
                stats.queue.restarts.fetch_add(1, Ordering::Relaxed);
            }
            slot.generation += 1;
            match process::start(
                index,
                slot.generation,
                self.config.hello.clone(),
                self.store.clone(),
                self.events_tx.clone(),
            ) {
                Ok(tx) => {
                    slot.to_worker = Some(tx);
                    slot.state = SlotState::Starting;
                }
                Err(e) => {
                    let delay = slot.retry.failed().unwrap_or_default();
                    tracing::error!(module = %self.module, error = %e, retry_in = ?delay, "cannot start a worker process");
                    slot.state = SlotState::Down { until: now + delay };
                }
            }
        }
    }

    /// Gives idle workers what may run: direct requests first (a lifecycle method only
    /// when nothing else runs), then queued rows in order; `post_run` when the queue has
    /// been quiet for the idle time.
    fn hand_out(&mut self) {
        let busy = |slots: &[Slot]| slots.iter().any(|s| matches!(s.state, SlotState::Busy(_)));
        loop {
            let Some(index) = self
                .slots
                .iter()
                .position(|s| matches!(s.state, SlotState::Idle))
            else {
                return;
            };
            if self.stopping.is_some() {
                return;
            }
            let (task, message) = if let Some(front) = self.directs.front() {
                let alone = matches!(front.what, DirectWhat::Lifecycle(_));
                if alone && busy(&self.slots) {
                    return;
                }
                let alone_running = self
                    .slots
                    .iter()
                    .any(|s| matches!(s.state, SlotState::Busy(Task::Direct(_, true))));
                if alone_running {
                    return;
                }
                let Some(direct) = self.directs.pop_front() else {
                    return;
                };
                let message = match direct.what {
                    DirectWhat::Call(job) => ToWorker::Call {
                        id: 0,
                        job: job.encode(),
                    },
                    DirectWhat::Lifecycle(step) => ToWorker::Lifecycle { id: 0, step },
                };
                (Task::Direct(direct.reply, alone), message)
            } else {
                let alone_running = self
                    .slots
                    .iter()
                    .any(|s| matches!(s.state, SlotState::Busy(Task::Direct(_, true))));
                if alone_running {
                    return;
                }
                let Some(row) = self.lanes.take_ready() else {
                    break;
                };
                let message = ToWorker::Call {
                    id: row.seq,
                    job: row.bytes.clone(),
                };
                (Task::Row(row.seq), message)
            };
            self.send(index, task, message);
        }
    }

    fn send(&mut self, index: usize, task: Task, message: ToWorker) {
        let slot = &mut self.slots[index];
        slot.ran = true;
        // When the channel is closing, its `Exited` event gives the task back.
        if let Some(tx) = &slot.to_worker {
            let _ = tx.send(message);
        }
        slot.state = SlotState::Busy(task);
    }

    /// `post_run` for the workers that ran calls, once the queue has been quiet (nothing
    /// queued, nothing running) for the idle time.
    fn post_run_when_quiet(&mut self) {
        let busy = self
            .slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Busy(_)));
        let quiet = !busy && self.lanes.len() == 0 && self.directs.is_empty();
        if !quiet || self.stopping.is_some() {
            self.quiet_since = None;
            return;
        }
        let since = *self.quiet_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.config.idle {
            return;
        }
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if slot.ran && matches!(slot.state, SlotState::Idle) {
                let message = ToWorker::Lifecycle {
                    id: 0,
                    step: Lifecycle::PostRun,
                };
                self.send(index, Task::PostRun, message);
                self.slots[index].ran = false;
            }
        }
    }

    /// When the loop must look again without a message: a worker's restart, the idle
    /// time, the end of the stop's grace.
    fn next_wake(&self) -> Option<Instant> {
        let restarts = self.slots.iter().filter_map(|s| match s.state {
            SlotState::Down { until } if self.stopping.is_none() => Some(until),
            _ => None,
        });
        // Only while some worker is due a post_run: a quiet pool otherwise sleeps.
        let due = self.slots.iter().any(|s| s.ran);
        let idle = self
            .quiet_since
            .filter(|_| due)
            .map(|since| since + self.config.idle);
        restarts.chain(idle).chain(self.stop_deadline).min()
    }

    /// Stopping, and nothing runs any more (or the grace is over).
    fn stopped(&self) -> bool {
        let running = self
            .slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Busy(_)));
        !running || self.stop_deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn write(&mut self, write: Write) {
        if let (Write::Fail(..), Some(stats)) = (&write, &self.stats) {
            stats.queue.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(writes) = &self.writes {
            let _ = writes.send(write);
        }
    }

    /// Figures for `status` and the metrics.
    fn publish(&self) {
        let Some(stats) = &self.stats else {
            return;
        };
        let q = &stats.queue;
        q.depth.store(self.lanes.len() as u64, Ordering::Relaxed);
        q.in_flight
            .store(self.lanes.running() as u64, Ordering::Relaxed);
        let oldest = self.lanes.oldest().map_or(0, |t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        });
        q.oldest_ms.store(oldest, Ordering::Relaxed);
        let ready = self
            .slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::Idle | SlotState::Busy(_)))
            .count();
        q.workers.store(ready as u64, Ordering::Relaxed);
    }

    /// `post_run` for the workers that ran, then the cache writes are finished; the
    /// workers' channels close with the slots, and they exit.
    async fn finish(mut self) {
        let post_runs: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].ran && matches!(self.slots[i].state, SlotState::Idle))
            .collect();
        for index in post_runs {
            let message = ToWorker::Lifecycle {
                id: 0,
                step: Lifecycle::PostRun,
            };
            self.send(index, Task::PostRun, message);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while self.stopping.is_some()
            && self
                .slots
                .iter()
                .any(|s| matches!(s.state, SlotState::Busy(Task::PostRun)))
        {
            tokio::select! {
                Some(event) = self.events.recv() => self.event(event),
                () = sleep_until(deadline.into()) => break,
            }
        }
        self.slots.clear();
        self.writes = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
        for direct in self.directs.drain(..) {
            let _ = direct.reply.send(Err(Failure {
                error: "the listener is stopping".to_owned(),
                attempts: 0,
            }));
        }
        self.shared.done.notify_waiters();
        if let Some(reply) = self.stopping.take() {
            let _ = reply.send(());
        }
    }
}

/// Writes the pool's results to the cache, in batches, on a blocking thread (a write
/// waits while the listener's group holds the cache's write transaction). The commits
/// are not made durable on their own: the listener's next durable commit takes them
/// along, and a row whose removal a crash lost runs again (at least once).
async fn write_loop(cache: Arc<Cache>, module: String, mut writes: mpsc::UnboundedReceiver<Write>) {
    while let Some(first) = writes.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1024
            && let Ok(more) = writes.try_recv()
        {
            batch.push(more);
        }
        let (cache, name) = (cache.clone(), module.clone());
        let written = tokio::task::spawn_blocking(move || write_batch(&cache, &name, batch)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(module, error = %e, "cannot record finished asynchronous calls; they run again after a restart")
            }
            Err(e) => tracing::error!(module, error = %e, "the cache writer of the queue failed"),
        }
    }
}

fn write_batch(cache: &Cache, module: &str, batch: Vec<Write>) -> Result<(), CacheError> {
    let mut w = cache.write()?;
    w.set_durable(false)?;
    for write in batch {
        match write {
            Write::Remove(seq) => {
                w.remove_job(module, seq)?;
            }
            Write::Fail(seq, event) => {
                w.remove_job(module, seq)?;
                // As for a synchronous module: not registered any more, so the next
                // change of the object reaches the module as new, and a replay
                // delivers the current state.
                if let Some(c) = w.entry(&event.dn)?
                    && c.modules.contains(module)
                    && (event.entry_uuid.is_empty()
                        || c.entry.first_str("entryUUID") == Some(event.entry_uuid.as_str()))
                {
                    let mut modules = c.modules;
                    modules.remove(module);
                    w.set_registrations(c.entry.dn(), &modules)?;
                }
                w.add_failed_event(module, &event)?;
            }
        }
    }
    w.commit()
}
