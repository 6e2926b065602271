//! The attribute types the matcher knows: which matching rules apply to which attribute.
//!
//! A built-in table covers the standard schemas (RFC 4519, 4524, 2798, 2307/nis) and the
//! operational attributes slapd maintains. Attributes not in the table use caseIgnore
//! (equality, ordering and substrings), which is what most site-specific schemas use.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::matching::MatchingRule;

/// One attribute type: its OID, names and matching rules.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeType {
    pub oid: &'static str,
    /// Names, the primary one first (e.g. `["cn", "commonName"]`).
    pub names: &'static [&'static str],
    /// The supertype's primary name, if any (`cn` has `name`).
    pub sup: Option<&'static str>,
    pub equality: Option<MatchingRule>,
    pub ordering: Option<MatchingRule>,
    pub substr: Option<MatchingRule>,
}

impl AttributeType {
    pub fn primary_name(&self) -> &'static str {
        self.names.first().copied().unwrap_or(self.oid)
    }
}

/// The matching rules that apply to an attribute; unknown attributes get caseIgnore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub equality: Option<MatchingRule>,
    pub ordering: Option<MatchingRule>,
    pub substr: Option<MatchingRule>,
}

impl Rules {
    pub const DEFAULT: Rules = Rules {
        equality: Some(MatchingRule::CaseIgnore),
        ordering: Some(MatchingRule::CaseIgnore),
        substr: Some(MatchingRule::CaseIgnore),
    };
}

/// A set of attribute types indexed by lower-cased name and OID.
#[derive(Debug)]
pub struct Schema {
    types: Vec<AttributeType>,
    by_name: HashMap<String, usize>,
}

impl Schema {
    /// The built-in schema table.
    pub fn builtin() -> &'static Schema {
        static BUILTIN: OnceLock<Schema> = OnceLock::new();
        BUILTIN.get_or_init(|| Schema::new(crate::schema::table::ATTRIBUTE_TYPES.to_vec()))
    }

    /// Builds a schema from attribute types (e.g. the built-in table refined by a server's
    /// `cn=Subschema`).
    pub fn new(types: Vec<AttributeType>) -> Schema {
        let mut by_name = HashMap::new();
        for (i, at) in types.iter().enumerate() {
            by_name.insert(at.oid.to_owned(), i);
            for name in at.names {
                by_name.insert(name.to_ascii_lowercase(), i);
            }
        }
        Schema { types, by_name }
    }

    /// Looks an attribute type up by name (case-insensitive) or numeric OID.
    pub fn attribute(&self, name_or_oid: &str) -> Option<&AttributeType> {
        let i = match self.by_name.get(name_or_oid) {
            Some(i) => *i,
            None => *with_ascii_lowercase(name_or_oid, |lower| self.by_name.get(lower))?,
        };
        self.types.get(i)
    }

    /// The matching rules of an attribute type, inheriting from supertypes where the type
    /// names none, and caseIgnore for unknown types.
    pub fn rules(&self, name_or_oid: &str) -> Rules {
        let Some(mut at) = self.attribute(name_or_oid) else {
            return Rules::DEFAULT;
        };
        let mut rules = Rules {
            equality: at.equality,
            ordering: at.ordering,
            substr: at.substr,
        };
        // Follow the supertype chain for rules the type leaves out (bounded: no cycles).
        for _ in 0..8 {
            let Some(sup) = at.sup.and_then(|s| self.attribute(s)) else {
                break;
            };
            rules.equality = rules.equality.or(sup.equality);
            rules.ordering = rules.ordering.or(sup.ordering);
            rules.substr = rules.substr.or(sup.substr);
            at = sup;
        }
        rules
    }

    /// Every attribute type of the schema (the filter compiler precomputes which types are
    /// subtypes of a filter's attribute and which fit an extensible matching rule).
    pub fn attribute_types(&self) -> &[AttributeType] {
        &self.types
    }

    /// Whether `name` is `ancestor` or one of its subtypes (`cn` is a `name`).
    pub fn is_subtype(&self, name: &str, ancestor: &str) -> bool {
        let (Some(mut at), Some(anc)) = (self.attribute(name), self.attribute(ancestor)) else {
            return name.eq_ignore_ascii_case(ancestor);
        };
        for _ in 0..8 {
            if at.oid == anc.oid {
                return true;
            }
            match at.sup.and_then(|s| self.attribute(s)) {
                Some(sup) => at = sup,
                None => return false,
            }
        }
        false
    }
}

/// The OID of a standard object class (core, cosine, inetOrgPerson, nis, slapd built-ins,
/// accesslog), by name, case-insensitively.
///
/// ```
/// use listener_core::schema::object_class_oid;
/// assert_eq!(object_class_oid("inetOrgPerson"), Some("2.16.840.1.113730.3.2.2"));
/// assert_eq!(object_class_oid("PERSON"), Some("2.5.6.6"));
/// ```
pub fn object_class_oid(name: &str) -> Option<&'static str> {
    static BY_NAME: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    let map = BY_NAME.get_or_init(|| {
        table::OBJECT_CLASSES
            .iter()
            .map(|(name, oid)| (name.to_ascii_lowercase(), *oid))
            .collect()
    });
    match map.get(name) {
        Some(oid) => Some(oid),
        None => with_ascii_lowercase(name, |lower| map.get(lower).copied()),
    }
}

