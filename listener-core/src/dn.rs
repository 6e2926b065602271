//! Distinguished names (RFC 4514) with normalization for comparison (semantics §5.1).
//!
//! PLACEHOLDER: the real parser (escapes, hex strings, multi-valued RDNs, schema-aware
//! normalization, errors with offsets) replaces this naive split.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Why a text is not a DN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN {input:?} at byte {offset}: {message}")]
pub struct DnError {
    pub input: String,
    pub offset: usize,
    pub message: String,
}

/// One attribute-value assertion of an RDN (`cn=Alice`).
#[derive(Debug, Clone)]
pub struct Ava {
    attr: String,
    value: Vec<u8>,
}

impl Ava {
    /// The attribute type as spelled.
    pub fn attr(&self) -> &str {
        &self.attr
    }

    /// The unescaped value bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

/// A relative distinguished name: one or more AVAs joined by `+`.
#[derive(Debug, Clone)]
pub struct Rdn {
    avas: Vec<Ava>,
    text: String,
    norm: String,
}

impl Rdn {
    pub fn parse(text: &str) -> Result<Rdn, DnError> {
        let dn = Dn::parse(text)?;
        match dn.rdns.as_slice() {
            [rdn] => Ok(rdn.clone()),
            _ => Err(DnError {
                input: text.into(),
                offset: 0,
                message: "expected exactly one RDN".into(),
            }),
        }
    }

    pub fn avas(&self) -> &[Ava] {
        &self.avas
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn normalized(&self) -> &str {
        &self.norm
    }
}

impl PartialEq for Rdn {
    fn eq(&self, other: &Self) -> bool {
        self.norm == other.norm
    }
}
impl Eq for Rdn {}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A distinguished name, kept as spelled (`Display`) and compared by its normalized form.
#[derive(Debug, Clone)]
pub struct Dn {
    text: String,
    rdns: Vec<Rdn>,
    norm: String,
}

impl Dn {
    pub fn parse(text: &str) -> Result<Dn, DnError> {
        let mut rdns = Vec::new();
        if !text.is_empty() {
            for part in text.split(',') {
                let Some((attr, value)) = part.split_once('=') else {
                    return Err(DnError {
                        input: text.into(),
                        offset: 0,
                        message: "expected '='".into(),
                    });
                };
                let norm = format!("{}={}", attr.trim().to_lowercase(), value.trim().to_lowercase());
                rdns.push(Rdn {
                    avas: vec![Ava {
                        attr: attr.trim().into(),
                        value: value.trim().as_bytes().to_vec(),
                    }],
                    text: part.into(),
                    norm,
                });
            }
        }
        let norm = rdns.iter().map(|r| r.norm.as_str()).collect::<Vec<_>>().join(",");
        Ok(Dn {
            text: text.into(),
            rdns,
            norm,
        })
    }

    /// The empty (root) DN.
    pub fn root() -> Dn {
        Dn {
            text: String::new(),
            rdns: Vec::new(),
            norm: String::new(),
        }
    }

    /// The DN as the server (or user) spelled it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The normalized form: equal for equal DNs, usable as a key.
    pub fn normalized(&self) -> &str {
        &self.norm
    }

    /// RDNs from the leaf to the root.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// The leaf RDN; `None` for the root DN.
    pub fn rdn(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }
}

impl PartialEq for Dn {
    fn eq(&self, other: &Self) -> bool {
        self.norm == other.norm
    }
}
impl Eq for Dn {}

impl Hash for Dn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.norm.hash(state);
    }
}

impl fmt::Display for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Dn {
    type Err = DnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dn::parse(s)
    }
}
