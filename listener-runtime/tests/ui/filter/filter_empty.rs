use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldap_filter = "",
)]
#[derive(Default)]
pub struct Module;

impl Handler for Module {}

fn main() {}
