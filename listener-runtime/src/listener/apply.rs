//! The ordered apply stage: one decided [`Step`] becomes module calls (per the dispatch
//! plan) and one atomic cache commit — the new cache state, the registrations, failed
//! events and the transaction ID together (semantics §4 step 4). A crash before the commit
//! replays the transaction; modules see a change at least once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use listener_core::{Command, Dn, Entry};

use super::cache::{Cache, CacheError, Intents, PendingCreate, WriteTxn};
use super::call::{Invocation, Module, RetryPolicy};
use super::decide::Step;
use super::dispatch::{self, Call, Change, DeleteCause, ModuleSpec, Registration};
use crate::replication::Pipeline;
use crate::workers::lanes::{NewRow, Row};

/// The modules, their dispatch specs and how failing calls are retried.
pub(crate) struct Applier {
    /// The loaded modules, in the same order as `specs`.
    pub modules: Vec<Module>,
    /// What dispatch needs of each module.
    pub specs: Vec<ModuleSpec>,
    /// Retries of a failing call.
    pub policy: RetryPolicy,
    /// `failed skip`: the transaction and blocking module whose failure becomes a failed
    /// event instead of halting processing again (cleared once that transaction is
    /// applied).
    pub skip: Option<(u64, String)>,
    /// The writes the `replication` module handed over: done before any other module is
    /// called (it sees a replica that holds the change).
    pub replica_writes: Option<Arc<Pipeline>>,
}

impl Applier {
    /// An applier committing every transaction durably on its own (no intents file).
    pub(crate) fn new(
        modules: Vec<Module>,
        specs: Vec<ModuleSpec>,
        policy: RetryPolicy,
    ) -> Applier {
        Applier {
            modules,
            specs,
            policy,
            skip: None,
            replica_writes: None,
        }
    }

    /// An applier of `registration` alone, retrying once after 1 ms (for unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests(
        registration: &'static crate::api::registry::ModuleRegistration,
    ) -> Applier {
        let spec = ModuleSpec::from_registration(registration, listener_core::Schema::builtin())
            .expect("the test module's configuration compiles");
        Applier::new(
            vec![Module::load(registration)],
            vec![spec],
            RetryPolicy {
                attempts: 2,
                first_delay: std::time::Duration::from_millis(1),
                max_delay: std::time::Duration::from_millis(1),
            },
        )
    }

    /// Keeps the modules whose `keep` is true (in order), dropping the others.
    pub(crate) fn retain(&mut self, keep: &[bool]) {
        let mut keep_module = keep.iter();
        self.modules.retain(|_| keep_module.next() == Some(&true));
        let mut keep_spec = keep.iter();
        self.specs.retain(|_| keep_spec.next() == Some(&true));
    }
}

/// What one applied transaction did, for logs and tests.
#[derive(Debug, Default, Clone)]
pub(crate) struct Applied {
    /// Module calls made that succeeded.
    pub calls: usize,
    /// Module calls that failed every attempt (now failed events).
    pub failures: usize,
    /// A `blocking` module failed every attempt: nothing was committed, and the caller
    /// must not go on before the transaction is applied.
    pub halted: Option<Halted>,
    /// A write the `replication` module handed over failed: nothing was committed, and
    /// the caller goes back to its last durable transaction (see
    /// [`crate::replication::Pipeline`]).
    pub rewind: bool,
    /// Calls of asynchronous modules, written to their queues in this transaction's
    /// commit: (module index, row), for the caller to hand to the modules' pools.
    pub queued: Vec<(usize, Row)>,
    /// Calls of asynchronous modules in a group's open transaction: the group writes them
    /// to their queues when it commits (see [`super::group::Group`]).
    pub unsaved: Vec<(usize, NewRow)>,
    /// Time spent filtering and calling the modules (queueing asynchronous calls).
    pub modules_time: Duration,
    /// Time spent writing the cache.
    pub cache_time: Duration,
}

/// A `blocking` module that failed every attempt of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Halted {
    /// The module.
    pub module: String,
    /// Its last error.
    pub error: String,
}

