//! The fetch-ahead window: transactions taken from the notifier before the apply stage
//! reaches them, each with its object already being fetched from LDAP. The apply stage
//! still handles them strictly one by one; the window only hides the fetch round trips.
//! The fetches of transactions taken in together go out as one search ([`batch`]), and a
//! full window takes transactions in again only once a batch's worth has been applied.
//!
//! A fetch made ahead is a guess: which object to fetch (by cached entryUUID or by DN)
//! depends on the cache and the pending `r` as they are when the transaction is applied.
//! The window predicts both from the cache as the apply stage has left it when the
//! transaction enters (a group's writes not yet committed included: [`CacheView`]), and the
//! apply stage uses the prefetched result only when its own decision
//! ([`decide::fetch_by`]) names the same fetch; otherwise it fetches again. Together with
//! two more rules the observable behaviour stays that of one-at-a-time processing:
//!
//! * Fetches that share an object (its normalized DN or entryUUID) run one after the
//!   other, so a later transaction never sees an older state of an object than an earlier
//!   one (concurrent searches on a multiplexed connection may be answered in any order).
//! * A fetched entry older (by `entryCSN`) than the cached state of the same object is
//!   fetched again.
//! * Transactions taken in together that need the same fetch (a group changed member by
//!   member) share one answer. The fetch starts only after the notifier reported all of
//!   them, so it finds a state holding all their changes: the state one-at-a-time
//!   processing finds when it fetches after them, as it does in any catch-up.
//!
//! The prediction also looks at the transactions ahead in the window: after a delete,
//! an add or the `r` of a move at a DN, the cache will not hold what it holds now there.

mod batch;

use std::collections::VecDeque;

use listener_core::{Command, Dn, Entry};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::cache::{Cache, CacheError, CachedEntry};
use super::decide::{self, FetchBy, Stash, Transaction};
use super::fetch::{FetchError, Fetcher};
use crate::protocol::client::TransactionRef;

/// A transaction whose DN did not parse: reported when the apply stage reaches it.
#[derive(Debug, Clone)]
pub struct BadDn {
    /// The transaction.
    pub id: u64,
    /// Why the DN does not parse.
    pub message: String,
}

/// Searches one connection runs at once. slapd (2.5, 16 threads) wedges a connection that
/// has many more operations outstanding (measured here: fine with 8, stuck at 16–24 until
/// the client's timeout), so concurrency comes from several connections instead.
const PER_CONNECTION: usize = 4;

/// What the window predicts from: the entryUUID cached at a DN, as the apply stage will
/// find it before the transactions in the window. The running listener gives the state
/// its open group has left (see [`super::group::Group`]): committed or not, that is what
/// the apply stage reads. A [`Cache`] gives its last commit.
pub trait CacheView {
    /// The entryUUID of the object cached at `dn`, if one is.
    fn uuid_at(&self, dn: &Dn) -> Result<Option<String>, CacheError>;
}

impl CacheView for Cache {
    fn uuid_at(&self, dn: &Dn) -> Result<Option<String>, CacheError> {
        self.read()?.entry_uuid_at(dn)
    }
}

/// Transactions ahead of the apply stage, in order, with their fetches under way.
pub struct Window {
    /// For fetches made by the apply stage itself.
    fetcher: Fetcher,
    /// For fetches ahead: connections, each with its limit of concurrent searches.
    pool: batch::Pool,
    /// Fetches ahead taken in since the last [`Window::flush`], to be made in one search.
    batch: Vec<batch::Request>,
    /// Fetches ahead taken in since the last flush that wait for earlier fetches about
    /// the same object first; started, each alone, with the next flush.
    chained: Vec<(Vec<watch::Receiver<bool>>, batch::Request)>,
    /// The searches under way (aborted when the window is dropped: the listener stops).
    searches: JoinSet<()>,
    depth: usize,
    /// Whether the window takes transactions in. Once full it waits until a batch's worth
    /// has been applied, so that fetches start in groups that [`batch`] can join into one
    /// search, rather than one by one as the apply stage frees single places.
    filling: bool,
    items: VecDeque<Ahead>,
    /// The `r` the window expects the apply stage to hold when the next `a` comes: its
    /// ID and the cached entryUUID of the object.
    rename: Option<(u64, Option<String>)>,
}

/// One transaction ahead.
struct Ahead {
    txn: Result<Transaction, BadDn>,
    fetch: Option<Prefetch>,
    /// The entryUUID the cache holds at the transaction's DN once it is applied, when the
    /// window knows it: the object of a move, at its new DN.
    leaves: Option<String>,
}