/// Whether the standard object class `class` is `ancestor` or one of its subclasses, both
/// by name or OID, case-insensitively; every class is a subclass of `top`. Classes this
/// table does not know are only their own subclass.
///
/// ```
/// use listener_core::schema::is_object_subclass;
/// assert!(is_object_subclass("inetOrgPerson", "person"));
/// assert!(is_object_subclass("2.16.840.1.113730.3.2.2", "2.5.6.6"));
/// assert!(is_object_subclass("univentionObject", "top"));
/// assert!(!is_object_subclass("person", "inetOrgPerson"));
/// ```
pub fn is_object_subclass(class: &str, ancestor: &str) -> bool {
    let oid = |name: &str| {
        object_class_oid(name)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                // A numeric OID stands for itself; an unknown name for itself, lower-cased.
                name.to_ascii_lowercase()
            })
    };
    let ancestor = oid(ancestor);
    if ancestor == "2.5.6.0" {
        return true;
    }
    let mut current = vec![oid(class)];
    // Bounded: the table has no cycles and is shallow.
    for _ in 0..8 {
        if current.contains(&ancestor) {
            return true;
        }
        current = table::OBJECT_CLASS_SUPERIORS
            .iter()
            .filter(|(sub, _)| {
                current
                    .iter()
                    .any(|c| object_class_oid(sub) == Some(c.as_str()))
            })
            .map(|(_, sup)| oid(sup))
            .collect();
        if current.is_empty() {
            return false;
        }
    }
    false
}

/// The names of the standard object classes [`object_class_oid`] knows.
pub fn object_class_names() -> impl Iterator<Item = &'static str> {
    table::OBJECT_CLASSES.iter().map(|(name, _)| *name)
}

/// Calls `f` with `s` lower-cased (ASCII), on the stack for short names: lookups by name
/// run per value in the matcher, which must not allocate per event.
fn with_ascii_lowercase<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 64];
    match buf.get_mut(..s.len()) {
        Some(dst) => {
            dst.copy_from_slice(s.as_bytes());
            dst.make_ascii_lowercase();
            // Lower-casing ASCII bytes keeps UTF-8 valid.
            match std::str::from_utf8(dst) {
                Ok(lower) => f(lower),
                Err(_) => f(&s.to_ascii_lowercase()),
            }
        }
        None => f(&s.to_ascii_lowercase()),
    }
}

mod table;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::MatchingRule;

    #[test]
    fn builtin_table_resolves_names_oids_and_inheritance() {
        let s = Schema::builtin();
        assert_eq!(s.attribute("commonName").unwrap().primary_name(), "cn");
        assert_eq!(s.attribute("2.5.4.3").unwrap().primary_name(), "cn");
        assert_eq!(s.rules("CN").equality, Some(MatchingRule::CaseIgnore));
        assert_eq!(
            s.rules("member").equality,
            Some(MatchingRule::DistinguishedName)
        );
        assert_eq!(s.rules("uidNumber").ordering, Some(MatchingRule::Integer));
        assert_eq!(s.rules("mail").equality, Some(MatchingRule::CaseIgnoreIa5));
        assert_eq!(s.rules("entryUUID").equality, Some(MatchingRule::Uuid));
        assert_eq!(s.rules("entryCSN").ordering, Some(MatchingRule::Csn));
        assert_eq!(
            s.rules("reqStart").ordering,
            Some(MatchingRule::GeneralizedTime)
        );
        assert_eq!(s.rules("reqMod").substr, Some(MatchingRule::OctetString));
        assert_eq!(
            s.rules("telephoneNumber").substr,
            Some(MatchingRule::TelephoneNumber)
        );
        assert_eq!(
            s.rules("hasSubordinates").equality,
            Some(MatchingRule::Boolean)
        );
        assert_eq!(s.rules("jpegPhoto").equality, None);
        assert_eq!(s.rules("x-unknown"), Rules::DEFAULT);
        assert!(s.is_subtype("givenName", "name"));
        assert!(!s.is_subtype("mail", "name"));
    }

    #[test]
    fn table_is_consistent() {
        let s = Schema::builtin();
        let mut oids = std::collections::HashSet::new();
        for at in table::ATTRIBUTE_TYPES {
            assert!(oids.insert(at.oid), "duplicate OID {}", at.oid);
            if let Some(sup) = at.sup {
                assert!(s.attribute(sup).is_some(), "{}: unknown SUP {sup}", at.oid);
            }
            for name in at.names {
                assert_eq!(s.attribute(name).map(|a| a.oid), Some(at.oid), "{name}");
            }
        }
        assert_eq!(object_class_oid("top"), Some("2.5.6.0"));
        for (sub, sup) in table::OBJECT_CLASS_SUPERIORS {
            assert!(object_class_oid(sub).is_some(), "{sub}");
            assert!(object_class_oid(sup).is_some(), "{sup}");
        }
        assert!(is_object_subclass(
            "pilotOrganization",
            "organizationalUnit"
        ));
        assert!(is_object_subclass("auditModify", "auditObject"));
        assert!(is_object_subclass("PERSON", "2.5.6.6"));
        assert!(!is_object_subclass("auditModify", "auditReadObject"));
        assert_eq!(object_class_oid("posixAccount"), Some("1.3.6.1.1.1.2.0"));
        assert_eq!(
            object_class_oid("auditModify"),
            Some("1.3.6.1.4.1.4203.666.11.5.2.9")
        );
    }
}
