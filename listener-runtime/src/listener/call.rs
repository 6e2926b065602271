//! Calling a module: the three APIs behind one interface, panics caught, retries with
//! backoff, the module's `error_handler`, and `pre_run` before the first call after start
//! or after a `post_run` (semantics §5 rule 4, §7).
//!
//! UDL logs a failing call and moves on, so the change is silently lost for that module.
//! Here a call that returns `Err` or panics is retried (bounded), and its final failure is
//! reported to the caller, which records it in the module's failed-events store.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use listener_core::{Command, Dn, Entry};

use super::cache::FailedEvent;
use crate::api::context::Context;
use crate::api::error::{HandlerError, HandlerResult};
use crate::api::registry::{ModuleInstance, ModuleRegistration};
use crate::ldap::Backoff;
use crate::workers::Pool;
use crate::workers::job::Job;
use crate::workers::wire::Lifecycle as WorkerStep;

/// One call of a module, borrowing the change's data.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Invocation<'a> {
    /// New/async API `create`.
    Create {
        /// The object's DN.
        dn: &'a Dn,
        /// Its state.
        new: &'a Entry,
    },
    /// New/async API `modify` (with `old_dn` for a move).
    Modify {
        /// The object's (new) DN.
        dn: &'a Dn,
        /// The state before.
        old: &'a Entry,
        /// The state after.
        new: &'a Entry,
        /// The DN before a move.
        old_dn: Option<&'a Dn>,
    },
    /// New/async API `remove`.
    Remove {
        /// The object's DN.
        dn: &'a Dn,
        /// Its last state.
        old: &'a Entry,
    },
    /// The classic handler with a command letter.
    Classic {
        /// The object's DN.
        dn: &'a Dn,
        /// The state after (none for `d`, `r`).
        new: Option<&'a Entry>,
        /// The state before (none for `a`, `n`).
        old: Option<&'a Entry>,
        /// The command letter.
        command: Command,
    },
}

impl<'a> Invocation<'a> {
    /// The DN, old and new state and command letter, as `error_handler` and the
    /// failed-events store see a call.
    pub(crate) fn parts(&self) -> (&'a Dn, Option<&'a Entry>, Option<&'a Entry>, Command) {
        match *self {
            Invocation::Create { dn, new } => (dn, None, Some(new), Command::Add),
            Invocation::Modify { dn, old, new, .. } => (dn, Some(old), Some(new), Command::Modify),
            Invocation::Remove { dn, old } => (dn, Some(old), None, Command::Delete),
            Invocation::Classic {
                dn,
                new,
                old,
                command,
            } => (dn, old, new, command),
        }
    }
}

/// How often and how patiently a failing call is retried.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RetryPolicy {
    /// Calls in all (1 = no retry).
    pub attempts: u32,
    /// The wait before the first retry; doubled for each further one.
    pub first_delay: Duration,
    /// The longest wait between retries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1-based).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let backoff = Backoff {
            initial: self.first_delay,
            max: self.max_delay,
            max_attempts: None,
        };
        backoff.delay(retry)
    }
}

/// A call that failed every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The last error (a panic's message included).
    pub error: String,
    /// How many times it was called.
    pub attempts: u32,
}

impl Failure {
    /// The failed event of `invocation`, carried by transaction `id`, after this failure.
    pub(crate) fn event(self, id: u64, invocation: Invocation<'_>) -> FailedEvent {
        let (dn, old, new, command) = invocation.parts();
        let uuid = new
            .or(old)
            .and_then(|e| e.first_str("entryUUID"))
            .unwrap_or_default()
            .to_owned();
        FailedEvent {
            transaction_id: id,
            dn: dn.clone(),
            entry_uuid: uuid,
            command,
            old: old.cloned(),
            new: new.cloned(),
            error: self.error,
            attempts: self.attempts,
            time: std::time::SystemTime::now(),
        }
    }
}

/// A loaded module: its registration and where its calls run.
pub(crate) struct Module {
    registration: &'static ModuleRegistration,
    runner: Runner,
    /// Where calls are counted, if anywhere.
    stats: Option<std::sync::Arc<super::stats::ModuleStats>>,
}

/// Where a module's calls run. (One per module, never moved: its size does not matter.)
#[allow(clippy::large_enum_variant)]
enum Runner {
    /// In this process: its instance and context.
    Here {
        instance: ModuleInstance,
        ctx: Context,
        /// Whether `pre_run` ran since start or since the last `post_run`.
        running: bool,
    },
    /// In the worker processes of an asynchronous module, which have their instances.
    Workers(Pool),
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.registration.name)
            .field("in_workers", &self.pool().is_some())
            .finish_non_exhaustive()
    }
}