/// A fetch started ahead.
struct Prefetch {
    by: FetchBy,
    /// The normalized DN and entryUUID the fetch is about.
    keys: Vec<String>,
    /// The answer, once the fetch is done.
    result: oneshot::Receiver<Result<Option<Entry>, FetchError>>,
    /// Becomes `true` (or is dropped) when the fetch is done.
    done: watch::Receiver<bool>,
}

impl Window {
    /// A window of up to `depth` transactions (1 = no fetch ahead: each object is fetched
    /// when its transaction is applied, as UDL does).
    /// Fetches ahead are spread over the connections of `pool` (the apply stage's own
    /// `fetcher` when empty).
    pub fn new(fetcher: Fetcher, pool: Vec<Fetcher>, depth: usize) -> Window {
        let pool = Window::pool(&fetcher, pool);
        Window {
            fetcher,
            pool,
            batch: Vec::new(),
            chained: Vec::new(),
            searches: JoinSet::new(),
            depth: depth.max(1),
            filling: true,
            items: VecDeque::new(),
            rename: None,
        }
    }

    fn pool(fetcher: &Fetcher, pool: Vec<Fetcher>) -> batch::Pool {
        let pool = if pool.is_empty() {
            vec![fetcher.clone()]
        } else {
            pool
        };
        batch::Pool::new(pool, PER_CONNECTION)
    }

    /// Fetches from now on use `fetcher` and `pool` (after a reconnect). Fetches under way
    /// on the old connections fail or finish; a failed one is fetched again when applied.
    pub fn set_fetchers(&mut self, fetcher: Fetcher, pool: Vec<Fetcher>) {
        self.pool = Window::pool(&fetcher, pool);
        self.fetcher = fetcher;
        self.flush();
    }

    /// Whether another transaction may enter.
    pub fn has_room(&self) -> bool {
        self.filling && self.items.len() < self.depth
    }

    /// Transactions in the window.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Fetches under way or done and not yet used.
    pub fn fetches(&self) -> usize {
        self.items.iter().filter(|a| a.fetch.is_some()).count()
    }

    /// Takes `t` in and, with a depth above 1, prepares the fetch of its object: it
    /// starts with the next [`Window::flush`], together with the others taken in until
    /// then (or at once when a batch is full).
    pub fn push<V: CacheView + ?Sized>(
        &mut self,
        t: TransactionRef,
        cache: &V,
    ) -> Result<(), CacheError> {
        let txn = Dn::parse(&t.dn)
            .map(|dn| Transaction {
                id: t.id,
                dn,
                command: t.command,
            })
            .map_err(|e| BadDn {
                id: t.id,
                message: e.to_string(),
            });
        let (fetch, leaves) = match &txn {
            Ok(txn) if self.depth > 1 => self.start(txn, cache)?,
            Ok(_) | Err(_) => (None, None),
        };
        self.items.push_back(Ahead { txn, fetch, leaves });
        if self.items.len() >= self.depth {
            self.filling = false;
        }
        Ok(())
    }

    /// Starts the fetches prepared since the last flush, in one search.
    pub fn flush(&mut self) {
        while self.searches.try_join_next().is_some() {}
        for (before, request) in std::mem::take(&mut self.chained) {
            let slot = self.pool.next();
            self.searches.spawn(async move {
                for mut earlier in before {
                    // An error means the earlier fetch is gone: done as well.
                    let _ = earlier.wait_for(|done| *done).await;
                }
                slot.fetch(vec![request]).await;
            });
        }
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.searches.spawn(self.pool.next().fetch(batch));
    }

    /// The next transaction for the apply stage.
    pub fn front(&self) -> Option<Result<&Transaction, &BadDn>> {
        self.items.front().map(|a| a.txn.as_ref())
    }

    /// Drops every transaction in the window (the listener goes back): fetches under way
    /// finish unread.
    pub fn clear(&mut self) {
        self.items.clear();
        self.batch.clear();
        self.chained.clear();
        self.filling = true;
        self.rename = None;
    }

    /// Done with the front transaction.
    pub fn pop(&mut self) {
        self.items.pop_front();
        if self.items.len() <= self.depth.saturating_sub(batch::MAX_BATCH) {
            self.filling = true;
        }
    }

