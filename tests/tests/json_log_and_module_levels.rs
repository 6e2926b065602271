//! `--log-format json` writes one JSON object per line on stderr, and `--log-level`
//! levels per module apply to stderr and to the per-module files: with
//! `info,printer=trace,unique_name=debug` the printer's calls show at trace and the
//! template's own debug lines appear, while the other modules and the runtime stay at
//! info (the flag wins over RUST_LOG).

use std::time::Duration;

use serde_json::Value;
use tests::Slapd;
use tests::domain::Domain;

/// The module a JSON log line is about: its `module` field or its module span's.
fn module_of(line: &Value) -> Option<&str> {
    line["module"].as_str().or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "module")
            .and_then(|s| s["module"].as_str())
    })
}

#[test]
fn json_lines_parse_and_module_levels_apply() {
    let mut domain = Domain::start(tests::listener_binary!(), Slapd::builder()).unwrap();
    let base = domain.slapd.base().to_owned();
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().join("modules");
    domain
        .start_listener_with_log_and(
            "warn",
            &[
                "--log-format".to_owned(),
                "json".to_owned(),
                "--log-level".to_owned(),
                "info,printer=trace,unique_name=debug".to_owned(),
                "--log-dir".to_owned(),
                dir.to_string_lossy().into_owned(),
            ],
        )
        .unwrap();
    domain.barrier();
    domain
        .slapd
        .ldapmodify(&format!(
            "dn: uid=example,{base}\nobjectClass: inetOrgPerson\nuid: example\ncn: E\nsn: X\n"
        ))
        .unwrap();
    domain.wait_for(Duration::from_secs(30), |calls| {
        calls
            .iter()
            .any(|l| l.starts_with("uid=example") && l.ends_with("\ta"))
    });
    assert!(domain.stop_listener());

    let raw = domain.log();
    assert!(!raw.is_empty());
    let lines: Vec<Value> = raw
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    let level = |line: &Value| line["level"].as_str().unwrap_or_default().to_owned();
    let verbose = |line: &&Value| matches!(level(line).as_str(), "DEBUG" | "TRACE");

    // The flag's default (info) replaced RUST_LOG's warn.
    assert!(lines.iter().any(|l| level(l) == "INFO"), "{raw:#?}");
    // The printer at trace: the runtime's line for each of its calls.
    assert!(
        lines.iter().any(|l| level(l) == "TRACE"
            && l["message"] == "module call"
            && module_of(l) == Some("printer")),
        "{raw:#?}"
    );
    // The template's own debug line.
    assert!(
        lines.iter().any(|l| level(l) == "DEBUG"
            && module_of(l) == Some("unique_name")
            && l["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("dn: ")),
        "{raw:#?}"
    );
    // Nothing else below info: not the async template (called for the user too), not the
    // template's calls at trace, not the runtime's per-transaction debug line.
    for line in lines.iter().filter(verbose) {
        let allowed = match module_of(line) {
            Some("printer") => true,
            Some("unique_name") => level(line) == "DEBUG",
            _ => false,
        };
        assert!(allowed, "should not be logged: {line}");
    }

    // The files follow the same levels.
    let template = std::fs::read_to_string(dir.join("unique_name.log")).unwrap();
    assert!(template.contains("DEBUG dn: "), "{template}");
    let async_template =
        std::fs::read_to_string(dir.join("listener_module_template_async.log")).unwrap_or_default();
    assert!(!async_template.contains("DEBUG"), "{async_template}");
}