impl Applier {
    /// Applies `step` for transaction `id` (`command` tells a real delete from an object
    /// that is merely gone) and commits it with `last_id = id`.
    pub(crate) async fn apply(
        &mut self,
        cache: &Cache,
        id: u64,
        command: Command,
        step: Step,
    ) -> Result<Applied, CacheError> {
        self.apply_to(Sink::Cache(cache), id, command, step).await
    }

    /// [`Applier::apply`] inside the open write transaction `w` of a group: nothing is
    /// committed (the caller commits the group). Pending creates go to the group's
    /// `intents` file.
    pub(crate) async fn apply_in(
        &mut self,
        w: &mut WriteTxn,
        intents: &mut Intents,
        id: u64,
        command: Command,
        step: Step,
    ) -> Result<Applied, CacheError> {
        self.apply_to(Sink::Open(w, intents), id, command, step)
            .await
    }

    async fn apply_to(
        &mut self,
        mut sink: Sink<'_>,
        id: u64,
        command: Command,
        step: Step,
    ) -> Result<Applied, CacheError> {
        let empty = BTreeSet::new();
        let (change, registered, write): (Option<Change<'_>>, &BTreeSet<String>, Write<'_>) =
            match &step {
                Step::Stash(_) | Step::Nothing => (None, &empty, Write::Nothing),
                Step::Update { old, new } => (
                    Some(Change::Update {
                        old: old.as_ref().map(|c| &c.entry),
                        new,
                    }),
                    old.as_ref().map_or(&empty, |c| &c.modules),
                    Write::Put(new),
                ),
                Step::Delete { dn, old } => (
                    Some(Change::Delete {
                        dn,
                        old: old.as_ref().map(|c| &c.entry),
                        cause: if command == Command::Delete {
                            DeleteCause::Deleted
                        } else {
                            DeleteCause::Gone
                        },
                    }),
                    old.as_ref().map_or(&empty, |c| &c.modules),
                    if old.is_some() {
                        Write::Remove(dn)
                    } else {
                        Write::Nothing
                    },
                ),
                Step::Move {
                    old_dn,
                    old,
                    patched,
                    fresh,
                } => (
                    Some(Change::Move {
                        old_dn,
                        old: &old.entry,
                        patched,
                        fresh: fresh.as_ref(),
                    }),
                    &old.modules,
                    Write::Move(old_dn, fresh.as_ref().unwrap_or(patched)),
                ),
            };

        let mut applied = Applied::default();
        let dispatch_started = Instant::now();
        let mut modules = registered.clone();
        let mut failed = Vec::new();
        let mut queued = Vec::new();
        if let Some(change) = &change {
            let plans = dispatch::plan(change, registered, &self.specs);
            // Modules about to get this object as new: noted durably first, so a crash
            // before the commit below cannot leave them holding an object the replay no
            // longer finds (see PendingCreate; process::replay_pending_create).
            // Asynchronous modules are not among them: their calls run only once the
            // commit holding them is durable.
            let creates: BTreeSet<String> = plans
                .iter()
                .filter(|p| p.on_success == Registration::Register && !p.calls.is_empty())
                .filter(|p| self.modules[p.module].pool().is_none())
                .map(|p| self.modules[p.module].name())
                .filter(|name| !registered.contains(*name))
                .map(str::to_owned)
                .collect();
            let target = match &write {
                Write::Put(entry) | Write::Move(_, entry) => Some(*entry),
                Write::Nothing | Write::Remove(_) => None,
            };
            if let Some(entry) = target
                && !creates.is_empty()
            {
                let pending = PendingCreate {
                    transaction_id: id,
                    entry: entry.clone(),
                    modules: creates,
                };
                match &mut sink {
                    Sink::Open(_, intents) => intents.append(&pending)?,
                    Sink::Cache(cache) => {
                        let mut w = cache.write()?;
                        w.set_pending_create(&pending)?;
                        w.commit()?;
                    }
                }
            }
            for plan in plans {
                let module = &mut self.modules[plan.module];
                let name = module.name();
                // Also when nothing is under way: the last write may have failed.
                if let Some(writes) = &self.replica_writes
                    && module.pool().is_none()
                    && name != crate::replication::NAME
                    && writes.settle().await.is_err()
                {
                    applied.rewind = true;
                    return Ok(applied);
                }
                let mut failure = None;
                for call in &plan.calls {
                    // The DN last: it may contain spaces, and tests read it up to the end.
                    tracing::trace!(module = %name, command = %call.command(), dn = %call.dn(), "module call");
                    if module.pool().is_some() {
                        // Asynchronous: queued in this transaction's commit (the outbox);
                        // the module counts as having taken the change.
                        queued.extend(
                            NewRow::of(id, &invocation(call)).map(|row| (plan.module, row)),
                        );
                        continue;
                    }
                    match module.call(invocation(call), &self.policy).await {
                        Ok(()) => applied.calls += 1,
                        Err(f) => {
                            failure = Some((call, f));
                            break;
                        }
                    }
                }
                match failure {
                    None => match plan.on_success {
                        // Most modules keep the registration they had: no new String then.
                        Registration::Register => {
                            if !modules.contains(name) {
                                modules.insert(name.to_owned());
                            }
                        }
                        Registration::Unregister => {
                            modules.remove(name);
                        }
                        Registration::Keep => {}
                    },
                    Some((_, failure))
                        if module.registration().blocking
                            && self.skip.as_ref() != Some(&(id, name.to_owned())) =>
                    {
                        // A blocking module must not miss or reorder a change: nothing is
                        // committed and the transaction is tried again (semantics §5 rule 4).
                        applied.halted = Some(Halted {
                            module: name.to_owned(),
                            error: failure.error,
                        });
                        return Ok(applied);
                    }
                    Some((call, failure)) => {
                        // Unregistered, so the module's next change of the object reaches
                        // it as new (semantics §5 rule 4).
                        modules.remove(name);
                        applied.failures += 1;
                        failed.push((name, failure.event(id, invocation(call))));
                    }
                }
            }
        }

        let cache_started = Instant::now();
        applied.modules_time = cache_started - dispatch_started;
        let mut own = None;
        let w: &mut WriteTxn = match &mut sink {
            Sink::Cache(cache) => own.insert(cache.write()?),
            Sink::Open(w, _) => w,
        };
        match write {
            Write::Nothing => {}
            Write::Put(entry) => w.put_entry(entry, &modules)?,
            Write::Remove(dn) => {
                w.remove_entry(dn)?;
            }
            Write::Move(old_dn, entry) => w.move_entry(old_dn, entry, &modules)?,
        }
        for (module, event) in &failed {
            w.add_failed_event(module, event)?;
        }
        w.set_last_id(id)?;
        if let Some(mut own) = own {
            for (index, row) in queued {
                let seq = own.push_job(self.modules[index].name(), &row.bytes)?;
                applied.queued.push((index, row.stored(seq)));
            }
            own.clear_pending_create()?;
            own.commit()?;
        } else {
            applied.unsaved = queued;
        }
        applied.cache_time = cache_started.elapsed();
        // The skipped transaction is applied: a later failure of the module halts again.
        if self
            .skip
            .as_ref()
            .is_some_and(|(skipped, _)| *skipped <= id)
        {
            self.skip = None;
        }
        Ok(applied)
    }
}

/// Where an applied transaction is written.
enum Sink<'a> {
    /// A write transaction of its own, committed at once.
    Cache(&'a Cache),
    /// The open transaction of a group, and the group's intents file.
    Open(&'a mut WriteTxn, &'a mut Intents),
}

/// The cache change of a step.
enum Write<'a> {
    Nothing,
    Put(&'a Entry),
    Remove(&'a Dn),
    Move(&'a Dn, &'a Entry),
}

/// A dispatch call as a module invocation.
pub(crate) fn invocation<'c>(call: &'c Call<'_>) -> Invocation<'c> {
    match call {
        Call::Create { dn, new } => Invocation::Create { dn, new },
        Call::Modify {
            dn,
            old,
            new,
            old_dn,
        } => Invocation::Modify {
            dn,
            old,
            new,
            old_dn: *old_dn,
        },
        Call::Remove { dn, old } => Invocation::Remove { dn, old },
        Call::Classic {
            dn,
            new,
            old,
            command,
        } => Invocation::Classic {
            dn,
            new: *new,
            old: *old,
            command: *command,
        },
    }
}

#[cfg(test)]
mod tests;