    /// The object of the front transaction found by `by`: the result fetched ahead when it
    /// was fetched the same way and is not older than `known` (the cached state of the
    /// object), else fetched now.
    pub async fn fetch_front(
        &mut self,
        by: &FetchBy,
        known: Option<&CachedEntry>,
    ) -> Result<Option<Entry>, FetchError> {
        self.flush();
        let ahead = self.items.front_mut().and_then(|a| a.fetch.take());
        if let Some(prefetch) = ahead {
            let ahead_by = prefetch.by.clone();
            match (join(prefetch).await, &ahead_by, by) {
                (Ok(entry), ahead_by, by) if ahead_by == by && !older(entry.as_ref(), known) => {
                    return Ok(entry);
                }
                // Fetched by DN because the object was not cached yet when the transaction
                // entered (an earlier one in the window added it): the object found at the
                // DN is the one the entryUUID search would find.
                (Ok(Some(entry)), FetchBy::Dn(_), FetchBy::Uuid(uuid))
                    if entry.first_str("entryUUID") == Some(uuid.as_str())
                        && !older(Some(&entry), known) =>
                {
                    return Ok(Some(entry));
                }
                (Ok(_), ahead_by, by) if ahead_by == by => {
                    tracing::debug!(?by, "fetched ahead an older state; fetching again");
                }
                (Ok(_), ahead_by, by) => {
                    tracing::debug!(?ahead_by, ?by, "fetched ahead another way; fetching again");
                }
                (Err(e), _, by) => {
                    tracing::debug!(?by, error = %e, "fetch ahead failed; fetching again");
                }
            }
        }
        fetch(&self.fetcher, by).await
    }

    /// The entryUUID the cache will hold at `dn` once the transactions in the window are
    /// applied, if one of them changes it: a delete or the `r` of a move leaves nothing
    /// there; the `a` of a move leaves the moved object; another add leaves an object the
    /// window does not know yet, which the fetch by DN finds (the apply stage takes that
    /// when the entryUUIDs agree). `None` when the window does not touch `dn` but to
    /// modify it: the cache tells.
    fn ahead_at(&self, dn: &Dn) -> Option<Option<String>> {
        self.items
            .iter()
            .rev()
            .filter(|a| {
                a.txn.as_ref().is_ok_and(|t| {
                    t.command != Command::Modify && t.dn.normalized() == dn.normalized()
                })
            })
            .map(|a| a.leaves.clone())
            .next()
    }

    /// Starts the fetch the apply stage is expected to want for `txn`.
    /// Also what the cache will hold at the transaction's DN once it is applied, if known
    /// (see [`Ahead::leaves`]).
    fn start<V: CacheView + ?Sized>(
        &mut self,
        txn: &Transaction,
        cache: &V,
    ) -> Result<(Option<Prefetch>, Option<String>), CacheError> {
        // Only the entryUUID matters for the prediction: read just that, unless a
        // transaction ahead in the window changes what the cache will hold at the DN.
        let cached_uuid = match self.ahead_at(&txn.dn) {
            Some(predicted) => predicted,
            None => cache.uuid_at(&txn.dn)?,
        };
        // The apply stage holds an `r` until its `a`: predict that stash.
        let stash = match self.rename.take() {
            Some((id, uuid)) if txn.command == Command::Add && txn.id == id + 1 => Some(uuid),
            _ => None,
        };
        if txn.command == Command::Rename {
            self.rename = Some((txn.id, cached_uuid.clone()));
        }
        let stand_in = |uuid: String| CachedEntry {
            entry: with_uuid(&txn.dn, &uuid),
            modules: Default::default(),
        };
        // The `a` of a move leaves the moved object at its new DN.
        let leaves = stash.clone().flatten();
        let cached = cached_uuid.map(stand_in);
        let stash = stash.map(|uuid| Stash {
            id: txn.id - 1,
            old_dn: txn.dn.clone(),
            cached: uuid.map(stand_in),
        });
        let Some(by) = decide::fetch_by(txn, cached.as_ref(), stash.as_ref()) else {
            return Ok((None, leaves));
        };
        let mut keys = vec![txn.dn.normalized().to_owned()];
        if let FetchBy::Uuid(u) = &by {
            keys.push(u.clone());
        }
        let (reply, result) = oneshot::channel();
        // The same fetch taken in since the last flush has not started: it will find a
        // state that holds this transaction's change too (the notifier reported it
        // before it entered), so this transaction shares its answer, as if fetched one
        // by one after both changes.
        let waiting = self
            .batch
            .iter_mut()
            .chain(self.chained.iter_mut().map(|(_, r)| r))
            .find(|r| r.by == by);
        let done = match waiting {
            Some(request) => {
                request.replies.push(reply);
                request.done.subscribe()
            }
            None => self.request(by.clone(), &keys, reply),
        };
        let prefetch = Prefetch {
            by,
            keys,
            result,
            done,
        };
        Ok((Some(prefetch), leaves))
    }

