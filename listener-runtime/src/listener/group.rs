//! The durability policy, in one place. With `--durability each` every transaction
//! commits durably on its own (one fsync each, as UDL does). With `--durability group`
//! (group commit) the transactions applied since the last durable commit share one open
//! write transaction, made durable (one fsync) when the listener has caught up, before it
//! does anything else with the cache, or when the group is full or old; their pending
//! creates go to the intents file, so a crash inside a group loses none. Either way a
//! transaction ID is reported as processed (`status`, metrics) only once it is durable and
//! the calls it queued for asynchronous modules are in their pools. What the pools
//! finished ([`Results`]) is written in the group's transaction too, or, with no group
//! open, in a commit of its own.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use listener_core::{Command, Dn};

use super::apply::{Applied, Applier};
use super::cache::{Cache, CacheError, CachedEntry, Intents, PendingCreate, WriteTxn};
use super::decide::Step;
use super::window::CacheView;
use crate::workers::Results;
use crate::workers::lanes::{NewRow, Row};

/// Most transactions applied between durable commits. A durable commit writes every page
/// the group changed, so its cost grows more slowly than the group (measured in a
/// catch-up: 75 ms for 1,000 transactions, 230 ms for 4,600).
const GROUP_MAX: usize = 10_000;
/// Longest time between durable commits while transactions keep coming.
const GROUP_TIME: Duration = Duration::from_secs(1);

/// When the listener makes its cache commits durable (fsync). Either way a transaction
/// ID is reported as processed (`status`, metrics) only once it is durable, and a crash
/// replays what was not: modules see every change at least once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum Durability {
    /// Every transaction's commit, as UDL does: one fsync per transaction.
    Each,
    /// Group commit: durable when the listener has caught up, after 10,000 transactions
    /// or after 1 s, whichever comes first.
    #[default]
    Group,
}

/// The transactions applied and not yet durable.
pub(crate) struct Group {
    /// The intents file of group commit; `None` with `--durability each`.
    intents: Option<Intents>,
    /// The group's write transaction, once it has one.
    open: Option<WriteTxn>,
    /// How many transactions the group holds, since when.
    started: Option<(usize, Instant)>,
    /// Pending creates of a crashed run's last group, by transaction ID (see
    /// [`super::cache::Intents`]), until the replay has made them durable.
    recovered: BTreeMap<u64, PendingCreate>,
    /// Calls of asynchronous modules the group's transactions queued, by module index
    /// (with its name), in order. They are written to the queues with the group's
    /// commit, all of a module at once, and handed to the workers only once that commit
    /// is durable, so that a crash cannot leave a worker having made a call the replay
    /// does not repeat.
    unsaved: BTreeMap<usize, (&'static str, Vec<NewRow>)>,
    /// Rows stored durably, by module index, for the caller to hand to the pools.
    ready: BTreeMap<usize, Vec<Row>>,
    /// The last transaction made durable and not yet taken ([`Group::take_durable`]): it
    /// is reported as processed only after its rows are handed over, so that `status`
    /// never shows it done while its calls are in no queue.
    durable: Option<u64>,
    /// What the pools finished, written with the next commit.
    results: Arc<Results>,
}

/// The cache as a [`Group`] has left it, for the fetch-ahead window's predictions: a
/// transaction applied in the open group and not yet committed counts.
pub(crate) struct GroupView<'a> {
    group: &'a Group,
    cache: &'a Cache,
}

impl CacheView for GroupView<'_> {
    fn uuid_at(&self, dn: &Dn) -> Result<Option<String>, CacheError> {
        match &self.group.open {
            Some(w) => w.entry_uuid_at(dn),
            None => self.cache.read()?.entry_uuid_at(dn),
        }
    }
}

/// What became durable since the last [`Group::take_durable`].
pub(crate) struct Durable {
    /// Rows stored durably, by module index, in queue order.
    pub rows: BTreeMap<usize, Vec<Row>>,
    /// The last transaction made durable, if one was.
    pub last: Option<u64>,
}

impl Group {
    /// The group of a listener whose cache is at `last`; with group commit, the intents
    /// file in `cache_dir` is opened and what a crashed run left after `last` recovered.
    /// The pools' finished calls come from `results`.
    pub(crate) fn open(
        durability: Durability,
        cache_dir: &Path,
        last: u64,
        results: Arc<Results>,
    ) -> Result<Group, CacheError> {
        let mut group = Group {
            intents: None,
            open: None,
            started: None,
            recovered: BTreeMap::new(),
            unsaved: BTreeMap::new(),
            ready: BTreeMap::new(),
            durable: None,
            results,
        };
        if durability == Durability::Group {
            let (intents, found) = Intents::open(cache_dir)?;
            group.recovered.extend(
                found
                    .into_iter()
                    .filter(|p| p.transaction_id > last)
                    .map(|p| (p.transaction_id, p)),
            );
            group.intents = Some(intents);
        }
        Ok(group)
    }

    /// The cached entry at `dn` as the group has left it.
    pub(crate) fn entry(&self, cache: &Cache, dn: &Dn) -> Result<Option<CachedEntry>, CacheError> {
        match &self.open {
            Some(w) => w.entry(dn),
            None => cache.read()?.entry(dn),
        }
    }

    /// The fetch-ahead window's view of `cache`: as the group has left it.
    pub(crate) fn view<'a>(&'a self, cache: &'a Cache) -> GroupView<'a> {
        GroupView { group: self, cache }
    }

