//! A module's shared variables and locks in a running listener (`counting_on_demand`,
//! an asynchronous module of the test binary that counts creates under a lock): kept in
//! the embedded store in the cache directory, or with `run --memcached` on memcached; a
//! call that finds memcached gone becomes a failed event naming it, and `failed replay`
//! delivers it once memcached is back; `status` tells the backend and whether it
//! answers.

use std::process::{Command, Output};

use listener_runtime::testing::SharedStore;
use tests::domain::Domain;
use tests::{Memcached, Slapd, ldif};

const ROLES: u64 = 12;

/// Creates `count` roles the module counts, and waits until the listener is past them.
fn create_counted_roles(domain: &mut Domain, count: u64) {
    domain.barrier();
    let base = domain.slapd.base().to_owned();
    for i in 0..count {
        let dn = format!("cn=counted{i},{base}");
        let add = ldif::add(
            &dn,
            &[
                ("objectClass", "organizationalRole"),
                ("cn", &format!("counted{i}")),
                ("description", "count"),
            ],
        );
        domain.slapd.ldapmodify(&add).unwrap();
    }
    domain.barrier();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_the_count_in_the_cache_directory() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    domain.start_listener().unwrap();
    create_counted_roles(&mut domain, ROLES);
    assert!(domain.wait_for_queues(std::time::Duration::from_secs(60)));
    let cache = domain.cache_dir().display().to_string();
    let out = tool(&["status", "--cache-dir", &cache, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["shared"]["backend"], "the embedded store", "{json}");
    assert_eq!(json["shared"]["error"], serde_json::Value::Null, "{json}");
    assert!(domain.stop_listener(), "the listener did not stop cleanly");
    let store = SharedStore::embedded(&domain.cache_dir()).unwrap();
    let creates: Option<u64> = store
        .context("counting_on_demand")
        .get_shared_var("creates")
        .await
        .unwrap();
    assert_eq!(creates, Some(ROLES));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_memcached_the_count_is_on_memcached() {
    let memcached = Memcached::start().unwrap();
    let addr = format!("127.0.0.1:{}", memcached.port());
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
    args.extend(["--memcached".to_owned(), addr.clone()]);
    domain.start_listener_with(&args).unwrap();
    create_counted_roles(&mut domain, ROLES);
    assert!(domain.wait_for_queues(std::time::Duration::from_secs(60)));
    let creates: Option<u64> = SharedStore::memcached(&addr)
        .context("counting_on_demand")
        .get_shared_var("creates")
        .await
        .unwrap();
    assert_eq!(creates, Some(ROLES));
    // Nothing of it went to the embedded store.
    assert!(domain.stop_listener());
    let embedded = SharedStore::embedded(&domain.cache_dir()).unwrap();
    let there: Option<u64> = embedded
        .context("counting_on_demand")
        .get_shared_var("creates")
        .await
        .unwrap();
    assert_eq!(there, None);
}

fn tool(args: &[&str]) -> Output {
    Command::new(tests::listener_binary!())
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LISTENER_CACHE_DIR")
        .output()
        .expect("run listener-under-test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_find_memcached_gone_are_failed_events_replayed_once_it_is_back() {
    let mut memcached = Memcached::start().unwrap();
    let addr = memcached.address();
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
    args.extend([
        "--memcached".to_owned(),
        addr.clone(),
        "--attempts".to_owned(),
        "2".to_owned(),
    ]);
    domain.start_listener_with(&args).unwrap();
    domain.barrier();
    memcached.stop();
    // The listener goes on: the barrier after the creates passes. The calls run in the
    // module's workers, fail, are retried and become failed events.
    create_counted_roles(&mut domain, 3);
    let cache = domain.cache_dir().display().to_string();
    let failed_events = || {
        let out = tool(&["failed", "--cache-dir", &cache, "list", "--json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut events = failed_events();
    while events.len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        events = failed_events();
    }
    assert_eq!(events.len(), 3, "{events:?}");
    for event in &events {
        assert_eq!(event["module"], "counting_on_demand", "{event}");
        let error = event["error"].as_str().unwrap_or_default();
        assert!(error.contains(&format!("memcached at {addr}")), "{event}");
    }
    // `status` says so too.
    let status = |cache: &str| -> serde_json::Value {
        let out = tool(&["status", "--cache-dir", cache, "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    };
    let json = status(&cache);
    assert_eq!(
        json["shared"]["backend"],
        format!("memcached at {addr}"),
        "{json}"
    );
    let error = json["shared"]["error"].as_str().unwrap_or_default();
    assert!(error.contains(&format!("memcached at {addr}")), "{json}");
    assert!(json["shared"]["since"].is_string(), "{json}");
    let out = tool(&["status", "--cache-dir", &cache]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("shared state") && text.contains("failing since"),
        "{text}"
    );

    memcached.restart().unwrap();
    let out = tool(&[
        "failed",
        "--cache-dir",
        &cache,
        "replay",
        "counting_on_demand",
    ]);
    assert!(out.status.success(), "{out:?}");
    let creates: Option<u64> = SharedStore::memcached(&addr)
        .context("counting_on_demand")
        .get_shared_var("creates")
        .await
        .unwrap();
    assert_eq!(creates, Some(3));
    let out = tool(&["failed", "--cache-dir", &cache, "list", "--json"]);
    let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(events.is_empty(), "{events:?}");
    let json = status(&cache);
    assert_eq!(json["shared"]["error"], serde_json::Value::Null, "{json}");
}
