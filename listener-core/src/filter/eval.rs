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
    /// When set, also every attribute type not in this set of known keys.
    pub(super) unknown: Option<HashSet<Box<str>>>,
    /// Lower-cased options the entry attribute must carry (it may carry more).
    pub(super) options: Box<[Box<str>]>,
}

/// A lower-cased type key with its first eight bytes as a number: comparing entry
/// attributes against it costs one integer comparison in the common case of a mismatch.
#[derive(Debug, Clone)]
pub(super) struct Key {
    head: u64,
    text: Box<str>,
}

impl Key {
    pub(super) fn new(text: Box<str>) -> Key {
        Key {
            head: head(text.as_bytes()),
            text,
        }
    }

    #[cfg(test)]
    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `key`, whose [`head`] is `key_head`, is this key.
    #[inline]
    fn is(&self, key: &[u8], key_head: u64) -> bool {
        self.head == key_head
            && self.text.len() == key.len()
            && (key.len() <= 8 || self.text.as_bytes()[8..] == key[8..])
    }
}

/// The first eight bytes of a key, zero-padded (keys hold no NUL).
#[inline]
fn head(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key[..n]);
    u64::from_le_bytes(bytes)
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
    #[inline]
    fn covers(&self, desc: &AttributeDescription) -> bool {
        let type_key = desc.type_key();
        let type_head = head(type_key.as_bytes());
        let known = self
            .keys
            .iter()
            .any(|k| k.is(type_key.as_bytes(), type_head));
        // A type the schema does not know counts where the target takes unknown types.
        let unknown_fits = || {
            self.unknown
                .as_ref()
                .is_some_and(|known_types| !known_types.contains(type_key))
        };
        if !known && !unknown_fits() {
            return false;
        }
        if self.options.is_empty() {
            return true;
        }
        let options = &desc.key()[type_key.len()..];
        self.options
            .iter()
            .all(|wanted| options.split(';').any(|o| o == wanted.as_ref()))
    }

    /// For a DN's AVA: its type as spelled (RDN types carry no options).
    fn covers_type(&self, spelled: &str) -> bool {
        if !self.options.is_empty() {
            return false;
        }
        if self
            .keys
            .iter()
            .any(|k| k.text.eq_ignore_ascii_case(spelled))
        {
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
