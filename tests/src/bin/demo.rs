//! The demo: a throwaway slapd, our notifier and our listener with the example modules;
//! a scripted set of changes; every module call shown as it happens.
//!
//! Run it with `scripts/demo.sh`. The binary is also the listener: started with a
//! subcommand (`notifier`, `run`, …) it is `listener_runtime::main()` with the example
//! modules linked in, which is how the demo starts its daemons.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use examples as _;
use tests::Slapd;
use tests::domain::Domain;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The scripted changes: what they show, and the LDIF that makes them.
const STEPS: &[(&str, &str)] = &[
    (
        "create the containers ou=people and ou=groups",
        "dn: ou=people,{base}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{base}\nobjectClass: organizationalUnit\nou: groups\n",
    ),
    (
        "create user uid=example (matches the template modules' filters)",
        "dn: uid=example,ou=people,{base}\nobjectClass: inetOrgPerson\nuid: example\n\
         cn: Example User\nsn: User\ngivenName: Example\nmail: example@example.com\n",
    ),
    (
        "modify sn (listed in the template's `attributes`)",
        "dn: uid=example,ou=people,{base}\nchangetype: modify\nreplace: sn\nsn: Usher\n-\n",
    ),
    (
        "modify description (not in unique_name's `attributes`: only the printer and the async template, which list none, are called)",
        "dn: uid=example,ou=people,{base}\nchangetype: modify\nreplace: description\n\
         description: a demo user\n-\n",
    ),
    (
        "create group cn=staff with the user as member",
        "dn: cn=staff,ou=groups,{base}\nobjectClass: groupOfNames\ncn: staff\n\
         member: uid=example,ou=people,{base}\n",
    ),
    (
        "rename the group to cn=crew",
        "dn: cn=staff,ou=groups,{base}\nchangetype: modrdn\nnewrdn: cn=crew\ndeleteoldrdn: 1\n",
    ),
    (
        "move the user to the base (rename and move)",
        "dn: uid=example,ou=people,{base}\nchangetype: modrdn\nnewrdn: uid=example\n\
         deleteoldrdn: 1\nnewsuperior: {base}\n",
    ),
    (
        "delete the group and the user",
        "dn: cn=crew,ou=groups,{base}\nchangetype: delete\n\n\
         dn: uid=example,{base}\nchangetype: delete\n",
    ),
];

fn main() -> ExitCode {
    if std::env::args_os().len() > 1 {
        return listener_runtime::main();
    }
    match demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let me = std::env::current_exe()?;
    println!("== starting a throwaway slapd (accesslog + syncprov) and the notifier");
    let mut domain = Domain::start(&me, Slapd::builder())?;
    let base = domain.slapd.base().to_owned();
    println!("   slapd {} with base {base}", domain.slapd.url());
    println!("== modules linked into this binary:");
    let modules = std::process::Command::new(&me).arg("modules").output()?;
    for line in String::from_utf8_lossy(&modules.stdout).lines() {
        println!("   {line}");
    }
    println!("== starting the listener; module calls follow:");
    println!("   printer (classic API):  <command> <dn>  [old entryUUID -> new entryUUID]");
    println!("   template modules (new API): their debug log on stderr");
    // The template modules log with `ctx.logger().debug(...)`.
    domain.start_listener_logging("warn,listener_module=debug")?;
    let mut shown = 0;
    shown += show_new_calls(&mut domain, shown, |calls| {
        calls.iter().any(|c| c.ends_with("\tn"))
    });

    for (what, ldif) in STEPS {
        println!("\n-- {what}");
        domain.slapd.ldapmodify(&ldif.replace("{base}", &base))?;
        shown += show_new_calls(&mut domain, shown, |_| true);
    }

    println!("\n== stopping the listener (SIGTERM: post_run, then exit)");
    let clean = domain.stop_listener();
    println!(
        "   listener exited {}",
        if clean { "cleanly" } else { "with an error" }
    );
    println!("== stopping the notifier and slapd; removing their temporary directories");
    drop(domain);
    if clean {
        Ok(())
    } else {
        Err("the listener did not stop cleanly".into())
    }
}

/// Waits until `ready` holds and no new call came for a moment, prints the calls after
/// the first `shown`, and returns how many it printed.
fn show_new_calls(domain: &mut Domain, shown: usize, ready: impl Fn(&[String]) -> bool) -> usize {
    let quiet = Duration::from_millis(400);
    let started = Instant::now();
    let mut seen = shown;
    let mut last_change = Instant::now();
    loop {
        let calls = domain.calls();
        if calls.len() != seen {
            seen = calls.len();
            last_change = Instant::now();
        }
        let settled = seen > shown && ready(&calls) && last_change.elapsed() > quiet;
        if settled || started.elapsed() > Duration::from_secs(20) {
            for call in &calls[shown..] {
                println!("   printer: {}", readable(call));
            }
            return calls.len() - shown;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn readable(call: &str) -> String {
    let parts: Vec<&str> = call.split('\t').collect();
    let [dn, old, new, command] = parts.as_slice() else {
        return call.to_owned();
    };
    let short = |uuid: &str| uuid.get(..8).unwrap_or(uuid).to_owned();
    let what = match *command {
        "a" => "add   ",
        "m" => "modify",
        "d" => "delete",
        "r" => "rename",
        "n" => "init  ",
        other => other,
    };
    format!("{what} {dn}  [{} -> {}]", short(old), short(new))
}
