use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldap_filter = "(&(objectClass=inetOrgPerson)(uid=example)",
)]
#[derive(Default)]
pub struct Module;

impl Handler for Module {}

fn main() {}
