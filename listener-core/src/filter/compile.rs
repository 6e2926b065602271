//! Compiling a filter against a schema: resolve attributes and rules once, normalize
//! assertion values once, reject what cannot be evaluated.

use std::collections::HashSet;
use std::fmt;

use super::eval::{Node, Op, Target, Test, Truth};
use super::fast::Fast;
use super::rules::{self, ExtensibleRule};
use super::{CompileError, Filter};
use crate::attr::AttributeDescription;
use crate::matching::MatchingRule;
use crate::schema::{AttributeType, Rules, Schema};

/// A filter prepared for fast repeated evaluation against entries.
///
/// Evaluation follows RFC 4511 §4.5.1.7: each item is TRUE, FALSE or Undefined (a value
/// invalid for the rule), `!` keeps Undefined, `&` and `|` combine as in SQL; an entry
/// matches when the whole filter is TRUE.
#[derive(Clone)]
pub struct CompiledFilter {
    pub(super) root: Node,
    filter: Filter,
}

impl CompiledFilter {
    /// The filter this was compiled from.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }
}

impl fmt::Debug for CompiledFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CompiledFilter")
            .field(&self.filter.to_string())
            .finish()
    }
}

impl fmt::Display for CompiledFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.filter, f)
    }
}

pub(super) fn compile(filter: &Filter, schema: &Schema) -> Result<CompiledFilter, CompileError> {
    Ok(CompiledFilter {
        root: node(filter, schema)?,
        filter: filter.clone(),
    })
}

fn node(filter: &Filter, schema: &Schema) -> Result<Node, CompileError> {
    let fail = |message: String| CompileError {
        item: filter.to_string(),
        message,
    };
    Ok(match filter {
        Filter::And(items) if items.is_empty() => Node::Const(Truth::True),
        Filter::Or(items) if items.is_empty() => Node::Const(Truth::False),
        Filter::And(items) => Node::And(nodes(items, schema)?),
        Filter::Or(items) => Node::Or(nodes(items, schema)?),
        Filter::Not(inner) => Node::Not(Box::new(node(inner, schema)?)),
        Filter::Present(attr) => Node::item(Target::attribute(attr, schema), Test::Present, false),
        // Approximate matching has no standard algorithm; we use equality, as many servers
        // do when no phonetic rule is configured.
        Filter::Equality(attr, value) | Filter::Approx(attr, value) => {
            let rule = rule_of(attr, schema, |r| r.equality, "equality").map_err(fail)?;
            let test = if holds_object_classes(attr, schema) {
                object_class_equality(value).map_err(fail)?
            } else {
                equality(rule, value).map_err(fail)?
            };
            Node::item(Target::attribute(attr, schema), test, false)
        }
        Filter::GreaterOrEqual(attr, value) | Filter::LessOrEqual(attr, value) => {
            let rule = rule_of(attr, schema, |r| r.ordering, "ordering").map_err(fail)?;
            let op = if matches!(filter, Filter::GreaterOrEqual(..)) {
                Op::GreaterOrEqual
            } else {
                Op::LessOrEqual
            };
            let test = ordering(rule, value, op).map_err(fail)?;
            Node::item(Target::attribute(attr, schema), test, false)
        }
        Filter::Substrings {
            attr,
            initial,
            any,
            final_,
        } => {
            let rule = rule_of(attr, schema, |r| r.substr, "substrings").map_err(fail)?;
            let piece = |p: &Vec<u8>| -> Result<Box<[u8]>, String> {
                rule.normalize_substring(p)
                    .map(|n| n.into_owned().into_boxed_slice())
                    .ok_or_else(|| invalid(rule, p))
            };
            let initial = initial.as_ref().map(piece).transpose().map_err(fail)?;
            let any: Vec<Vec<u8>> = any
                .iter()
                .map(|p| piece(p).map(Vec::from))
                .collect::<Result<_, _>>()
                .map_err(fail)?;
            let final_ = final_.as_ref().map(piece).transpose().map_err(fail)?;
            // A piece the rule prepares to nothing (` ` or `-` for telephoneNumber, a
            // zero-width space) asserts nothing that can be found: slapd makes the item
            // FALSE for every entry, and so do we.
            let empty = initial.iter().chain(final_.iter()).any(|p| p.is_empty())
                || any.iter().any(Vec::is_empty);
            if empty {
                return Ok(Node::Const(Truth::False));
            }
            let test = Test::Substrings {
                rule,
                fast: Fast::probe(rule),
                initial,
                any,
                final_,
            };
            Node::item(Target::attribute(attr, schema), test, false)
        }
        Filter::Extensible {
            attr,
            dn_attributes,
            rule,
            value,
        } => {
            let (target, test) =
                extensible(attr.as_ref(), rule.as_deref(), value, schema).map_err(fail)?;
            Node::item(target, test, *dn_attributes)
        }
    })
}

