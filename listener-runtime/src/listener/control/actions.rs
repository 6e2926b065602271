//! What the processing loop does for the tools between transactions: replay and drop
//! failed events, re-initialize modules. Built from the loop's own pieces (dispatch plans,
//! module calls, the lifecycle's initialization), so a replayed or re-initialized module
//! is called exactly as the loop would call it.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::time::SystemTime;

use listener_core::{Command, Entry};

use super::protocol::{ReplayReport, ResyncReport};
use crate::listener::apply::{Applier, invocation};
use crate::listener::cache::{Cache, CacheError, CachedEntry, FailedEvent, ReadTxn};
use crate::listener::dispatch::{self, Change, DeleteCause, ModuleSpec};
use crate::listener::fetch::Fetcher;
use crate::listener::lifecycle::{self, InitError, Reason};

/// Deletes `module`'s failed event `seq`, or all of them; how many were deleted.
pub(crate) fn drop_events(
    cache: &Cache,
    module: &str,
    seq: Option<u64>,
) -> Result<u64, CacheError> {
    let seqs: Vec<u64> = match seq {
        Some(seq) => vec![seq],
        None => cache
            .read()?
            .failed_events(module)?
            .into_iter()
            .map(|(seq, _)| seq)
            .collect(),
    };
    let mut w = cache.write()?;
    let mut dropped = 0;
    for seq in seqs {
        if w.remove_failed_event(module, seq)? {
            dropped += 1;
        }
    }
    w.commit()?;
    Ok(dropped)
}

/// What a replay does with one failed event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Redo {
    /// The object is cached and matches the module's filter: deliver its current cached
    /// state as for a new object (and register the module on it on success).
    Create(CachedEntry),
    /// The event removed the object from the module's view (a delete, or the first half
    /// of a move) and the object is now gone or outside the filter: deliver that remove
    /// with the recorded old state.
    Remove(Entry),
    /// A later change made the event moot; it is dropped without a call.
    Superseded(&'static str),
}

/// Decides a replay from the event and the object's current cached state (`current`,
/// found by entryUUID, else by DN). Replaying the *current* state, not the recorded one,
/// keeps the module in step with the cache: an old state would be older than what later
/// transactions already delivered to every other module.
pub(crate) fn redo(spec: &ModuleSpec, event: &FailedEvent, current: Option<CachedEntry>) -> Redo {
    let removed = matches!(event.command, Command::Delete | Command::Rename);
    match current {
        Some(c) if spec.filter.matches(&c.entry) => {
            if c.modules.contains(&spec.name) {
                Redo::Superseded("the module has taken a later change of the object")
            } else {
                Redo::Create(c)
            }
        }
        current => match (&event.old, removed) {
            (Some(old), true) => Redo::Remove(old.clone()),
            _ if current.is_some() => {
                Redo::Superseded("the object no longer matches the module's filter")
            }
            _ => Redo::Superseded("the object is gone"),
        },
    }
}

/// The object of a failed event as the cache has it now.
fn current(r: &ReadTxn, event: &FailedEvent) -> Result<Option<CachedEntry>, CacheError> {
    if event.entry_uuid.is_empty() {
        r.entry(&event.dn)
    } else {
        r.entry_by_uuid(&event.entry_uuid)
    }
}

/// Waits until the asynchronous module's queued calls are done, before it is initialized
/// again: they are changes it has not seen, never dropped. How many there were.
pub(crate) async fn drain(pool: &crate::workers::Pool, module: &str) -> u64 {
    let queued = pool.len() as u64;
    if queued > 0 {
        tracing::info!(
            module,
            queued,
            "running the module's queued calls before it is initialized"
        );
        pool.drained().await;
    }
    queued
}

