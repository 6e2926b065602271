//! A classic module that prints every call it receives, one line each, tab-separated (a DN
//! may contain spaces): `<dn>\t<old entryUUID or ->\t<new entryUUID or ->\t<command>`.
//!
//! With `modrdn`, a move shows as `r` (old only) followed by `a` (new only); the
//! integration tests compare these lines with semantics §10.

use listener_runtime::prelude::*;

/// Prints `(dn, old entryUUID, new entryUUID, command)` to stdout.
#[listener_module(
    name = "printer",
    description = "prints every change it receives to stdout",
    ldap_filter = "(objectClass=*)",
    modrdn
)]
pub fn print_change(
    _ctx: &mut Context,
    dn: &Dn,
    new: Option<&Entry>,
    old: Option<&Entry>,
    command: Command,
) -> HandlerResult {
    use std::io::Write;

    let uuid = |entry: Option<&Entry>| {
        entry
            .and_then(|e| e.first_str("entryUUID"))
            .unwrap_or("-")
            .to_owned()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{dn}\t{}\t{}\t{command}", uuid(old), uuid(new))?;
    out.flush()?;
    Ok(())
}
