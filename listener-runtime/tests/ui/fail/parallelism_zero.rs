use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldap_filter = "(objectClass=inetOrgPerson)",
    run_asynchronously,
    parallelism = 0,
)]
#[derive(Default)]
pub struct Module;

impl AsyncHandler for Module {}

fn main() {}
