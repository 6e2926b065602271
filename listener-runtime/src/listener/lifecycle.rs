//! Module lifecycle (semantics §6): which modules need initializing, and initializing one
//! — `clean`, `initialize`, drop its old registrations, then deliver every object matching
//! its filter as a create (classic `n`), parents before children, registering it on each
//! object that took the call.
//!
//! The objects arrive as a stream (the search is still running while the first ones are
//! delivered, and the directory is never held in memory at once) and are delivered in
//! batches, each committed with the module registered on its objects *before* their
//! calls and recorded as the batch in flight. An initialization interrupted by a crash
//! resumes instead of starting over (UDL starts over): the resumed one skips the objects
//! the module is registered on, except those of the batch that was in flight, which it
//! delivers again (at least once). An object whose create failed is not registered and
//! is tried again by a resumed initialization.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::time::SystemTime;

use futures_util::{Stream, StreamExt};
use listener_core::{Command, Entry};

use super::cache::{Cache, CacheError, FailedEvent, ModulePhase, ModuleState, WriteTxn};
use super::call::{Invocation, Module, RetryPolicy};
use super::fetch::FetchError;
use crate::api::registry::{ApiKind, ModuleRegistration};
use crate::workers::job::Job;

pub(crate) mod order;

/// Objects committed per cache transaction during an initialization: larger batches
/// share B-tree pages and commits (measured: 1,000 a batch initializes ~20% faster than
/// 200); smaller ones repeat less after a crash (the batch in flight is delivered again).
const BATCH: usize = 500;

/// Why a module is (re)initialized at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    /// It has no state: new in this binary, or cleared by `resync`.
    New,
    /// Its filter or attribute list differs from the one it was initialized with.
    ConfigChanged,
    /// An earlier initialization was interrupted; it continues after this object.
    Resume(Option<String>),
    /// An earlier initialization failed (`clean`/`initialize` returned an error).
    Retry,
}

/// Whether `registration` needs initializing, given its persisted state.
pub(crate) fn needs_initialization(
    registration: &ModuleRegistration,
    state: Option<&ModuleState>,
) -> Option<Reason> {
    let Some(state) = state else {
        return Some(Reason::New);
    };
    let attributes: Vec<String> = registration
        .attributes
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    if state.filter != registration.ldap_filter || state.attributes != attributes {
        return Some(Reason::ConfigChanged);
    }
    match &state.phase {
        ModulePhase::Ready => None,
        ModulePhase::Initializing { progress } => Some(Reason::Resume(progress.clone())),
        ModulePhase::Failed { .. } => Some(Reason::Retry),
    }
}

/// The progress token of an initialization (the module state's `progress`): the keys
/// (see `order::key`) of the objects of the batch in flight, whose calls may not all have
/// happened. `None` for a token this version did not write: nothing is skipped then.
fn in_flight(token: &str) -> Option<HashSet<u64>> {
    let keys = token.strip_prefix(TOKEN_PREFIX)?;
    keys.split(',')
        .filter(|k| !k.is_empty())
        .map(|k| u64::from_str_radix(k, 16).ok())
        .collect()
}

fn in_flight_token<'e>(batch: impl Iterator<Item = &'e Entry>) -> String {
    let mut token = TOKEN_PREFIX.to_owned();
    for (i, entry) in batch.enumerate() {
        if i > 0 {
            token.push(',');
        }
        token.push_str(&format!("{:x}", order::key(entry.dn().normalized())));
    }
    token
}

/// Marks the tokens of this resume scheme (an older listener wrote a position instead).
const TOKEN_PREFIX: &str = "in-flight:";

/// How an initialization ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Initialized {
    /// Objects delivered and registered.
    pub delivered: u64,
    /// Objects whose create failed (recorded as failed events).
    pub failed: u64,
}

/// Why an initialization stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitError {
    /// The module's `clean` or `initialize` failed: it stays not READY.
    #[error("module {module}: {step} failed: {error}")]
    Module {
        /// The module.
        module: String,
        /// `clean` or `initialize`.
        step: &'static str,
        /// The module's error.
        error: String,
    },
    /// The progress callback asked to stop (the listener is shutting down). What was
    /// delivered is committed; the initialization resumes at the next start.
    #[error(
        "module {module}: initialization stopped after {done} objects; it resumes at the next start"
    )]
    Stopped {
        /// The module.
        module: String,
        /// Objects delivered, failed or skipped (delivered before a resume) so far.
        done: u64,
    },
    /// The search failed (e.g. the connection was lost). What was delivered is committed;
    /// initializing again resumes.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

