//! Semantics §4 step 3: what one transaction means, given the cached state and what LDAP
//! holds now. Pure: the caller looks the cache up, fetches, and applies the [`Step`].
//!
//! * `m`: an object that now lives at another DN has moved since; nothing now ("delay until
//!   moved": the later r/a pair delivers its final state). Otherwise an update.
//! * `a`: completes a move when the previous transaction was its `r`; otherwise an update
//!   (also for an object the cache already has).
//! * `d`: a delete with the cached old state, even if something new exists at that DN now
//!   (its own `a` comes later).
//! * `r`: stashed with the cached entry; nothing is called or committed until its `a`.
//! * An object LDAP does not return (gone, or hidden from the listener by ACLs) counts as
//!   deleted.

use listener_core::{Command, Dn, Entry, Schema};

use super::cache::{CachedEntry, PendingCreate};

/// One transaction as the listener gets it from the notifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The transaction ID.
    pub id: u64,
    /// The DN as the notifier logged it.
    pub dn: Dn,
    /// `a`, `m`, `d` or `r`.
    pub command: Command,
}

/// The first half of a move, waiting for its `a`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stash {
    /// The `r` transaction's ID.
    pub id: u64,
    /// The DN the object leaves.
    pub old_dn: Dn,
    /// The cached object at that DN, if the listener had it.
    pub cached: Option<CachedEntry>,
}

/// How to fetch the current state of the object a transaction is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchBy {
    /// A subtree search for the entryUUID under the base: follows later moves.
    Uuid(String),
    /// A base search on the DN.
    Dn(Dn),
}

/// What to do for a transaction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// `r`: keep this until the following `a`; call nothing, commit nothing.
    Stash(Stash),
    /// Nothing to call; only the transaction ID is recorded.
    Nothing,
    /// The object exists at the transaction's DN: `old` is the cached state, if any.
    Update {
        /// The cached state.
        old: Option<CachedEntry>,
        /// The state in LDAP.
        new: Entry,
    },
    /// The object is gone (or hidden): `old` is the cached state, if any.
    Delete {
        /// Where it was.
        dn: Dn,
        /// The cached state.
        old: Option<CachedEntry>,
    },
    /// An r/a pair for a cached object.
    Move {
        /// The DN it left.
        old_dn: Dn,
        /// The cached state at the old DN.
        old: CachedEntry,
        /// The cached state with the new DN and RDN values.
        patched: Entry,
        /// The state in LDAP when the object is still at the new DN; `None` when it has
        /// moved on again since (its final state comes with later transactions).
        fresh: Option<Entry>,
    },
}

/// A transaction sequence the listener cannot follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProcessError {
    /// An `r` not followed by the consecutive `a`.
    #[error(
        "transaction {rename} renames {dn} but transaction {next} is not its second half \
         (an `a` with ID {expected}); the notifier's log is inconsistent"
    )]
    UnpairedRename {
        /// The `r`.
        rename: u64,
        /// Its DN.
        dn: String,
        /// The transaction that came instead.
        next: u64,
        /// The ID the `a` should have had.
        expected: u64,
    },
}

/// How to fetch the object of `txn`, or `None` when no fetch is needed (`r`, `d`).
pub(crate) fn fetch_by(
    txn: &Transaction,
    cached: Option<&CachedEntry>,
    stash: Option<&Stash>,
) -> Option<FetchBy> {
    let uuid_of = |c: &CachedEntry| c.entry.first_str("entryUUID").map(str::to_owned);
    match txn.command {
        Command::Rename | Command::Delete => None,
        Command::Add if stash.is_some() => Some(
            stash
                .and_then(|s| s.cached.as_ref())
                .and_then(uuid_of)
                .map_or_else(|| FetchBy::Dn(txn.dn.clone()), FetchBy::Uuid),
        ),
        _ => Some(
            cached
                .and_then(uuid_of)
                .map_or_else(|| FetchBy::Dn(txn.dn.clone()), FetchBy::Uuid),
        ),
    }
}

