//! LDAP search filters (RFC 4515): the AST, its parser, a canonical `Display`, and a
//! matcher compiled once against a schema.
//!
//! PLACEHOLDER: parse/display/compile are being written.

use crate::attr::AttributeDescription;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Equality(AttributeDescription, Vec<u8>),
    Approx(AttributeDescription, Vec<u8>),
    GreaterOrEqual(AttributeDescription, Vec<u8>),
    LessOrEqual(AttributeDescription, Vec<u8>),
    Present(AttributeDescription),
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

/// Why a text is not a valid filter: the byte offset and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LDAP filter at byte {offset}: {expected}")]
pub struct FilterError {
    pub filter: String,
    pub offset: usize,
    pub expected: String,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        Err(FilterError {
            filter: text.into(),
            offset: 0,
            expected: "a filter parser (not written yet)".into(),
        })
    }
}

/// Why a parsed filter cannot be evaluated (e.g. an unknown extensible matching rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot evaluate {item}: {message}")]
pub struct CompileError {
    /// The offending filter item, rendered.
    pub item: String,
    pub message: String,
}

/// A filter prepared for fast repeated evaluation against entries.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    _filter: Filter,
}

impl Filter {
    /// Resolves attributes and matching rules against `schema` and normalizes assertion
    /// values; fails for what cannot be evaluated, never guessing.
    pub fn compile(&self, _schema: &crate::schema::Schema) -> Result<CompiledFilter, CompileError> {
        Ok(CompiledFilter {
            _filter: self.clone(),
        })
    }
}
