//! LDAP search filters (RFC 4515): the AST, its parser, a canonical `Display`, and a
//! matcher compiled once against a schema.
//!
//! ```
//! use listener_core::{Dn, Entry, Filter, Schema};
//!
//! let filter = Filter::parse("(&(objectClass=inetOrgPerson)(uid=example))").unwrap();
//! let compiled = filter.compile(Schema::builtin()).unwrap();
//! let mut entry = Entry::new(Dn::parse("uid=example,dc=example,dc=com").unwrap());
//! entry.insert("objectClass", ["top", "inetOrgPerson"]).unwrap();
//! entry.insert("uid", ["example"]).unwrap();
//! assert!(compiled.matches(&entry));
//! ```
//!
//! Grammar decisions (see `parse.rs` for the grammar):
//! * `(&)` and `(|)` (RFC 4526 absolute true and false) are accepted, as OpenLDAP does, and
//!   evaluate to TRUE and FALSE.
//! * The filter must be parenthesized: `uid=alice` is rejected.
//! * No whitespace is allowed between tokens (RFC 4515 has none).
//! * `:dn` is matched case-insensitively (ABNF literals are case-insensitive); a rule name
//!   that merely starts with `dn` (`dnQualifierMatch`) is a rule name.
//! * Numeric OIDs need two arcs (RFC 4512 `numericoid`): `(2=x)` is rejected.
//! * Nesting is limited to [`MAX_DEPTH`] levels so that no input can exhaust the stack.
//! * The text is a `str`, so unescaped value characters are UTF-8; escaped values
//!   (`\ff`) may be any bytes.
//!
//! Where `ldap3::parse_filter` decides differently (checked by `tests/filter_vs_ldap3.rs`):
//! it accepts a bare item (`uid=a`), one-arc OIDs (`(2=x)`) and nesting of any depth; it
//! rejects rules starting with `dn` (`(cn:dnQualifierMatch:=x)`) and `:DN` in upper case
//! before a rule (`(:DN:caseExactMatch:=x)`).
//!
//! Matching decisions (see `compile.rs` and `eval.rs`):
//! * `~=` is equality (no phonetic matching).
//! * Equality on objectClass and structuralObjectClass matches subclasses, as slapd's
//!   objectSubClassMatch does (RFC 4512 §2.4.1): `(objectClass=person)` matches an entry
//!   listing only `inetOrgPerson`, `(objectClass=top)` every entry with a class. A rule
//!   named in an extensible match on them is rejected (slapd evaluates it as Undefined).
//! * A filter attribute without options sees the values of that type with any options; with
//!   options, only values carrying at least those options. A supertype sees its subtypes
//!   (`(name=x)` reads `cn` and `sn`). Assertions use the filter attribute's rules.
//! * An extensible match applies its rule to attributes of the rule's syntax, as slapd does:
//!   `(:caseExactMatch:=x)` reads every directoryString attribute (and attributes unknown
//!   to the schema, caseIgnore by default), `(cn:integerBitAndMatch:=1)` is rejected. An
//!   ordering rule there means "value less than assertion"; substrings rules are rejected;
//!   integerBitAndMatch and integerBitOrMatch are supported.
//! * What cannot be evaluated is a [`CompileError`], never a guess: a missing rule of the
//!   needed kind, an assertion value invalid for the rule, an unknown rule, an extensible
//!   match that fits no attribute type.

mod compile;
mod display;
mod error;
mod eval;
mod fast;
mod parse;
mod rules;

use crate::attr::AttributeDescription;

pub use compile::CompiledFilter;
pub use error::{CompileError, FilterError};
pub use eval::Truth;

/// The deepest nesting of `&`, `|` and `!` the parser accepts.
pub const MAX_DEPTH: usize = 100;

/// A parsed filter. Assertion values are bytes, with `\XX` escapes resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `(&…)`; empty is absolute TRUE (RFC 4526).
    And(Vec<Filter>),
    /// `(|…)`; empty is absolute FALSE (RFC 4526).
    Or(Vec<Filter>),
    /// `(!…)`.
    Not(Box<Filter>),
    /// `(attr=value)`.
    Equality(AttributeDescription, Vec<u8>),
    /// `(attr~=value)`; evaluated as equality (we have no phonetic matching).
    Approx(AttributeDescription, Vec<u8>),
    /// `(attr>=value)`.
    GreaterOrEqual(AttributeDescription, Vec<u8>),
    /// `(attr<=value)`.
    LessOrEqual(AttributeDescription, Vec<u8>),
    /// `(attr=*)`.
    Present(AttributeDescription),
    /// `(attr=initial*any*…*final)`; every piece present is non-empty and at least one
    /// piece is present (`(attr=*)` is [`Filter::Present`]).
    Substrings {
        attr: AttributeDescription,
        initial: Option<Vec<u8>>,
        any: Vec<Vec<u8>>,
        final_: Option<Vec<u8>>,
    },
    /// `attr:dn:rule:=value`; at least one of `attr` and `rule` is present.
    Extensible {
        attr: Option<AttributeDescription>,
        dn_attributes: bool,
        rule: Option<String>,
        value: Vec<u8>,
    },
}

impl Filter {
    /// Parses an RFC 4515 filter; the error names the byte offset and what was expected.
    ///
    /// ```
    /// use listener_core::Filter;
    /// let f = Filter::parse("(cn=A\\2a*b)").unwrap();
    /// assert_eq!(f.to_string(), "(cn=A\\2a*b)");
    /// let e = Filter::parse("(&(uid=a)").unwrap_err();
    /// assert_eq!(e.offset, 9);
    /// ```
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        parse::parse(text)
    }

    /// Resolves attributes and matching rules against `schema` and normalizes assertion
    /// values; fails for what cannot be evaluated, never guessing.
    ///
    /// ```
    /// use listener_core::{Filter, Schema};
    /// let err = Filter::parse("(cn:noSuchMatch:=x)").unwrap().compile(Schema::builtin());
    /// assert!(err.is_err());
    /// ```
    pub fn compile(&self, schema: &crate::schema::Schema) -> Result<CompiledFilter, CompileError> {
        compile::compile(self, schema)
    }
}
