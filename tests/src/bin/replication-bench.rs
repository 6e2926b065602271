//! `replication-bench`: how fast our `replication` module (`run --replicate-to`) keeps a
//! replica slapd a copy of the primary, beside OpenLDAP's own syncrepl consumer
//! (`olcSyncrepl` refreshAndPersist) of the same primary, in the same run, on the same
//! machine, every slapd no-sync:
//!
//! * **live**: `--live` adds made while both replicas follow the primary: the time from
//!   the first write until the last added entry is on the replica;
//! * **catchup**: `--catchup` mixed changes (adds, modifies, renames, moves, deletes)
//!   made while both were stopped: the time from the start until the replica has them
//!   all (each catches up alone on the machine, syncrepl's consumer first);
//! * **fill**: a replica filled from nothing with the primary's `--fill` entries (each
//!   alone on the machine).
//!
//! Each figure is reported as the time to converge and the ratio ours / syncrepl's.
//!
//! ```text
//! cargo run --release -p tests --bin replication-bench -- [--live 10000] [--catchup 5000]
//!     [--fill 100000] [--only live,catchup,fill] [--json FILE]
//! ```
//!
//! Started with a listener subcommand (`run`, `notifier`, …) the binary is the listener
//! with no module of its own: `--replicate-to` adds the built-in one.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ldap3::Scope;
use serde_json::{Value, json};
use tests::Slapd;
use tests::domain::Domain;
use tests::syncrepl;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUBCOMMANDS: &[&str] = &["run", "notifier", "status", "modules", "notifier-id"];
const PHASES: &[&str] = &["live", "catchup", "fill"];
/// Longest wait for a replica to converge.
const TIMEOUT: Duration = Duration::from_secs(1200);