impl Module {
    /// Makes the module's instance, to be called in this process.
    pub(crate) fn load(registration: &'static ModuleRegistration) -> Module {
        Module::with_instance(registration, registration.instantiate())
    }

    /// The module with `instance`, made otherwise than by its registration's constructor
    /// (the built-in `replication` module with the listener's pipeline).
    pub(crate) fn with_instance(
        registration: &'static ModuleRegistration,
        instance: ModuleInstance,
    ) -> Module {
        Module {
            registration,
            runner: Runner::Here {
                instance,
                ctx: Context::new(registration.name),
                running: false,
            },
            stats: None,
        }
    }

    /// The asynchronous module whose calls `pool`'s workers run.
    pub(crate) fn in_workers(registration: &'static ModuleRegistration, pool: Pool) -> Module {
        Module {
            registration,
            runner: Runner::Workers(pool),
            stats: None,
        }
    }

    /// The pool of worker processes, for a module whose calls run there (they are queued
    /// then, not made by [`Module::call`] inline).
    pub(crate) fn pool(&self) -> Option<&Pool> {
        match &self.runner {
            Runner::Workers(pool) => Some(pool),
            Runner::Here { .. } => None,
        }
    }

    /// Counts this module's calls, errors and call latency in `stats`.
    pub(crate) fn set_stats(&mut self, stats: std::sync::Arc<super::stats::ModuleStats>) {
        self.stats = Some(stats);
    }

    /// Gives the module's context the listener's LDAP connection and settings.
    pub(crate) fn connect(
        &mut self,
        ldap: super::fetch::Fetcher,
        settings: std::sync::Arc<crate::api::context::Settings>,
    ) {
        if let Runner::Here { ctx, .. } = &mut self.runner {
            ctx.connect(ldap, settings);
        }
    }

    /// Gives the module's context the store of shared variables and locks.
    pub(crate) fn share(&mut self, store: std::sync::Arc<dyn crate::shared::SharedStore>) {
        if let Runner::Here { ctx, .. } = &mut self.runner {
            ctx.share(store);
        }
    }

    /// The module's registration (its configuration).
    pub(crate) fn registration(&self) -> &'static ModuleRegistration {
        self.registration
    }

    /// The module's name.
    pub(crate) fn name(&self) -> &'static str {
        self.registration.name
    }

    /// Calls the module, retrying per `policy`. Before the first call after start or after
    /// a `post_run`, `pre_run` runs (a failing `pre_run` fails the call). In workers, the
    /// worker retries, and the call waits for its answer.
    pub(crate) async fn call(
        &mut self,
        invocation: Invocation<'_>,
        policy: &RetryPolicy,
    ) -> Result<(), Failure> {
        if let Runner::Workers(pool) = &self.runner {
            let Some(job) = Job::from_invocation(0, invocation) else {
                return Err(Failure {
                    error: wrong_api("a classic call").to_string(),
                    attempts: 0,
                });
            };
            return pool.call(job).await;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(invocation).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            // The module may handle the error itself (UCS's `error_handler`).
            let (dn, old, new, command) = invocation.parts();
            let handled = self.guarded(Lifecycle::ErrorHandler {
                dn,
                old,
                new,
                command,
                error,
            });
            let error = match handled.await {
                Ok(()) => return Ok(()),
                Err(error) => format!("{error:#}"),
            };
            if attempt >= policy.attempts.max(1) {
                tracing::warn!(
                    module = self.name(),
                    dn = %dn,
                    %command,
                    attempts = attempt,
                    error = %error,
                    "module call failed; recording it as a failed event"
                );
                return Err(Failure {
                    error,
                    attempts: attempt,
                });
            }
            let delay = policy.delay(attempt);
            tracing::info!(module = self.name(), dn = %dn, error = %error, retry_in = ?delay, "module call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&mut self, invocation: Invocation<'_>) -> HandlerResult {
        if let Runner::Here { running, .. } = &self.runner
            && !running
        {
            self.guarded(Lifecycle::PreRun).await?;
            if let Runner::Here { running, .. } = &mut self.runner {
                *running = true;
            }
        }
        let started = std::time::Instant::now();
        let result = self.guarded(Lifecycle::Call(invocation)).await;
        if let Some(stats) = &self.stats {
            stats.record(started.elapsed(), result.is_ok());
        }
        result
    }

    /// `post_run`, if `pre_run` ran since the last one. (A pool gives its workers
    /// `post_run` itself, when its queue has drained.)
    pub(crate) async fn post_run(&mut self) -> HandlerResult {
        match &mut self.runner {
            Runner::Here { running, .. } if *running => *running = false,
            _ => return Ok(()),
        }
        self.guarded(Lifecycle::PostRun).await
    }

    /// `clean` (before a re-initialization).
    pub(crate) async fn clean(&mut self) -> HandlerResult {
        match &self.runner {
            Runner::Workers(pool) => in_worker(pool.lifecycle(WorkerStep::Clean).await),
            Runner::Here { .. } => self.guarded(Lifecycle::Clean).await,
        }
    }

    /// `initialize`.
    pub(crate) async fn initialize(&mut self) -> HandlerResult {
        match &self.runner {
            Runner::Workers(pool) => in_worker(pool.lifecycle(WorkerStep::Initialize).await),
            Runner::Here { .. } => self.guarded(Lifecycle::Initialize).await,
        }
    }

    /// Runs one method of the module; a panic becomes an error naming the module.
    async fn guarded(&mut self, what: Lifecycle<'_>) -> HandlerResult {
        let name = self.registration.name;
        let Runner::Here { instance, ctx, .. } = &mut self.runner else {
            return Err(wrong_api("a call in this process"));
        };
        let result = AssertUnwindSafe(run(instance, ctx, what))
            .catch_unwind()
            .await;
        result.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(HandlerError::msg(format!(
                "module {name} panicked: {message}"
            )))
        })
    }
}

