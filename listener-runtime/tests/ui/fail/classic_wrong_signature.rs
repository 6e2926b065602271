use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldap_filter = "(objectClass=inetOrgPerson)",
)]
fn handler(_ctx: &mut Context, _dn: &Dn, _new: Option<&Entry>) -> HandlerResult {
    Ok(())
}

fn main() {}
