//! Evaluating a compiled filter against an entry with RFC 4511 three-valued logic.
//!
//! The hot path allocates nothing: assertion values were normalized at compile time,
//! entry attributes are recognized by comparing their canonical keys with precomputed
//! ones, and entry values are normalized on the stack where the rule allows (`fast.rs`).

use std::cmp::Ordering;
use std::collections::HashSet;

use super::compile::CompiledFilter;
use super::fast::Fast;
use super::rules;
use crate::attr::AttributeDescription;
use crate::entry::Entry;
use crate::matching::MatchingRule;

/// The result of evaluating a filter (RFC 4511 §4.5.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Truth {
    True,
    False,
    /// The filter could not be decided, e.g. a value is invalid for the matching rule.
    /// An entry matches only on [`Truth::True`], so Undefined acts like FALSE except
    /// under `!`, which keeps it Undefined.
    Undefined,
}

impl Truth {
    fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Undefined => Truth::Undefined,
        }
    }
}

impl CompiledFilter {
    /// Whether the entry matches (the filter evaluates to TRUE).
    pub fn matches(&self, entry: &Entry) -> bool {
        self.evaluate(entry) == Truth::True
    }

    /// The three-valued result of the filter on `entry`.
    ///
    /// ```
    /// use listener_core::filter::Truth;
    /// use listener_core::{Dn, Entry, Filter, Schema};
    ///
    /// let mut entry = Entry::new(Dn::parse("cn=x,dc=example").unwrap());
    /// entry.insert("uidNumber", ["not a number"]).unwrap();
    /// let bits = Filter::parse("(uidNumber:integerBitAndMatch:=4)").unwrap();
    /// let bits = bits.compile(Schema::builtin()).unwrap();
    /// // The value is no INTEGER: Undefined, and so is its negation.
    /// assert_eq!(bits.evaluate(&entry), Truth::Undefined);
    /// let not = Filter::parse("(!(uidNumber:integerBitAndMatch:=4))").unwrap();
    /// assert!(!not.compile(Schema::builtin()).unwrap().matches(&entry));
    /// ```
    pub fn evaluate(&self, entry: &Entry) -> Truth {
        self.root.eval(entry)
    }
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Const(Truth),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Item(Box<Item>),
}

#[derive(Debug, Clone)]
pub(super) struct Item {
    target: Target,
    test: Test,
    /// `:dn`: also test the AVAs of the entry's DN.
    dn_attributes: bool,
}

/// Which attributes of an entry an item reads.
#[derive(Debug, Clone)]
pub(super) struct Target {
    /// Lower-cased type keys (names and OIDs) of the attribute and its subtypes.
    pub(super) keys: Box<[Key]>,
    /// The first bytes of `keys` as a bit set: most entry attributes are ruled out by one
    /// bit test.
    first_bytes: [u64; 4],
    /// When set, also every attribute type not in this set of known keys.
    pub(super) unknown: Option<HashSet<Box<str>>>,
    /// Lower-cased options the entry attribute must carry (it may carry more).
    pub(super) options: Box<[Box<str>]>,
}

/// A lower-cased type key (a name or an OID).
#[derive(Debug, Clone)]
pub(super) struct Key(Box<str>);

