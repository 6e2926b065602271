//! Replica writes of consecutive transactions, several at a time (semantics §8). With
//! group commit, a call of the `replication` module in the main loop hands its write to
//! this pipeline and returns at once; the write then runs on one of [`WRITERS`]
//! connections to the replica, as soon as no earlier write it depends on is under way
//! or waiting. Two writes depend on each other when they are about the same entryUUID,
//! or when a DN of one (the object's DN, or the one it had before a move) is a DN of
//! the other, its ancestor or its descendant: so an object is written in transaction
//! order, a child after its parent's add, a parent's delete after its children's.
//!
//! The listener keeps its promises around it:
//! * [`Pipeline::settle`] before every durable commit and before any other module is
//!   called: a transaction is durable, and other modules see the replica, only once its
//!   write and every earlier one are done;
//! * a write the replica refuses stops the pipeline (the writes under way finish, no
//!   other starts), and [`Pipeline::settle`] names its transaction. The listener then
//!   goes back to its last durable transaction and applies again from there, and this
//!   module writes one transaction at a time, waiting for each, up to and including the
//!   refused one ([`Pipeline::rewind`]): it is refused again there, inline, and the usual
//!   halt of a blocking module follows (`status`, `failed skip`, `failed retry`,
//!   `failed.ldif`).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use listener_core::{Dn, Entry};
use tokio::sync::Notify;

use super::WRITERS;
use super::mark::{Mark, MarkError};
use super::replica::Replica;
use crate::api::error::HandlerResult;
use crate::listener::fetch::Fetcher;

/// Writes handed over and not yet started, at most: a call waits for room beyond.
const WAITING: usize = 256;
/// Waiting writes looked at for one that may start (the first ones, in order).
const LOOKAHEAD: usize = 32;

/// The writes of the `replication` module under way; shared by the module (which hands
/// writes over) and the listener (which settles and rewinds).
pub(crate) struct Pipeline {
    state: Mutex<State>,
    /// How far the replica may hold this cache's writes (never locked with `state`).
    mark: Mutex<Mark>,
    /// Notified whenever a write ends.
    ended: Notify,
}

/// One write, as the module's call asked for it.
pub(crate) enum Write {
    /// Make the replica hold `new` (found by entryUUID, else at `before`, else at its DN;
    /// usually the copy is `cached`, the state the listener had before).
    Put {
        before: Option<Dn>,
        new: Entry,
        cached: Option<Entry>,
        /// Added without looking for it first ([`Pipeline::is_fresh`]).
        fresh: bool,
    },
    /// Delete the replica's copy of `old`.
    Delete { old: Entry },
}

impl Write {
    /// What the write is about: its entryUUID and DNs.
    fn keys(&self) -> Keys {
        let (entry, before) = match self {
            Write::Put { before, new, .. } => (new, before.as_ref()),
            Write::Delete { old } => (old, None),
        };
        Keys {
            uuid: entry.first_str("entryUUID").map(str::to_owned),
            dns: before.into_iter().chain([entry.dn()]).cloned().collect(),
        }
    }

    pub(super) async fn run(&self, replica: &mut Replica, primary: &Fetcher) -> HandlerResult {
        match self {
            Write::Put {
                before,
                new,
                cached,
                fresh,
            } => {
                replica
                    .write(primary, before.as_ref(), new, cached.as_ref(), *fresh)
                    .await
            }
            Write::Delete { old } => replica.delete(old).await,
        }
    }
}

/// The entryUUID and the DNs of a write.
#[derive(Debug, Clone)]
struct Keys {
    uuid: Option<String>,
    dns: Vec<Dn>,
}

impl Keys {
    /// Whether two writes must not run at once nor overtake each other.
    fn depend(&self, other: &Keys) -> bool {
        if self.uuid.is_some() && self.uuid == other.uuid {
            return true;
        }
        self.dns
            .iter()
            .any(|a| other.dns.iter().any(|b| a.is_within(b) || b.is_within(a)))
    }
}

struct Job {
    /// The transaction.
    id: u64,
    keys: Keys,
    write: Write,
    /// The primary, for ancestors the replica lacks and schema.
    primary: Fetcher,
}

