//! Fetches ahead gathered into few searches: the objects of up to [`MAX_BATCH`] waiting
//! fetches are read with one subtree search under the base, `(|(entryDN=…)(entryUUID=…)…)`.
//!
//! A base-scope search per object costs slapd about as much per object as a search for
//! dozens of them (back-mdb resolves an `entryDN` equality through its DN index, and
//! `entryUUID` is indexed), and costs the listener a request, a response and a task each.
//! Measured here on 4,000 objects: 112 µs of slapd CPU per base-scope fetch, 15 µs per
//! object in batches of 32.
//!
//! The window forms a batch from the transactions it takes in together (see
//! [`super::Window::flush`]): a lone transaction (the listener following live changes) is
//! fetched at once, alone. A batch's answer is the same as that of its fetches made one by
//! one at that moment, with two cases checked again by a fetch of their own: an object
//! asked for by DN that the batch did not return (deleted since, hidden, or an entry a
//! subtree search leaves out, such as a subentry or a referral) is looked up by a
//! base-scope search as before, and a DN outside the base is never put into a batch.

use std::collections::HashMap;
use std::sync::Arc;

use ldap3::Scope;
use listener_core::Entry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

use super::fetch;
use crate::listener::decide::FetchBy;
use crate::listener::fetch::{FetchError, Fetcher};

/// Most objects one search asks for. Larger batches barely lower slapd's cost per object
/// (measured: 8 → 32 halves it, 32 → 128 changes nothing) but make a batch's answer
/// arrive later.
pub(super) const MAX_BATCH: usize = 32;

/// One fetch ahead, waiting for its answer.
pub(super) struct Request {
    /// What to fetch.
    pub by: FetchBy,
    /// Where the answer goes: one place per transaction that shares the fetch.
    pub replies: Vec<oneshot::Sender<Result<Option<Entry>, FetchError>>>,
    /// Set once the answer is given, for the fetches about the same object after this one.
    pub done: watch::Sender<bool>,
}

impl Request {
    fn answer(mut self, result: Result<Option<Entry>, FetchError>) {
        let last = self.replies.pop();
        for reply in self.replies {
            let _ = reply.send(share(&result));
        }
        if let Some(reply) = last {
            let _ = reply.send(result);
        }
        let _ = self.done.send(true);
    }
}

