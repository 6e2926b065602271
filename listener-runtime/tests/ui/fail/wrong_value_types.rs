use listener_runtime::prelude::*;

#[listener_module(
    name = module,
    description = "a module",
    ldap_filter = "(objectClass=inetOrgPerson)",
    priority = "high",
    attributes = "sn",
    handle_every_delete = 1,
)]
#[derive(Default)]
pub struct Module;

impl Handler for Module {}

fn main() {}
