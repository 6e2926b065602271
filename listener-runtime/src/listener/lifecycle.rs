//! Module lifecycle (semantics §6): which modules need initializing, and initializing one
//! — `clean`, `initialize`, drop its old registrations, then deliver every object matching
//! its filter as a create (classic `n`), parents before children, registering it on each
//! object that took the call. Progress is committed as it goes, so an initialization
//! interrupted by a crash resumes after the last committed object instead of starting
//! over (UDL starts over).

use std::cmp::Ordering;
use std::ops::ControlFlow;
use std::time::SystemTime;

use listener_core::{Command, Entry};

use super::cache::{Cache, CacheError, FailedEvent, ModulePhase, ModuleState};
use super::invoke::{Invocation, Module, RetryPolicy};
use crate::registry::{ApiKind, ModuleRegistration};

/// Objects committed per cache transaction during an initialization.
const BATCH: usize = 200;

/// Why a module is (re)initialized at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
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
pub fn needs_initialization(
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

/// Parents before children: by depth, then by normalized DN (a total, stable order, so a
/// resume token — the last object's position — means the same after a restart).
pub fn initialization_order(a: &Entry, b: &Entry) -> Ordering {
    a.dn()
        .len()
        .cmp(&b.dn().len())
        .then_with(|| a.dn().normalized().cmp(b.dn().normalized()))
}

/// The resume token of an object: its place in [`initialization_order`].
fn token(entry: &Entry) -> String {
    format!("{}\n{}", entry.dn().len(), entry.dn().normalized())
}

fn after_token(entry: &Entry, token: &str) -> bool {
    let Some((depth, dn)) = token.split_once('\n') else {
        return true;
    };
    let depth: usize = depth.parse().unwrap_or(0);
    (entry.dn().len(), entry.dn().normalized()) > (depth, dn)
}

/// How an initialization ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initialized {
    /// Objects delivered and registered.
    pub delivered: u64,
    /// Objects whose create failed (recorded as failed events).
    pub failed: u64,
}

/// Why an initialization stopped.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
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
        "module {module}: initialization stopped after {done} of {total} objects; it resumes at the next start"
    )]
    Stopped {
        /// The module.
        module: String,
        /// Objects delivered (or failed) so far, this run and earlier ones.
        done: u64,
        /// Objects to deliver.
        total: u64,
    },
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

/// Initializes `module` with `objects` (everything matching its filter under the base, in
/// any order). `progress(done, total)` is told after each committed batch; returning
/// `Break` stops there with [`InitError::Stopped`] (a shutdown: nothing is lost, the next
/// start resumes after that batch).
pub async fn initialize(
    module: &mut Module,
    reason: &Reason,
    mut objects: Vec<Entry>,
    cache: &Cache,
    policy: &RetryPolicy,
    mut progress: impl FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<Initialized, InitError> {
    let registration = module.registration();
    let name = registration.name;
    let resume_after = match reason {
        Reason::Resume(token) => token.clone(),
        _ => None,
    };
    if !matches!(reason, Reason::Resume(_)) {
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
                w.set_module_state(
                    name,
                    &state(
                        registration,
                        ModulePhase::Failed {
                            error: format!("{step} failed: {error}"),
                        },
                    ),
                )?;
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
    }

    objects.sort_by(initialization_order);
    let total = objects.len() as u64;
    let start = match &resume_after {
        Some(token) => objects.partition_point(|e| !after_token(e, token)),
        None => 0,
    };
    let mut outcome = Initialized {
        delivered: 0,
        failed: 0,
    };
    for chunk in objects[start..].chunks(BATCH) {
        // The batch's objects go into the cache with the module registered *before* the
        // calls: after a crash during them, an object deleted meanwhile is not found again
        // by the resumed initialization, but its delete (replayed after it) finds it
        // cached and registered, so the module that may have got the create also gets
        // the remove. (Registered after the calls, it was silently left behind.)
        let mut w = cache.write()?;
        for entry in chunk {
            let mut modules = match w.entry(entry.dn())? {
                Some(cached) => cached.modules,
                None => Default::default(),
            };
            modules.insert(name.to_owned());
            w.put_entry(entry, modules)?;
        }
        w.commit()?;
        let mut results = Vec::with_capacity(chunk.len());
        for entry in chunk {
            let invocation = match registration.kind {
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
            };
            results.push(module.call(invocation, policy).await);
        }
        // Then the failures (unregistered again, recorded as failed events) and the
        // progress token, together.
        let mut w = cache.write()?;
        for (entry, result) in chunk.iter().zip(results) {
            match result {
                Ok(()) => outcome.delivered += 1,
                Err(failure) => {
                    w.add_failed_event(
                        name,
                        &FailedEvent {
                            transaction_id: 0,
                            dn: entry.dn().clone(),
                            entry_uuid: entry.first_str("entryUUID").unwrap_or_default().to_owned(),
                            command: Command::Initialize,
                            old: None,
                            new: Some(entry.clone()),
                            error: failure.error,
                            attempts: failure.attempts,
                            time: SystemTime::now(),
                        },
                    )?;
                    let mut modules = match w.entry(entry.dn())? {
                        Some(cached) => cached.modules,
                        None => Default::default(),
                    };
                    modules.remove(name);
                    w.set_registrations(entry.dn(), modules)?;
                    outcome.failed += 1;
                }
            }
        }
        let last = chunk.last().map(token);
        w.set_module_state(
            name,
            &state(registration, ModulePhase::Initializing { progress: last }),
        )?;
        w.commit()?;
        let done = start as u64 + outcome.delivered + outcome.failed;
        if progress(done, total).is_break() {
            return Err(InitError::Stopped {
                module: name.to_owned(),
                done,
                total,
            });
        }
    }
    let mut w = cache.write()?;
    w.set_module_state(name, &state(registration, ModulePhase::Ready))?;
    w.commit()?;
    Ok(outcome)
}

#[cfg(test)]
mod tests;
