//! The task of one asynchronous module's pool: the rows the listener queued (the outbox),
//! handed to `parallelism` worker processes as the ordering allows ([`super::lanes`]);
//! rows done are removed from the cache and rows that failed for good become failed
//! events ([`super::results`]); a worker that dies is started again with backoff and its
//! row handed out again. `post_run` goes to every worker that ran calls once the queue
//! has drained and the idle time has passed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::sleep_until;

use super::job::Job;
use super::lanes::{Lanes, Row};
use super::pool::{Command, Direct, DirectWhat, PoolConfig, Shared};
use super::process::{self, Event};
use super::results::{Results, Write};
use super::wire::{Lifecycle, Outcome, ToWorker};
use crate::ldap::{Backoff, Retry};
use crate::listener::call::Failure;
use crate::listener::stats::ModuleStats;
use crate::shared::SharedStore;

/// A row whose worker died this often is given up on (a failed event): it may be what
/// kills them.
const MAX_CRASHES: u32 = 3;
/// Longest wait at a clean stop for the calls in flight.
const STOP_GRACE: Duration = Duration::from_secs(10);

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
    /// A direct request; `alone`: `initialize` or `clean`, which nothing may run beside.
    Direct {
        reply: oneshot::Sender<Result<(), Failure>>,
        alone: bool,
    },
    PostRun,
}

pub(super) struct Executor {
    /// The module's name, as the logs and the results carry it.
    module: Arc<str>,
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
    /// Where finished rows go for the listener to write ([`super::results`]).
    results: Arc<Results>,
    /// Since when nothing is queued or running.
    quiet_since: Option<Instant>,
    stopping: Option<oneshot::Sender<()>>,
    stop_deadline: Option<Instant>,
}

impl Executor {
    /// The task of a pool: `lanes` loaded, every worker to be started, finished rows
    /// left in `results`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        module: String,
        store: Arc<dyn SharedStore>,
        config: PoolConfig,
        shared: Arc<Shared>,
        stats: Option<Arc<ModuleStats>>,
        lanes: Lanes,
        commands: mpsc::UnboundedReceiver<Command>,
        results: Arc<Results>,
    ) -> Executor {
        let (events_tx, events) = mpsc::unbounded_channel();
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
        Executor {
            module: Arc::from(module),
            store,
            config,
            shared,
            stats,
            lanes,
            slots,
            commands,
            events,
            events_tx,
            directs: VecDeque::new(),
            results,
            quiet_since: None,
            stopping: None,
            stop_deadline: None,
        }
    }

    /// Runs until the listener stops the pool or is gone.
    pub(super) async fn run(mut self) {
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
            SlotState::Busy(Task::Direct { reply, .. }) => {
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
                let event = failure.event(job.transaction_id, job.invocation());
                self.write(Write::Fail(row.seq, Box::new(event)));
            }
            // It was encoded by this process: cannot happen; never lose it silently.
            Err(e) => {
                tracing::error!(module = %self.module, seq = row.seq, error = %e, call_error = %failure.error, "a failed asynchronous call does not read back; it stays in the queue");
            }
        }
    }

    fn row_done(&mut self) {
        self.shared.removed();
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
            SlotState::Busy(Task::Direct { reply, .. }) => {
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
    /// when nothing else runs), then queued rows in order. Nothing while a lifecycle
    /// method runs, nor while stopping.
    fn hand_out(&mut self) {
        while self.stopping.is_none() && !self.alone_running() {
            let Some(index) = self
                .slots
                .iter()
                .position(|s| matches!(s.state, SlotState::Idle))
            else {
                return;
            };
            let Some((task, message)) = self.next_task() else {
                return;
            };
            self.send(index, task, message);
        }
    }

    /// What an idle worker gets next, if anything may run now.
    fn next_task(&mut self) -> Option<(Task, ToWorker)> {
        let Some(front) = self.directs.front() else {
            let row = self.lanes.take_ready()?;
            let message = ToWorker::Call {
                id: row.seq,
                job: row.bytes.clone(),
            };
            return Some((Task::Row(row.seq), message));
        };
        let alone = matches!(front.what, DirectWhat::Lifecycle(_));
        let busy = self
            .slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Busy(_)));
        if alone && busy {
            return None;
        }
        let direct = self.directs.pop_front()?;
        let message = match direct.what {
            DirectWhat::Call(job) => ToWorker::Call {
                id: 0,
                job: job.encode(),
            },
            DirectWhat::Lifecycle(step) => ToWorker::Lifecycle { id: 0, step },
        };
        Some((
            Task::Direct {
                reply: direct.reply,
                alone,
            },
            message,
        ))
    }

    /// Whether `initialize` or `clean` runs (then nothing else of the module may).
    fn alone_running(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, SlotState::Busy(Task::Direct { alone: true, .. })))
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
        self.results.push(&self.module, write);
    }

    /// Figures for `status` and the metrics.
    fn publish(&self) {
        let Some(stats) = &self.stats else {
            return;
        };
        let q = &stats.queue;
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

    /// `post_run` for the workers that ran; the workers' channels close with the slots,
    /// and they exit. What they finished waits in the results for the listener.
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
