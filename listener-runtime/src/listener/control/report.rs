//! The answers to the reading requests, built from a cache snapshot (plus the running
//! listener's [`Stats`]): the same code serves the control socket and the CLI when no
//! listener runs, so both print the same thing.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use listener_core::ldif::write_line;

use super::protocol::{
    FailedView, HaltReport, Ids, ModuleStatus, QueueReport, SharedReport, StatusReport,
};
use crate::api::registry::{ApiKind, ModuleRegistration};
use crate::listener::cache::{
    CacheError, CachedEntry, FailedEvent, ModulePhase, ModuleState, ReadTxn,
};
use crate::listener::lifecycle::{Reason, needs_initialization};
use crate::listener::stats::Stats;

/// A module's state in words: `NEW` (no state: never initialized, or reset by `resync`),
/// `INITIALIZING (<n> done)`, `READY`, `FAILED: <error>`; a READY module whose filter or
/// attributes changed since is re-initialized at the next start, and says so.
pub(crate) fn state_text(
    module: &ModuleRegistration,
    state: Option<&ModuleState>,
    registered: u64,
) -> String {
    let Some(state) = state else {
        return "NEW".to_owned();
    };
    match (&state.phase, needs_initialization(module, Some(state))) {
        (ModulePhase::Ready, Some(Reason::ConfigChanged)) => {
            "READY (filter or attributes changed: re-initialized at the next start)".to_owned()
        }
        (ModulePhase::Ready, _) => "READY".to_owned(),
        (ModulePhase::Initializing { .. }, _) => format!("INITIALIZING ({registered} done)"),
        (ModulePhase::Failed { error }, _) => format!("FAILED: {error}"),
    }
}

/// Each module's state, failed-event count and registrations, in call order; an
/// asynchronous module's queue from the running listener's `stats`, else counted in the
/// cache (which reads every row: not while a listener runs).
pub(crate) fn module_statuses(
    modules: &[&ModuleRegistration],
    r: &ReadTxn,
    stats: Option<&Stats>,
) -> Result<Vec<ModuleStatus>, CacheError> {
    modules
        .iter()
        .map(|m| {
            let registered = r.registered_count(m.name)?;
            let running = stats.and_then(|s| s.module(m.name));
            let queue = match (m.kind, running) {
                (ApiKind::Async, Some(counters)) => Some(queue_report(&counters.queue)),
                (ApiKind::Async, None) => Some(QueueReport {
                    depth: r.queue_len(m.name)?,
                    in_flight: None,
                    oldest_seconds: None,
                    workers: None,
                    restarts: None,
                }),
                _ => None,
            };
            Ok(ModuleStatus {
                name: m.name.to_owned(),
                state: state_text(m, r.module_state(m.name)?.as_ref(), registered),
                failed: r.failed_count(m.name)?,
                registered,
                queue,
            })
        })
        .collect()
}