/// The answer for one more transaction that shares a fetch. An error only needs to say
/// that the fetch failed: the apply stage then fetches again on its own.
fn share(result: &Result<Option<Entry>, FetchError>) -> Result<Option<Entry>, FetchError> {
    match result {
        Ok(entry) => Ok(entry.clone()),
        Err(e) => Err(FetchError::Task {
            what: "a shared fetch ahead".to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The connections fetches ahead use, each running at most a few searches at once.
pub(super) struct Pool {
    connections: Vec<(Fetcher, Arc<Semaphore>)>,
    turn: usize,
}

impl Pool {
    /// `connections` (at least one), each allowed `per_connection` searches at once.
    pub(super) fn new(connections: Vec<Fetcher>, per_connection: usize) -> Pool {
        Pool {
            connections: connections
                .into_iter()
                .map(|f| (f, Arc::new(Semaphore::new(per_connection.max(1)))))
                .collect(),
            turn: 0,
        }
    }

    /// The next connection in turn and a way to wait for one of its search slots.
    pub(super) fn next(&mut self) -> Slot {
        self.turn = (self.turn + 1) % self.connections.len().max(1);
        let (fetcher, slots) = self.connections[self.turn].clone();
        Slot { fetcher, slots }
    }
}

/// A connection of the pool, for one search.
pub(super) struct Slot {
    fetcher: Fetcher,
    slots: Arc<Semaphore>,
}

impl Slot {
    /// Waits for a free search slot of the connection, then fetches the objects of
    /// `batch` and answers each request.
    pub(super) async fn fetch(self, batch: Vec<Request>) {
        // Closed never; without a permit the search just goes ahead.
        let _permit: Option<OwnedSemaphorePermit> = self.slots.acquire_owned().await.ok();
        answer(&self.fetcher, batch).await;
    }
}

/// Searches for the objects of `batch` and replies to each.
async fn answer(fetcher: &Fetcher, batch: Vec<Request>) {
    let (mut batched, mut alone): (Vec<_>, Vec<_>) = batch.into_iter().partition(|r| match &r.by {
        FetchBy::Dn(dn) => dn.is_within(fetcher.base()),
        FetchBy::Uuid(_) => true,
    });
    if batched.len() == 1 {
        alone.append(&mut batched);
    }
    for request in alone {
        let result = fetch(fetcher, &request.by).await;
        request.answer(result);
    }
    if batched.is_empty() {
        return;
    }
    let filter = format!(
        "(|{})",
        batched
            .iter()
            .map(|r| match &r.by {
                FetchBy::Dn(dn) => format!("(entryDN={})", ldap3::ldap_escape(dn.as_str())),
                FetchBy::Uuid(uuid) => format!("(entryUUID={})", ldap3::ldap_escape(uuid)),
            })
            .collect::<String>()
    );
    let found = match fetcher
        .search_entries(fetcher.base().as_str(), Scope::Subtree, &filter)
        .await
    {
        Ok(found) => found,
        Err(e) => {
            // Each fetch is made again on its own by the apply stage.
            for request in batched {
                let what = format!("{:?}", request.by);
                request.answer(Err(FetchError::Task {
                    what,
                    reason: format!("the batched search failed: {e}"),
                }));
            }
            return;
        }
    };
    let mut by_dn: HashMap<&str, usize> = HashMap::new();
    let mut by_uuid: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, entry) in found.iter().enumerate() {
        by_dn.insert(entry.dn().normalized(), i);
        if let Some(uuid) = entry.first_str("entryUUID") {
            by_uuid.entry(uuid).or_default().push(i);
        }
    }
    let mut replies = Vec::with_capacity(batched.len());
    for request in batched {
        let result = match &request.by {
            FetchBy::Dn(dn) => match by_dn.get(dn.normalized()) {
                Some(&i) => Lookup::Found(i),
                None => Lookup::Alone,
            },
            FetchBy::Uuid(uuid) => match by_uuid.get(uuid.as_str()).map(Vec::as_slice) {
                None | Some([]) => Lookup::Answer(Ok(None)),
                Some([i]) => Lookup::Found(*i),
                Some(all) => Lookup::Answer(Err(FetchError::Ambiguous {
                    uuid: uuid.clone(),
                    base: fetcher.base().to_string(),
                    count: all.len(),
                })),
            },
        };
        replies.push((request, result));
    }
    // An object asked for twice (by DN and by entryUUID) is cloned; the last asker takes it.
    let mut uses = vec![0usize; found.len()];
    for (_, result) in &replies {
        if let Lookup::Found(i) = result {
            uses[*i] += 1;
        }
    }
    let mut found: Vec<Option<Entry>> = found.into_iter().map(Some).collect();
    for (request, result) in replies {
        let result = match result {
            Lookup::Found(i) => {
                uses[i] -= 1;
                Ok(if uses[i] == 0 {
                    found[i].take()
                } else {
                    found[i].clone()
                })
            }
            Lookup::Answer(answer) => answer,
            // Not in the batch's answer: ask as a lone fetch would.
            Lookup::Alone => fetch(fetcher, &request.by).await,
        };
        request.answer(result);
    }
}

/// Where a batch's answer has a fetch's object.
enum Lookup {
    /// The entry at this index of the answer.
    Found(usize),
    /// Decided without an entry: not there, or more than one for an entryUUID.
    Answer(Result<Option<Entry>, FetchError>),
    /// Not in the answer: asked for alone.
    Alone,
}
