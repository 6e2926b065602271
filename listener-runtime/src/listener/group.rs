//! The durability policy, in one place. With `--durability each` every transaction
//! commits durably on its own (one fsync each, as UDL does). With `--durability group`
//! (group commit) the transactions applied since the last durable commit share one open
//! write transaction, made durable (one fsync) when the listener has caught up, before it
//! does anything else with the cache, or when the group is full or old; their pending
//! creates go to the intents file, so a crash inside a group loses none. Either way a
//! transaction ID is reported as processed (`status`, metrics) only once it is durable.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use listener_core::{Command, Dn};

use super::apply::{Applied, Applier};
use super::cache::{Cache, CacheError, CachedEntry, Intents, PendingCreate, WriteTxn};
use super::decide::Step;
use super::stats::Stats;

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
}

impl Group {
    /// The group of a listener whose cache is at `last`; with group commit, the intents
    /// file in `cache_dir` is opened and what a crashed run left after `last` recovered.
    pub(crate) fn open(
        durability: Durability,
        cache_dir: &Path,
        last: u64,
    ) -> Result<Group, CacheError> {
        let mut group = Group {
            intents: None,
            open: None,
            started: None,
            recovered: BTreeMap::new(),
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
        match &mut self.intents {
            Some(intents) => {
                let w = match &mut self.open {
                    Some(w) => w,
                    None => self.open.insert(cache.write()?),
                };
                applier.apply_in(w, intents, id, command, step).await
            }
            None => applier.apply(cache, id, command, step).await,
        }
    }

    /// Notes that transaction `last` is applied: durable at once without group commit,
    /// else when the group is full or old.
    pub(crate) fn applied(
        &mut self,
        cache: &Cache,
        stats: &Stats,
        last: u64,
    ) -> Result<(), CacheError> {
        if self.intents.is_none() {
            stats.set_durable(last);
            return Ok(());
        }
        let (count, since) = self.started.get_or_insert((0, Instant::now()));
        *count += 1;
        if *count >= GROUP_MAX || since.elapsed() >= GROUP_TIME {
            self.sync(cache, stats, last)?;
        }
        Ok(())
    }

    /// Makes what the group applied durable; nothing to do for an empty group.
    pub(crate) fn flush(
        &mut self,
        cache: &Cache,
        stats: &Stats,
        last: u64,
    ) -> Result<(), CacheError> {
        if self.open.is_none() && self.started.is_none() {
            return Ok(());
        }
        self.sync(cache, stats, last)
    }

    /// Makes everything applied up to `last` durable; the pending creates it covers are
    /// done with.
    pub(crate) fn sync(
        &mut self,
        cache: &Cache,
        stats: &Stats,
        last: u64,
    ) -> Result<(), CacheError> {
        match self.open.take() {
            Some(mut w) => {
                w.set_durable(true)?;
                w.commit()?;
            }
            None => cache.sync()?,
        }
        self.started = None;
        stats.set_durable(last);
        self.recovered.retain(|&id, _| id > last);
        if let Some(intents) = &mut self.intents {
            let still: Vec<PendingCreate> = self.recovered.values().cloned().collect();
            intents.reset(&still)?;
        }
        Ok(())
    }
}
