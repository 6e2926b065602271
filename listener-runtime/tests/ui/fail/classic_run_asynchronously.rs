use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldap_filter = "(objectClass=inetOrgPerson)",
    run_asynchronously,
)]
fn handler(
    _ctx: &mut Context,
    _dn: &Dn,
    _new: Option<&Entry>,
    _old: Option<&Entry>,
    _command: Command,
) -> HandlerResult {
    Ok(())
}

fn main() {}
