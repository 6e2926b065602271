//! The benchmark of asynchronous modules (`async-bench`) runs at small sizes and reports
//! every figure, so it cannot rot. It asserts what was measured, not how fast: the goals
//! belong to the benchmark's report.

use std::process::Command;

use serde_json::Value;

#[test]
fn small_async_benchmark_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let json_file = dir.path().join("async.json");
    let out = Command::new(env!("CARGO_BIN_EXE_async-bench"))
        .args(["--calls", "40", "--catchup", "400", "--json"])
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
        "async, parallelism 1",
        "async, parallelism 4",
        "async, parallelism 8",
        "listener catch-up",
    ] {
        assert!(stdout.contains(figure), "no {figure:?} row in\n{stdout}");
    }
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    for variant in ["sync", "p1", "p4", "p8"] {
        let rate = json["calls_per_second"][variant].as_f64().unwrap_or(0.0);
        assert!(rate > 0.0, "{variant}: {json:#}");
    }
    for run in ["without_module", "with_p8_module"] {
        let rate = json["catchup_transactions_per_second"][run]
            .as_f64()
            .unwrap_or(0.0);
        assert!(rate > 0.0, "{run}: {json:#}");
    }
    assert!(json["goals"]["p8_over_p1"]["met"].is_boolean(), "{json:#}");
}
