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

/// Copies `from` into `to`, recursively.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_crate_outside_the_workspace_lists_its_module() {
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR"));
    // A copy in a temporary directory: the project refers to listener-runtime by an
    // absolute path, as a user's would, and takes the workspace's Cargo.lock so that an
    // offline build finds every crate already downloaded for the workspace.
    let work = tempfile::tempdir().unwrap();
    let project = work.path().join("external");
    copy_tree(&runtime.join("tests/external"), &project);
    for member in ["my_modules", "my_listener"] {
        let manifest = project.join(member).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let text = text.replace(
            "path = \"../../..\"",
            &format!("path = {:?}", runtime.display().to_string()),
        );
        std::fs::write(&manifest, text).unwrap();
    }
    let workspace_lock = runtime.parent().unwrap().join("Cargo.lock");
    std::fs::copy(&workspace_lock, project.join("Cargo.lock")).unwrap();
    // Its own target dir: the outer `cargo test` may still hold the lock of ours. It
    // persists across runs, so only the first build compiles the dependencies.
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