fn nodes(items: &[Filter], schema: &Schema) -> Result<Box<[Node]>, CompileError> {
    items.iter().map(|f| node(f, schema)).collect()
}

/// The attribute's rule of one kind; an error names what is missing.
fn rule_of(
    attr: &AttributeDescription,
    schema: &Schema,
    pick: impl Fn(&Rules) -> Option<MatchingRule>,
    kind: &str,
) -> Result<MatchingRule, String> {
    pick(&schema.rules(attr.type_key())).ok_or_else(|| {
        format!(
            "the attribute {} has no {kind} matching rule in the schema, so no value can \
             match it",
            attr.as_str()
        )
    })
}

fn invalid(rule: MatchingRule, value: &[u8]) -> String {
    format!(
        "the assertion value {:?} is not valid for the matching rule {}",
        String::from_utf8_lossy(value),
        rules::name(rule)
    )
}

fn normalized(rule: MatchingRule, value: &[u8]) -> Result<Box<[u8]>, String> {
    rule.normalize(value)
        .map(|n| n.into_owned().into_boxed_slice())
        .ok_or_else(|| invalid(rule, value))
}

fn equality(rule: MatchingRule, value: &[u8]) -> Result<Test, String> {
    let normal = normalized(rule, value)?;
    if rule == MatchingRule::ObjectIdentifier {
        return Ok(Test::OidEquality {
            names: oid_names(&normal),
            value: normal,
        });
    }
    Ok(Test::Equality {
        rule,
        fast: Fast::probe(rule),
        value: normal,
    })
}

/// Whether `attr` is objectClass or structuralObjectClass, whose equality slapd decides
/// with objectSubClassMatch: `(objectClass=person)` matches an inetOrgPerson (RFC 4512
/// §2.4.1: the superclasses of an entry's classes are implicitly present).
fn holds_object_classes(attr: &AttributeDescription, schema: &Schema) -> bool {
    schema
        .attribute(attr.type_key())
        .is_some_and(|at| matches!(at.oid, "2.5.4.0" | "2.5.21.9"))
}

/// Equality on object classes: the class or any of its subclasses. `top` is every class,
/// so it is presence.
fn object_class_equality(value: &[u8]) -> Result<Test, String> {
    let rule = MatchingRule::ObjectIdentifier;
    let normal = normalized(rule, value)?;
    if &*normal == b"2.5.6.0" {
        return Ok(Test::Present);
    }
    let class = String::from_utf8_lossy(&normal);
    let mut names: Vec<Box<[u8]>> = oid_names(&normal).into_vec();
    for sub in crate::schema::object_class_names() {
        if crate::schema::is_object_subclass(sub, &class) {
            let oid = crate::schema::object_class_oid(sub).unwrap_or(sub);
            names.extend(oid_names(oid.as_bytes()).into_vec());
            names.push(oid.as_bytes().into());
        }
    }
    names.sort();
    names.dedup();
    Ok(Test::OidEquality {
        value: normal,
        names: names.into_boxed_slice(),
    })
}

/// Every lower-case name the objectIdentifier rule normalizes to `normal`: the object
/// class and attribute type names with that OID, or the name itself when `normal` is a
/// name no table knows.
fn oid_names(normal: &[u8]) -> Box<[Box<[u8]>]> {
    let rule = MatchingRule::ObjectIdentifier;
    let candidates = crate::schema::object_class_names()
        .chain(
            Schema::builtin()
                .attribute_types()
                .iter()
                .flat_map(|at| at.names.iter().copied()),
        )
        .map(str::to_ascii_lowercase)
        .chain(std::iter::once(
            String::from_utf8_lossy(normal).into_owned(),
        ));
    let mut names: Vec<Box<[u8]>> = candidates
        .filter(|name| rule.normalize(name.as_bytes()).as_deref() == Some(normal))
        .map(|name| name.into_bytes().into_boxed_slice())
        .collect();
    names.sort();
    names.dedup();
    names.into_boxed_slice()
}

