use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldap_filter = "(objectClass=inetOrgPerson)",
)]
#[derive(Default)]
pub struct Module;

fn main() {}
