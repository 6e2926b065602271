//! The schema ID: a persisted counter that goes up whenever slapd's `cn=Subschema`
//! changes, served by `GET_SCHEMA_ID` so listeners know to reload schema-dependent state.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ldap3::{Ldap, Scope, SearchEntry};

use super::NotifierError;

const FILE: &str = "schema-id";
const SUBSCHEMA_ATTRIBUTES: &[&str] = &[
    "attributeTypes",
    "objectClasses",
    "ldapSyntaxes",
    "matchingRules",
    "matchingRuleUse",
    "dITContentRules",
    "dITStructureRules",
    "nameForms",
];

/// The counter and the fingerprint of the schema it was last seen with.
#[derive(Debug)]
pub(crate) struct SchemaId {
    path: PathBuf,
    id: u64,
    fingerprint: Option<u64>,
}

impl SchemaId {
    /// Reads the counter from the data directory (0 and no fingerprint when new).
    pub(crate) fn open(dir: &Path) -> Result<SchemaId, NotifierError> {
        let path = dir.join(FILE);
        let (id, fingerprint) = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).ok_or_else(|| {
                NotifierError::Data(format!(
                    "{} is damaged ({text:?}); delete it to restart the schema ID at 0",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, None),
            Err(e) => return Err(NotifierError::Data(format!("{}: {e}", path.display()))),
        };
        Ok(SchemaId {
            path,
            id,
            fingerprint,
        })
    }

    /// The current schema ID.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Records the schema's fingerprint; returns the new ID when the schema changed since
    /// it was last seen. The first fingerprint ever seen does not count as a change.
    pub(crate) fn observe(&mut self, fingerprint: u64) -> Result<Option<u64>, NotifierError> {
        let changed = match self.fingerprint {
            Some(known) if known == fingerprint => return Ok(None),
            Some(_) => true,
            None => false,
        };
        let id = self.id + u64::from(changed);
        let tmp = self.path.with_extension("new");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            writeln!(file, "{id} {fingerprint:016x}")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| NotifierError::Data(format!("{}: {e}", self.path.display())))?;
        self.id = id;
        self.fingerprint = Some(fingerprint);
        Ok(changed.then_some(id))
    }
}

fn parse(text: &str) -> Option<(u64, Option<u64>)> {
    let mut words = text.split_whitespace();
    let id = words.next()?.parse().ok()?;
    let fingerprint = u64::from_str_radix(words.next()?, 16).ok()?;
    Some((id, Some(fingerprint)))
}

/// A fingerprint of the server's schema (FNV-1a over the sorted definitions).
pub(crate) async fn subschema_fingerprint(ldap: &mut Ldap) -> Result<u64, NotifierError> {
    let err = |e: ldap3::LdapError| NotifierError::Ldap(format!("cannot read the schema: {e}"));
    let (root, _) = ldap
        .search(
            "",
            Scope::Base,
            "(objectClass=*)",
            vec!["subschemaSubentry"],
        )
        .await
        .and_then(|r| r.success())
        .map_err(err)?;
    let subentry = root
        .into_iter()
        .find_map(|e| {
            SearchEntry::construct(e)
                .attrs
                .remove("subschemaSubentry")
                .and_then(|v| v.into_iter().next())
        })
        .unwrap_or_else(|| "cn=Subschema".to_owned());
    let (entries, _) = ldap
        .search(
            &subentry,
            Scope::Base,
            "(objectClass=subschema)",
            SUBSCHEMA_ATTRIBUTES.to_vec(),
        )
        .await
        .and_then(|r| r.success())
        .map_err(err)?;
    let mut hash = Fnv::default();
    for entry in entries {
        let mut attrs: Vec<(String, Vec<String>)> =
            SearchEntry::construct(entry).attrs.into_iter().collect();
        attrs.sort();
        for (name, mut values) in attrs {
            values.sort();
            hash.update(name.to_ascii_lowercase().as_bytes());
            for value in values {
                hash.update(&[0]);
                hash.update(value.as_bytes());
            }
            hash.update(&[1]);
        }
    }
    Ok(hash.0)
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_changes_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SchemaId::open(dir.path()).unwrap();
        assert_eq!(s.id(), 0);
        assert_eq!(s.observe(11).unwrap(), None, "first sight is not a change");
        assert_eq!(s.observe(11).unwrap(), None);
        assert_eq!(s.observe(12).unwrap(), Some(1));
        drop(s);
        let mut s = SchemaId::open(dir.path()).unwrap();
        assert_eq!(s.id(), 1);
        assert_eq!(s.observe(12).unwrap(), None);
        assert_eq!(s.observe(11).unwrap(), Some(2));
    }

    #[test]
    fn a_damaged_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "banana").unwrap();
        let e = SchemaId::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
