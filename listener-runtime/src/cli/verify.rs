//! `verify`: compares the listener cache with LDAP (semantics §9: UCS's
//! `univention-directory-listener-verify`), and checks the cache's own consistency.
//!
//! The cache does not mirror the whole directory: it holds every object the listener
//! processed a transaction for and every object a module's initialization delivered. So
//! what must be cached is every object under the base that matches the filter of a READY
//! module; every cached object must exist in LDAP with the same attributes. Attributes
//! slapd maintains itself (`METADATA_ATTRIBUTES`: timestamps, CSNs, `hasSubordinates`,
//! `contextCSN`, …) change without a transaction for the object and are not compared;
//! `entryUUID` is (another UUID is another object).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use listener_core::ldif::{self, Record};
use listener_core::{Dn, Entry, Schema};

use super::common::{Bind, ReplicaBind};
use super::verify_replica::ReplicaCheck;
use crate::api::registry::ModuleRegistration;
use crate::listener::cache::Cache;
use crate::listener::compare::{Difference, compare, compare_one};
use crate::listener::control::Client;
use crate::listener::control::protocol::{CheckReport, Query, StatusReport};
use crate::listener::control::report::{self, LISTENER_MODULE};
use crate::listener::dispatch::ModuleSpec;
use crate::listener::fetch::Fetcher;

/// Snapshot semantics and exit codes, for `verify --help`.
pub(super) const HELP: &str = "\
Differences are printed one per line with the DN:
  only in cache:       cached, but LDAP has no such object (visible to the bind DN)
  missing from cache:  in LDAP and matching a READY module's filter, but not cached
  differs:             both have it; the attributes whose values differ are named
Bind as the listener does: objects the bind DN may not see count as absent.

While the listener runs, its cache is read through the control socket and keeps
changing, as LDAP does. A difference found in the first pass is therefore checked
again after the listener has caught up with the notifier (at most --settle seconds):
only differences that persist for that DN are reported.

Exit codes: 0 cache and LDAP agree and the cache is consistent, 1 differences or
cache problems found, 2 the comparison could not be made.";

/// `verify`: compare the cache with LDAP.
#[derive(Debug, Args)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    bind: Bind,
    /// The subtree the listener follows.
    #[arg(long, env = "LISTENER_BASE")]
    base: String,
    /// The listener's cache directory (not with `--replica`).
    #[arg(long, env = "LISTENER_CACHE_DIR", required_unless_present = "replica")]
    cache_dir: Option<PathBuf>,
    /// While the listener runs: how long to wait for it to catch up before checking a
    /// difference again.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    settle: u64,
    /// Compare this replica slapd (kept by `run --replicate-to`) with the primary
    /// instead: the same objects, with the same values of every replicated attribute.
    #[arg(long, value_name = "URI")]
    replica: Option<String>,
    #[command(flatten)]
    replica_bind: ReplicaBind,
    /// With `--replica`: the `--replication-filter` the replica is kept with (only the
    /// objects it matches must be on the replica).
    #[arg(long, env = "LISTENER_REPLICATION_FILTER", value_name = "FILTER")]
    replication_filter: Option<String>,
}

impl VerifyArgs {
    fn cache_dir(&self) -> &std::path::Path {
        self.cache_dir
            .as_deref()
            .unwrap_or(std::path::Path::new("."))
    }
}

/// The cache's side: its objects (without the `listenerModule` lines), its consistency,
/// and the READY modules.
struct CacheSide {
    entries: BTreeMap<String, Entry>,
    check: CheckReport,
    status: StatusReport,
}

/// Reads the cache's side from the running listener (`client`) or the cache itself.
fn cache_side(
    client: Option<Client>,
    args: &VerifyArgs,
    modules: &[&'static ModuleRegistration],
) -> Result<CacheSide, String> {
    if let Some(mut client) = client {
        let status: StatusReport = client.call(&Query::Status)?;
        let check: CheckReport = connect(args)?.call(&Query::Check)?;
        let mut text = Vec::new();
        connect(args)?.dump(&mut text)?;
        let text = String::from_utf8(text).map_err(|_| "the dump is not UTF-8".to_owned())?;
        return Ok(CacheSide {
            entries: parse_dump(&text)?,
            check,
            status,
        });
    }
    let cache = Cache::open_read_only(args.cache_dir())
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "there is no listener cache in {}",
                args.cache_dir().display()
            )
        })?;
    let r = cache.read().map_err(|e| e.to_string())?;
    let status = report::status(modules, &r, None).map_err(|e| e.to_string())?;
    let check = CheckReport::from(r.verify().map_err(|e| e.to_string())?);
    let mut entries = BTreeMap::new();
    for cached in r.entries().map_err(|e| e.to_string())? {
        let cached = cached.map_err(|e| e.to_string())?;
        entries.insert(cached.entry.dn().normalized().to_owned(), cached.entry);
    }
    Ok(CacheSide {
        entries,
        check,
        status,
    })
}

fn connect(args: &VerifyArgs) -> Result<Client, String> {
    Client::connect(args.cache_dir()).ok_or_else(|| "the listener stopped answering".to_owned())
}

