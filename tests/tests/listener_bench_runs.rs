//! The end-to-end benchmark (`listener-bench`) runs in quick mode and reports every
//! figure, so it cannot rot. It asserts what was measured, not how fast: speed targets
//! belong to the benchmark's report, not to a timed test.

use std::process::Command;

use serde_json::Value;

fn number(json: &Value, path: &[&str]) -> f64 {
    let mut v = json;
    for key in path {
        v = v
            .get(key)
            .unwrap_or_else(|| panic!("no {path:?} in {json:#}"));
    }
    v.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {json:#}"))
}

#[test]
fn quick_benchmark_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let json_file = dir.path().join("bench.json");
    let out = Command::new(env!("CARGO_BIN_EXE_listener-bench"))
        .args(["--quick", "--rates", "100,0", "--json"])
        .arg(&json_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for figure in [
        "init: one module",
        "catch-up:",
        "memory after init",
        "live 100/s",
        "against syncrepl",
        "live at the writer's top rate",
        "catch-up, adds of users and groups",
        "catch-up, renames and moves, incl. subtree moves",
        "catch-up, deletes, half re-created",
        "catch-up, 1,000-member groups, one member each",
    ] {
        assert!(stdout.contains(figure), "no {figure:?} row in\n{stdout}");
    }

    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    // Initialization: the module's time and the ldapsearch baseline.
    assert!(number(&json, &["init", "module_seconds"]) > 0.0);
    assert!(number(&json, &["init", "ldapsearch_seconds"]) > 0.0);
    assert!(number(&json, &["init", "listener_cpu_seconds"]) > 0.0);
    // Catch-up: every change became a transaction the listener drained.
    let transactions = number(&json, &["catchup", "transactions"]);
    assert!(
        transactions > 500.0,
        "500 changes, some renames: {transactions}"
    );
    assert!(number(&json, &["catchup", "rate_per_second"]) > 0.0);
    assert!(number(&json, &["catchup", "baseline_sequential_fetch_per_second"]) > 0.0);
    // The floor is the fastest of the three sequential clients, each measured.
    let clients = json["catchup"]["sequential_fetch_per_second"]
        .as_object()
        .unwrap_or_else(|| panic!("no sequential clients in {json:#}"));
    assert_eq!(clients.len(), 3, "{clients:?}");
    let fastest = clients
        .values()
        .filter_map(Value::as_f64)
        .fold(0.0, f64::max);
    assert_eq!(
        number(&json, &["catchup", "baseline_sequential_fetch_per_second"]),
        fastest
    );
    // The syncrepl consumer caught up on the same changes.
    assert!(number(&json, &["catchup", "syncrepl_seconds"]) > 0.0);
    assert!(number(&json, &["catchup", "ratio_to_syncrepl"]) > 0.0);
    // Each workload shape: 200 changes, every transaction drained, a baseline beside.
    // A rename is two transactions, a delete with its re-creation too; the marker one.
    for (shape, least, most) in [
        ("adds", 201.0, 201.0),
        ("renames", 401.0, 401.0),
        ("deletes", 202.0, 400.0),
        ("groups", 201.0, 201.0),
    ] {
        let got = &json["catchup_shapes"][shape];
        let transactions = number(got, &["transactions"]);
        assert!(
            (least..=most).contains(&transactions),
            "{shape}: {transactions} transactions"
        );
        assert!(number(got, &["rate_per_second"]) > 0.0, "{got:#}");
        assert!(
            number(got, &["baseline_sequential_fetch_per_second"]) > 0.0,
            "{got:#}"
        );
    }
    // The classic module that appends a line to a file per call did, for every user
    // it was initialized with (quick: 1,800) and more.
    assert!(
        number(&json, &["bench_files_module", "lines"]) > 1_800.0,
        "{:#}",
        json["bench_files_module"]
    );
    // Memory, read from /proc while the listener ran.
    assert!(number(&json, &["memory", "after_init", "vm_hwm_mib"]) > 1.0);
    assert!(number(&json, &["memory", "after_catch-up", "vm_hwm_mib"]) > 1.0);
    // Live: the latency module saw every change.
    let live = &json["live"][0];
    assert_eq!(number(live, &["missing"]), 0.0, "{live:#}");
    assert_eq!(number(live, &["seen"]), 100.0, "{live:#}");
    assert!(number(live, &["p50_ms"]) <= number(live, &["p99_ms"]));
    // At the writer's top rate: every change seen, and how far behind the last write.
    let top = &json["live"][1];
    assert_eq!(number(top, &["rate_per_second"]), 0.0, "{top:#}");
    assert_eq!(number(top, &["missing"]), 0.0, "{top:#}");
    assert_eq!(number(top, &["seen"]), 500.0, "{top:#}");
    assert!(number(top, &["lag_seconds"]) >= 0.0, "{top:#}");
}