    /// A new fetch `by` whose answer goes to `reply`: in the next batch, or after the
    /// fetches ahead about the same object (`keys`). What tells when it is done.
    fn request(
        &mut self,
        by: FetchBy,
        keys: &[String],
        reply: oneshot::Sender<Result<Option<Entry>, FetchError>>,
    ) -> watch::Receiver<bool> {
        let before: Vec<watch::Receiver<bool>> = self
            .items
            .iter()
            .filter_map(|a| a.fetch.as_ref())
            .filter(|f| f.keys.iter().any(|k| keys.contains(k)))
            .map(|f| f.done.clone())
            .collect();
        let (done_tx, done) = watch::channel(false);
        let request = batch::Request {
            by,
            replies: vec![reply],
            done: done_tx,
        };
        if before.is_empty() {
            self.batch.push(request);
            if self.batch.len() >= batch::MAX_BATCH {
                self.flush();
            }
        } else {
            self.chained.push((before, request));
        }
        done
    }
}

/// The answer of a fetch made ahead (a fetch that was dropped, by a failed search task or
/// a reconnect, is an error: the apply stage fetches again).
async fn join(prefetch: Prefetch) -> Result<Option<Entry>, FetchError> {
    let Prefetch { by, result, .. } = prefetch;
    result.await.unwrap_or_else(|_| {
        Err(FetchError::Task {
            what: format!("{by:?}"),
            reason: "the fetch was dropped".to_owned(),
        })
    })
}

/// Fetches the object `by` names.
pub(crate) async fn fetch(fetcher: &Fetcher, by: &FetchBy) -> Result<Option<Entry>, FetchError> {
    match by {
        FetchBy::Uuid(uuid) => fetcher.fetch_by_uuid(uuid).await,
        FetchBy::Dn(dn) => fetcher.fetch_by_dn(dn).await,
    }
}

/// Whether `fetched` is an older state of the same object than `known`: same entryUUID,
/// smaller `entryCSN` (CSNs of one object only grow; their text sorts by time).
fn older(fetched: Option<&Entry>, known: Option<&CachedEntry>) -> bool {
    let (Some(fetched), Some(known)) = (fetched, known) else {
        return false;
    };
    let same = fetched.first_str("entryUUID").is_some()
        && fetched.first_str("entryUUID") == known.entry.first_str("entryUUID");
    match (
        fetched.first_str("entryCSN"),
        known.entry.first_str("entryCSN"),
    ) {
        (Some(new), Some(old)) => same && new < old,
        _ => false,
    }
}

/// A stand-in cached entry carrying only `uuid`, for predicting the fetch of an `a`.
fn with_uuid(dn: &Dn, uuid: &str) -> Entry {
    let mut entry = Entry::new(dn.clone());
    let _ = entry.push_value("entryUUID", uuid.as_bytes().to_vec());
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uuid: &str, csn: &str) -> Entry {
        let mut e = Entry::new(Dn::parse("cn=x,dc=test").unwrap());
        e.push_value("entryUUID", uuid.as_bytes().to_vec()).unwrap();
        e.push_value("entryCSN", csn.as_bytes().to_vec()).unwrap();
        e
    }

    fn cached(e: Entry) -> CachedEntry {
        CachedEntry {
            entry: e,
            modules: Default::default(),
        }
    }

    #[test]
    fn only_an_older_csn_of_the_same_object_is_older() {
        let a1 = entry("u1", "20261128100000.000001Z#000000#000#000000");
        let a2 = entry("u1", "20261128100000.000002Z#000000#000#000000");
        let b2 = entry("u2", "20261128100000.000002Z#000000#000#000000");
        assert!(older(Some(&a1), Some(&cached(a2.clone()))));
        assert!(!older(Some(&a2), Some(&cached(a1.clone()))));
        assert!(!older(Some(&a2), Some(&cached(a2.clone()))));
        assert!(!older(Some(&a1), Some(&cached(b2))), "another object");
        assert!(!older(None, Some(&cached(a1.clone()))));
        assert!(!older(Some(&a1), None));
    }
}
