//! Shared variables and locks of a module (`ctx.lock`, `get_shared_var`,
//! `set_shared_var`) on both backends, a real memcached and the embedded store: four
//! concurrent callers incrementing a counter under the lock end at exactly the number of
//! increments; without the lock, updates are lost (so the counting can fail); a lease
//! that ran out is not the old holder's to release; a memcached that is gone is an error
//! naming it, and the store reconnects when it is back.
//!
//! The callers are tasks of one process here: worker processes are not built yet.

use std::time::Duration;

use listener_runtime::Context;
use listener_runtime::testing::SharedStore;
use tests::Memcached;

const CALLERS: u64 = 4;
const EACH: u64 = 25;

/// `CALLERS` tasks each add 1 to `counter` `EACH` times, reading and writing it with a
/// pause in between (as a module calling a service would); under the lock if `locked`.
async fn count(store: &SharedStore, module: &str, locked: bool) -> u64 {
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let ctx: Context = store.context(module);
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                let guard = match locked {
                    true => Some(ctx.lock("counter").await.unwrap()),
                    false => None,
                };
                let n: u64 = ctx.get_shared_var("counter").await.unwrap().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(1)).await;
                ctx.set_shared_var("counter", &(n + 1)).await.unwrap();
                if let Some(guard) = guard {
                    assert!(guard.unlock().await.unwrap(), "the lease ran out");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    store
        .context(module)
        .get_shared_var("counter")
        .await
        .unwrap()
        .unwrap()
}

async fn check(store: SharedStore) {
    assert_eq!(count(&store, "locked", true).await, CALLERS * EACH);
    let unlocked = count(&store, "unlocked", false).await;
    assert!(
        unlocked < CALLERS * EACH,
        "no update was lost without the lock ({unlocked}): the test cannot tell"
    );
    // Per module: the locked module's counter is its own.
    let other = store.context("unlocked");
    assert_eq!(
        store
            .context("locked")
            .get_shared_var::<u64>("counter")
            .await
            .unwrap(),
        Some(CALLERS * EACH)
    );
    drop(other);

    // A lease that ran out is free; its old holder cannot release the new holder's.
    let a = store.context("m");
    let b = store.context("m");
    let old = a.lock_with("lease", Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let new = b.lock_with("lease", Duration::from_secs(30)).await.unwrap();
    assert!(
        !old.unlock().await.unwrap(),
        "released another holder's lock"
    );
    let waiting = tokio::time::timeout(Duration::from_millis(300), a.lock("lease")).await;
    assert!(waiting.is_err(), "the lock was free while held");
    assert!(new.unlock().await.unwrap());
    let again = tokio::time::timeout(Duration::from_secs(5), a.lock("lease")).await;
    drop(again.expect("the released lock stayed taken").unwrap());

    // A value of another type is an error naming the variable.
    let ctx = store.context("m");
    ctx.set_shared_var("text", "hello").await.unwrap();
    let e = ctx.get_shared_var::<u64>("text").await.unwrap_err();
    assert!(e.to_string().contains("\"text\""), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_make_a_shared_counter_exact_on_memcached() {
    let memcached = Memcached::start().unwrap();
    check(SharedStore::memcached(&format!(
        "127.0.0.1:{}",
        memcached.port()
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_make_a_shared_counter_exact_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    check(SharedStore::embedded(dir.path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memcached_that_is_gone_is_an_error_naming_it_until_it_is_back() {
    let mut memcached = Memcached::start().unwrap();
    let addr = memcached.address();
    let store = SharedStore::memcached(&addr);
    let ctx = store.context("m");
    ctx.set_shared_var("n", &1u64).await.unwrap();
    memcached.stop();
    let e = ctx.get_shared_var::<u64>("n").await.unwrap_err();
    assert!(
        e.to_string().contains(&format!("memcached at {addr}")),
        "{e}"
    );
    let e = ctx.lock("l").await.unwrap_err();
    assert!(e.to_string().contains("memcached"), "{e}");
    // Back (empty: memcached keeps nothing across a restart): the store reconnects.
    memcached.restart().unwrap();
    assert_eq!(ctx.get_shared_var::<u64>("n").await.unwrap(), None);
    ctx.set_shared_var("n", &2u64).await.unwrap();
    assert_eq!(ctx.get_shared_var::<u64>("n").await.unwrap(), Some(2));
    drop(ctx.lock("l").await.unwrap());
}

/// A caller that stops waiting mid-request (a timeout around `lock`) leaves no reply on
/// the connection for the next request to read as its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_given_up_halfway_does_not_confuse_the_next() {
    let memcached = Memcached::start().unwrap();
    let store = SharedStore::memcached(&memcached.address());
    let ctx = store.context("m");
    ctx.set_shared_var("a", "alpha").await.unwrap();
    ctx.set_shared_var("b", &7u64).await.unwrap();
    let held = store.context("m").lock("l").await.unwrap();
    for i in 0..200u64 {
        // Cut off after a varying number of microseconds: sometimes before the request
        // is sent, sometimes with its reply still unread.
        let _ = tokio::time::timeout(Duration::from_micros(i * 7 % 400), ctx.lock("l")).await;
        let _ = tokio::time::timeout(
            Duration::from_micros(i * 13 % 300),
            ctx.get_shared_var::<String>("a"),
        )
        .await;
        assert_eq!(
            ctx.get_shared_var::<u64>("b").await.unwrap(),
            Some(7),
            "round {i}"
        );
    }
    drop(held);
}