/// Our replication against OpenLDAP's syncrepl consumer.
#[derive(Debug, Parser)]
#[command(about = "Our replica against a native syncrepl consumer of the same primary")]
struct Options {
    /// Adds made while both replicas follow the primary.
    #[arg(long, default_value_t = 10_000)]
    live: usize,
    /// Mixed changes made while both replicas were stopped.
    #[arg(long, default_value_t = 5_000)]
    catchup: usize,
    /// Entries of the primary a new replica is filled with.
    #[arg(long, default_value_t = 100_000)]
    fill: usize,
    /// Only these phases (comma-separated: live, catchup, fill).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
}

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    if std::env::args()
        .skip(1)
        .any(|a| SUBCOMMANDS.contains(&a.as_str()))
    {
        return listener_runtime::main();
    }
    let options = Options::parse();
    if let Some(bad) = options.only.iter().find(|p| !PHASES.contains(&p.as_str())) {
        eprintln!("replication-bench: unknown phase {bad:?}; the phases are {PHASES:?}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("replication-bench: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replication-bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One phase's result: seconds to converge, ours and syncrepl's.
struct Figure {
    phase: &'static str,
    what: String,
    ours: f64,
    syncrepl: f64,
}

async fn bench(options: &Options) -> Result<()> {
    let wanted = |phase: &str| options.only.is_empty() || options.only.iter().any(|p| p == phase);
    let mut figures = Vec::new();
    if wanted("live") {
        figures.push(live(options.live).await?);
    }
    if wanted("catchup") {
        figures.push(catchup(options.catchup).await?);
    }
    if wanted("fill") {
        figures.push(fill(options.fill).await?);
    }
    println!();
    println!(
        "{:<8} {:<44} {:>10} {:>10} {:>8}",
        "phase", "workload", "ours", "syncrepl", "ratio"
    );
    for f in &figures {
        println!(
            "{:<8} {:<44} {:>9.2}s {:>9.2}s {:>7.2}×",
            f.phase,
            f.what,
            f.ours,
            f.syncrepl,
            f.ours / f.syncrepl
        );
    }
    if let Some(path) = &options.json {
        let report: serde_json::Map<String, Value> = figures
            .iter()
            .map(|f| {
                (
                    f.phase.to_owned(),
                    json!({"workload": f.what, "ours_seconds": f.ours,
                           "syncrepl_seconds": f.syncrepl, "ratio": f.ours / f.syncrepl}),
                )
            })
            .collect();
        std::fs::write(path, format!("{:#}\n", Value::Object(report)))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A primary (slapd and our notifier), an empty replica for us and a syncrepl consumer;
/// the primary preloaded with `entries` (LDIF).
struct Setup {
    domain: Domain,
    replica: Slapd,
    consumer: Slapd,
    metrics: u16,
}

impl Setup {
    fn start(entries: &str) -> Result<Setup> {
        let domain = start_primary(entries)?;
        let consumer = syncrepl::start_consumer(&domain.slapd)?;
        Setup::with(domain, consumer)
    }

    /// Our replica beside `domain` and `consumer`, already started.
    fn with(domain: Domain, consumer: Slapd) -> Result<Setup> {
        let replica = Slapd::builder()
            .no_sync(true)
            .replica_of(domain.slapd.url())
            .start()
            .map_err(|e| e.to_string())?;
        Ok(Setup {
            domain,
            replica,
            consumer,
            metrics: tests::free_port().map_err(|e| e.to_string())?,
        })
    }

    fn start_listener(&mut self) -> Result<()> {
        let d = &self.domain;
        let mut args = d.run_args(&d.slapd.root_dn(), d.slapd.password_file());
        args.extend([
            "--replicate-to".to_owned(),
            self.replica.url().to_owned(),
            "--replica-bind-password-file".to_owned(),
            self.replica.password_file().to_string_lossy().into_owned(),
            "--metrics".to_owned(),
            format!("127.0.0.1:{}", self.metrics),
        ]);
        self.domain
            .start_listener_with(&args)
            .map_err(|e| e.to_string())
    }

    /// Waits until our listener has initialized the replica and processed what the
    /// notifier has now.
    fn wait_ours(&self) -> Result<()> {
        if !self.domain.wait_initialized(TIMEOUT) {
            return Err("our replica was not initialized".into());
        }
        let target = self.domain.notifier_id();
        let deadline = Instant::now() + TIMEOUT;
        while tests::domain::metrics_durable_id(self.metrics).is_none_or(|id| id < target) {
            if Instant::now() > deadline {
                return Err(format!("our listener did not reach {target}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

/// The primary (slapd and our notifier), preloaded with `entries` (LDIF).
fn start_primary(entries: &str) -> Result<Domain> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut builder = Slapd::builder().no_sync(true);
    if !entries.is_empty() {
        builder = builder.entries(entries);
    }
    Domain::start(&me, builder).map_err(|e| e.to_string())
}

/// `live` adds while both replicas follow the primary.
async fn live(count: usize) -> Result<Figure> {
    eprintln!("== live: {count} adds while both replicas follow");
    let mut setup = Setup::start("")?;
    setup.start_listener()?;
    tokio::task::block_in_place(|| setup.wait_ours())?;
    let base = setup.domain.slapd.base().to_owned();
    wait_same_count(&setup.domain.slapd, &setup.consumer, TIMEOUT).await?;
    let ldif = roles(&base, "live", 0..count);
    let last = format!("cn=live{},{base}", count - 1);
    settle_disk();
    let started = Instant::now();
    let writer = spawn_ldapmodify(&setup.domain.slapd, ldif);
    let (ours, theirs) = tokio::join!(
        present_after(&setup.replica, &last, started),
        present_after(&setup.consumer, &last, started)
    );
    let written = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the writer panicked".to_owned())?;
    written?;
    let (ours, theirs) = (ours?, theirs?);
    eprintln!("   ours {ours:.2}s, syncrepl {theirs:.2}s");
    check_same(&setup).await?;
    Ok(Figure {
        phase: "live",
        what: format!("{count} adds while both run"),
        ours,
        syncrepl: theirs,
    })
}

/// `count` mixed changes made while both replicas were stopped; each catches up alone.
async fn catchup(count: usize) -> Result<Figure> {
    eprintln!("== catch-up: {count} mixed changes made while both replicas were stopped");
    let base = "dc=example,dc=com";
    let objects = count / 2;
    let mut setup = Setup::start(&roles(base, "u", 0..objects))?;
    setup.start_listener()?;
    tokio::task::block_in_place(|| setup.wait_ours())?;
    wait_same_count(&setup.domain.slapd, &setup.consumer, TIMEOUT).await?;
    setup.domain.stop_listener();
    setup.consumer.stop();
    setup
        .domain
        .slapd
        .ldapmodify(&mixed(base, objects, count))
        .map_err(|e| e.to_string())?;
    let want = syncrepl::contextcsn(&setup.domain.slapd).await?;

    settle_disk();
    let started = Instant::now();
    setup.consumer.restart().map_err(|e| e.to_string())?;
    let theirs = syncrepl::converged(&setup.consumer, &want, started, TIMEOUT).await?;

    settle_disk();
    let started = Instant::now();
    setup.start_listener()?;
    tokio::task::block_in_place(|| setup.wait_ours())?;
    let ours = started.elapsed().as_secs_f64();
    eprintln!("   ours {ours:.2}s, syncrepl {theirs:.2}s");
    check_same(&setup).await?;
    Ok(Figure {
        phase: "catchup",
        what: format!("{count} mixed changes made while stopped"),
        ours,
        syncrepl: theirs,
    })
}

/// A replica filled from nothing with the primary's `count` entries; each alone.
async fn fill(count: usize) -> Result<Figure> {
    eprintln!("== fill: a new replica takes the primary's {count} entries");
    let domain = start_primary(&roles("dc=example,dc=com", "f", 0..count))?;
    let want = syncrepl::contextcsn(&domain.slapd).await?;

    settle_disk();
    let started = Instant::now();
    let consumer = syncrepl::start_consumer(&domain.slapd)?;
    let theirs = syncrepl::converged(&consumer, &want, started, TIMEOUT).await?;

    let mut setup = Setup::with(domain, consumer)?;
    settle_disk();
    let started = Instant::now();
    setup.start_listener()?;
    tokio::task::block_in_place(|| setup.wait_ours())?;
    let ours = started.elapsed().as_secs_f64();
    eprintln!("   ours {ours:.2}s, syncrepl {theirs:.2}s");
    check_same(&setup).await?;
    Ok(Figure {
        phase: "fill",
        what: format!("{count} entries into an empty replica"),
        ours,
        syncrepl: theirs,
    })
}

/// Writes out what the setup left dirty in the page cache before a timed run: the
/// kernel flushing it meanwhile stalls the slapds' writes, by up to 100 ms at a time,
/// for whichever side happens to run then.
fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
}

/// Organizational roles `cn=<prefix><i>` for `range`.
fn roles(base: &str, prefix: &str, range: std::ops::Range<usize>) -> String {
    range
        .map(|i| {
            format!(
                "dn: cn={prefix}{i},{base}\nobjectClass: organizationalRole\ncn: {prefix}{i}\n\
                 description: first\n\n"
            )
        })
        .collect()
}

/// About `count` changes: the first half of the roles `cn=u0…` (`objects` of them) each
/// modified, renamed, moved into an OU, deleted, or deleted and made again, and as many
/// new roles added.
fn mixed(base: &str, objects: usize, count: usize) -> String {
    let mut ldif = format!("dn: ou=moved,{base}\nobjectClass: organizationalUnit\nou: moved\n\n");
    for i in 0..count.saturating_sub(1) {
        let change = if i >= objects {
            format!("dn: cn=n{i},{base}\nobjectClass: organizationalRole\ncn: n{i}\n\n")
        } else {
            match i % 10 {
                0 => format!("dn: cn=u{i},{base}\nchangetype: delete\n\n"),
                1 => format!(
                    "dn: cn=u{i},{base}\nchangetype: delete\n\n\
                     dn: cn=u{i},{base}\nobjectClass: organizationalRole\ncn: u{i}\ndescription: again\n\n"
                ),
                2 => format!(
                    "dn: cn=u{i},{base}\nchangetype: modrdn\nnewrdn: cn=u{i}\ndeleteoldrdn: 1\n\
                     newsuperior: ou=moved,{base}\n\n"
                ),
                3 => format!(
                    "dn: cn=u{i},{base}\nchangetype: modrdn\nnewrdn: cn=v{i}\ndeleteoldrdn: 1\n\n"
                ),
                _ => format!(
                    "dn: cn=u{i},{base}\nchangetype: modify\nreplace: description\ndescription: {i}\n\n"
                ),
            }
        };
        ldif.push_str(&change);
    }
    ldif
}

/// Runs `ldapmodify -a` of `ldif` against `slapd` as its rootDN, in a thread of its own.
fn spawn_ldapmodify(slapd: &Slapd, ldif: String) -> std::thread::JoinHandle<Result<()>> {
    let (url, root_dn) = (slapd.url().to_owned(), slapd.root_dn());
    let password_file = slapd.password_file().to_owned();
    std::thread::spawn(move || {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("ldapmodify")
            .args(["-a", "-x", "-H", &url, "-D", &root_dn, "-y"])
            .arg(&password_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run ldapmodify: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ldif.as_bytes())
                .map_err(|e| format!("ldapmodify: {e}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("ldapmodify: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ldapmodify failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    })
}

/// Seconds from `since` until `dn` exists on `slapd`.
async fn present_after(slapd: &Slapd, dn: &str, since: Instant) -> Result<f64> {
    let mut ldap = slapd.bind(&slapd.root_dn(), slapd.root_password()).await;
    let deadline = since + TIMEOUT;
    loop {
        let found = ldap
            .search(dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .ok()
            .and_then(|r| r.success().ok())
            .is_some_and(|(entries, _)| !entries.is_empty());
        if found {
            return Ok(since.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            return Err(format!("{dn} did not reach {}", slapd.url()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The DNs under `slapd`'s base, lower-cased and sorted.
async fn dns(slapd: &Slapd) -> Result<Vec<String>> {
    let mut ldap = slapd.bind(&slapd.root_dn(), slapd.root_password()).await;
    let (entries, _) = ldap
        .search(slapd.base(), Scope::Subtree, "(objectClass=*)", vec!["1.1"])
        .await
        .and_then(|r| r.success())
        .map_err(|e| e.to_string())?;
    let mut dns: Vec<String> = entries
        .into_iter()
        .map(|e| ldap3::SearchEntry::construct(e).dn.to_lowercase())
        .collect();
    dns.sort();
    let _ = ldap.unbind().await;
    Ok(dns)
}

async fn wait_same_count(primary: &Slapd, replica: &Slapd, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let want = dns(primary).await?.len();
    while dns(replica).await?.len() != want {
        if Instant::now() > deadline {
            return Err(format!("{} did not copy the primary", replica.url()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Both replicas hold the primary's DNs (after a phase, untimed).
async fn check_same(setup: &Setup) -> Result<()> {
    let want = dns(&setup.domain.slapd).await?;
    for (who, replica) in [("ours", &setup.replica), ("syncrepl", &setup.consumer)] {
        let have = dns(replica).await?;
        if have != want {
            return Err(format!(
                "{who}: the replica holds {} entries, the primary {}",
                have.len(),
                want.len()
            ));
        }
    }
    Ok(())
}
