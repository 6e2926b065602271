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
            None => *self.by_name.get(&name_or_oid.to_ascii_lowercase())?,
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

mod table;