#[derive(Default)]
struct State {
    /// Whether calls are handed over (the listener's main loop, with group commit).
    enabled: bool,
    /// The transaction being applied.
    current: u64,
    /// Calls of transactions up to this one write inline (after a rewind).
    inline_through: u64,
    waiting: VecDeque<Job>,
    /// Writes under way: their transactions and keys.
    running: Vec<(u64, Keys)>,
    /// Connected writers not in use.
    idle: Vec<Replica>,
    /// The first transaction whose write failed.
    failed: Option<u64>,
    /// Transactions up to this one may be on the replica already (written by an
    /// earlier process, or by this one before a rewind).
    careful_through: u64,
    /// The last transaction a write was sent for.
    sent_through: u64,
}

impl Pipeline {
    /// The pipeline of a listener whose cache is `cache_dir`, durable up to
    /// `cache_last_id`.
    pub(crate) fn new(cache_dir: &Path, cache_last_id: u64) -> Arc<Pipeline> {
        let mark = Mark::open(cache_dir, cache_last_id);
        let state = State {
            careful_through: mark.replayed_through(),
            ..State::default()
        };
        Arc::new(Pipeline {
            state: Mutex::new(state),
            mark: Mutex::new(mark),
            ended: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic under the lock leaves plain data behind: go on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn mark(&self) -> MutexGuard<'_, Mark> {
        self.mark.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the replication mark cover a write of the transaction being applied,
    /// before the write is sent ([`Mark::cover`]).
    pub(crate) fn cover(&self) -> Result<(), MarkError> {
        let current = {
            let mut state = self.state();
            state.sent_through = state.sent_through.max(state.current);
            state.current
        };
        self.mark().cover(current)
    }

    /// Whether the add of an object new to the listener may skip looking for it on the
    /// replica by entryUUID: the call is the main loop's (not an initialization's nor
    /// a tool's), in a transaction whose writes cannot be on the replica yet.
    pub(crate) fn is_fresh(&self) -> bool {
        let state = self.state();
        state.enabled && state.current > state.careful_through
    }

    /// A clean stop, with every write of transactions up to `last` done and durable and
    /// none after it ([`Mark::settle`]).
    pub(crate) fn settle_mark(&self, last: u64) -> Result<(), MarkError> {
        let settled = {
            let state = self.state();
            state.sent_through <= last && state.waiting.is_empty() && state.running.is_empty()
        };
        match settled {
            true => self.mark().settle(last),
            false => Ok(()),
        }
    }

    /// Calls from now on are handed over (`true`) or written inline (`false`: module
    /// initialization and the tools' requests, which commit without settling).
    pub(crate) fn enable(&self, on: bool) {
        self.state().enabled = on;
    }

    /// The listener applies transaction `id` now.
    pub(crate) fn set_current(&self, id: u64) {
        self.state().current = id;
    }

    /// Whether a write failed: the listener should settle and go back.
    pub(crate) fn has_failed(&self) -> bool {
        self.state().failed.is_some()
    }

    /// Hands `write` over, to start once no write it depends on is ahead of it, waiting
    /// for room first. `Some` gives it back to be written inline: the pipeline is off, or
    /// the transaction is one to write inline after a rewind. After a failure the write
    /// is dropped: the listener goes back and applies its transaction again.
    pub(crate) async fn hand_over(
        self: &Arc<Self>,
        write: Write,
        primary: Fetcher,
    ) -> Option<Write> {
        loop {
            let ended = self.ended.notified();
            {
                let mut state = self.state();
                if !state.enabled || state.current <= state.inline_through {
                    return Some(write);
                }
                if state.failed.is_some() {
                    return None;
                }
                if state.waiting.len() < WAITING {
                    let id = state.current;
                    let keys = write.keys();
                    state.waiting.push_back(Job {
                        id,
                        keys,
                        write,
                        primary,
                    });
                    self.start(&mut state);
                    return None;
                }
            }
            ended.await;
        }
    }

    /// Starts the waiting writes that depend on no write under way or ahead of them, as
    /// far as writers are free, looking at the first [`LOOKAHEAD`] waiting ones.
    fn start(self: &Arc<Self>, state: &mut State) {
        if state.failed.is_some() {
            return;
        }
        let mut at = 0;
        while at < state.waiting.len().min(LOOKAHEAD) && state.running.len() < WRITERS {
            let keys = &state.waiting[at].keys;
            let blocked = state.running.iter().any(|(_, k)| k.depend(keys))
                || state.waiting.iter().take(at).any(|j| j.keys.depend(keys));
            if blocked {
                at += 1;
                continue;
            }
            let Some(job) = state.waiting.remove(at) else {
                break;
            };
            state.running.push((job.id, job.keys.clone()));
            let writer = state.idle.pop();
            let pipeline = self.clone();
            tokio::spawn(async move {
                let (writer, result) = run(writer, &job).await;
                pipeline.ended(job.id, writer, result);
            });
        }
    }

    /// A write ended: its writer is free again (dropped after a failure, so the next
    /// write starts on a fresh connection).
    fn ended(self: &Arc<Self>, id: u64, writer: Option<Replica>, result: HandlerResult) {
        {
            let mut state = self.state();
            if let Some(at) = state.running.iter().position(|(i, _)| *i == id) {
                state.running.swap_remove(at);
            }
            match result {
                Ok(()) => state.idle.extend(writer),
                Err(e) => {
                    tracing::warn!(transaction = id, error = %e, "replication: a write failed; the listener goes back and writes it again");
                    state.failed = Some(state.failed.map_or(id, |f| f.min(id)));
                }
            }
            self.start(&mut state);
        }
        self.ended.notify_waiters();
    }

    /// Waits until every write handed over is done: `Err` with the first transaction
    /// whose write failed (the writes under way are done then; the waiting ones are
    /// dropped by [`Pipeline::rewind`]).
    pub(crate) async fn settle(&self) -> Result<(), u64> {
        loop {
            let ended = self.ended.notified();
            {
                let state = self.state();
                if state.running.is_empty() {
                    match state.failed {
                        Some(id) => return Err(id),
                        None if state.waiting.is_empty() => return Ok(()),
                        None => {}
                    }
                }
            }
            ended.await;
        }
    }

    /// Whether `id` is the transaction whose failed write made the listener go back:
    /// applied (inline) now, it is made durable at once, so that a `failed skip` of it
    /// is not dropped by another rewind.
    pub(crate) fn is_rewound_to(&self, id: u64) -> bool {
        self.state().inline_through == id
    }

    /// The listener went back behind `failed` (what [`Pipeline::settle`] named): the
    /// waiting writes are dropped (they come again), and calls up to and including
    /// `failed` write inline.
    pub(crate) fn rewind(&self, failed: u64) {
        let mut state = self.state();
        state.waiting.clear();
        state.failed = None;
        state.inline_through = failed;
        // What comes again may have been written already.
        state.careful_through = state.careful_through.max(state.sent_through);
    }
}

/// Runs `job` on `writer` (connected first if need be); the writer back unless the
/// write failed.
async fn run(writer: Option<Replica>, job: &Job) -> (Option<Replica>, HandlerResult) {
    let mut writer = match writer {
        Some(writer) => writer,
        None => match super::connect_replica().await {
            Ok(writer) => writer,
            Err(e) => return (None, Err(e)),
        },
    };
    let result = job.write.run(&mut writer, &job.primary).await;
    match result {
        Ok(()) => (Some(writer), Ok(())),
        Err(e) => (None, Err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(uuid: Option<&str>, dns: &[&str]) -> Keys {
        Keys {
            uuid: uuid.map(str::to_owned),
            dns: dns.iter().map(|d| Dn::parse(d).unwrap()).collect(),
        }
    }

    #[test]
    fn writes_depend_on_the_same_object_and_on_its_ancestors_and_descendants() {
        let user = keys(Some("u1"), &["uid=a,ou=x,dc=b"]);
        assert!(
            user.depend(&keys(Some("u1"), &["uid=z,dc=b"])),
            "same entryUUID"
        );
        assert!(
            user.depend(&keys(Some("u2"), &["UID=A,ou=X,dc=b"])),
            "same DN"
        );
        assert!(user.depend(&keys(None, &["ou=x,dc=b"])), "its parent");
        assert!(
            keys(None, &["ou=x,dc=b"]).depend(&user),
            "a parent depends on its child"
        );
        assert!(
            user.depend(&keys(Some("o"), &["ou=y,dc=b", "ou=x,dc=b"])),
            "the move of its parent (the DN before)"
        );
        assert!(
            !user.depend(&keys(Some("u3"), &["uid=b,ou=x,dc=b"])),
            "a sibling"
        );
        assert!(
            !user.depend(&keys(Some("u4"), &["ou=y,dc=b"])),
            "another subtree"
        );
        assert!(!keys(None, &["uid=a,dc=b"]).depend(&keys(None, &["uid=b,dc=b"])));
    }
}