fn state(registration: &ModuleRegistration, phase: ModulePhase) -> ModuleState {
    ModuleState {
        phase,
        filter: registration.ldap_filter.to_owned(),
        attributes: registration
            .attributes
            .iter()
            .map(|a| (*a).to_owned())
            .collect(),
        changed: SystemTime::now(),
    }
}

/// Initializes `module` with `objects` (everything matching its filter under the base,
/// parents before children, e.g. [`super::fetch::Fetcher::initialization_stream`]).
/// `progress(done)` is told after each batch's calls but the last; returning `Break`
/// stops there with [`InitError::Stopped`] (a shutdown: nothing is lost, the next start
/// resumes after that batch). An error in the stream ends the initialization with
/// [`InitError::Fetch`]; initializing again with the reason [`needs_initialization`] then
/// gives resumes.
pub(crate) async fn initialize<S>(
    module: &mut Module,
    reason: &Reason,
    mut objects: S,
    cache: &Cache,
    policy: &RetryPolicy,
    mut progress: impl FnMut(u64) -> ControlFlow<()>,
) -> Result<Initialized, InitError>
where
    S: Stream<Item = Result<Entry, FetchError>> + Unpin,
{
    let registration = module.registration();
    let name = registration.name;
    // On a resume: the objects whose calls may not have happened (`None`: all of them).
    let resume: Option<Option<HashSet<u64>>> = match reason {
        Reason::Resume(token) => Some(token.as_deref().and_then(in_flight)),
        _ => None,
    };
    if resume.is_none() {
        start_afresh(module, cache).await?;
    }

    let mut outcome = Initialized {
        delivered: 0,
        failed: 0,
    };
    let mut skipped = 0;
    // The previous batch's failures, committed with the next batch (one commit a batch).
    let mut failures: Vec<(Entry, super::call::Failure)> = Vec::new();
    let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
    let mut ended = false;
    while !ended {
        batch.clear();
        while batch.len() < BATCH {
            match objects.next().await {
                Some(entry) => batch.push(entry?),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        // The batch's objects go into the cache with the module registered *before* the
        // calls, and the batch is recorded as in flight: after a crash during them, the
        // resumed initialization delivers them again, and an object deleted meanwhile
        // (not found again) is found cached and registered by its delete, so the module
        // that may have got the create also gets the remove.
        let mut w = cache.write()?;
        record_failures(&mut w, name, failures.drain(..), &mut outcome)?;
        let before = batch.len();
        batch = store_batch(&mut w, name, batch, resume.as_ref())?;
        skipped += (before - batch.len()) as u64;
        w.set_module_state(
            name,
            &state(
                registration,
                ModulePhase::Initializing {
                    progress: Some(in_flight_token(batch.iter())),
                },
            ),
        )?;
        w.commit()?;
        for (entry, result) in deliver(module, batch.drain(..), policy).await {
            match result {
                Ok(()) => outcome.delivered += 1,
                Err(failure) => failures.push((entry, failure)),
            }
        }
        let done = skipped + outcome.delivered + outcome.failed + failures.len() as u64;
        if !ended && progress(done).is_break() {
            let mut w = cache.write()?;
            record_failures(&mut w, name, failures.drain(..), &mut outcome)?;
            w.set_module_state(
                name,
                &state(
                    registration,
                    ModulePhase::Initializing {
                        progress: Some(TOKEN_PREFIX.to_owned()),
                    },
                ),
            )?;
            w.commit()?;
            return Err(InitError::Stopped {
                module: name.to_owned(),
                done,
            });
        }
    }
    let mut w = cache.write()?;
    record_failures(&mut w, name, failures.drain(..), &mut outcome)?;
    w.set_module_state(name, &state(registration, ModulePhase::Ready))?;
    w.commit()?;
    Ok(outcome)
}

/// The creates of a batch's objects, in order; an asynchronous module's go to its
/// workers side by side (as many at once as it has workers), since they are for
/// different objects.
async fn deliver(
    module: &mut Module,
    batch: impl Iterator<Item = Entry>,
    policy: &RetryPolicy,
) -> Vec<(Entry, Result<(), super::call::Failure>)> {
    let kind = module.registration().kind;
    let Some(pool) = module.pool().cloned() else {
        let mut results = Vec::new();
        for entry in batch {
            let result = module.call(initial_call(kind, &entry), policy).await;
            results.push((entry, result));
        }
        return results;
    };
    let workers = module.registration().workers().unwrap_or(1).max(1) as usize;
    let calls = batch.map(|entry| {
        let pool = pool.clone();
        async move {
            let result = match Job::from_invocation(0, initial_call(kind, &entry)) {
                Some(job) => pool.call(job).await,
                None => Err(super::call::Failure {
                    error: "internal error: a classic call for an asynchronous module".into(),
                    attempts: 0,
                }),
            };
            (entry, result)
        }
    });
    futures_util::stream::iter(calls)
        .buffered(workers)
        .collect()
        .await
}

/// A fresh initialization's start: the module's state says INITIALIZING, then `clean`
/// and `initialize` run, then the module is unregistered from every object (the
/// objects' creates register it again).
async fn start_afresh(module: &mut Module, cache: &Cache) -> Result<(), InitError> {
    let registration = module.registration();
    let name = registration.name;
    let mut w = cache.write()?;
    w.set_module_state(
        name,
        &state(registration, ModulePhase::Initializing { progress: None }),
    )?;
    w.commit()?;
    for (step, result) in [
        ("clean", module.clean().await),
        ("initialize", module.initialize().await),
    ] {
        if let Err(error) = result {
            let error = format!("{error:#}");
            let mut w = cache.write()?;
            let failed = ModulePhase::Failed {
                error: format!("{step} failed: {error}"),
            };
            w.set_module_state(name, &state(registration, failed))?;
            w.commit()?;
            return Err(InitError::Module {
                module: name.to_owned(),
                step,
                error,
            });
        }
    }
    let mut w = cache.write()?;
    w.unregister_module_everywhere(name)?;
    w.commit()?;
    Ok(())
}

/// Puts the batch's objects into the cache with module `name` registered, before its
/// calls; returns the objects still to deliver (on a resume, those delivered before the
/// crash are skipped).
fn store_batch(
    w: &mut WriteTxn,
    name: &str,
    batch: Vec<Entry>,
    resume: Option<&Option<HashSet<u64>>>,
) -> Result<Vec<Entry>, CacheError> {
    let mut kept = Vec::with_capacity(batch.len());
    for entry in batch {
        let (mut modules, unchanged) = match w.held(&entry)? {
            Some(held) => (held.modules, held.unchanged),
            None => (Default::default(), false),
        };
        let delivered_before = resume.is_some_and(|in_flight| {
            modules.contains(name)
                && in_flight
                    .as_ref()
                    .is_some_and(|keys| !keys.contains(&order::key(entry.dn().normalized())))
        });
        if delivered_before {
            continue;
        }
        modules.insert(name.to_owned());
        // The object as cached (another module's initialization stored it): only the
        // registration changes, and its record is not written again.
        if unchanged {
            w.set_registrations(entry.dn(), modules)?;
        } else {
            w.put_entry(&entry, modules)?;
        }
        kept.push(entry);
    }
    Ok(kept)
}

/// The call initialization makes for each matching object (semantics §6): `create` in
/// the new and async APIs, `n` in the classic API.
fn initial_call(kind: ApiKind, entry: &Entry) -> Invocation<'_> {
    match kind {
        ApiKind::Classic => Invocation::Classic {
            dn: entry.dn(),
            new: Some(entry),
            old: None,
            command: Command::Initialize,
        },
        ApiKind::New | ApiKind::Async => Invocation::Create {
            dn: entry.dn(),
            new: entry,
        },
    }
}

/// Records failed creates as failed events and unregisters the module from their objects
/// (so their next change reaches it as new).
fn record_failures(
    w: &mut super::cache::WriteTxn,
    name: &str,
    failures: impl Iterator<Item = (Entry, super::call::Failure)>,
    outcome: &mut Initialized,
) -> Result<(), CacheError> {
    for (entry, failure) in failures {
        let mut modules = match w.entry(entry.dn())? {
            Some(cached) => cached.modules,
            None => Default::default(),
        };
        modules.remove(name);
        w.set_registrations(entry.dn(), modules)?;
        w.add_failed_event(
            name,
            &FailedEvent {
                transaction_id: 0,
                dn: entry.dn().clone(),
                entry_uuid: entry.first_str("entryUUID").unwrap_or_default().to_owned(),
                command: Command::Initialize,
                old: None,
                new: Some(entry),
                error: failure.error,
                attempts: failure.attempts,
                time: SystemTime::now(),
            },
        )?;
        outcome.failed += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