    /// The pending create a crashed run left for transaction `id`, if any.
    pub(crate) fn pending_create(
        &self,
        cache: &Cache,
        id: u64,
    ) -> Result<Option<PendingCreate>, CacheError> {
        match self.recovered.get(&id) {
            Some(pending) => Ok(Some(pending.clone())),
            None => cache.read()?.pending_create(),
        }
    }

    /// Applies `step` of transaction `id`: in the group's write transaction with group
    /// commit, else in a durable commit of its own.
    pub(crate) async fn apply(
        &mut self,
        cache: &Cache,
        applier: &mut Applier,
        id: u64,
        command: Command,
        step: Step,
    ) -> Result<Applied, CacheError> {
        let mut applied = match &mut self.intents {
            Some(intents) => {
                let w = match &mut self.open {
                    Some(w) => w,
                    None => self.open.insert(cache.write()?),
                };
                applier.apply_in(w, intents, id, command, step).await?
            }
            None => applier.apply(cache, id, command, step).await?,
        };
        for (index, row) in applied.queued.drain(..) {
            Self::reserve(applier, index);
            self.ready.entry(index).or_default().push(row);
        }
        for (index, row) in applied.unsaved.drain(..) {
            Self::reserve(applier, index);
            let name = applier.modules[index].name();
            self.unsaved
                .entry(index)
                .or_insert((name, Vec::new()))
                .1
                .push(row);
        }
        Ok(applied)
    }

    /// Counts a call queued for module `index` in its pool's depth and limit.
    fn reserve(applier: &Applier, index: usize) {
        if let Some(pool) = applier.modules[index].pool() {
            pool.reserve(1);
        }
    }

    /// What became durable since the last call: rows for the modules' pools, and the
    /// transaction to report as processed once they are handed over.
    pub(crate) fn take_durable(&mut self) -> Durable {
        Durable {
            rows: std::mem::take(&mut self.ready),
            last: self.durable.take(),
        }
    }

    /// Notes that transaction `last` is applied: durable at once without group commit.
    /// With it, whether the group is full or old: the caller makes it durable then.
    pub(crate) fn applied(&mut self, cache: &Cache, last: u64) -> Result<bool, CacheError> {
        if self.intents.is_none() {
            self.durable = Some(last);
            self.write_results(cache)?;
            return Ok(false);
        }
        let (count, since) = self.started.get_or_insert((0, Instant::now()));
        *count += 1;
        Ok(*count >= GROUP_MAX || since.elapsed() >= GROUP_TIME)
    }

    /// Drops what the group applied (the replica refused a write handed over: the
    /// listener applies it again from the last durable transaction). Its pending creates
    /// go from the intents file; the calls it queued for asynchronous modules are
    /// dropped, to be queued again.
    pub(crate) fn abort(&mut self) -> Result<(), CacheError> {
        if let Some(w) = self.open.take() {
            w.abort()?;
        }
        self.started = None;
        self.unsaved.clear();
        self.reset_intents()
    }

    /// Makes what the group applied durable; nothing to do for an empty group.
    pub(crate) fn flush(&mut self, cache: &Cache, last: u64) -> Result<(), CacheError> {
        if self.open.is_none() && self.started.is_none() {
            return Ok(());
        }
        self.sync(cache, last)
    }

    /// Makes everything applied up to `last` durable; the pending creates it covers are
    /// done with.
    pub(crate) fn sync(&mut self, cache: &Cache, last: u64) -> Result<(), CacheError> {
        match self.open.take() {
            Some(mut w) => {
                self.results.write_into(&mut w)?;
                let rows = self.save_unsaved(&mut w)?;
                w.set_durable(true)?;
                w.commit()?;
                for (index, mut rows) in rows {
                    self.ready.entry(index).or_default().append(&mut rows);
                }
            }
            None => self.commit_results(cache, true)?,
        }
        self.started = None;
        self.durable = Some(last);
        self.recovered.retain(|&id, _| id > last);
        self.reset_intents()
    }

    /// The intents file holds again only the pending creates still recovered.
    fn reset_intents(&mut self) -> Result<(), CacheError> {
        if let Some(intents) = &mut self.intents {
            let still: Vec<PendingCreate> = self.recovered.values().cloned().collect();
            intents.reset(&still)?;
        }
        Ok(())
    }

    /// Writes what the pools finished: into the group's transaction when one is open,
    /// else in a commit of its own, not durable (the next durable commit takes it along).
    pub(crate) fn write_results(&mut self, cache: &Cache) -> Result<(), CacheError> {
        if self.results.is_empty() {
            return Ok(());
        }
        match &mut self.open {
            Some(w) => {
                self.results.write_into(w)?;
                Ok(())
            }
            None => self.commit_results(cache, false),
        }
    }

    /// What the pools finished, in a commit of its own (with no group open).
    fn commit_results(&self, cache: &Cache, durable: bool) -> Result<(), CacheError> {
        let mut w = cache.write()?;
        w.set_durable(durable)?;
        self.results.write_into(&mut w)?;
        w.commit()
    }

    /// Writes the group's queued calls to their modules' queues in `w`, each module's in
    /// one go and in order; the rows as stored.
    fn save_unsaved(&mut self, w: &mut WriteTxn) -> Result<BTreeMap<usize, Vec<Row>>, CacheError> {
        let mut stored = BTreeMap::new();
        for (index, (name, rows)) in std::mem::take(&mut self.unsaved) {
            let first = w.push_jobs(name, rows.iter().map(|r| r.bytes.as_slice()))?;
            let rows = (first..).zip(rows).map(|(seq, row)| row.stored(seq));
            stored.insert(index, rows.collect());
        }
        Ok(stored)
    }
}
