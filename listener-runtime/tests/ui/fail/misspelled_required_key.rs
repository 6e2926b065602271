use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldapfilter = "(objectClass=inetOrgPerson)",
)]
#[derive(Default)]
pub struct Module;

impl Handler for Module {}

fn main() {}
