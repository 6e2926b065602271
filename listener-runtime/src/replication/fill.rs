//! A replica's first fill: the module's `initialize` adds the primary's objects that
//! the replica lacks [`super::WRITERS`] at a time, over connections of their own (one
//! operation at a time on each), an object only once its parent's add is answered. The
//! listener's initialization then delivers every object's create as usual; a create of
//! a state the fill wrote (same entryUUID, same entryCSN) has nothing left to do and
//! sends nothing.
//!
//! An object the replica already has (by entryUUID, or at its DN), and one whose add the
//! replica refuses, is left to its create, which finds, moves, modifies or holds it as
//! every write does. (A replica that holds nothing but its base at the start has no
//! object elsewhere: then none is looked up before its add.) A fill cut off by a crash
//! leaves added objects behind: the resumed initialization's creates find them.

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use listener_core::{Entry, replica as decide};

use super::replica::send_record;
use crate::api::error::HandlerError;
use crate::listener::fetch::Fetcher;

/// A progress line every this many objects.
const PROGRESS: u64 = 20_000;

/// The states the fill wrote: entryUUID (lower-cased) → entryCSN.
#[derive(Debug, Default)]
pub(super) struct Filled(HashMap<String, String>);

impl Filled {
    /// Whether `new` is the state the fill wrote (then forgotten: its create has come).
    pub(super) fn take(&mut self, new: &Entry) -> bool {
        let (Some(uuid), Some(csn)) = (new.first_str("entryUUID"), new.first_str("entryCSN"))
        else {
            return false;
        };
        match self.0.remove(&uuid.to_ascii_lowercase()) {
            Some(filled) => filled == csn,
            None => false,
        }
    }

    /// Forgets every state (the initialization is over).
    pub(super) fn clear(&mut self) {
        self.0 = HashMap::new();
    }
}

/// Adds what `primary` holds under its base and the replica lacks, through `writers`
/// (connections to the replica).
pub(super) async fn fill(primary: &Fetcher, writers: Vec<Fetcher>) -> Result<Filled, HandlerError> {
    // A replica holding nothing but its base cannot have an object elsewhere: no
    // object is looked up before its add then.
    let look_up = match writers.first() {
        Some(replica) => holds_more_than_its_base(replica).await?,
        None => true,
    };
    let mut idle = writers;
    let mut objects = primary.initialization_stream("(objectClass=*)");
    let mut filled = Filled::default();
    // Normalized DNs whose adds are not answered yet.
    let mut pending: HashSet<String> = HashSet::new();
    let mut running = FuturesUnordered::new();
    let (mut seen, mut added) = (0u64, 0u64);
    tracing::info!(primary = %primary.base(), "replication: filling the replica");
    while let Some(entry) = objects.next().await {
        let entry =
            entry.map_err(|e| HandlerError::msg(format!("cannot read the primary: {e}")))?;
        seen += 1;
        if seen.is_multiple_of(PROGRESS) {
            tracing::info!(seen, added, "replication: filling the replica");
        }
        // Its parent first: objects come parents first, so the parent's add, if any,
        // is among those running.
        let parent = entry.dn().parent().map(|p| p.normalized().to_owned());
        while idle.is_empty() || parent.as_ref().is_some_and(|p| pending.contains(p)) {
            let Some((writer, done)) = running.next().await else {
                break;
            };
            idle.push(writer);
            settle(done, &mut pending, &mut filled, &mut added);
        }
        let Some(writer) = idle.pop() else {
            return Err(HandlerError::msg(
                "the fill has no connection to the replica",
            ));
        };
        pending.insert(entry.dn().normalized().to_owned());
        running.push(add_if_new(writer, entry, look_up));
    }
    while let Some((_, done)) = running.next().await {
        settle(done, &mut pending, &mut filled, &mut added);
    }
    tracing::info!(seen, added, "replication: the replica is filled");
    Ok(filled)
}

/// One object's add is answered: `Some` its state when it was added.
fn settle(
    (dn, state): (String, Option<(String, String)>),
    pending: &mut HashSet<String>,
    filled: &mut Filled,
    added: &mut u64,
) {
    pending.remove(&dn);
    if let Some((uuid, csn)) = state {
        filled.0.insert(uuid, csn);
        *added += 1;
    }
}

/// Whether the replica holds an object below its base (or the base is not there).
async fn holds_more_than_its_base(replica: &Fetcher) -> Result<bool, HandlerError> {
    let base = replica.base().as_str();
    let found = replica
        .handle()
        .with_search_options(ldap3::SearchOptions::new().sizelimit(2))
        .search(base, ldap3::Scope::Subtree, "(objectClass=*)", vec!["1.1"])
        .await
        .map_err(|e| HandlerError::msg(format!("cannot read the replica: {e}")))?;
    match found.1.rc {
        // Success, or more than the size limit.
        0 | 4 => Ok(found.0.len() > 1),
        // No base: nothing below it.
        32 => Ok(false),
        _ => Err(HandlerError::msg(format!(
            "cannot read the replica: {}",
            found.1
        ))),
    }
}

/// Adds `entry` through `replica` unless the replica has the object (looked up by its
/// entryUUID first if `look_up`); the connection back, the normalized DN, and the
/// entryUUID and entryCSN written when it was added.
async fn add_if_new(
    replica: Fetcher,
    entry: Entry,
    look_up: bool,
) -> (Fetcher, (String, Option<(String, String)>)) {
    let written = add_with(&replica, &entry, look_up).await;
    (replica, (entry.dn().normalized().to_owned(), written))
}

async fn add_with(replica: &Fetcher, entry: &Entry, look_up: bool) -> Option<(String, String)> {
    let (Some(uuid), Some(csn)) = (entry.first_str("entryUUID"), entry.first_str("entryCSN"))
    else {
        return None;
    };
    // Elsewhere on the replica: its create moves it (an add would make a second copy).
    if look_up && !matches!(replica.fetch_by_uuid(uuid).await, Ok(None)) {
        return None;
    }
    match send_record(&mut replica.handle(), &decide::add(entry), None).await {
        Ok(()) => Some((uuid.to_ascii_lowercase(), csn.to_owned())),
        // Its create writes it and says why not.
        Err(_) => None,
    }
}
