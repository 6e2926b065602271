use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldap_filter = "(objectClass=inetOrgPerson)",
    modrdn,
)]
#[derive(Default)]
pub struct Module;

impl Handler for Module {}

fn main() {}