fn ordering(rule: MatchingRule, value: &[u8], op: Op) -> Result<Test, String> {
    Ok(Test::Ordering {
        rule,
        fast: Fast::probe(rule),
        value: normalized(rule, value)?,
        op,
    })
}

fn extensible(
    attr: Option<&AttributeDescription>,
    rule: Option<&str>,
    value: &[u8],
    schema: &Schema,
) -> Result<(Target, Test), String> {
    let resolved = match rule {
        Some(name) => Some(rules::resolve(name).ok_or_else(|| {
            format!("the matching rule {name} is unknown (or not supported by this matcher)")
        })?),
        None => None,
    };
    let test = |rule: ExtensibleRule| -> Result<Test, String> {
        match rule {
            ExtensibleRule::Equality(r) => equality(r, value),
            ExtensibleRule::Ordering(r) => ordering(r, value, Op::Less),
            ExtensibleRule::Substrings(_) => Err(
                "substrings matching rules are not supported in extensible matches; use \
                 (attr=a*b) instead"
                    .to_owned(),
            ),
            ExtensibleRule::BitAnd | ExtensibleRule::BitOr => {
                let mask = rules::parse_integer(value).ok_or_else(|| {
                    format!(
                        "the assertion value {:?} is not a 64-bit INTEGER",
                        String::from_utf8_lossy(value)
                    )
                })?;
                Ok(Test::Bits {
                    mask,
                    all: rule == ExtensibleRule::BitAnd,
                })
            }
        }
    };
    match (attr, resolved) {
        (Some(attr), Some(_)) if holds_object_classes(attr, schema) => Err(format!(
            "slapd evaluates no matching rule named in an extensible match on {} (it \
             matches object classes with objectSubClassMatch); use ({}=…)",
            attr.as_str(),
            attr.as_str()
        )),
        (Some(attr), Some(rule)) => {
            if !rule.applies_to(&schema.rules(attr.type_key())) {
                return Err(format!(
                    "the matching rule {} does not apply to the attribute {} (its syntax \
                     differs), so no value can match it",
                    rule_name(rule),
                    attr.as_str()
                ));
            }
            Ok((Target::attribute(attr, schema), test(rule)?))
        }
        (Some(attr), None) => {
            let rule = rule_of(attr, schema, |r| r.equality, "equality")?;
            let test = if holds_object_classes(attr, schema) {
                object_class_equality(value)?
            } else {
                equality(rule, value)?
            };
            Ok((Target::attribute(attr, schema), test))
        }
        (None, Some(rule)) => {
            let target = Target::fitting(rule, schema);
            if target.is_empty() {
                return Err(format!(
                    "no attribute type in the schema uses the matching rule {}, so the \
                     extensible match cannot apply to any attribute",
                    rule_name(rule)
                ));
            }
            Ok((target, test(rule)?))
        }
        (None, None) => Err("an extensible match needs an attribute or a matching rule".into()),
    }
}

fn rule_name(rule: ExtensibleRule) -> String {
    match rule {
        ExtensibleRule::BitAnd => "integerBitAndMatch".into(),
        ExtensibleRule::BitOr => "integerBitOrMatch".into(),
        ExtensibleRule::Equality(r)
        | ExtensibleRule::Ordering(r)
        | ExtensibleRule::Substrings(r) => rules::name(r),
    }
}

/// The lower-cased names and the OID of an attribute type: the spellings an entry's
/// attribute key can have (keys of types the built-in schema does not know are spelled).
fn spellings(at: &AttributeType) -> impl Iterator<Item = Box<str>> + '_ {
    at.names
        .iter()
        .map(|n| n.to_ascii_lowercase().into_boxed_str())
        .chain(std::iter::once(
            at.oid.to_ascii_lowercase().into_boxed_str(),
        ))
}

