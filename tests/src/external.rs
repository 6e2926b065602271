//! The project outside the workspace (`listener-runtime/tests/external`: a crate of
//! modules and a binary linking them, as a user writes them), built as a user would
//! build it: a copy in a temporary directory that refers to listener-runtime by an
//! absolute path.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the external project and returns the path of its binary, `my_listener`.
/// It takes the workspace's Cargo.lock, so that an offline build finds every crate
/// already downloaded for the workspace, and builds into `<target>/external-crate`,
/// which persists across runs (only the first build compiles the dependencies).
pub fn build_my_listener() -> Result<PathBuf, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the tests crate is in the workspace")?;
    let runtime = workspace.join("listener-runtime");
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let project = work.path().join("external");
    copy_tree(&runtime.join("tests/external"), &project).map_err(|e| e.to_string())?;
    for member in ["my_modules", "my_listener"] {
        let manifest = project.join(member).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
        let text = text.replace(
            "path = \"../../..\"",
            &format!("path = {:?}", runtime.display().to_string()),
        );
        std::fs::write(&manifest, text).map_err(|e| e.to_string())?;
    }
    std::fs::copy(workspace.join("Cargo.lock"), project.join("Cargo.lock"))
        .map_err(|e| e.to_string())?;
    let target = target_dir()?.join("external-crate");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(&cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !build.status.success() {
        return Err(format!(
            "building {} failed:\n{}",
            project.display(),
            String::from_utf8_lossy(&build.stderr)
        ));
    }
    Ok(target.join("debug/my_listener"))
}

/// This workspace's `target/`, found from the running test binary
/// (`<target>/<profile>/deps/…`).
fn target_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not in <target>/<profile>/deps", exe.display()))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
