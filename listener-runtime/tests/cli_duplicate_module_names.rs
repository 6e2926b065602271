//! Two modules with the same name: `main()` refuses to run, naming both.

use listener_runtime::__private::{ApiKind, ModuleInstance, ModuleRegistration, SourceLocation};
use listener_runtime::{Context, Dn, Entry, HandlerResult, check_unique_names, registered_modules};

fn noop(
    _: &mut Context,
    _: &Dn,
    _: Option<&Entry>,
    _: Option<&Entry>,
    _: listener_runtime::Command,
) -> HandlerResult {
    Ok(())
}

fn construct() -> ModuleInstance {
    ModuleInstance::Classic(noop)
}

// Registered by hand (what `#[listener_module]` generates), so that this test does not
// depend on the filter parser.
const fn module(item: &'static str, line: u32) -> ModuleRegistration {
    ModuleRegistration {
        name: "printer",
        description: "prints changes",
        ldap_filter: "(objectClass=*)",
        attributes: &[],
        priority: 50.0,
        handle_every_delete: false,
        blocking: false,
        modrdn: true,
        parallelism: None,
        kind: ApiKind::Classic,
        constructor: construct,
        source: SourceLocation {
            item,
            file: "src/lib.rs",
            line,
        },
    }
}

listener_runtime::__private::inventory::submit! { module("first_crate::printer", 10) }
listener_runtime::__private::inventory::submit! { module("second_crate::printer", 20) }

#[test]
fn duplicate_names_are_refused_naming_both() {
    let modules = registered_modules();
    assert_eq!(modules.len(), 2);
    let message = check_unique_names(&modules).unwrap_err().to_string();
    assert!(message.contains("`printer`"), "{message}");
    assert!(
        message.contains("`first_crate::printer` at src/lib.rs:10"),
        "{message}"
    );
    assert!(
        message.contains("`second_crate::printer` at src/lib.rs:20"),
        "{message}"
    );

    let code = listener_runtime::main_from(["listener", "modules"]);
    assert_eq!(code, std::process::ExitCode::FAILURE);
}
