use std::sync::Mutex;

use futures_util::FutureExt;
use listener_core::{Dn, Entry};

use super::*;
use crate::api::context::Context;
use crate::api::error::{HandlerError, HandlerResult};
use crate::api::handler::Handler;
use crate::api::registry::{ModuleInstance, SourceLocation};
use crate::listener::fetch::FetchError;

static CREATED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static FAIL_CLEAN: Mutex<bool> = Mutex::new(false);

#[derive(Default)]
struct Recorder;

impl Handler for Recorder {
    fn clean(&mut self, _ctx: &mut Context) -> HandlerResult {
        if *FAIL_CLEAN.lock().unwrap() {
            return Err(HandlerError::msg("cannot clean"));
        }
        Ok(())
    }
    fn create(&mut self, _ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
        if dn.as_str().starts_with("cn=bad") {
            return Err(HandlerError::msg("bad object"));
        }
        CREATED.lock().unwrap().push(dn.to_string());
        Ok(())
    }
}

static RECORDER: ModuleRegistration = ModuleRegistration {
    name: "recorder",
    description: "test",
    ldap_filter: "(objectClass=*)",
    attributes: &["cn"],
    priority: 50.0,
    handle_every_delete: false,
    blocking: false,
    modrdn: false,
    parallelism: None,
    kind: ApiKind::New,
    constructor: || ModuleInstance::Sync(Box::new(Recorder)),
    source: SourceLocation {
        item: "recorder",
        file: file!(),
        line: line!(),
    },
};

fn entry(dn: &str) -> Entry {
    let mut e = Entry::new(Dn::parse(dn).unwrap());
    e.insert("objectClass", ["organizationalRole"]).unwrap();
    e
}

/// Users in [`objects`]: more than two batches.
const USERS: usize = 2 * BATCH + 50;
/// Every object in [`objects`].
const ALL: u64 = USERS as u64 + 3;

/// More than two batches, parents first (as `Fetcher::initialization_stream` yields them).
fn objects() -> futures_util::stream::Iter<std::vec::IntoIter<Result<Entry, FetchError>>> {
    let mut v: Vec<Entry> = vec![entry("dc=x"), entry("cn=bad,dc=x"), entry("ou=people,dc=x")];
    v.extend((0..USERS).map(|i| entry(&format!("cn=u{i:04},ou=people,dc=x"))));
    futures_util::stream::iter(v.into_iter().map(Ok).collect::<Vec<_>>())
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    }
}

#[test]
fn which_modules_need_initializing() {
    assert_eq!(needs_initialization(&RECORDER, None), Some(Reason::New));
    let mut s = state(&RECORDER, ModulePhase::Ready);
    assert_eq!(needs_initialization(&RECORDER, Some(&s)), None);
    s.filter = "(cn=other)".into();
    assert_eq!(
        needs_initialization(&RECORDER, Some(&s)),
        Some(Reason::ConfigChanged)
    );
    let mut s = state(&RECORDER, ModulePhase::Ready);
    s.attributes.clear();
    assert_eq!(
        needs_initialization(&RECORDER, Some(&s)),
        Some(Reason::ConfigChanged)
    );
    let s = state(
        &RECORDER,
        ModulePhase::Initializing {
            progress: Some("t".into()),
        },
    );
    assert_eq!(
        needs_initialization(&RECORDER, Some(&s)),
        Some(Reason::Resume(Some("t".into())))
    );
    let s = state(&RECORDER, ModulePhase::Failed { error: "x".into() });
    assert_eq!(
        needs_initialization(&RECORDER, Some(&s)),
        Some(Reason::Retry)
    );
}

