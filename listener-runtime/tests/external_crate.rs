//! Acceptance: a crate outside this workspace writes a module with the public API
//! (architecture.md) and a binary with `listener_runtime::main()`, and `<bin> modules`
//! lists the module.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/` of this workspace, found from the test binary (`target/debug/deps/…`).
fn workspace_target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

#[test]
fn a_crate_outside_the_workspace_lists_its_module() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/external");
    // Its own target dir: the outer `cargo test` may still hold the lock of ours.
    let target = workspace_target_dir().join("external-crate");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    let build = Command::new(&cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "building {} failed:\n{}",
        project.display(),
        String::from_utf8_lossy(&build.stderr)
    );

    let run = Command::new(target.join("debug/my_listener"))
        .arg("modules")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "`my_listener modules` failed:\n{stderr}"
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with("unique_name "))
        .unwrap_or_else(|| panic!("no row for unique_name in:\n{stdout}\n{stderr}"));
    assert!(
        row.contains("(&(objectClass=inetOrgPerson)(uid=example))"),
        "{row}"
    );
    assert!(row.contains("sn,givenName"), "{row}");
    assert!(row.contains(" new "), "{row}");
}
