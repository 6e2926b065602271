//! A module's shared variables and locks in a running listener (`counting_on_demand`,
//! an asynchronous module of the test binary that counts creates under a lock): kept in
//! the embedded store in the cache directory, or with `run --memcached` on memcached.

use listener_runtime::testing::SharedStore;
use tests::domain::Domain;
use tests::{Memcached, Slapd, ldif};

const ROLES: u64 = 12;

/// Creates `ROLES` roles the module counts, and waits until the listener is past them.
fn create_counted_roles(domain: &mut Domain) {
    domain.barrier();
    let base = domain.slapd.base().to_owned();
    for i in 0..ROLES {
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
    create_counted_roles(&mut domain);
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
    create_counted_roles(&mut domain);
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
