//! Accesslog entries (`reqStart=…,cn=accesslog`) turned into transactions (semantics §2):
//! add, modify and delete become one each; a modrdn becomes `r` with the old DN followed
//! by `a` with the new one.

use std::collections::HashMap;

use listener_core::Command;

/// The parts of one accesslog entry the notifier uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// `reqType`: add, modify, delete or modrdn.
    pub req_type: String,
    /// `reqDN`: the entry written, as slapd logged it.
    pub req_dn: String,
    /// `reqNewRDN` of a modrdn.
    pub new_rdn: Option<String>,
    /// `reqNewSuperior` of a move.
    pub new_superior: Option<String>,
    /// `reqNewDN`, where the server logs it.
    pub new_dn: Option<String>,
    /// `reqEntryUUID` (empty if not logged).
    pub entry_uuid: String,
    /// The log entry's `entryCSN`, the change's CSN.
    pub csn: String,
    /// `reqStart`, when the write began.
    pub req_start: String,
}

/// An accesslog entry the notifier cannot turn into transactions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccesslogError {
    /// A required attribute is absent.
    #[error("accesslog entry {dn} lacks {attribute}")]
    Missing {
        /// The accesslog entry.
        dn: String,
        /// The attribute it lacks.
        attribute: &'static str,
    },
    /// A reqType the notifier does not know.
    #[error("accesslog entry {dn} has unknown reqType {req_type:?}")]
    UnknownType {
        /// The accesslog entry.
        dn: String,
        /// Its reqType.
        req_type: String,
    },
}

/// Attributes the follower asks for.
pub const ATTRIBUTES: &[&str] = &[
    "reqType",
    "reqDN",
    "reqNewRDN",
    "reqNewSuperior",
    "reqNewDN",
    "reqEntryUUID",
    "reqStart",
    "entryCSN",
];

impl Write {
    /// Reads the entry's attributes (as ldap3 returns them: name → values).
    pub fn from_attrs(
        dn: &str,
        attrs: &HashMap<String, Vec<String>>,
    ) -> Result<Write, AccesslogError> {
        let get = |name: &str| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
        };
        let need = |name: &'static str| {
            get(name).ok_or_else(|| AccesslogError::Missing {
                dn: dn.to_owned(),
                attribute: name,
            })
        };
        Ok(Write {
            req_type: need("reqType")?,
            req_dn: need("reqDN")?,
            new_rdn: get("reqNewRDN"),
            new_superior: get("reqNewSuperior"),
            new_dn: get("reqNewDN"),
            entry_uuid: get("reqEntryUUID").unwrap_or_default(),
            csn: need("entryCSN")?,
            req_start: need("reqStart")?,
        })
    }

    /// The `(dn, command)` pairs this write becomes, in order.
    pub fn transactions(&self) -> Result<Vec<(String, Command)>, AccesslogError> {
        let one = |command| Ok(vec![(self.req_dn.clone(), command)]);
        match self.req_type.as_str() {
            "add" => one(Command::Add),
            "modify" => one(Command::Modify),
            "delete" => one(Command::Delete),
            "modrdn" => {
                let new_dn = match (&self.new_dn, &self.new_rdn) {
                    (Some(new_dn), _) => new_dn.clone(),
                    (None, Some(new_rdn)) => {
                        let superior = match &self.new_superior {
                            Some(s) => s.as_str(),
                            None => parent(&self.req_dn),
                        };
                        if superior.is_empty() {
                            new_rdn.clone()
                        } else {
                            format!("{new_rdn},{superior}")
                        }
                    }
                    (None, None) => {
                        return Err(AccesslogError::Missing {
                            dn: self.req_dn.clone(),
                            attribute: "reqNewRDN",
                        });
                    }
                };
                Ok(vec![
                    (self.req_dn.clone(), Command::Rename),
                    (new_dn, Command::Add),
                ])
            }
            other => Err(AccesslogError::UnknownType {
                dn: self.req_dn.clone(),
                req_type: other.to_owned(),
            }),
        }
    }

    /// `reqStart` (`YYYYMMDDHHMMSS.ffffffZ`) in microseconds since the epoch; 0 when it
    /// cannot be read (the time is informational: lag in seconds).
    pub fn time_us(&self) -> i64 {
        crate::utc::generalized_time_us(&self.req_start).unwrap_or(0)
    }
}

/// The DN after the first RDN, as spelled (the separator is the first `,` not escaped
/// with `\`); empty for a one-RDN DN.
pub(crate) fn parent(dn: &str) -> &str {
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b',' => return dn[i + 1..].trim_start(),
            _ => i += 1,
        }
    }
    ""
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(req_type: &str, dn: &str) -> Write {
        Write {
            req_type: req_type.into(),
            req_dn: dn.into(),
            new_rdn: None,
            new_superior: None,
            new_dn: None,
            entry_uuid: String::new(),
            csn: String::new(),
            req_start: "20261128071644.000003Z".into(),
        }
    }

    #[test]
    fn simple_writes_are_one_transaction() {
        for (t, c) in [
            ("add", Command::Add),
            ("modify", Command::Modify),
            ("delete", Command::Delete),
        ] {
            assert_eq!(
                write(t, "cn=x,dc=y").transactions().unwrap(),
                [("cn=x,dc=y".into(), c)]
            );
        }
        assert!(write("extended", "cn=x").transactions().is_err());
    }

    #[test]
    fn modrdn_is_r_then_a() {
        let mut rename = write("modrdn", "cn=a\\,b,ou=x,dc=y");
        rename.new_rdn = Some("cn=Unmöglich".into());
        assert_eq!(
            rename.transactions().unwrap(),
            [
                ("cn=a\\,b,ou=x,dc=y".into(), Command::Rename),
                ("cn=Unmöglich,ou=x,dc=y".into(), Command::Add)
            ]
        );
        rename.new_superior = Some("ou=z,dc=y".into());
        assert_eq!(
            rename.transactions().unwrap()[1].0,
            "cn=Unmöglich,ou=z,dc=y"
        );
        rename.new_dn = Some("cn=n,dc=y".into());
        assert_eq!(rename.transactions().unwrap()[1].0, "cn=n,dc=y");
        let mut no_rdn = write("modrdn", "cn=a,dc=y");
        no_rdn.new_rdn = None;
        assert!(no_rdn.transactions().is_err());
    }

    #[test]
    fn parent_respects_escapes() {
        assert_eq!(parent("cn=a\\,b,dc=y"), "dc=y");
        assert_eq!(parent("cn=a\\\\,dc=y"), "dc=y");
        assert_eq!(parent("cn=a, dc=y"), "dc=y");
        assert_eq!(parent("dc=y"), "");
        assert_eq!(parent("cn=trailing\\"), "");
    }

    #[test]
    fn req_start_is_read_as_utc_microseconds() {
        assert_eq!(
            crate::utc::generalized_time_us("19700101000000.000001Z"),
            Some(1)
        );
        assert_eq!(
            crate::utc::generalized_time_us("20000301000000Z"),
            Some(951_868_800_000_000)
        );
        assert_eq!(crate::utc::generalized_time_us("2026112807164"), None);
        assert_eq!(crate::utc::generalized_time_us("2026x128071644.5Z"), None);
    }
}
