//! Comparing the listener cache with LDAP (semantics §9, `verify`): which objects one
//! side has and the other lacks, and which differ. The cache holds every object a
//! transaction or an initialization delivered, so what must be cached is every object
//! that matches a READY module's filter; slapd's own metadata is not compared, the
//! entryUUID is (another UUID is another object).

use std::collections::BTreeMap;
use std::fmt;

use listener_core::Entry;

use super::dispatch::ModuleSpec;

/// One way cache and LDAP disagree about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Difference {
    /// Cached, but not in LDAP.
    OnlyInCache {
        /// The cached DN.
        dn: String,
    },
    /// In LDAP, matching these READY modules, but not cached.
    MissingFromCache {
        /// The DN in LDAP.
        dn: String,
        /// The modules whose filter it matches.
        modules: Vec<String>,
    },
    /// Both have it, differently.
    Differs {
        /// The DN.
        dn: String,
        /// What differs.
        what: Vec<String>,
    },
}

impl Difference {
    pub(crate) fn dn(&self) -> &str {
        match self {
            Difference::OnlyInCache { dn }
            | Difference::MissingFromCache { dn, .. }
            | Difference::Differs { dn, .. } => dn,
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::OnlyInCache { dn } => write!(f, "only in cache: {dn}"),
            Difference::MissingFromCache { dn, modules } => write!(
                f,
                "missing from cache: {dn} (matches {})",
                modules.join(", ")
            ),
            Difference::Differs { dn, what } => write!(f, "differs: {dn}: {}", what.join(", ")),
        }
    }
}

/// Compares one object's cached and LDAP states (`None`: absent there).
pub(crate) fn compare_one(
    cached: Option<&Entry>,
    ldap: Option<&Entry>,
    ready: &[ModuleSpec],
) -> Option<Difference> {
    match (cached, ldap) {
        (None, None) => None,
        (Some(c), None) => Some(Difference::OnlyInCache {
            dn: c.dn().to_string(),
        }),
        (None, Some(l)) => {
            let modules: Vec<String> = ready
                .iter()
                .filter(|spec| spec.filter.matches(l))
                .map(|spec| spec.name.clone())
                .collect();
            (!modules.is_empty()).then(|| Difference::MissingFromCache {
                dn: l.dn().to_string(),
                modules,
            })
        }
        (Some(c), Some(l)) => {
            let mut what: Vec<String> = listener_core::entry::diff(c, l)
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect();
            let uuid = |e: &Entry| e.first_str("entryUUID").map(str::to_ascii_lowercase);
            if uuid(c) != uuid(l) {
                what.push("entryUUID (another object)".to_owned());
            }
            if c.dn().as_str() != l.dn().as_str() {
                what.push(format!("DN spelled {:?} in LDAP", l.dn().as_str()));
            }
            (!what.is_empty()).then(|| Difference::Differs {
                dn: l.dn().to_string(),
                what,
            })
        }
    }
}

/// Compares the two sides, each keyed by normalized DN.
pub(crate) fn compare(
    cached: &BTreeMap<String, Entry>,
    ldap: &BTreeMap<String, Entry>,
    ready: &[ModuleSpec],
) -> Vec<Difference> {
    let mut keys: Vec<&String> = cached.keys().chain(ldap.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| compare_one(cached.get(k), ldap.get(k), ready))
        .collect()
}

#[cfg(test)]
mod tests {
    use listener_core::{Dn, ModuleConfig, ModuleForm, Schema};

    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &str)]) -> Entry {
        let mut e = Entry::new(Dn::parse(dn).unwrap());
        for (name, value) in attrs {
            e.push_value(name, value.as_bytes().to_vec()).unwrap();
        }
        e
    }

    fn roles() -> Vec<ModuleSpec> {
        let config = ModuleConfig::new(
            "roles",
            "",
            "(objectClass=organizationalRole)",
            ModuleForm::Struct,
        );
        vec![ModuleSpec::from_config(&config, Schema::builtin()).unwrap()]
    }

    fn keyed(entries: Vec<Entry>) -> BTreeMap<String, Entry> {
        entries
            .into_iter()
            .map(|e| (e.dn().normalized().to_owned(), e))
            .collect()
    }

    #[test]
    fn each_kind_of_difference_is_named_with_its_dn() {
        let base = [("objectClass", "organizationalRole"), ("entryUUID", "u1")];
        let cached = keyed(vec![
            entry("cn=same,dc=x", &base),
            entry("cn=gone,dc=x", &base),
            entry(
                "cn=changed,dc=x",
                &[
                    ("objectClass", "organizationalRole"),
                    ("description", "old"),
                    ("entryCSN", "1"),
                ],
            ),
        ]);
        let ldap = keyed(vec![
            entry("CN=Same,dc=x", &base),
            entry(
                "cn=changed,dc=x",
                &[
                    ("objectClass", "organizationalRole"),
                    ("description", "new"),
                    ("entryCSN", "2"),
                ],
            ),
            entry("cn=new,dc=x", &[("objectClass", "organizationalRole")]),
            entry("cn=unwatched,dc=x", &[("objectClass", "person")]),
        ]);
        let lines: Vec<String> = compare(&cached, &ldap, &roles())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                "differs: cn=changed,dc=x: description",
                "only in cache: cn=gone,dc=x",
                "missing from cache: cn=new,dc=x (matches roles)",
                "differs: CN=Same,dc=x: DN spelled \"CN=Same,dc=x\" in LDAP",
            ]
        );
    }

    #[test]
    fn metadata_alone_is_no_difference_but_another_uuid_is() {
        let c = entry(
            "cn=a,dc=x",
            &[("cn", "a"), ("entryUUID", "U1"), ("modifyTimestamp", "1")],
        );
        let l = entry(
            "cn=a,dc=x",
            &[
                ("cn", "a"),
                ("entryUUID", "u1"),
                ("modifyTimestamp", "2"),
                ("hasSubordinates", "TRUE"),
            ],
        );
        assert_eq!(compare_one(Some(&c), Some(&l), &[]), None);
        let other = entry("cn=a,dc=x", &[("cn", "a"), ("entryUUID", "u2")]);
        assert_eq!(
            compare_one(Some(&c), Some(&other), &[])
                .unwrap()
                .to_string(),
            "differs: cn=a,dc=x: entryUUID (another object)"
        );
    }
}