/// Decides what `txn` means. `cached` is the cache's entry at `txn.dn`, `fetched` the
/// object found by [`fetch_by`] (`None` if not found or not fetched), `stash` the pending
/// `r`, if any.
pub(crate) fn decide(
    txn: &Transaction,
    stash: Option<Stash>,
    cached: Option<CachedEntry>,
    fetched: Option<Entry>,
) -> Result<Step, ProcessError> {
    if let Some(stash) = &stash
        && (txn.command != Command::Add || txn.id != stash.id + 1)
    {
        return Err(ProcessError::UnpairedRename {
            rename: stash.id,
            dn: stash.old_dn.to_string(),
            next: txn.id,
            expected: stash.id + 1,
        });
    }
    let here = |e: &Entry| e.dn() == &txn.dn;
    Ok(match txn.command {
        Command::Rename => Step::Stash(Stash {
            id: txn.id,
            old_dn: txn.dn.clone(),
            cached,
        }),
        Command::Delete => Step::Delete {
            dn: txn.dn.clone(),
            old: cached,
        },
        Command::Add if stash.is_some() => {
            let Some(Stash {
                old_dn,
                cached: Some(old),
                ..
            }) = stash
            else {
                // The listener did not have the object at its old DN (new to it, or it
                // comes out of a subtree hidden from it): a plain add at the new DN.
                return Ok(update(txn, cached, fetched));
            };
            match fetched {
                None => Step::Delete {
                    dn: old_dn,
                    old: Some(old),
                },
                Some(fresh) => {
                    let fresh = here(&fresh).then_some(fresh);
                    // The notifier takes the `a` of a move from slapd's `reqNewDN`, which
                    // slapd normalizes (`cn=Unmöglich` is logged as `cn=unmöglich`). While
                    // the object is still there, its DN as the server spells it is the
                    // same DN and what modules should see (§10 row 27).
                    let new_dn = fresh.as_ref().map_or(&txn.dn, Entry::dn);
                    let patched = patch(&old.entry, &old_dn, new_dn);
                    Step::Move {
                        old_dn,
                        old,
                        patched,
                        fresh,
                    }
                }
            }
        }
        Command::Add | Command::Modify | Command::Initialize => update(txn, cached, fetched),
    })
}

fn update(txn: &Transaction, cached: Option<CachedEntry>, fetched: Option<Entry>) -> Step {
    match fetched {
        Some(new) if new.dn() == &txn.dn => Step::Update { old: cached, new },
        // It lives elsewhere now: the later r/a pair delivers its final state.
        Some(_) => Step::Nothing,
        None if cached.is_some() => Step::Delete {
            dn: txn.dn.clone(),
            old: cached,
        },
        // Neither cached nor visible: nothing any module has seen.
        None => Step::Nothing,
    }
}

/// A replayed transaction (`id`) whose modules got creates before a crash (`pending`, see
/// [`PendingCreate`]) and that now finds nothing to do — the object is gone or lives
/// elsewhere, and the cache never recorded it — is a removal for those modules: without
/// it they would keep an object the listener no longer tells them about.
pub(crate) fn replay_pending_create(step: Step, id: u64, pending: Option<PendingCreate>) -> Step {
    match (step, pending) {
        (Step::Nothing, Some(pending)) if pending.transaction_id == id => Step::Delete {
            dn: pending.entry.dn().clone(),
            old: Some(CachedEntry {
                entry: pending.entry,
                modules: pending.modules,
            }),
        },
        (step, _) => step,
    }
}

/// The cached entry as it is after the move, as far as the listener can tell without
/// asking LDAP: the new DN, the old RDN's values gone and the new RDN's values there.
pub(crate) fn patch(old: &Entry, old_dn: &Dn, new_dn: &Dn) -> Entry {
    let mut patched = old.clone();
    patched.set_dn(new_dn.clone());
    if let Some(rdn) = old_dn.rdn() {
        for ava in rdn.avas() {
            if let Some(values) = patched.get(ava.attr()) {
                let kept: Vec<Vec<u8>> = values
                    .iter()
                    .filter(|v| !same_value(ava.attr(), v, ava.string_value()))
                    .cloned()
                    .collect();
                let _ = patched.insert(ava.attr(), kept);
            }
        }
    }
    if let Some(rdn) = new_dn.rdn() {
        for ava in rdn.avas() {
            if !patched.has_value(ava.attr(), ava.string_value()) {
                let _ = patched.push_value(ava.attr(), ava.string_value().to_vec());
            }
        }
    }
    patched
}

/// Whether two values of `attr` are equal under its equality rule (bytes otherwise).
fn same_value(attr: &str, a: &[u8], b: &[u8]) -> bool {
    match Schema::builtin().rules(attr).equality {
        Some(rule) => match (rule.normalize(a), rule.normalize(b)) {
            (Some(a), Some(b)) => a == b,
            _ => a == b,
        },
        None => a == b,
    }
}

#[cfg(test)]
mod tests;
