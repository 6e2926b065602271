//! `modules --cache-dir DIR` shows each module's state from a listener cache: NEW,
//! INITIALIZING (n done), READY, or FAILED with the error; a cache a running listener has
//! open is reported as in use. The example modules never fail, so the cache is prepared
//! through the cache's public API.

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::SystemTime;

use listener_core::{Dn, Entry};
use listener_runtime::testing::{Cache, ModulePhase, ModuleState};

fn modules(args: &[&str]) -> Output {
    Command::new(tests::listener_binary!())
        .arg("modules")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LISTENER_CACHE_DIR")
        .output()
        .expect("run listener-under-test")
}

fn state(phase: ModulePhase, filter: &str, attributes: &[&str]) -> ModuleState {
    ModuleState {
        phase,
        filter: filter.to_owned(),
        attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
        changed: SystemTime::now(),
    }
}

/// The row of `module` in the table.
fn row<'a>(table: &'a str, module: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(module))
        .unwrap_or_else(|| panic!("no row for {module} in\n{table}"))
}

#[test]
fn modules_shows_each_modules_state() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache_arg = cache_dir.to_string_lossy().into_owned();

    // No cache yet: every module is NEW, with a warning.
    let out = modules(&["--cache-dir", &cache_arg]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("NAME "), "{table}");
    assert!(row(&table, "printer").contains(" NEW "), "{table}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no listener cache"));
    assert!(!cache_dir.exists(), "looking does not create a cache");

    // A cache with one module of each state.
    let cache = Cache::open(&cache_dir).unwrap();
    let mut w = cache.write().unwrap();
    w.set_module_state(
        "printer",
        &state(ModulePhase::Ready, "(objectClass=*)", &[]),
    )
    .unwrap();
    w.set_module_state(
        "unique_name",
        &state(
            ModulePhase::Failed {
                error: "clean failed: permission denied".into(),
            },
            "(&(objectClass=inetOrgPerson)(uid=example))",
            &["sn", "givenName"],
        ),
    )
    .unwrap();
    w.set_module_state(
        "listener_module_template_async",
        &state(
            ModulePhase::Initializing {
                progress: Some("2\nuid=b,dc=example,dc=com".into()),
            },
            "(objectClass=inetOrgPerson)",
            &[],
        ),
    )
    .unwrap();
    for uid in ["a", "b"] {
        let mut e = Entry::new(Dn::parse(&format!("uid={uid},dc=example,dc=com")).unwrap());
        e.insert("objectClass", ["inetOrgPerson"]).unwrap();
        w.put_entry(&e, BTreeSet::from(["listener_module_template_async"]))
            .unwrap();
    }
    w.commit().unwrap();

    // While it is open (as in a running listener): in use, clearly.
    let out = modules(&["--cache-dir", &cache_arg]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cache in use") && stderr.contains("stop the listener"),
        "{stderr}"
    );
    drop(cache);

    let out = modules(&["--cache-dir", &cache_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    eprintln!("{table}");
    assert!(table.starts_with("NAME "), "{table}");
    assert!(table.lines().next().unwrap().contains(" STATE "), "{table}");
    assert!(row(&table, "printer").contains(" READY "), "{table}");
    assert!(
        row(&table, "unique_name").contains(" FAILED: clean failed: permission denied "),
        "{table}"
    );
    assert!(
        row(&table, "listener_module_template_async").contains(" INITIALIZING (2 done) "),
        "{table}"
    );

    let out = modules(&["--cache-dir", &cache_arg, "--json"]);
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(
        json.contains(r#"{"name":"printer","state":"READY","#),
        "{json}"
    );

    // Without --cache-dir: no STATE column.
    let out = modules(&[]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(!table.contains("STATE"), "{table}");
}