/// A worker's answer to a lifecycle method, as the method's result.
fn in_worker(result: Result<(), Failure>) -> HandlerResult {
    result.map_err(|f| HandlerError::msg(f.error))
}

/// A method of the module other than the change calls, or a change call.
enum Lifecycle<'a> {
    Call(Invocation<'a>),
    PreRun,
    PostRun,
    Clean,
    Initialize,
    ErrorHandler {
        dn: &'a Dn,
        old: Option<&'a Entry>,
        new: Option<&'a Entry>,
        command: Command,
        error: HandlerError,
    },
}

async fn run(
    instance: &mut ModuleInstance,
    ctx: &mut Context,
    what: Lifecycle<'_>,
) -> HandlerResult {
    match instance {
        ModuleInstance::Sync(h) => match what {
            Lifecycle::Call(Invocation::Create { dn, new }) => h.create(ctx, dn, new),
            Lifecycle::Call(Invocation::Modify {
                dn,
                old,
                new,
                old_dn,
            }) => h.modify(ctx, dn, old, new, old_dn),
            Lifecycle::Call(Invocation::Remove { dn, old }) => h.remove(ctx, dn, old),
            Lifecycle::Call(Invocation::Classic { .. }) => Err(wrong_api("a classic call")),
            Lifecycle::PreRun => h.pre_run(ctx),
            Lifecycle::PostRun => h.post_run(ctx),
            Lifecycle::Clean => h.clean(ctx),
            Lifecycle::Initialize => h.initialize(ctx),
            Lifecycle::ErrorHandler {
                dn,
                old,
                new,
                command,
                error,
            } => h.error_handler(ctx, dn, old, new, command, error),
        },
        ModuleInstance::Async(h) => match what {
            Lifecycle::Call(Invocation::Create { dn, new }) => h.create(ctx, dn, new).await,
            Lifecycle::Call(Invocation::Modify {
                dn,
                old,
                new,
                old_dn,
            }) => h.modify(ctx, dn, old, new, old_dn).await,
            Lifecycle::Call(Invocation::Remove { dn, old }) => h.remove(ctx, dn, old).await,
            Lifecycle::Call(Invocation::Classic { .. }) => Err(wrong_api("a classic call")),
            Lifecycle::PreRun => h.pre_run(ctx).await,
            Lifecycle::PostRun => h.post_run(ctx).await,
            Lifecycle::Clean => h.clean(ctx).await,
            Lifecycle::Initialize => h.initialize(ctx).await,
            Lifecycle::ErrorHandler {
                dn,
                old,
                new,
                command,
                error,
            } => h.error_handler(ctx, dn, old, new, command, error).await,
        },
        // The classic API has one function and no lifecycle methods.
        ModuleInstance::Classic(f) => match what {
            Lifecycle::Call(Invocation::Classic {
                dn,
                new,
                old,
                command,
            }) => f(ctx, dn, new, old, command),
            Lifecycle::Call(_) => Err(wrong_api("a new-API call")),
            Lifecycle::ErrorHandler { error, .. } => Err(error),
            Lifecycle::PreRun | Lifecycle::PostRun | Lifecycle::Clean | Lifecycle::Initialize => {
                Ok(())
            }
        },
    }
}

/// A dispatch bug, not a module's fault; it surfaces as the call's error.
fn wrong_api(what: &str) -> HandlerError {
    HandlerError::msg(format!(
        "internal error: {what} for a module of another API"
    ))
}

#[cfg(test)]
mod tests;
