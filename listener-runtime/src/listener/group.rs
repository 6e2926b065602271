//! Group commit (`--durability group`): the transactions applied since the last durable
//! commit share one open write transaction, made durable (one fsync) when the listener
//! has caught up, before it does anything else with the cache, or when the group is full
//! or old. With `--durability each` every transaction commits durably on its own and the
//! group stays empty.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::apply::Applier;
use super::cache::{Cache, CacheError, PendingCreate, WriteTxn};
use super::stats::Stats;

/// Most transactions applied between durable commits. A durable commit writes every page
/// the group changed, so its cost grows more slowly than the group (measured in a
/// catch-up: 75 ms for 1,000 transactions, 230 ms for 4,600).
const GROUP_MAX: usize = 10_000;
/// Longest time between durable commits while transactions keep coming.
const GROUP_TIME: Duration = Duration::from_secs(1);

/// The transactions applied and not yet durable.
#[derive(Default)]
pub(crate) struct Group {
    /// The group's write transaction, once it has one.
    pub open: Option<WriteTxn>,
    /// How many transactions the group holds, since when.
    started: Option<(usize, Instant)>,
    /// Pending creates of a crashed run's last group, by transaction ID (see
    /// [`super::cache::Intents`]), until the replay has made them durable.
    pub recovered: BTreeMap<u64, PendingCreate>,
}

impl Group {
    /// An empty group; `recovered` are the pending creates found at start.
    pub(crate) fn new(recovered: BTreeMap<u64, PendingCreate>) -> Group {
        Group {
            recovered,
            ..Group::default()
        }
    }

    /// Notes that transaction `last` is applied: durable at once without group commit,
    /// else when the group is full or old.
    pub(crate) fn applied(
        &mut self,
        cache: &Cache,
        applier: &mut Applier,
        stats: &Stats,
        last: u64,
    ) -> Result<(), CacheError> {
        if !applier.groups() {
            stats.set_durable(last);
            return Ok(());
        }
        let (count, since) = self.started.get_or_insert((0, Instant::now()));
        *count += 1;
        if *count >= GROUP_MAX || since.elapsed() >= GROUP_TIME {
            self.sync(cache, applier, stats, last)?;
        }
        Ok(())
    }

    /// Makes what the group applied durable; nothing to do for an empty group.
    pub(crate) fn flush(
        &mut self,
        cache: &Cache,
        applier: &mut Applier,
        stats: &Stats,
        last: u64,
    ) -> Result<(), CacheError> {
        if self.open.is_none() && self.started.is_none() {
            return Ok(());
        }
        self.sync(cache, applier, stats, last)
    }

    /// Makes everything applied up to `last` durable; the pending creates it covers are
    /// done with.
    pub(crate) fn sync(
        &mut self,
        cache: &Cache,
        applier: &mut Applier,
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
        if let Some(intents) = &mut applier.intents {
            let still: Vec<PendingCreate> = self.recovered.values().cloned().collect();
            intents.reset(&still)?;
        }
        Ok(())
    }
}
