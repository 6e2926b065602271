//! What the running listener knows about itself, shared by the processing loop (which
//! updates it), `status` (through the control socket) and the metrics endpoint. Plain
//! atomics: updating costs the loop next to nothing, and readers never block it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Upper bounds (seconds) of the module-call latency histogram's buckets.
pub(crate) const LATENCY_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

/// The listener's counters and state.
#[derive(Debug)]
pub(crate) struct Stats {
    started: Instant,
    /// The last transaction ID whose commit is durable: what the listener reports as
    /// processed (a crash never goes back behind it).
    pub durable_id: AtomicU64,
    /// The last transaction ID applied (committed, possibly not yet durable).
    pub applied_id: AtomicU64,
    /// The newest transaction ID the notifier reported.
    pub notifier_id: AtomicU64,
    /// Transactions processed since start.
    pub processed: AtomicU64,
    /// Transactions received from the notifier and not yet applied.
    pub queued: AtomicU64,
    /// Fetches under way ahead of the apply stage.
    pub fetches_in_flight: AtomicU64,
    /// When (wall clock, from the entry's `entryCSN`/`modifyTimestamp`) the change last
    /// applied was made; `None` before the first.
    last_change: Mutex<Option<SystemTime>>,
    /// When `durable_id` last moved.
    last_progress: Mutex<SystemTime>,
    /// Why processing is halted, if it is.
    halted: Mutex<Option<Halt>>,
    /// Whether the store of shared state answers (once `run` opened it).
    shared: std::sync::OnceLock<Arc<crate::shared::Health>>,
    /// Where the processing loop's time went since start.
    pub stages: Stages,
    /// Per module, in call order.
    pub modules: Vec<Arc<ModuleStats>>,
}

/// A `blocking` module stopped processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Halt {
    /// The transaction it is halted at.
    pub id: u64,
    /// The blocking module.
    pub module: String,
    /// Its last error.
    pub error: String,
    /// Since when.
    pub since: SystemTime,
}

impl Stats {
    /// Counters for the modules named `modules` (in call order).
    pub(crate) fn new<'a>(modules: impl IntoIterator<Item = &'a str>) -> Stats {
        Stats {
            started: Instant::now(),
            durable_id: AtomicU64::new(0),
            applied_id: AtomicU64::new(0),
            notifier_id: AtomicU64::new(0),
            processed: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            fetches_in_flight: AtomicU64::new(0),
            last_change: Mutex::new(None),
            last_progress: Mutex::new(SystemTime::now()),
            halted: Mutex::new(None),
            shared: std::sync::OnceLock::new(),
            stages: Stages::default(),
            modules: modules
                .into_iter()
                .map(|name| Arc::new(ModuleStats::new(name)))
                .collect(),
        }
    }

    /// The counters of module `name`.
    pub(crate) fn module(&self, name: &str) -> Option<&Arc<ModuleStats>> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// How long the listener has been running.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Transactions per second since start.
    pub(crate) fn rate(&self) -> f64 {
        let secs = self.uptime().as_secs_f64();
        if secs > 0.0 {
            self.processed.load(Ordering::Relaxed) as f64 / secs
        } else {
            0.0
        }
    }

    /// Notes that everything up to `id` is durable.
    pub(crate) fn set_durable(&self, id: u64) {
        if self.durable_id.swap(id, Ordering::Relaxed) != id {
            *lock(&self.last_progress) = SystemTime::now();
        }
    }

    /// Notes the notifier's newest ID (never goes back).
    pub(crate) fn saw_notifier_id(&self, id: u64) {
        self.notifier_id.fetch_max(id, Ordering::Relaxed);
    }

    /// Notes an applied transaction and when its change was made, if known.
    pub(crate) fn applied(&self, id: u64, change_time: Option<SystemTime>) {
        self.applied_id.store(id, Ordering::Relaxed);
        self.processed.fetch_add(1, Ordering::Relaxed);
        if let Some(time) = change_time {
            *lock(&self.last_change) = Some(time);
        }
    }

    /// When the change last applied was made.
    pub(crate) fn last_change(&self) -> Option<SystemTime> {
        *lock(&self.last_change)
    }

    /// When the durable ID last moved (start counts as a move).
    pub(crate) fn last_progress(&self) -> SystemTime {
        *lock(&self.last_progress)
    }

    /// IDs the listener is behind the notifier.
    pub(crate) fn lag_ids(&self) -> u64 {
        self.notifier_id
            .load(Ordering::Relaxed)
            .saturating_sub(self.durable_id.load(Ordering::Relaxed))
    }

    /// Seconds between now and the change last applied, while behind; zero when caught up.
    pub(crate) fn lag_seconds(&self) -> f64 {
        if self.lag_ids() == 0 {
            return 0.0;
        }
        self.last_change()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// Processing halted by a blocking module (or `None`: it goes on).
    pub(crate) fn set_halted(&self, halt: Option<Halt>) {
        *lock(&self.halted) = halt;
    }

    /// Why processing is halted, if it is.
    pub(crate) fn halted(&self) -> Option<Halt> {
        lock(&self.halted).clone()
    }

    /// The health of the store of shared state, from now on.
    pub(crate) fn set_shared(&self, health: Arc<crate::shared::Health>) {
        let _ = self.shared.set(health);
    }

    /// The health of the store of shared state, once known.
    pub(crate) fn shared(&self) -> Option<&crate::shared::Health> {
        self.shared.get().map(Arc::as_ref)
    }
}