/// Re-delivers `module`'s failed event `seq` (or all of them, oldest first): see [`redo`].
/// Delivered and superseded events are removed; one that fails again stays, with its
/// attempts, error and time updated.
pub(crate) async fn replay(
    applier: &mut Applier,
    cache: &Cache,
    module: &str,
    seq: Option<u64>,
) -> Result<ReplayReport, String> {
    let Some(index) = applier.modules.iter().position(|m| m.name() == module) else {
        return Err(not_active(module));
    };
    let events = (|| {
        let r = cache.read()?;
        match seq {
            Some(seq) => Ok(r
                .failed_event(module, seq)?
                .map(|e| (seq, e))
                .into_iter()
                .collect()),
            None => r.failed_events(module),
        }
    })()
    .map_err(|e: CacheError| e.to_string())?;
    if let (Some(seq), true) = (seq, events.is_empty()) {
        return Err(format!("module {module} has no failed event #{seq}"));
    }
    let mut report = ReplayReport::default();
    for (seq, mut event) in events {
        let found = cache
            .read()
            .and_then(|r| current(&r, &event))
            .map_err(|e| e.to_string())?;
        let spec = &applier.specs[index];
        let decision = redo(spec, &event, found);
        let registered = BTreeSet::from([spec.name.clone()]);
        let change = match &decision {
            Redo::Create(c) => Change::Update {
                old: None,
                new: &c.entry,
            },
            Redo::Remove(old) => Change::Delete {
                dn: old.dn(),
                old: Some(old),
                cause: DeleteCause::Deleted,
            },
            Redo::Superseded(why) => {
                tracing::info!(module, seq, dn = %event.dn, "failed event superseded, dropped: {why}");
                drop_events(cache, module, Some(seq)).map_err(|e| e.to_string())?;
                report.superseded += 1;
                report
                    .details
                    .push(format!("#{seq} {}: superseded ({why}); dropped", event.dn));
                continue;
            }
        };
        let with = if matches!(decision, Redo::Remove(_)) {
            &registered
        } else {
            &BTreeSet::new()
        };
        let plans = dispatch::plan(&change, with, std::slice::from_ref(spec));
        let calls = plans
            .into_iter()
            .next()
            .map(|p| p.calls)
            .unwrap_or_default();
        let policy = applier.policy.clone();
        let mut failure = None;
        for call in &calls {
            if let Err(f) = applier.modules[index].call(invocation(call), &policy).await {
                failure = Some((call.command(), f));
                break;
            }
        }
        let outcome = (|| {
            let mut w = cache.write()?;
            match &failure {
                None => {
                    w.remove_failed_event(module, seq)?;
                    if let Redo::Create(c) = &decision {
                        let mut modules = c.modules.clone();
                        modules.insert(module.to_owned());
                        w.set_registrations(c.entry.dn(), &modules)?;
                    } else if let Some(c) = w.entry(&event.dn)?
                        && c.modules.contains(module)
                    {
                        let mut modules = c.modules;
                        modules.remove(module);
                        w.set_registrations(c.entry.dn(), &modules)?;
                    }
                }
                Some((_, f)) => {
                    event.attempts = event.attempts.saturating_add(f.attempts);
                    event.error = f.error.clone();
                    event.time = SystemTime::now();
                    w.replace_failed_event(module, seq, &event)?;
                }
            }
            w.commit()
        })();
        outcome.map_err(|e| e.to_string())?;
        match failure {
            None => {
                report.delivered += 1;
                let what = match &decision {
                    Redo::Create(c) => format!("delivered the current state of {}", c.entry.dn()),
                    _ => "delivered the remove".to_owned(),
                };
                report.details.push(format!("#{seq} {}: {what}", event.dn));
            }
            Some((command, f)) => {
                report.failed += 1;
                report.details.push(format!(
                    "#{seq} {}: {command} failed again ({} attempts in all): {}",
                    event.dn, event.attempts, f.error
                ));
            }
        }
    }
    Ok(report)
}

