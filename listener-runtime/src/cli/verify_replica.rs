//! `verify --replica URI`: compares a replica slapd with the primary, so that an
//! administrator can show the copy the `replication` module keeps is faithful
//! (docs/semantics.md §8): the same objects, with the same values of every attribute a
//! replica is written (operational ones included; `listener_core::replica`).

use std::collections::{BTreeMap, BTreeSet};

use listener_core::replica::is_replicated;
use listener_core::{Dn, Entry, Filter, Schema};

use crate::ldap::LdapSettings;
use crate::listener::fetch::Fetcher;

/// An object's replicated attributes: name (lower-cased) → values.
type Values = BTreeMap<String, BTreeSet<Vec<u8>>>;

/// What to compare.
pub(super) struct ReplicaCheck<'a> {
    pub primary: &'a LdapSettings,
    pub replica: &'a LdapSettings,
    pub base: &'a Dn,
    /// `--replication-filter`: only the objects it matches must be on the replica (and
    /// their parents may be).
    pub filter: Option<&'a str>,
}

/// One difference, as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReplicaDifference {
    /// On the primary (and selected), not on the replica.
    Missing(String),
    /// On the replica, not on the primary.
    OnlyOnReplica(String),
    /// On both, with these attributes' values differing.
    Differs(String, Vec<String>),
}

impl std::fmt::Display for ReplicaDifference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicaDifference::Missing(dn) => write!(f, "missing from replica: {dn}"),
            ReplicaDifference::OnlyOnReplica(dn) => write!(f, "only on replica: {dn}"),
            ReplicaDifference::Differs(dn, attrs) => {
                write!(f, "differs: {dn}: {}", attrs.join(", "))
            }
        }
    }
}

/// Reads both directories under the base and compares them; the differences, in DN
/// order.
pub(super) async fn verify_replica(
    check: &ReplicaCheck<'_>,
) -> Result<Vec<ReplicaDifference>, String> {
    let filter = check
        .filter
        .map(|f| {
            Filter::parse(f)
                .map_err(|e| e.to_string())
                .and_then(|f| f.compile(Schema::builtin()).map_err(|e| e.to_string()))
                .map_err(|e| format!("--replication-filter: {e}"))
        })
        .transpose()?;
    let primary = read_all(check.primary, check.base).await?;
    let replica = read_all(check.replica, check.base).await?;
    let mut differences = Vec::new();
    for (key, (entry, values)) in &primary {
        let selected = filter.as_ref().is_none_or(|f| f.matches(entry));
        match replica.get(key) {
            None if selected => {
                differences.push(ReplicaDifference::Missing(entry.dn().to_string()))
            }
            None => {}
            Some((_, theirs)) => {
                let differing: Vec<String> = values
                    .keys()
                    .chain(theirs.keys())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|attr| values.get(*attr) != theirs.get(*attr))
                    .cloned()
                    .collect();
                if !differing.is_empty() {
                    differences.push(ReplicaDifference::Differs(
                        entry.dn().to_string(),
                        differing,
                    ));
                }
            }
        }
    }
    for (key, (entry, _)) in &replica {
        if !primary.contains_key(key) {
            differences.push(ReplicaDifference::OnlyOnReplica(entry.dn().to_string()));
        }
    }
    Ok(differences)
}

/// Every object under `base`, by normalized DN, with its replicated values.
async fn read_all(
    settings: &LdapSettings,
    base: &Dn,
) -> Result<BTreeMap<String, (Entry, Values)>, String> {
    let fetcher = Fetcher::connect(settings, base.clone())
        .await
        .map_err(|e| format!("{}: {e}", settings.uri))?;
    // In pages: no size limit cuts a large directory short.
    let entries = fetcher
        .search_all("(objectClass=*)")
        .await
        .map_err(|e| format!("{}: {e}", settings.uri))?;
    Ok(entries
        .into_iter()
        .map(|entry| {
            let mut values = Values::new();
            for attr in entry.attributes() {
                if is_replicated(attr.desc.as_str()) {
                    values
                        .entry(attr.desc.as_str().to_ascii_lowercase())
                        .or_default()
                        .extend(attr.values.iter().cloned());
                }
            }
            (entry.dn().normalized().to_owned(), (entry, values))
        })
        .collect())
}