impl Key {
    #[cfg(test)]
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }

    /// The length of the type in an entry attribute's canonical `key` (type, then
    /// `;option`s), when the type is this key.
    #[inline]
    fn type_len_in(&self, key: &[u8]) -> Option<usize> {
        let own = self.0.as_bytes();
        let n = own.len();
        // Cheap tests first: most mismatches end before comparing the bytes.
        let fits = key.len() >= n
            && key.first() == own.first()
            && (key.len() == n || key[n] == b';')
            && &key[..n] == own;
        fits.then_some(n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    GreaterOrEqual,
    LessOrEqual,
    /// An extensible match with an ordering rule: the value is less than the assertion.
    Less,
}

/// What an item asks of each value; assertion values are normalized.
#[derive(Debug, Clone)]
pub(super) enum Test {
    Present,
    Equality {
        rule: MatchingRule,
        fast: Fast,
        value: Box<[u8]>,
    },
    Ordering {
        rule: MatchingRule,
        fast: Fast,
        value: Box<[u8]>,
        op: Op,
    },
    Substrings {
        rule: MatchingRule,
        fast: Fast,
        initial: Option<Box<[u8]>>,
        any: Vec<Vec<u8>>,
        final_: Option<Box<[u8]>>,
    },
    /// objectIdentifierMatch equality (`objectClass=inetOrgPerson`): a name-shaped value
    /// equals the assertion exactly when its lower-case form is one of `names` (every
    /// name that normalizes to the assertion's OID), so the usual values are decided
    /// without the name → OID lookup `normalize` makes per value.
    OidEquality {
        /// The assertion's normal form.
        value: Box<[u8]>,
        /// Lower-case names normalizing to `value`; for objectClass also the names and
        /// OIDs of its subclasses.
        names: Box<[Box<[u8]>]>,
    },
    /// integerBitAndMatch (`all`) and integerBitOrMatch.
    Bits {
        mask: i64,
        all: bool,
    },
}

impl Node {
    pub(super) fn item(target: Target, test: Test, dn_attributes: bool) -> Node {
        Node::Item(Box::new(Item {
            target,
            test,
            dn_attributes,
        }))
    }

    fn eval(&self, entry: &Entry) -> Truth {
        match self {
            Node::Const(t) => *t,
            Node::And(items) => {
                let mut result = Truth::True;
                for item in items.iter() {
                    match item.eval(entry) {
                        Truth::False => return Truth::False,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::True => {}
                    }
                }
                result
            }
            Node::Or(items) => {
                let mut result = Truth::False;
                for item in items.iter() {
                    match item.eval(entry) {
                        Truth::True => return Truth::True,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::False => {}
                    }
                }
                result
            }
            Node::Not(inner) => inner.eval(entry).not(),
            Node::Item(item) => item.eval(entry),
        }
    }
}

impl Item {
    fn eval(&self, entry: &Entry) -> Truth {
        // TRUE if any value matches; else Undefined if any value was undecidable.
        let mut result = Truth::False;
        for attr in entry.attributes() {
            if !self.target.covers(&attr.desc) {
                continue;
            }
            if let Test::Present = self.test {
                return Truth::True;
            }
            for value in &attr.values {
                match self.test.eval(value) {
                    Truth::True => return Truth::True,
                    Truth::Undefined => result = Truth::Undefined,
                    Truth::False => {}
                }
            }
        }
        if self.dn_attributes {
            for rdn in entry.dn().rdns() {
                for ava in rdn.avas() {
                    if !self.target.covers_type(ava.attr()) {
                        continue;
                    }
                    match self.test.eval(ava.value()) {
                        Truth::True => return Truth::True,
                        Truth::Undefined => result = Truth::Undefined,
                        Truth::False => {}
                    }
                }
            }
        }
        result
    }
}

impl Target {
    pub(super) fn new(
        keys: Vec<Box<str>>,
        unknown: Option<HashSet<Box<str>>>,
        options: Box<[Box<str>]>,
    ) -> Target {
        let mut first_bytes = [0u64; 4];
        for b in keys.iter().filter_map(|k| k.as_bytes().first()) {
            first_bytes[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        Target {
            keys: keys.into_iter().map(Key).collect(),
            first_bytes,
            unknown,
            options,
        }
    }

    #[inline]
    fn covers(&self, desc: &AttributeDescription) -> bool {
        let key = desc.key().as_bytes();
        let Some(&first) = key.first() else {
            return false;
        };
        let type_len = if self.first_bytes[usize::from(first >> 6)] & (1 << (first & 63)) != 0 {
            self.keys.iter().find_map(|k| k.type_len_in(key))
        } else {
            None
        };
        let type_len = match type_len {
            Some(n) => n,
            // A type the schema does not know counts where the target takes unknown types.
            None if self
                .unknown
                .as_ref()
                .is_some_and(|known| !known.contains(desc.type_key())) =>
            {
                desc.type_key().len()
            }
            None => return false,
        };
        if self.options.is_empty() {
            return true;
        }
        let options = &desc.key()[type_len..];
        self.options
            .iter()
            .all(|wanted| options.split(';').any(|o| o == wanted.as_ref()))
    }

    /// For a DN's AVA: its type as spelled (RDN types carry no options).
    fn covers_type(&self, spelled: &str) -> bool {
        if !self.options.is_empty() {
            return false;
        }
        if self.keys.iter().any(|k| k.0.eq_ignore_ascii_case(spelled)) {
            return true;
        }
        match &self.unknown {
            // Rare (`:dn` without an attribute): allocating here is acceptable.
            Some(known) => !known.contains(spelled.to_ascii_lowercase().as_str()),
            None => false,
        }
    }
}

impl Test {
    #[inline]
    fn eval(&self, value: &[u8]) -> Truth {
        let decided = match self {
            Test::Present => Some(true),
            Test::Equality {
                rule,
                fast,
                value: assertion,
            } => match fast.equals(value, assertion) {
                Some(equal) => Some(equal),
                None => rule.normalize(value).map(|n| *n == **assertion),
            },
            Test::Ordering {
                rule,
                fast,
                value: assertion,
                op,
            } => fast.with_normalized(*rule, value, |n| {
                let order = rule.compare_normalized(n, assertion);
                match op {
                    Op::GreaterOrEqual => order != Ordering::Less,
                    Op::LessOrEqual => order != Ordering::Greater,
                    Op::Less => order == Ordering::Less,
                }
            }),
            Test::Substrings {
                rule,
                fast,
                initial,
                any,
                final_,
            } => fast.with_normalized(*rule, value, |n| {
                rule.substrings_match(n, initial.as_deref(), any, final_.as_deref())
            }),
            Test::OidEquality {
                value: assertion,
                names,
            } => {
                let descr = value.first().is_some_and(u8::is_ascii_alphabetic)
                    && value
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-');
                if descr {
                    Some(names.iter().any(|n| n.eq_ignore_ascii_case(value)))
                } else {
                    // A numeric OID: the assertion's, or one of `names` (the OIDs of
                    // subclasses, for objectClass).
                    MatchingRule::ObjectIdentifier
                        .normalize(value)
                        .map(|n| *n == **assertion || names.iter().any(|m| **m == *n))
                }
            }
            Test::Bits { mask, all } => rules::parse_integer(value).map(|v| {
                if *all {
                    v & mask == *mask
                } else {
                    v & mask != 0
                }
            }),
        };
        match decided {
            Some(true) => Truth::True,
            Some(false) => Truth::False,
            None => Truth::Undefined,
        }
    }
}
