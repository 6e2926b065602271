//! A binary that links no module crate: `modules` lists nothing and says why.

#[test]
fn listing_no_modules_succeeds() {
    assert!(listener_runtime::registered_modules().is_empty());
    let code = listener_runtime::main_from(["listener", "modules"]);
    assert_eq!(code, std::process::ExitCode::SUCCESS);
}

#[test]
fn unknown_subcommand_fails() {
    let code = listener_runtime::main_from(["listener", "frobnicate"]);
    assert_eq!(code, std::process::ExitCode::from(2));
}