/// Re-initializes `names` in the running listener, one after the other, as at start
/// (`clean`, `initialize`, every object matching the filter as a create; semantics §6);
/// the other modules keep their state. An object the cache already holds is delivered in
/// its cached state (the state every other module has seen; the pending transactions
/// bring all of them forward together), and only if that state matches the filter. A
/// module whose `clean` or `initialize` fails stops getting events, as at start.
pub(crate) async fn resync(
    applier: &mut Applier,
    cache: &Cache,
    fetcher: &Fetcher,
    names: &[String],
) -> Result<Vec<ResyncReport>, String> {
    if let Some(missing) = names
        .iter()
        .find(|n| !applier.modules.iter().any(|m| m.name() == n.as_str()))
    {
        return Err(not_active(missing));
    }
    let mut reports = Vec::new();
    for name in names {
        let Some(index) = applier
            .modules
            .iter()
            .position(|m| m.name() == name.as_str())
        else {
            return Err(not_active(name));
        };
        let registration = applier.modules[index].registration();
        let found = fetcher
            .search_all(registration.ldap_filter)
            .await
            .map_err(|e| format!("resync of {name}: cannot search LDAP: {e}"))?;
        let objects = (|| {
            let r = cache.read()?;
            let spec = &applier.specs[index];
            let mut objects = Vec::with_capacity(found.len());
            for object in found {
                match r.entry(object.dn())? {
                    Some(cached) if spec.filter.matches(&cached.entry) => {
                        objects.push(cached.entry)
                    }
                    Some(_) => {}
                    None => objects.push(object),
                }
            }
            Ok::<_, CacheError>(objects)
        })()
        .map_err(|e| e.to_string())?;
        let drained = match applier.modules[index].pool() {
            Some(pool) => Some(drain(pool, name).await),
            None => None,
        };
        tracing::info!(module = %name, objects = objects.len(), "re-initializing module (resync)");
        let policy = applier.policy.clone();
        let result = lifecycle::initialize(
            &mut applier.modules[index],
            &Reason::New,
            futures_util::stream::iter(objects.into_iter().map(Ok)),
            cache,
            &policy,
            |_| ControlFlow::Continue(()),
        )
        .await;
        match result {
            Ok(done) => {
                tracing::info!(module = %name, delivered = done.delivered, failed = done.failed, "module re-initialized");
                reports.push(ResyncReport {
                    module: name.clone(),
                    delivered: done.delivered,
                    failed: done.failed,
                    drained,
                });
            }
            Err(e @ InitError::Module { .. }) => {
                applier.modules.remove(index);
                applier.specs.remove(index);
                tracing::error!(error = %e, "module re-initialization failed; it gets no events until the listener is restarted");
                return Err(format!(
                    "{e}; the module gets no events until the listener is restarted"
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(reports)
}

fn not_active(module: &str) -> String {
    format!(
        "module {module} is not active in the running listener (its initialization failed; \
         see `status`): restart the listener to initialize it again"
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use listener_core::{Dn, ModuleConfig, ModuleForm, Schema};

    use super::*;

    fn spec() -> ModuleSpec {
        let config = ModuleConfig::new("m", "", "(description=fail)", ModuleForm::Struct);
        ModuleSpec::from_config(&config, Schema::builtin()).unwrap()
    }

    fn entry(description: &str) -> Entry {
        let mut e = Entry::new(Dn::parse("cn=x,dc=example").unwrap());
        e.insert("description", [description]).unwrap();
        e
    }

    fn event(command: Command, old: Option<Entry>) -> FailedEvent {
        FailedEvent {
            transaction_id: 4,
            dn: Dn::parse("cn=x,dc=example").unwrap(),
            entry_uuid: String::new(),
            command,
            old,
            new: None,
            error: "e".into(),
            attempts: 3,
            time: SystemTime::UNIX_EPOCH,
        }
    }

    fn cached(description: &str, modules: &[&str]) -> Option<CachedEntry> {
        Some(CachedEntry {
            entry: entry(description),
            modules: modules
                .iter()
                .map(|m| (*m).to_owned())
                .collect::<BTreeSet<_>>(),
        })
    }

    #[test]
    fn a_matching_cached_object_is_delivered_as_new() {
        let redo = redo(
            &spec(),
            &event(Command::Add, None),
            cached("fail", &["other"]),
        );
        assert!(matches!(redo, Redo::Create(c) if c.entry == entry("fail")));
    }

    #[test]
    fn a_registered_module_has_had_a_later_change() {
        let redo = redo(
            &spec(),
            &event(Command::Modify, None),
            cached("fail", &["m"]),
        );
        assert!(matches!(redo, Redo::Superseded(_)));
    }

    #[test]
    fn a_remove_is_redone_while_the_object_is_out_of_view() {
        let old = entry("fail");
        for current in [None, cached("ok", &[])] {
            let redo = redo(&spec(), &event(Command::Delete, Some(old.clone())), current);
            assert_eq!(redo, Redo::Remove(old.clone()));
        }
        // Back in the filter: the current state wins.
        let redo = redo(
            &spec(),
            &event(Command::Delete, Some(old)),
            cached("fail", &[]),
        );
        assert!(matches!(redo, Redo::Create(_)));
    }

    #[test]
    fn other_events_of_objects_out_of_view_are_superseded() {
        assert_eq!(
            redo(&spec(), &event(Command::Add, None), None),
            Redo::Superseded("the object is gone")
        );
        assert_eq!(
            redo(
                &spec(),
                &event(Command::Modify, Some(entry("fail"))),
                cached("ok", &[])
            ),
            Redo::Superseded("the object no longer matches the module's filter")
        );
    }

    mod against_a_module {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicBool, Ordering};

        use listener_core::Dn;

        use super::super::*;
        use crate::api::context::Context;
        use crate::api::error::{HandlerError, HandlerResult};
        use crate::api::registry::{ApiKind, ModuleInstance, ModuleRegistration, SourceLocation};
        use crate::listener::decide::Step;

        static FAIL: AtomicBool = AtomicBool::new(true);
        static CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());

        fn flaky(
            _ctx: &mut Context,
            dn: &Dn,
            new: Option<&Entry>,
            old: Option<&Entry>,
            command: Command,
        ) -> HandlerResult {
            if FAIL.load(Ordering::SeqCst) {
                return Err(HandlerError::msg("not now"));
            }
            let uuid = |e: Option<&Entry>| {
                e.and_then(|e| e.first_str("entryUUID"))
                    .unwrap_or("-")
                    .to_owned()
            };
            CALLS.lock().unwrap().push(format!(
                "{}({},{},{command})",
                dn.rdn().map_or(String::new(), |r| r.to_string()),
                uuid(old),
                uuid(new)
            ));
            Ok(())
        }

        static FLAKY: ModuleRegistration = ModuleRegistration {
            name: "flaky",
            description: "test",
            ldap_filter: "(description=on)",
            attributes: &[],
            priority: 50.0,
            handle_every_delete: false,
            blocking: false,
            modrdn: true,
            parallelism: None,
            kind: ApiKind::Classic,
            constructor: || ModuleInstance::Classic(flaky),
            source: SourceLocation {
                item: "flaky",
                file: file!(),
                line: line!(),
            },
        };

        fn object(cn: &str, uuid: &str, description: &str) -> Entry {
            let mut e = Entry::new(Dn::parse(&format!("cn={cn},dc=x")).unwrap());
            e.insert("cn", [cn]).unwrap();
            e.insert("description", [description]).unwrap();
            e.insert("entryUUID", [uuid]).unwrap();
            e
        }

        fn cached(cache: &Cache, cn: &str) -> Option<CachedEntry> {
            cache
                .read()
                .unwrap()
                .entry(&Dn::parse(&format!("cn={cn},dc=x")).unwrap())
                .unwrap()
        }

        fn failed(cache: &Cache) -> Vec<(u64, FailedEvent)> {
            cache.read().unwrap().failed_events("flaky").unwrap()
        }

        /// One test, in order: the module's calls and FAIL are shared.
        #[tokio::test]
        async fn replay_delivers_the_current_state_the_remove_or_drops_the_event() {
            let dir = tempfile::tempdir().unwrap();
            let cache = Cache::open(dir.path()).unwrap();
            let mut a = Applier::for_tests(&FLAKY);
            let take = || std::mem::take(&mut *CALLS.lock().unwrap());

            // A create the module fails.
            FAIL.store(true, Ordering::SeqCst);
            let step = Step::Update {
                old: None,
                new: object("a", "u1", "on"),
            };
            a.apply(&cache, 1, Command::Add, step).await.unwrap();
            let events = failed(&cache);
            assert_eq!(events.len(), 1);
            let seq = events[0].0;

            // Replayed while it still fails: kept under its number, attempts counted up.
            let report = replay(&mut a, &cache, "flaky", None).await.unwrap();
            assert_eq!(
                (report.delivered, report.failed, report.superseded),
                (0, 1, 0)
            );
            let events = failed(&cache);
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].0, seq);
            assert_eq!(events[0].1.attempts, 4);

            // Then it works: the current cached state as new, and registered.
            let step = Step::Update {
                old: cached(&cache, "a"),
                new: object("a", "u1", "on"),
            };
            a.apply(&cache, 2, Command::Modify, step).await.unwrap();
            assert_eq!(failed(&cache).len(), 2, "the modify failed too");
            FAIL.store(false, Ordering::SeqCst);
            let report = replay(&mut a, &cache, "flaky", Some(seq)).await.unwrap();
            assert_eq!((report.delivered, report.failed), (1, 0), "{report:?}");
            assert_eq!(take(), ["cn=a(-,u1,a)"]);
            assert!(cached(&cache, "a").unwrap().modules.contains("flaky"));
            // The other event: the module has the object now.
            let report = replay(&mut a, &cache, "flaky", None).await.unwrap();
            assert_eq!(report.superseded, 1, "{report:?}");
            assert!(take().is_empty());
            assert!(failed(&cache).is_empty());

            // A remove that failed is redone while the object is gone.
            FAIL.store(true, Ordering::SeqCst);
            let step = Step::Delete {
                dn: Dn::parse("cn=a,dc=x").unwrap(),
                old: cached(&cache, "a"),
            };
            a.apply(&cache, 3, Command::Delete, step).await.unwrap();
            assert_eq!(failed(&cache)[0].1.command, Command::Delete);
            FAIL.store(false, Ordering::SeqCst);
            let report = replay(&mut a, &cache, "flaky", None).await.unwrap();
            assert_eq!(report.delivered, 1, "{report:?}");
            assert_eq!(take(), ["cn=a(u1,-,d)"]);

            // A create overtaken by a change out of the filter is superseded.
            FAIL.store(true, Ordering::SeqCst);
            let step = Step::Update {
                old: None,
                new: object("b", "u2", "on"),
            };
            a.apply(&cache, 4, Command::Add, step).await.unwrap();
            let step = Step::Update {
                old: cached(&cache, "b"),
                new: object("b", "u2", "off"),
            };
            a.apply(&cache, 5, Command::Modify, step).await.unwrap();
            FAIL.store(false, Ordering::SeqCst);
            let report = replay(&mut a, &cache, "flaky", None).await.unwrap();
            assert_eq!(report.superseded, 1, "{report:?}");
            assert!(take().is_empty());
            assert!(failed(&cache).is_empty());

            // Unknown events and modules are refused.
            let e = replay(&mut a, &cache, "flaky", Some(99)).await.unwrap_err();
            assert!(e.contains("no failed event #99"), "{e}");
            let e = replay(&mut a, &cache, "other", None).await.unwrap_err();
            assert!(e.contains("not active"), "{e}");
            assert_eq!(drop_events(&cache, "flaky", None).unwrap(), 0);
        }
    }
}
