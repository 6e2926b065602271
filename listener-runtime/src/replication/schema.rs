//! The replica's schema follows the primary's: when the replica refuses a write for
//! want of an attribute type or object class, the definitions it lacks are read from the
//! primary's subschema entry and added to the replica's `cn=config` (over `ldapi://`
//! with SASL EXTERNAL, `--replica-config-uri`), then the write is tried again. Written
//! over `cn=config` rather than as a schema file, so that slapd takes them at once
//! without a restart, and the replica never answers with a half-known schema.

use std::collections::BTreeSet;

use ldap3::{LdapConnAsync, Mod, Scope, SearchEntry};
use listener_core::Dn;

use crate::api::error::HandlerError;
use crate::listener::fetch::Fetcher;

/// The name of the `cn=config` schema entry the replicated definitions are kept in
/// (`cn={N}replicated,cn=schema,cn=config`).
const SCHEMA_NAME: &str = "replicated";

/// Result codes of a write that needs schema the replica lacks: undefinedAttributeType,
/// invalidAttributeSyntax (an unknown attribute type in some slapd versions),
/// objectClassViolation.
pub(super) const NEEDS_SCHEMA: &[u32] = &[17, 21, 65];

/// The definitions (`attributeTypes`, `objectClasses`) of a subschema entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Definitions {
    pub attribute_types: Vec<String>,
    pub object_classes: Vec<String>,
}

impl Definitions {
    /// The definitions of `self` whose OIDs `known` lacks, in `self`'s order (a
    /// definition's superiors come before it in a subschema entry).
    pub(super) fn missing_from(&self, known: &Definitions) -> Definitions {
        let oids =
            |defs: &[String]| -> BTreeSet<String> { defs.iter().filter_map(|d| oid(d)).collect() };
        let (types, classes) = (oids(&known.attribute_types), oids(&known.object_classes));
        let keep = |defs: &[String], known: &BTreeSet<String>| -> Vec<String> {
            defs.iter()
                .filter(|d| oid(d).is_some_and(|o| !known.contains(&o)))
                .cloned()
                .collect()
        };
        Definitions {
            attribute_types: keep(&self.attribute_types, &types),
            object_classes: keep(&self.object_classes, &classes),
        }
    }

    fn is_empty(&self) -> bool {
        self.attribute_types.is_empty() && self.object_classes.is_empty()
    }
}

