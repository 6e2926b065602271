//! The listener's Prometheus metrics (`run --metrics ADDR`): what [`Stats`] holds,
//! rendered when a scrape comes in. Names start with `listener_`; per-module series carry
//! a `module` label.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::stats::{Stage, Stats};
use crate::ops::metrics::{self, MetricsError, MetricsServer};

/// Serves `stats` on `addr` (if given) until the result is dropped; binds right away, so
/// a bad address fails the start.
pub(crate) fn spawn(
    addr: Option<SocketAddr>,
    stats: &Arc<Stats>,
) -> Result<Option<MetricsServer>, MetricsError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let registry = metrics::registry(StatsCollector(stats.clone()));
    metrics::serve(addr, registry).map(Some)
}

/// The metrics text for `stats` now.
#[cfg(test)]
pub(crate) fn render(stats: &Stats) -> String {
    Snapshot::take(stats).render()
}

/// The values of one scrape, read once, so rendering is a pure function of them.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    uptime_seconds: f64,
    processed: u64,
    durable_id: u64,
    applied_id: u64,
    notifier_id: u64,
    lag_ids: u64,
    lag_seconds: f64,
    rate: f64,
    last_progress: f64,
    queued: u64,
    fetches_in_flight: u64,
    /// Seconds of the processing loop per stage, in [`Stage::ALL`]'s order.
    stages: Vec<(&'static str, f64)>,
    /// The module halting processing, if one is.
    halted_by: Option<String>,
    modules: Vec<ModuleSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
struct ModuleSnapshot {
    name: String,
    calls: u64,
    errors: u64,
    buckets: Vec<(f64, u64)>,
    count: u64,
    sum_seconds: f64,
    /// An asynchronous module's queue.
    queue: Option<QueueSnapshot>,
}

/// A metric family of the queues: name, help, and the figure of one queue.
type QueueFamily<T> = (&'static str, &'static str, fn(&QueueSnapshot) -> T);

#[derive(Debug, Clone, PartialEq)]
struct QueueSnapshot {
    depth: u64,
    in_flight: u64,
    oldest_age_seconds: f64,
    workers: u64,
    restarts: u64,
    failed: u64,
}

impl QueueSnapshot {
    fn take(q: &crate::workers::QueueStats) -> Option<QueueSnapshot> {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        if !q.asynchronous.load(Ordering::Relaxed) {
            return None;
        }
        let oldest = load(&q.oldest_ms);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Some(QueueSnapshot {
            depth: load(&q.depth),
            in_flight: load(&q.in_flight),
            oldest_age_seconds: match oldest {
                0 => 0.0,
                t => now_ms.saturating_sub(t) as f64 / 1000.0,
            },
            workers: load(&q.workers),
            restarts: load(&q.restarts),
            failed: load(&q.failed),
        })
    }
}

impl Snapshot {
    fn take(stats: &Stats) -> Snapshot {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Snapshot {
            uptime_seconds: stats.uptime().as_secs_f64(),
            processed: load(&stats.processed),
            durable_id: load(&stats.durable_id),
            applied_id: load(&stats.applied_id),
            notifier_id: load(&stats.notifier_id),
            lag_ids: stats.lag_ids(),
            lag_seconds: stats.lag_seconds(),
            rate: stats.rate(),
            last_progress: stats
                .last_progress()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            queued: load(&stats.queued),
            fetches_in_flight: load(&stats.fetches_in_flight),
            stages: Stage::ALL
                .iter()
                .map(|&s| (s.name(), stats.stages.seconds(s)))
                .collect(),
            halted_by: stats.halted().map(|h| h.module),
            modules: stats
                .modules
                .iter()
                .map(|m| ModuleSnapshot {
                    name: m.name.clone(),
                    calls: load(&m.calls),
                    errors: load(&m.errors),
                    buckets: m.latency.cumulative(),
                    count: m.latency.count(),
                    sum_seconds: m.latency.sum_seconds(),
                    queue: QueueSnapshot::take(&m.queue),
                })
                .collect(),
        }
    }

    #[cfg(test)]
    fn render(&self) -> String {
        metrics::render(&metrics::registry(self.clone()))
    }

    fn encode_into(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let e = &mut e;
        metrics::gauge(
            e,
            "listener_uptime_seconds",
            "Seconds since the listener started.",
            self.uptime_seconds,
        )?;
        metrics::gauge(
            e,
            "listener_durable_id",
            "The last transaction ID whose commit is durable; a crash never goes back behind it.",
            self.durable_id,
        )?;
        metrics::gauge(
            e,
            "listener_applied_id",
            "The last transaction ID applied (committed, possibly not yet durable).",
            self.applied_id,
        )?;
        metrics::gauge(
            e,
            "listener_notifier_id",
            "The newest transaction ID the notifier reported.",
            self.notifier_id,
        )?;
        metrics::gauge(
            e,
            "listener_lag_ids",
            "Transactions the listener is behind the notifier.",
            self.lag_ids,
        )?;
        metrics::gauge(
            e,
            "listener_lag_seconds",
            "While behind the notifier: the age of the change last applied; 0 when caught up.",
            self.lag_seconds,
        )?;
        metrics::gauge(
            e,
            "listener_transactions_per_second",
            "Transactions processed per second, averaged since start.",
            self.rate,
        )?;
        metrics::gauge(
            e,
            "listener_last_progress_timestamp_seconds",
            "When the durable ID last moved (or the listener started), as Unix time.",
            self.last_progress,
        )?;
        metrics::gauge(
            e,
            "listener_queued_transactions",
            "Transactions received from the notifier and not yet applied.",
            self.queued,
        )?;
        metrics::gauge(
            e,
            "listener_fetches_in_flight",
            "LDAP fetches under way ahead of the apply stage.",
            self.fetches_in_flight,
        )?;
        // The encoder appends `_total` to a counter's name.
        metrics::counter(
            e,
            "listener_transactions_processed",
            "Transactions processed since start.",
            self.processed,
        )?;
        let mut stages = e.encode_descriptor(
            "listener_stage_seconds",
            "Seconds the processing loop spent in each stage of a transaction's path: read (taking transactions in, starting fetches ahead), fetch (waiting for the object from LDAP), decide, modules (filtering and calling them), cache (writing it), commit (making it durable).",
            None,
            MetricType::Counter,
        )?;
        for (stage, seconds) in &self.stages {
            stages
                .encode_family(&[("stage", *stage)])?
                .encode_counter::<NoLabelSet, f64, u64>(seconds, None)?;
        }

        let mut halted = e.encode_descriptor(
            "listener_halted",
            "1 while this blocking module's failure halts processing, else 0.",
            None,
            MetricType::Gauge,
        )?;
        for m in &self.modules {
            let halting = self.halted_by.as_deref() == Some(m.name.as_str());
            halted
                .encode_family(&[("module", m.name.as_str())])?
                .encode_gauge(&u64::from(halting))?;
        }
        if let Some(module) = &self.halted_by
            && !self.modules.iter().any(|m| &m.name == module)
        {
            halted
                .encode_family(&[("module", module.as_str())])?
                .encode_gauge(&1u64)?;
        }

        let mut calls = e.encode_descriptor(
            "listener_module_calls",
            "Calls of the module (each attempt counts).",
            None,
            MetricType::Counter,
        )?;
        for m in &self.modules {
            calls
                .encode_family(&[("module", m.name.as_str())])?
                .encode_counter::<NoLabelSet, u64, u64>(&m.calls, None)?;
        }
        let mut errors = e.encode_descriptor(
            "listener_module_errors",
            "Calls of the module that failed (returned an error or panicked).",
            None,
            MetricType::Counter,
        )?;
        for m in &self.modules {
            errors
                .encode_family(&[("module", m.name.as_str())])?
                .encode_counter::<NoLabelSet, u64, u64>(&m.errors, None)?;
        }
        let mut durations = e.encode_descriptor(
            "listener_module_call_duration_seconds",
            "How long calls of the module took.",
            None,
            MetricType::Histogram,
        )?;
        for m in &self.modules {
            // The encoder takes each bucket's own count; the parts are read one after the
            // other while calls go on: keep the series consistent (buckets never above
            // +Inf) whatever the interleaving.
            let mut below = 0;
            let buckets: Vec<(f64, u64)> = m
                .buckets
                .iter()
                .map(|&(le, cumulative)| {
                    let own = cumulative.saturating_sub(below);
                    below = below.max(cumulative);
                    (le, own)
                })
                .collect();
            let count = m.count.max(below);
            durations
                .encode_family(&[("module", m.name.as_str())])?
                .encode_histogram::<NoLabelSet>(m.sum_seconds, count, &buckets, None)?;
        }
        self.encode_queues(e)
    }

    /// The asynchronous modules' queues and workers.
    fn encode_queues(&self, e: &mut DescriptorEncoder<'_>) -> std::fmt::Result {
        let queues: Vec<(&str, &QueueSnapshot)> = self
            .modules
            .iter()
            .filter_map(|m| m.queue.as_ref().map(|q| (m.name.as_str(), q)))
            .collect();
        if queues.is_empty() {
            return Ok(());
        }
        let gauges: [QueueFamily<u64>; 3] = [
            (
                "listener_async_queue_depth",
                "Calls of the asynchronous module queued and not yet done (running ones included).",
                |q| q.depth,
            ),
            (
                "listener_async_calls_in_flight",
                "Calls of the asynchronous module running in its workers.",
                |q| q.in_flight,
            ),
            (
                "listener_async_workers",
                "Worker processes of the asynchronous module ready for calls.",
                |q| q.workers,
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (module, q) in &queues {
                family
                    .encode_family(&[("module", *module)])?
                    .encode_gauge(&value(q))?;
            }
        }
        let mut age = e.encode_descriptor(
            "listener_async_oldest_call_age_seconds",
            "Seconds since the oldest queued call of the asynchronous module was queued (0: none).",
            None,
            MetricType::Gauge,
        )?;
        for (module, q) in &queues {
            age.encode_family(&[("module", *module)])?
                .encode_gauge(&q.oldest_age_seconds)?;
        }
        let counters: [QueueFamily<u64>; 2] = [
            (
                "listener_async_worker_restarts",
                "Worker processes of the asynchronous module started again after one ended.",
                |q| q.restarts,
            ),
            (
                "listener_async_failed_calls",
                "Calls of the asynchronous module recorded as failed events since the listener started.",
                |q| q.failed,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (module, q) in &queues {
                family
                    .encode_family(&[("module", *module)])?
                    .encode_counter::<NoLabelSet, u64, u64>(&value(q), None)?;
            }
        }
        Ok(())
    }
}

/// The listener's metrics, read from the live [`Stats`] at each scrape.
#[derive(Debug)]
struct StatsCollector(Arc<Stats>);

impl Collector for StatsCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        Snapshot::take(&self.0).encode_into(encoder)
    }
}

impl Collector for Snapshot {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        self.encode_into(encoder)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::listener::stats::Halt;

    fn small() -> Snapshot {
        Snapshot {
            uptime_seconds: 12.5,
            processed: 7,
            durable_id: 42,
            applied_id: 43,
            notifier_id: 45,
            lag_ids: 3,
            lag_seconds: 1.25,
            rate: 0.56,
            last_progress: 1_795_858_962.5,
            queued: 2,
            fetches_in_flight: 1,
            stages: vec![("read", 0.5), ("fetch", 2.0)],
            halted_by: Some("blocker".to_owned()),
            modules: vec![
                ModuleSnapshot {
                    name: "printer".to_owned(),
                    calls: 5,
                    errors: 1,
                    buckets: vec![(0.001, 2), (0.1, 4)],
                    count: 5,
                    sum_seconds: 0.75,
                    queue: None,
                },
                ModuleSnapshot {
                    name: "blocker".to_owned(),
                    calls: 0,
                    errors: 0,
                    buckets: vec![(0.001, 0), (0.1, 0)],
                    count: 0,
                    sum_seconds: 0.0,
                    queue: Some(QueueSnapshot {
                        depth: 12,
                        in_flight: 4,
                        oldest_age_seconds: 2.5,
                        workers: 4,
                        restarts: 1,
                        failed: 3,
                    }),
                },
            ],
        }
    }

    #[test]
    fn renders_every_family_exactly() {
        let expected = r#"# HELP listener_uptime_seconds Seconds since the listener started.
# TYPE listener_uptime_seconds gauge
listener_uptime_seconds 12.5
# HELP listener_durable_id The last transaction ID whose commit is durable; a crash never goes back behind it.
# TYPE listener_durable_id gauge
listener_durable_id 42
# HELP listener_applied_id The last transaction ID applied (committed, possibly not yet durable).
# TYPE listener_applied_id gauge
listener_applied_id 43
# HELP listener_notifier_id The newest transaction ID the notifier reported.
# TYPE listener_notifier_id gauge
listener_notifier_id 45
# HELP listener_lag_ids Transactions the listener is behind the notifier.
# TYPE listener_lag_ids gauge
listener_lag_ids 3
# HELP listener_lag_seconds While behind the notifier: the age of the change last applied; 0 when caught up.
# TYPE listener_lag_seconds gauge
listener_lag_seconds 1.25
# HELP listener_transactions_per_second Transactions processed per second, averaged since start.
# TYPE listener_transactions_per_second gauge
listener_transactions_per_second 0.56
# HELP listener_last_progress_timestamp_seconds When the durable ID last moved (or the listener started), as Unix time.
# TYPE listener_last_progress_timestamp_seconds gauge
listener_last_progress_timestamp_seconds 1795858962.5
# HELP listener_queued_transactions Transactions received from the notifier and not yet applied.
# TYPE listener_queued_transactions gauge
listener_queued_transactions 2
# HELP listener_fetches_in_flight LDAP fetches under way ahead of the apply stage.
# TYPE listener_fetches_in_flight gauge
listener_fetches_in_flight 1
# HELP listener_transactions_processed_total Transactions processed since start.
# TYPE listener_transactions_processed_total counter
listener_transactions_processed_total 7
# HELP listener_stage_seconds_total Seconds the processing loop spent in each stage of a transaction's path: read (taking transactions in, starting fetches ahead), fetch (waiting for the object from LDAP), decide, modules (filtering and calling them), cache (writing it), commit (making it durable).
# TYPE listener_stage_seconds_total counter
listener_stage_seconds_total{stage="read"} 0.5
listener_stage_seconds_total{stage="fetch"} 2.0
# HELP listener_halted 1 while this blocking module's failure halts processing, else 0.
# TYPE listener_halted gauge
listener_halted{module="printer"} 0
listener_halted{module="blocker"} 1
# HELP listener_module_calls_total Calls of the module (each attempt counts).
# TYPE listener_module_calls_total counter
listener_module_calls_total{module="printer"} 5
listener_module_calls_total{module="blocker"} 0
# HELP listener_module_errors_total Calls of the module that failed (returned an error or panicked).
# TYPE listener_module_errors_total counter
listener_module_errors_total{module="printer"} 1
listener_module_errors_total{module="blocker"} 0
# HELP listener_module_call_duration_seconds How long calls of the module took.
# TYPE listener_module_call_duration_seconds histogram
listener_module_call_duration_seconds_bucket{module="printer",le="0.001"} 2
listener_module_call_duration_seconds_bucket{module="printer",le="0.1"} 4
listener_module_call_duration_seconds_bucket{module="printer",le="+Inf"} 5
listener_module_call_duration_seconds_sum{module="printer"} 0.75
listener_module_call_duration_seconds_count{module="printer"} 5
listener_module_call_duration_seconds_bucket{module="blocker",le="0.001"} 0
listener_module_call_duration_seconds_bucket{module="blocker",le="0.1"} 0
listener_module_call_duration_seconds_bucket{module="blocker",le="+Inf"} 0
listener_module_call_duration_seconds_sum{module="blocker"} 0.0
listener_module_call_duration_seconds_count{module="blocker"} 0
# HELP listener_async_queue_depth Calls of the asynchronous module queued and not yet done (running ones included).
# TYPE listener_async_queue_depth gauge
listener_async_queue_depth{module="blocker"} 12
# HELP listener_async_calls_in_flight Calls of the asynchronous module running in its workers.
# TYPE listener_async_calls_in_flight gauge
listener_async_calls_in_flight{module="blocker"} 4
# HELP listener_async_workers Worker processes of the asynchronous module ready for calls.
# TYPE listener_async_workers gauge
listener_async_workers{module="blocker"} 4
# HELP listener_async_oldest_call_age_seconds Seconds since the oldest queued call of the asynchronous module was queued (0: none).
# TYPE listener_async_oldest_call_age_seconds gauge
listener_async_oldest_call_age_seconds{module="blocker"} 2.5
# HELP listener_async_worker_restarts_total Worker processes of the asynchronous module started again after one ended.
# TYPE listener_async_worker_restarts_total counter
listener_async_worker_restarts_total{module="blocker"} 1
# HELP listener_async_failed_calls_total Calls of the asynchronous module recorded as failed events since the listener started.
# TYPE listener_async_failed_calls_total counter
listener_async_failed_calls_total{module="blocker"} 3
"#;
        let text = small().render();
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn a_halt_by_an_unknown_module_still_shows() {
        let mut s = small();
        s.halted_by = Some("gone".to_owned());
        let text = s.render();
        assert!(text.contains("listener_halted{module=\"blocker\"} 0\n"));
        assert!(text.contains("listener_halted{module=\"gone\"} 1\n"));
        s.halted_by = None;
        assert!(!s.render().contains("} 1\nlistener_halted"));
    }

    #[test]
    fn a_snapshot_reads_the_live_stats() {
        let stats = Stats::new(["printer", "other"]);
        stats.saw_notifier_id(10);
        stats.set_durable(8);
        stats.applied(9, None);
        stats.queued.store(3, Ordering::Relaxed);
        stats
            .stages
            .add_time(Stage::Cache, Duration::from_millis(1500));
        stats
            .stages
            .add_time(Stage::Cache, Duration::from_millis(250));
        let printer = stats.module("printer").unwrap();
        printer.record(Duration::from_micros(200), true);
        printer.record(Duration::from_secs(30), false);
        stats.set_halted(Some(Halt {
            id: 9,
            module: "other".to_owned(),
            error: "down".to_owned(),
            since: SystemTime::now(),
        }));
        let snap = Snapshot::take(&stats);
        assert_eq!(
            (snap.processed, snap.durable_id, snap.applied_id),
            (1, 8, 9)
        );
        assert_eq!((snap.notifier_id, snap.lag_ids, snap.queued), (10, 2, 3));
        assert_eq!(snap.halted_by.as_deref(), Some("other"));
        let p = &snap.modules[0];
        assert_eq!(
            (p.name.as_str(), p.calls, p.errors, p.count),
            ("printer", 2, 1, 2)
        );
        assert_eq!(p.buckets[1], (0.00025, 1));
        assert_eq!(
            p.buckets.last().map(|b| b.1),
            Some(1),
            "30 s is above every bound"
        );

        let text = render(&stats);
        assert!(
            text.contains("\nlistener_transactions_processed_total 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "\nlistener_module_call_duration_seconds_bucket{module=\"printer\",le=\"+Inf\"} 2\n"
        ));
        assert!(
            text.contains("\nlistener_module_call_duration_seconds_count{module=\"printer\"} 2\n")
        );
        assert!(text.contains("\nlistener_halted{module=\"other\"} 1\n"));
        assert!(
            text.contains("\nlistener_stage_seconds_total{stage=\"cache\"} 1.75\n"),
            "{text}"
        );
        assert!(text.contains("\nlistener_stage_seconds_total{stage=\"commit\"} 0.0\n"));
    }
}
