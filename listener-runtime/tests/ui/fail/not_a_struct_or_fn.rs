use listener_runtime::prelude::*;

#[listener_module(
    name = "module",
    description = "a module",
    ldap_filter = "(objectClass=inetOrgPerson)",
)]
#[derive(Default)]
pub enum Module {
    #[default]
    A,
}

fn main() {}