/// The numeric OID a definition starts with (`( 1.2.3 NAME …`).
fn oid(definition: &str) -> Option<String> {
    let rest = definition.trim_start().strip_prefix('(')?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// The subschema entry's definitions, read with `ldap`.
async fn read(ldap: &Fetcher) -> Result<Definitions, HandlerError> {
    let subschema = Dn::parse("cn=Subschema").expect("a DN");
    let entry = ldap
        .fetch_by_dn(&subschema)
        .await
        .map_err(|e| HandlerError::msg(format!("cannot read cn=Subschema: {e}")))?
        .ok_or_else(|| HandlerError::msg("no cn=Subschema entry"))?;
    let definitions = |name| entry.strs(name).map(str::to_owned).collect();
    Ok(Definitions {
        attribute_types: definitions("attributeTypes"),
        object_classes: definitions("objectClasses"),
    })
}

/// Adds to the replica what the primary (`primary`) defines and the replica
/// (`replica`) lacks, over `cn=config` at `config_uri`; whether anything was added.
pub(super) async fn follow(
    primary: &Fetcher,
    replica: &Fetcher,
    config_uri: &str,
) -> Result<bool, HandlerError> {
    let missing = read(primary).await?.missing_from(&read(replica).await?);
    if missing.is_empty() {
        return Ok(false);
    }
    let failed = |e: ldap3::LdapError| HandlerError::msg(format!("{config_uri}: {e}"));
    let (conn, mut config) = LdapConnAsync::new(config_uri).await.map_err(failed)?;
    ldap3::drive!(conn);
    config
        .sasl_external_bind()
        .await
        .and_then(ldap3::LdapResult::success)
        .map_err(failed)?;
    let cannot = |e: ldap3::LdapError| {
        HandlerError::msg(format!(
            "cannot add the primary's schema to {config_uri} ({} attribute types, {} object classes): {e}",
            missing.attribute_types.len(),
            missing.object_classes.len()
        ))
    };
    let entry = match find_entry(&mut config).await.map_err(cannot)? {
        Some(dn) => dn,
        None => {
            let attrs = vec![
                ("objectClass".to_owned(), one("olcSchemaConfig")),
                ("cn".to_owned(), one(SCHEMA_NAME)),
            ];
            config
                .add(&format!("cn={SCHEMA_NAME},cn=schema,cn=config"), attrs)
                .await
                .and_then(ldap3::LdapResult::success)
                .map_err(cannot)?;
            // slapd names it `cn={N}replicated`.
            find_entry(&mut config)
                .await
                .map_err(cannot)?
                .ok_or_else(|| {
                    HandlerError::msg(format!("{config_uri}: the schema entry added is not found"))
                })?
        }
    };
    // One definition per modify, in the primary's order: each is appended after those
    // it may refer to (a set of values would lose the order).
    let definitions = (missing
        .attribute_types
        .iter()
        .map(|d| ("olcAttributeTypes", d)))
    .chain(
        missing
            .object_classes
            .iter()
            .map(|d| ("olcObjectClasses", d)),
    );
    for (attr, definition) in definitions {
        config
            .modify(&entry, vec![Mod::Add(attr.to_owned(), one(definition))])
            .await
            .and_then(ldap3::LdapResult::success)
            .map_err(cannot)?;
    }
    tracing::info!(
        attribute_types = missing.attribute_types.len(),
        object_classes = missing.object_classes.len(),
        "replication: added the primary's new schema to the replica"
    );
    let _ = config.unbind().await;
    Ok(true)
}

/// The DN of the schema entry of [`SCHEMA_NAME`], if there is one.
async fn find_entry(config: &mut ldap3::Ldap) -> Result<Option<String>, ldap3::LdapError> {
    let (entries, _) = config
        .search(
            "cn=schema,cn=config",
            Scope::OneLevel,
            &format!("(cn=*{SCHEMA_NAME})"),
            vec!["cn"],
        )
        .await?
        .success()?;
    Ok(entries
        .into_iter()
        .map(SearchEntry::construct)
        .find(|e| {
            e.attrs.get("cn").is_some_and(|v| {
                v.iter()
                    .any(|cn| cn.ends_with(&format!("}}{SCHEMA_NAME}")) || cn == SCHEMA_NAME)
            })
        })
        .map(|e| e.dn))
}

fn one(value: &str) -> std::collections::HashSet<String> {
    std::collections::HashSet::from([value.to_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_definitions_are_found_by_oid_in_order() {
        let primary = Definitions {
            attribute_types: vec![
                "( 2.5.4.3 NAME 'cn' SUP name )".into(),
                "( 1.3.6.1.4.1.99999.1 NAME 'fooA' SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )".into(),
                "( 1.3.6.1.4.1.99999.2 NAME 'fooB' SUP fooA )".into(),
            ],
            object_classes: vec![
                "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )".into(),
                "( 1.3.6.1.4.1.99999.3 NAME 'fooObject' SUP top AUXILIARY MAY ( fooA $ fooB ) )"
                    .into(),
            ],
        };
        let replica = Definitions {
            attribute_types: vec!["( 2.5.4.3 NAME 'cn' SUP name )".into()],
            object_classes: vec!["(2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )".into()],
        };
        let missing = primary.missing_from(&replica);
        assert_eq!(missing.attribute_types, primary.attribute_types[1..]);
        assert_eq!(missing.object_classes, primary.object_classes[1..]);
        assert!(primary.missing_from(&primary).is_empty());
        assert_eq!(oid("(2.5.6.0 NAME 'top')").as_deref(), Some("2.5.6.0"));
        assert_eq!(oid("garbage"), None);
    }
}