/// One test for the stateful flows: they share the recorder's statics.
#[tokio::test]
async fn initialization_delivers_parents_first_resumes_and_fails_cleanly() {
    // 1. Interrupted after the first batch (the progress callback "crashes"), resumed.
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut module = Module::load(&RECORDER);
    CREATED.lock().unwrap().clear();
    let crashed = std::panic::AssertUnwindSafe(initialize(
        &mut module,
        &Reason::New,
        objects(),
        &cache,
        &quick(),
        |_| panic!("crash after the first batch"),
    ))
    .catch_unwind()
    .await;
    assert!(crashed.is_err());
    let first_batch = CREATED.lock().unwrap().clone();
    assert_eq!(
        first_batch.len(),
        BATCH - 1,
        "one of the first batch is the failing cn=bad"
    );
    assert_eq!(first_batch[0], "dc=x");
    assert_eq!(first_batch[1], "ou=people,dc=x");
    let s = cache
        .read()
        .unwrap()
        .module_state("recorder")
        .unwrap()
        .unwrap();
    let reason = needs_initialization(&RECORDER, Some(&s)).unwrap();
    assert!(matches!(reason, Reason::Resume(Some(_))), "{reason:?}");

    // The batch in flight at the crash is delivered again, the rest once.
    let mut seen = Vec::new();
    let done = initialize(&mut module, &reason, objects(), &cache, &quick(), |d| {
        seen.push(d);
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(
        done,
        Initialized {
            delivered: ALL - 1,
            failed: 1
        }
    );
    // After each batch but the last (which ends it anyway).
    assert_eq!(seen, [BATCH as u64, 2 * BATCH as u64]);
    let all = CREATED.lock().unwrap().clone();
    assert_eq!(
        all.len() as u64,
        BATCH as u64 - 1 + ALL - 1,
        "the batch in flight twice, the rest once"
    );
    assert_eq!(
        all[BATCH - 1..BATCH + 1],
        first_batch[..2],
        "parents first again"
    );
    let r = cache.read().unwrap();
    assert_eq!(
        r.module_state("recorder").unwrap().unwrap().phase,
        ModulePhase::Ready
    );
    let parent = r
        .entry(&Dn::parse("ou=people,dc=x").unwrap())
        .unwrap()
        .unwrap();
    assert!(parent.modules.contains("recorder"));
    let bad = r
        .entry(&Dn::parse("cn=bad,dc=x").unwrap())
        .unwrap()
        .unwrap();
    assert!(
        !bad.modules.contains("recorder"),
        "a failed create is not registered"
    );
    assert_eq!(r.failed_count("recorder").unwrap(), 1);
    drop(r);

    // 2. A failing clean leaves the module not READY, with the error in its state.
    *FAIL_CLEAN.lock().unwrap() = true;
    let e = initialize(
        &mut module,
        &Reason::ConfigChanged,
        objects(),
        &cache,
        &quick(),
        |_| ControlFlow::Continue(()),
    )
    .await
    .unwrap_err();
    *FAIL_CLEAN.lock().unwrap() = false;
    assert!(e.to_string().contains("clean failed: cannot clean"), "{e}");
    let s = cache
        .read()
        .unwrap()
        .module_state("recorder")
        .unwrap()
        .unwrap();
    assert_eq!(
        s.phase,
        ModulePhase::Failed {
            error: "clean failed: cannot clean".into()
        }
    );
    assert_eq!(
        needs_initialization(&RECORDER, Some(&s)),
        Some(Reason::Retry)
    );
    // Registrations are kept until a successful clean: nothing was dropped.
    let r = cache.read().unwrap();
    assert!(
        r.entry(&Dn::parse("dc=x").unwrap())
            .unwrap()
            .unwrap()
            .modules
            .contains("recorder")
    );
    drop(r);

    // 3. A shutdown (the callback says Break) stops after the committed batch, resumable.
    CREATED.lock().unwrap().clear();
    let e = initialize(
        &mut module,
        &Reason::Retry,
        objects(),
        &cache,
        &quick(),
        |_| ControlFlow::Break(()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, InitError::Stopped { done, .. } if done == BATCH as u64),
        "{e}"
    );
    let s = cache
        .read()
        .unwrap()
        .module_state("recorder")
        .unwrap()
        .unwrap();
    let reason = needs_initialization(&RECORDER, Some(&s)).unwrap();
    assert!(matches!(reason, Reason::Resume(Some(_))), "{reason:?}");

    // 4. The resumed initialization skips what the stopped one delivered (only the failed
    // cn=bad is tried again).
    let stopped_run = CREATED.lock().unwrap().clone();
    assert_eq!(stopped_run.len(), BATCH - 1);
    CREATED.lock().unwrap().clear();
    let done = initialize(&mut module, &reason, objects(), &cache, &quick(), |_| {
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(
        done,
        Initialized {
            delivered: (USERS - (BATCH - 3)) as u64,
            failed: 1
        }
    );
    let resumed = CREATED.lock().unwrap().clone();
    assert_eq!(resumed.len(), USERS - (BATCH - 3));
    assert!(
        resumed.iter().all(|dn| !stopped_run.contains(dn)),
        "{resumed:?}"
    );
}

#[test]
fn initialization_creates_and_classic_modules_get_n() {
    let e = entry("cn=test,dc=x");
    assert!(matches!(
        initial_call(ApiKind::Classic, &e),
        Invocation::Classic { dn, new: Some(new), old: None, command: Command::Initialize }
            if dn == e.dn() && *new == e
    ));
    for kind in [ApiKind::New, ApiKind::Async] {
        assert!(matches!(
            initial_call(kind, &e),
            Invocation::Create { dn, new } if dn == e.dn() && *new == e
        ));
    }
}