/// A stage of the processing loop: where one transaction's time goes, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Taking transactions in from the notifier reader, predicting their fetches and
    /// starting them (the fetch-ahead window).
    Read,
    /// Waiting for the front transaction's object: the LDAP search and its decoding, as
    /// far as the fetches ahead have not hidden them.
    Fetch,
    /// Looking the object up in the cache and deciding what the transaction means.
    Decide,
    /// Dispatch: filtering the modules and calling them (queueing the calls of
    /// asynchronous modules).
    Modules,
    /// Writing the cache (in the group's open transaction, or a commit of its own with
    /// `--durability each`).
    Cache,
    /// Making the group durable: its commit with the fsync, and handing the queued
    /// calls to the asynchronous modules' pools.
    Commit,
}

impl Stage {
    /// Every stage, in the order of a transaction's path.
    pub(crate) const ALL: [Stage; 6] = [
        Stage::Read,
        Stage::Fetch,
        Stage::Decide,
        Stage::Modules,
        Stage::Cache,
        Stage::Commit,
    ];

    /// The stage's name, as the metrics label it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Fetch => "fetch",
            Stage::Decide => "decide",
            Stage::Modules => "modules",
            Stage::Cache => "cache",
            Stage::Commit => "commit",
        }
    }
}

/// The processing loop's wall time per [`Stage`], summed since start. The loop does one
/// thing at a time, so the stages add up to its busy time; waiting for the notifier while
/// caught up is in none of them.
#[derive(Debug, Default)]
pub(crate) struct Stages {
    nanos: [AtomicU64; Stage::ALL.len()],
}

impl Stages {
    /// Adds the time since `since` to `stage`; returns now, where the next stage starts.
    pub(crate) fn add(&self, stage: Stage, since: Instant) -> Instant {
        let now = Instant::now();
        self.add_time(stage, now.saturating_duration_since(since));
        now
    }

    /// Adds `time` to `stage`.
    pub(crate) fn add_time(&self, stage: Stage, time: Duration) {
        let nanos = u64::try_from(time.as_nanos()).unwrap_or(u64::MAX);
        self.nanos[stage as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    /// The seconds spent in `stage` since start.
    pub(crate) fn seconds(&self, stage: Stage) -> f64 {
        self.nanos[stage as usize].load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// One module's calls, errors and call latency.
#[derive(Debug)]
pub(crate) struct ModuleStats {
    /// The module's name.
    pub name: String,
    /// Calls made (each attempt counts).
    pub calls: AtomicU64,
    /// Attempts that failed (returned an error or panicked).
    pub errors: AtomicU64,
    /// Latency of each attempt.
    pub latency: Histogram,
    /// An asynchronous module's queue and workers.
    pub queue: crate::workers::QueueStats,
}

impl ModuleStats {
    fn new(name: &str) -> ModuleStats {
        ModuleStats {
            name: name.to_owned(),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Histogram::default(),
            queue: crate::workers::QueueStats::default(),
        }
    }

    /// Notes one attempt.
    pub(crate) fn record(&self, took: Duration, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(took);
    }
}

/// A Prometheus-style histogram over [`LATENCY_BOUNDS`] (non-cumulative counts; the
/// exporter sums them up).
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    /// Observations above the last bound.
    overflow: AtomicU64,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Adds one observation.
    pub(crate) fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        match LATENCY_BOUNDS.iter().position(|&bound| secs <= bound) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (`le`), as Prometheus wants them.
    pub(crate) fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        LATENCY_BOUNDS
            .iter()
            .zip(&self.buckets)
            .map(|(&bound, count)| {
                total += count.load(Ordering::Relaxed);
                (bound, total)
            })
            .collect()
    }

    /// Observations in all.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of all observations, in seconds.
    pub(crate) fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// The time an LDAP entry was last changed: its `entryCSN` (microseconds) or, failing
/// that, its `modifyTimestamp` (seconds), both GeneralizedTime in UTC.
pub(crate) fn change_time(entry: &listener_core::Entry) -> Option<SystemTime> {
    entry
        .first_str("entryCSN")
        .or_else(|| entry.first_str("modifyTimestamp"))
        .and_then(parse_generalized_time)
}

/// `YYYYmmddHHMMSS[.ffffff]Z…` (the prefix of a CSN) as a time.
fn parse_generalized_time(s: &str) -> Option<SystemTime> {
    let micros = u64::try_from(crate::utc::generalized_time_us(s)?).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_micros(micros))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind: keep using it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csn_times_parse_to_the_microsecond() {
        let t = parse_generalized_time("20261128094242.123456Z#000000#000#000000").unwrap();
        let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(since.as_secs(), 1_795_858_962);
        assert_eq!(since.subsec_micros(), 123_456);
        assert_eq!(
            parse_generalized_time("19700101000000Z"),
            Some(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(parse_generalized_time("2026112809"), None);
        assert_eq!(parse_generalized_time("2026112809424xZ"), None);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(20));
        let c = h.cumulative();
        assert_eq!(c[0], (0.0001, 1));
        assert_eq!(c[5], (0.005, 2));
        assert_eq!(c.last().unwrap().1, 2, "20 s is above every bound");
        assert_eq!(h.count(), 3);
        assert!((h.sum_seconds() - 20.00305).abs() < 1e-9);
    }

    #[test]
    fn lag_counts_from_the_durable_id() {
        let s = Stats::new(["a", "b"]);
        s.saw_notifier_id(10);
        s.saw_notifier_id(7);
        s.set_durable(4);
        assert_eq!(s.lag_ids(), 6);
        s.set_durable(10);
        assert_eq!(s.lag_ids(), 0);
        assert_eq!(s.lag_seconds(), 0.0);
        assert!(s.module("b").is_some() && s.module("c").is_none());
    }
}