impl Target {
    /// The attribute `attr` and its subtypes (with at least `attr`'s options).
    fn attribute(attr: &AttributeDescription, schema: &Schema) -> Target {
        let mut keys: Vec<Box<str>> = vec![attr.type_key().into()];
        if let Some(own) = schema.attribute(attr.type_key()) {
            for at in schema.attribute_types() {
                if schema.is_subtype(at.primary_name(), own.primary_name()) || std::ptr::eq(at, own)
                {
                    keys.extend(spellings(at));
                }
            }
        }
        // The type key first: entries mostly spell attributes by their primary name.
        let mut seen = HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        let options = attr.key()[attr.type_key().len()..]
            .split(';')
            .filter(|o| !o.is_empty())
            .map(Into::into)
            .collect();
        Target::new(keys, None, options)
    }

    /// Every attribute type `rule` applies to (for an extensible match without an
    /// attribute), including types unknown to the schema when it applies to their default
    /// (caseIgnore).
    fn fitting(rule: ExtensibleRule, schema: &Schema) -> Target {
        let fits = |rules: &Rules| rule.applies_to(rules);
        let mut keys = Vec::new();
        let mut known = HashSet::new();
        for at in schema.attribute_types() {
            if fits(&schema.rules(at.primary_name())) {
                keys.extend(spellings(at));
            }
            known.extend(spellings(at));
        }
        Target::new(keys, fits(&Rules::DEFAULT).then_some(known), Box::new([]))
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.unknown.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_err(text: &str) -> CompileError {
        Filter::parse(text)
            .unwrap()
            .compile(Schema::builtin())
            .expect_err(text)
    }

    #[test]
    fn rejects_what_cannot_be_evaluated() {
        // objectClass has neither ordering nor substrings rules.
        assert!(compile_err("(objectClass>=a)").message.contains("ordering"));
        assert!(
            compile_err("(objectClass=a*)")
                .message
                .contains("substrings")
        );
        assert!(
            compile_err("(cn:noSuchMatch:=a)")
                .message
                .contains("unknown")
        );
        // Substrings rules have no string assertion syntax in an extensible match (or the
        // rule is unknown): rejected either way.
        compile_err("(cn:caseIgnoreSubstringsMatch:=a)");
        assert!(
            compile_err("(uidNumber:integerBitAndMatch:=x)")
                .message
                .contains("INTEGER")
        );
        // slapd makes these Undefined (tests/tests/matcher_agrees_with_slapd.rs).
        assert!(
            compile_err("(objectClass:objectIdentifierMatch:=device)")
                .message
                .contains("objectSubClassMatch")
        );
        // A rule for another syntax: slapd makes the item Undefined.
        for text in [
            "(cn:integerBitAndMatch:=1)",
            "(uidNumber:caseIgnoreMatch:=1)",
            "(mail:caseExactMatch:=a)",
        ] {
            assert!(
                compile_err(text).message.contains("does not apply"),
                "{text}"
            );
        }
        // INTEGER has no leading zeros and no `-0` (RFC 4517); slapd makes these Undefined.
        for text in [
            "(uidNumber=007)",
            "(gidNumber>=-0)",
            "(uidNumber:integerMatch:=01)",
        ] {
            assert!(compile_err(text).message.contains("integerMatch"), "{text}");
        }
        let e = compile_err("(cn:noSuchMatch:=a)");
        assert_eq!(e.item, "(cn:noSuchMatch:=a)");
        assert!(
            e.to_string()
                .starts_with("cannot evaluate (cn:noSuchMatch:=a): ")
        );
    }

    #[test]
    fn compiled_filters_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<CompiledFilter>();
    }

    #[test]
    fn subtypes_and_spellings_are_precomputed() {
        let name = AttributeDescription::parse("name").unwrap();
        let t = Target::attribute(&name, Schema::builtin());
        assert_eq!(t.keys[0].as_str(), "name");
        for k in ["cn", "commonname", "2.5.4.3", "2.5.4.41"] {
            assert!(
                t.keys.iter().any(|x| x.as_str() == k),
                "{k} in {:?}",
                t.keys
            );
        }
        let cn = AttributeDescription::parse("commonName;Lang-DE").unwrap();
        let t = Target::attribute(&cn, Schema::builtin());
        assert!(!t.keys.iter().any(|x| x.as_str() == "name"));
        assert_eq!(&*t.options, &["lang-de".into()] as &[Box<str>]);
    }
}
