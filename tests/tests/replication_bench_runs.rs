//! The benchmark of domain replication against OpenLDAP's syncrepl consumer
//! (`replication-bench`) runs at small sizes and reports every figure, so it cannot rot.
//! It asserts what was measured (and that both replicas ended with the primary's
//! entries, which the benchmark checks after each phase), not how fast: the goals belong
//! to the benchmark's report.

use std::process::Command;

use serde_json::Value;

#[test]
fn small_replication_benchmark_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let json_file = dir.path().join("replication.json");
    let out = Command::new(env!("CARGO_BIN_EXE_replication-bench"))
        .args([
            "--live",
            "200",
            "--catchup",
            "200",
            "--fill",
            "300",
            "--json",
        ])
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
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    for phase in ["live", "catchup", "fill"] {
        assert!(stdout.contains(phase), "no {phase:?} row in\n{stdout}");
        for figure in ["ours_seconds", "syncrepl_seconds", "ratio"] {
            let value = json[phase][figure].as_f64().unwrap_or(0.0);
            assert!(value > 0.0, "{phase}.{figure}: {json:#}");
        }
    }
}