/// The objects of a dump, keyed by normalized DN, without their `listenerModule` lines.
fn parse_dump(text: &str) -> Result<BTreeMap<String, Entry>, String> {
    let mut entries = BTreeMap::new();
    for record in ldif::parse(text).map_err(|e| format!("cannot read the dump: {e}"))? {
        if let Record::Content(mut entry) = record {
            entry.remove(LISTENER_MODULE);
            entries.insert(entry.dn().normalized().to_owned(), entry);
        }
    }
    Ok(entries)
}

pub(super) fn run_verify(args: VerifyArgs, modules: &[&'static ModuleRegistration]) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return cannot(&format!("cannot start the async runtime: {e}")),
    };
    let verified = match &args.replica {
        Some(uri) => runtime.block_on(verify_replica(&args, uri)),
        None => runtime.block_on(verify(&args, modules)),
    };
    match verified {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => cannot(&e),
    }
}

fn cannot(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// `--replica`: prints the differences between the replica and the primary; whether
/// there were none.
async fn verify_replica(args: &VerifyArgs, uri: &str) -> Result<bool, String> {
    let primary = args.bind.settings()?;
    let base = Dn::parse(&args.base).map_err(|e| format!("--base: {e}"))?;
    let replica = args.replica_bind.settings(uri, &base, primary.starttls)?;
    let differences = super::verify_replica::verify_replica(&ReplicaCheck {
        primary: &primary,
        replica: &replica,
        base: &base,
        filter: args.replication_filter.as_deref(),
    })
    .await?;
    for d in &differences {
        println!("{d}");
    }
    println!(
        "{} differences between {uri} and the primary",
        differences.len()
    );
    Ok(differences.is_empty())
}

/// Prints the differences; whether there were none.
async fn verify(
    args: &VerifyArgs,
    modules: &[&'static ModuleRegistration],
) -> Result<bool, String> {
    let settings = args.bind.settings()?;
    let base = Dn::parse(&args.base).map_err(|e| format!("--base: {e}"))?;
    let fetcher = Fetcher::connect(&settings, base)
        .await
        .map_err(|e| e.to_string())?;
    let client = Client::connect(args.cache_dir());
    let running = client.is_some();
    let side = cache_side(client, args, modules)?;
    let ready: Vec<ModuleSpec> = modules
        .iter()
        .filter(|m| {
            side.status
                .modules
                .iter()
                .any(|s| s.name == m.name && s.state.starts_with("READY"))
        })
        .map(|m| ModuleSpec::from_registration(m, Schema::builtin()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let ldap: BTreeMap<String, Entry> = fetcher
        .search_all("(objectClass=*)")
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|e| (e.dn().normalized().to_owned(), e))
        .collect();
    let mut differences = compare(&side.entries, &ldap, &ready);
    if running && !differences.is_empty() {
        differences = recheck(args, &fetcher, &ready, differences).await?;
    }
    for d in &differences {
        println!("{d}");
    }
    for problem in &side.check.problems {
        println!("cache problem: {problem}");
    }
    for (uuid, dns) in &side.check.shared_uuids {
        println!(
            "note: entryUUID {uuid} is claimed by {} cached objects (stale entries): {}",
            dns.len(),
            dns.join("; ")
        );
    }
    println!(
        "{} cached objects, {} objects in LDAP: {} differences, {} cache problems",
        side.entries.len(),
        ldap.len(),
        differences.len(),
        side.check.problems.len()
    );
    Ok(differences.is_empty() && side.check.problems.is_empty())
}

/// Checks each difference again once the running listener has caught up; keeps those
/// that persist.
async fn recheck(
    args: &VerifyArgs,
    fetcher: &Fetcher,
    ready: &[ModuleSpec],
    differences: Vec<Difference>,
) -> Result<Vec<Difference>, String> {
    // What LDAP showed us reaches the notifier and then the listener a moment later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deadline = Instant::now() + Duration::from_secs(args.settle);
    loop {
        let status: StatusReport = connect(args)?.call(&Query::Status)?;
        if status.lag_ids == Some(0) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut persisting = Vec::new();
    for difference in differences {
        let dn = Dn::parse(difference.dn()).map_err(|e| e.to_string())?;
        let cached: Option<String> = connect(args)?.call(&Query::Entry { dn: dn.to_string() })?;
        let cached = match cached {
            Some(text) => parse_dump(&text)?.into_values().next(),
            None => None,
        };
        let ldap = fetcher.fetch_by_dn(&dn).await.map_err(|e| e.to_string())?;
        if let Some(d) = compare_one(cached.as_ref(), ldap.as_ref(), ready) {
            persisting.push(d);
        }
    }
    Ok(persisting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_read_back_without_module_lines() {
        let text =
            "dn: cn=a,dc=x\ncn: a\nlistenerModule: printer\n\ndn:: Y249w6QsZGM9eA==\ncn:: w6Q=\n\n";
        let entries = parse_dump(text).unwrap();
        assert_eq!(entries.len(), 2);
        let a = &entries["cn=a,dc=x"];
        assert!(!a.contains(LISTENER_MODULE));
        assert_eq!(a.first_str("cn"), Some("a"));
    }
}