/// The status from the cache and, while the listener runs, its `stats` (without them the
/// notifier's ID and the lag are left for the caller to fill in).
pub(crate) fn status(
    modules: &[&ModuleRegistration],
    r: &ReadTxn,
    stats: Option<&Stats>,
) -> Result<StatusReport, CacheError> {
    let mut report = StatusReport {
        running: stats.is_some(),
        last_id: r.last_id()?,
        notifier_id: None,
        lag_ids: None,
        lag_seconds: None,
        rate: None,
        uptime_seconds: None,
        seconds_since_progress: None,
        schema_id: r.schema_id()?,
        entries: r.entry_count()?,
        halted: None,
        shared: None,
        modules: module_statuses(modules, r, stats)?,
    };
    if let Some(stats) = stats {
        report.last_id = stats.durable_id.load(Ordering::Relaxed);
        report.notifier_id = Some(stats.notifier_id.load(Ordering::Relaxed));
        report.lag_ids = Some(stats.lag_ids());
        report.lag_seconds = Some(stats.lag_seconds());
        report.rate = Some(stats.rate());
        report.uptime_seconds = Some(stats.uptime().as_secs_f64());
        report.seconds_since_progress = Some(
            SystemTime::now()
                .duration_since(stats.last_progress())
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        report.halted = stats.halted().map(|h| HaltReport {
            id: h.id,
            module: h.module,
            error: h.error,
            since: utc(h.since),
        });
        report.shared = stats.shared().map(|health| {
            let failing = health.failing();
            SharedReport {
                backend: health.backend.clone(),
                since: failing.as_ref().map(|(_, since)| utc(*since)),
                error: failing.map(|(error, _)| error),
            }
        });
    }
    Ok(report)
}

/// A running pool's figures.
fn queue_report(q: &crate::workers::QueueStats) -> QueueReport {
    let oldest = q.oldest_ms.load(Ordering::Relaxed);
    let oldest_seconds = (oldest > 0).then(|| {
        let queued = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(oldest);
        SystemTime::now()
            .duration_since(queued)
            .map_or(0.0, |d| d.as_secs_f64())
    });
    QueueReport {
        depth: q.depth.load(Ordering::Relaxed),
        in_flight: Some(q.in_flight.load(Ordering::Relaxed)),
        oldest_seconds,
        workers: Some(q.workers.load(Ordering::Relaxed)),
        restarts: Some(q.restarts.load(Ordering::Relaxed)),
    }
}

/// The cache's IDs.
pub(crate) fn ids(r: &ReadTxn) -> Result<Ids, CacheError> {
    Ok(Ids {
        last_id: r.last_id()?,
        schema_id: r.schema_id()?,
    })
}

/// A failed event for `failed list` (`full`: with old and new as LDIF, for `show`).
pub(crate) fn failed_view(module: &str, seq: u64, event: &FailedEvent, full: bool) -> FailedView {
    FailedView {
        module: module.to_owned(),
        seq,
        transaction_id: event.transaction_id,
        dn: event.dn.to_string(),
        entry_uuid: event.entry_uuid.clone(),
        command: event.command.to_string(),
        attempts: event.attempts,
        error: event.error.clone(),
        time: utc(event.time),
        old: full
            .then(|| event.old.as_ref().map(listener_core::ldif::entry_to_string))
            .flatten(),
        new: full
            .then(|| event.new.as_ref().map(listener_core::ldif::entry_to_string))
            .flatten(),
    }
}

/// The failed events of `module` (or of every module in `modules`), without old/new.
pub(crate) fn failed_list(
    modules: &[&ModuleRegistration],
    r: &ReadTxn,
    module: Option<&str>,
) -> Result<Vec<FailedView>, CacheError> {
    let names: Vec<&str> = match module {
        Some(name) => vec![name],
        None => modules.iter().map(|m| m.name).collect(),
    };
    let mut views = Vec::new();
    for name in names {
        for (seq, event) in r.failed_events(name)? {
            views.push(failed_view(name, seq, &event, false));
        }
    }
    Ok(views)
}

/// A cached object as UCS's `univention-directory-listener-dump` prints it: an LDIF
/// content record (base64 where RFC 2849 asks for it), then one `listenerModule: <name>`
/// line per module registered on it, then an empty line.
pub(crate) fn entry_ldif(cached: &CachedEntry) -> String {
    let mut out = String::new();
    write_line(&mut out, "dn", cached.entry.dn().as_str().as_bytes());
    for attr in cached.entry.attributes() {
        for value in &attr.values {
            write_line(&mut out, attr.desc.as_str(), value);
        }
    }
    for module in &cached.modules {
        write_line(&mut out, LISTENER_MODULE, module.as_bytes());
    }
    out.push('\n');
    out
}

/// The pseudo-attribute of [`entry_ldif`] naming a registered module.
pub(crate) const LISTENER_MODULE: &str = "listenerModule";

/// Hands the whole cache to `sink` as LDIF, in pieces of about 64 KiB (normalized-DN
/// order); stops at the first error of `sink`.
pub(crate) fn write_dump<E: From<CacheError>>(
    r: &ReadTxn,
    mut sink: impl FnMut(String) -> Result<(), E>,
) -> Result<(), E> {
    let mut chunk = String::new();
    for cached in r.entries()? {
        chunk.push_str(&entry_ldif(&cached?));
        if chunk.len() >= 64 * 1024 {
            sink(std::mem::take(&mut chunk))?;
        }
    }
    if !chunk.is_empty() {
        sink(chunk)?;
    }
    Ok(())
}

/// A time as `YYYY-MM-DD HH:MM:SS.ffffff UTC`.
pub(crate) fn utc(time: SystemTime) -> String {
    let micros = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    crate::utc::format_micros(micros)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use listener_core::{Dn, Entry};

    use super::*;

    #[test]
    fn entries_dump_like_ucs_with_base64_and_module_lines() {
        let mut entry = Entry::new(Dn::parse("cn=Müller,dc=example").unwrap());
        entry.insert("cn", ["Müller"]).unwrap();
        entry
            .insert("description", ["plain", " leading space"])
            .unwrap();
        let cached = CachedEntry {
            entry,
            modules: BTreeSet::from(["printer".to_owned(), "a_module".to_owned()]),
        };
        assert_eq!(
            entry_ldif(&cached),
            "dn:: Y249TcO8bGxlcixkYz1leGFtcGxl\n\
             cn:: TcO8bGxlcg==\n\
             description: plain\n\
             description::IGxlYWRpbmcgc3BhY2U=\n\
             listenerModule: a_module\n\
             listenerModule: printer\n\n"
                .replace("description::I", "description:: I")
        );
        // It reads back as LDIF, the modules as an attribute.
        let records = listener_core::ldif::parse(&entry_ldif(&cached)).unwrap();
        let listener_core::ldif::Record::Content(back) = &records[0] else {
            panic!("{records:?}")
        };
        assert_eq!(back.strs(LISTENER_MODULE).count(), 2);
        assert_eq!(back.first_str("cn"), Some("Müller"));
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(
            utc(SystemTime::UNIX_EPOCH),
            "1970-01-01 00:00:00.000000 UTC"
        );
    }
}
