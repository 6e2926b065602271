use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;
use crate::api::handler::{AsyncHandler, Handler};
use crate::api::registry::{ApiKind, SourceLocation};

/// Calls seen by the test modules, as text.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// How many more calls of `Flaky` fail.
static FLAKY_FAILURES: AtomicU32 = AtomicU32::new(0);

fn log(line: String) {
    LOG.lock().unwrap().push(line);
}

fn take_log(prefix: &str) -> Vec<String> {
    let mut all = LOG.lock().unwrap();
    let (mine, rest): (Vec<String>, Vec<String>) =
        all.drain(..).partition(|l| l.starts_with(prefix));
    *all = rest;
    mine
}

#[derive(Default)]
struct Flaky;

impl Handler for Flaky {
    fn pre_run(&mut self, ctx: &mut Context) -> HandlerResult {
        log(format!("{} pre_run", ctx.module_name()));
        Ok(())
    }
    fn post_run(&mut self, ctx: &mut Context) -> HandlerResult {
        log(format!("{} post_run", ctx.module_name()));
        Ok(())
    }
    fn create(&mut self, ctx: &mut Context, dn: &Dn, _new: &Entry) -> HandlerResult {
        log(format!("{} create {dn}", ctx.module_name()));
        if FLAKY_FAILURES
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(HandlerError::msg("not yet"));
        }
        Ok(())
    }
    fn remove(&mut self, _ctx: &mut Context, _dn: &Dn, _old: &Entry) -> HandlerResult {
        panic!("remove is broken");
    }
}

#[derive(Default)]
struct Forgiving;

impl Handler for Forgiving {
    fn create(&mut self, _ctx: &mut Context, _dn: &Dn, _new: &Entry) -> HandlerResult {
        log("forgiving create".into());
        Err(HandlerError::msg("always"))
    }
    fn error_handler(
        &mut self,
        _ctx: &mut Context,
        dn: &Dn,
        _old: Option<&Entry>,
        _new: Option<&Entry>,
        command: Command,
        error: HandlerError,
    ) -> HandlerResult {
        log(format!("forgiving error_handler {dn} {command} {error}"));
        Ok(())
    }
}

#[derive(Default)]
struct Later;

impl AsyncHandler for Later {
    async fn modify(
        &mut self,
        _ctx: &mut Context,
        dn: &Dn,
        _old: &Entry,
        _new: &Entry,
        old_dn: Option<&Dn>,
    ) -> HandlerResult {
        log(format!(
            "later modify {dn} from {}",
            old_dn.map_or("-".into(), Dn::to_string)
        ));
        Ok(())
    }
}

fn classic(
    _ctx: &mut Context,
    dn: &Dn,
    new: Option<&Entry>,
    old: Option<&Entry>,
    command: Command,
) -> HandlerResult {
    log(format!(
        "classic {dn} {command} new={} old={}",
        new.is_some(),
        old.is_some()
    ));
    Ok(())
}

macro_rules! registration {
    ($name:literal, $kind:expr, $ctor:expr) => {{
        static R: ModuleRegistration = ModuleRegistration {
            name: $name,
            description: "test",
            ldap_filter: "(objectClass=*)",
            attributes: &[],
            priority: 50.0,
            handle_every_delete: false,
            blocking: false,
            modrdn: true,
            parallelism: None,
            kind: $kind,
            constructor: $ctor,
            source: SourceLocation {
                item: $name,
                file: file!(),
                line: line!(),
            },
        };
        &R
    }};
}

fn entry(dn: &str) -> Entry {
    Entry::new(Dn::parse(dn).unwrap())
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    }
}

#[tokio::test]
async fn retries_until_the_call_succeeds_and_runs_pre_run_once() {
    let mut m = Module::load(registration!("flaky", ApiKind::New, || {
        ModuleInstance::Sync(Box::new(Flaky))
    }));
    FLAKY_FAILURES.store(2, Ordering::SeqCst);
    let e = entry("cn=a,dc=x");
    let call = Invocation::Create {
        dn: e.dn(),
        new: &e,
    };
    assert_eq!(m.call(call, &quick()).await, Ok(()));
    m.call(call, &quick()).await.unwrap();
    m.post_run().await.unwrap();
    m.post_run().await.unwrap();
    assert_eq!(
        take_log("flaky "),
        [
            "flaky pre_run",
            "flaky create cn=a,dc=x",
            "flaky create cn=a,dc=x",
            "flaky create cn=a,dc=x",
            "flaky create cn=a,dc=x",
            "flaky post_run"
        ]
    );
}

#[tokio::test]
async fn a_call_failing_every_attempt_is_reported_and_a_panic_is_an_error() {
    let mut m = Module::load(registration!("flaky2", ApiKind::New, || {
        ModuleInstance::Sync(Box::new(Flaky))
    }));
    let e = entry("cn=b,dc=x");
    let failure = m
        .call(
            Invocation::Remove {
                dn: e.dn(),
                old: &e,
            },
            &quick(),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.attempts, 3);
    assert!(
        failure.error.contains("flaky2 panicked: remove is broken"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn error_handler_can_accept_the_failure() {
    let mut m = Module::load(registration!("forgiving", ApiKind::New, || {
        ModuleInstance::Sync(Box::new(Forgiving))
    }));
    let e = entry("cn=c,dc=x");
    m.call(
        Invocation::Create {
            dn: e.dn(),
            new: &e,
        },
        &quick(),
    )
    .await
    .unwrap();
    assert_eq!(
        take_log("forgiving"),
        [
            "forgiving create",
            "forgiving error_handler cn=c,dc=x a always"
        ]
    );
}

#[tokio::test]
async fn async_and_classic_modules_are_called_through_the_same_interface() {
    let mut later = Module::load(registration!("later", ApiKind::Async, || {
        ModuleInstance::Async(Box::new(Later))
    }));
    let mut printer = Module::load(registration!("classic", ApiKind::Classic, || {
        ModuleInstance::Classic(classic)
    }));
    let old = entry("cn=d,dc=x");
    let new = entry("cn=e,dc=x");
    later
        .call(
            Invocation::Modify {
                dn: new.dn(),
                old: &old,
                new: &new,
                old_dn: Some(old.dn()),
            },
            &quick(),
        )
        .await
        .unwrap();
    printer
        .call(
            Invocation::Classic {
                dn: old.dn(),
                new: None,
                old: Some(&old),
                command: Command::Rename,
            },
            &quick(),
        )
        .await
        .unwrap();
    assert_eq!(take_log("later"), ["later modify cn=e,dc=x from cn=d,dc=x"]);
    assert_eq!(
        take_log("classic"),
        ["classic cn=d,dc=x r new=false old=true"]
    );
    // A new-API call to a classic module is an internal error, not a silent success.
    let wrong = printer
        .call(
            Invocation::Create {
                dn: new.dn(),
                new: &new,
            },
            &quick(),
        )
        .await
        .unwrap_err();
    assert!(wrong.error.contains("internal error"), "{wrong:?}");
}

#[test]
fn retry_delays_double_up_to_the_cap() {
    let p = RetryPolicy {
        attempts: 10,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(350),
    };
    let delays: Vec<u128> = (1..=5).map(|n| p.delay(n).as_millis()).collect();
    assert_eq!(delays, [100, 200, 350, 350, 350]);
    assert_eq!(p.delay(200), Duration::from_millis(350));
}
