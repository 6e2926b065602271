//! The modules the benchmark's listener runs: ten that do nothing, with the mix of
//! filters and `attributes` lists a UCS host has (so the dispatcher's filter and
//! up-to-date checks cost what they cost there), one that writes a file per user as UCS
//! modules write configuration files, and one that records when it is called.

use std::io::Write as _;

use listener_runtime::prelude::*;

/// Defines a new-API module that accepts every call and does nothing.
macro_rules! no_op {
    ($ty:ident, $name:literal, $filter:literal $(, attributes = [$($a:literal),*])?) => {
        #[listener_module(
            name = $name,
            description = "benchmark: does nothing",
            ldap_filter = $filter,
            $(attributes = [$($a),*],)?
        )]
        #[derive(Default)]
        pub struct $ty;

        impl Handler for $ty {
            fn create(&mut self, _ctx: &mut Context, _dn: &Dn, _new: &Entry) -> HandlerResult {
                Ok(())
            }
            fn modify(
                &mut self,
                _ctx: &mut Context,
                _dn: &Dn,
                _old: &Entry,
                _new: &Entry,
                _old_dn: Option<&Dn>,
            ) -> HandlerResult {
                Ok(())
            }
            fn remove(&mut self, _ctx: &mut Context, _dn: &Dn, _old: &Entry) -> HandlerResult {
                Ok(())
            }
        }
    };
}

no_op!(Users, "bench_users", "(objectClass=inetOrgPerson)");
no_op!(
    UserNames,
    "bench_user_names",
    "(&(objectClass=inetOrgPerson)(uid=*))",
    attributes = ["sn", "givenName", "mail"]
);
no_op!(Groups, "bench_groups", "(objectClass=groupOfNames)");
no_op!(
    GroupMembers,
    "bench_group_members",
    "(objectClass=groupOfNames)",
    attributes = ["member"]
);
no_op!(
    UsersOrGroups,
    "bench_users_or_groups",
    "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))"
);
no_op!(
    SomeUsers,
    "bench_some_users",
    "(&(objectClass=inetOrgPerson)(uid=u1*))"
);
no_op!(
    Containers,
    "bench_containers",
    "(objectClass=organizationalUnit)"
);
no_op!(
    NotGroups,
    "bench_not_groups",
    "(!(objectClass=groupOfNames))"
);
no_op!(
    Mail,
    "bench_mail",
    "(mail=*@example.com)",
    attributes = ["mail"]
);
no_op!(
    Descriptions,
    "bench_descriptions",
    "(objectClass=*)",
    attributes = ["description"]
);

/// Keeps one file per user in `bench-files/` beside the cache directory, named by its
/// uid and holding its mail and description: every create, initialization or modify
/// writes it (open, write, close), every remove deletes it. Classic API without
/// `modrdn`, so a rename arrives as a remove and a create.
#[listener_module(
    name = "bench_files",
    description = "benchmark: writes a file per user",
    ldap_filter = "(objectClass=inetOrgPerson)"
)]
pub fn write_files(
    ctx: &mut Context,
    _dn: &Dn,
    new: Option<&Entry>,
    old: Option<&Entry>,
    _command: Command,
) -> HandlerResult {
    let Some(dir) = ctx
        .settings()
        .and_then(|s| s.cache_dir.parent())
        .map(|d| d.join("bench-files"))
    else {
        return Err(HandlerError::msg("no cache directory in the settings"));
    };
    // A uid that is no plain file name gets no file.
    let uid = |entry: &Entry| {
        entry
            .first_str("uid")
            .filter(|u| !u.is_empty() && !u.contains('/') && !u.starts_with('.'))
            .map(str::to_owned)
    };
    match new {
        Some(entry) => {
            let Some(uid) = uid(entry) else {
                return Ok(());
            };
            let text = format!(
                "{}\n{}\n",
                entry.first_str("mail").unwrap_or(""),
                entry.first_str("description").unwrap_or("")
            );
            let path = dir.join(uid);
            if let Err(e) = std::fs::write(&path, &text) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(e.into());
                }
                std::fs::create_dir_all(&dir)?;
                std::fs::write(&path, &text)?;
            }
        }
        None => {
            if let Some(uid) = old.and_then(uid) {
                match std::fs::remove_file(dir.join(uid)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// Prints `dn⇥unix time in ns⇥command` to standard output (the benchmark appends it to a
/// file) for every call except the initialization's (`n`: printing 100,000 of them would
/// slow the initialization being measured). Called last (priority 99), so the time
/// includes the other modules' calls. One `write(2)` per line, so the benchmark sees a
/// call at once.
#[listener_module(
    name = "bench_latency",
    description = "benchmark: records the time of every call",
    ldap_filter = "(objectClass=*)",
    priority = 99.0,
    modrdn
)]
pub fn record_latency(
    _ctx: &mut Context,
    dn: &Dn,
    _new: Option<&Entry>,
    _old: Option<&Entry>,
    command: Command,
) -> HandlerResult {
    if command == Command::Initialize {
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{dn}\t{now}\t{command}\n").as_bytes())?;
    out.flush()?;
    Ok(())
}
