//! What the cache hands out and takes in: plain values, independent of the on-disk form.

use std::collections::BTreeSet;
use std::time::SystemTime;

use listener_core::{Command, Dn, Entry};

/// A cached object: its last known state and the modules registered on it (those whose
/// filter it matched when they were last called for it, semantics §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEntry {
    /// The object as last seen.
    pub entry: Entry,
    /// Names of the modules registered on it.
    pub modules: BTreeSet<String>,
}

/// Where a module is in its lifecycle (semantics §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModulePhase {
    /// Initialization has started and not finished; `progress` is the module runner's
    /// resume token (opaque here) so an interrupted initialization continues instead of
    /// starting over.
    Initializing {
        /// The resume token.
        progress: Option<String>,
    },
    /// Initialized: the module receives events.
    Ready,
    /// `clean()`/`initialize()` failed; the module gets no events until it is retried.
    Failed {
        /// The error shown by `modules` and `status`.
        error: String,
    },
}

/// A module's persisted state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleState {
    /// Where it is in its lifecycle.
    pub phase: ModulePhase,
    /// The filter the module was (or is being) initialized with; a different filter at
    /// start means it must be initialized again.
    pub filter: String,
    /// The attribute list it was initialized with (same reason as `filter`).
    pub attributes: Vec<String>,
    /// When `phase` last changed.
    pub changed: SystemTime,
}

/// A change a module could not take after its retries (semantics §5 rule 4), kept so the
/// `failed` CLI command can list and replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedEvent {
    /// The transaction that carried the change.
    pub transaction_id: u64,
    /// The object's DN.
    pub dn: Dn,
    /// The object's entryUUID (empty when unknown).
    pub entry_uuid: String,
    /// The call that failed, as its command letter.
    pub command: Command,
    /// The state before the change; `None` for a create.
    pub old: Option<Entry>,
    /// The state after the change; `None` for a delete.
    pub new: Option<Entry>,
    /// The module's last error.
    pub error: String,
    /// How many times the call was tried.
    pub attempts: u32,
    /// When the event was given up on.
    pub time: SystemTime,
}

/// Modules about to be called with a create for an object the cache does not record them
/// on, noted durably before the calls: the cache's commit (semantics §4 step 4) follows
/// the calls, so after a crash in between the cache does not show that those modules may
/// have seen the object. When the replayed transaction then finds the object gone (or
/// moved on), the listener delivers them a remove instead of nothing, so no module is
/// left holding an object that no longer exists there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingCreate {
    /// The transaction being processed.
    pub transaction_id: u64,
    /// The object as the modules are given it.
    pub entry: Entry,
    /// The modules that get the create.
    pub modules: BTreeSet<String>,
}
