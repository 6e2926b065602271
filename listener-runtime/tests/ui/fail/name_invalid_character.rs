use listener_runtime::prelude::*;

#[listener_module(
    name = "listener module template",
    description = "a module",
    ldap_filter = "(objectClass=inetOrgPerson)",
)]
#[derive(Default)]
pub struct Module;

impl Handler for Module {}

fn main() {}
