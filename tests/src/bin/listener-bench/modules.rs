//! The modules the benchmark's listener runs: ten that do nothing, with the mix of
//! filters and `attributes` lists a UCS host has (so the dispatcher's filter and
//! up-to-date checks cost what they cost there), one that appends a line to a file per
//! call as UCS modules do, and one that records when it is called.

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

/// Appends one line per call (command, DN, mail) to `bench-files.log` beside the cache
/// directory, opening and closing the file each time, as UCS modules written in Python
/// do (`with open(path, "a")`): real file I/O per call, next to the no-op modules.
/// (One file per user, created and deleted with the objects, measured 800–900 µs per
/// create on the development machine's ext4: that module would measure the disk.)
#[listener_module(
    name = "bench_files",
    description = "benchmark: appends a line per call to a file",
    ldap_filter = "(objectClass=inetOrgPerson)"
)]
pub fn append_line(
    ctx: &mut Context,
    dn: &Dn,
    new: Option<&Entry>,
    old: Option<&Entry>,
    command: Command,
) -> HandlerResult {
    let Some(path) = ctx
        .settings()
        .and_then(|s| s.cache_dir.parent())
        .map(|d| d.join("bench-files.log"))
    else {
        return Err(HandlerError::msg("no cache directory in the settings"));
    };
    let mail = new.or(old).and_then(|e| e.first_str("mail")).unwrap_or("");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(format!("{command}\t{dn}\t{mail}\n").as_bytes())?;
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
