//! Attribute descriptions (RFC 4512 §2.5): a type (name or numeric OID) plus options.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::schema::Schema;

/// Why a text is not an attribute description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid attribute description {text:?} at byte {offset}: {message}")]
pub struct AttributeError {
    pub text: String,
    pub offset: usize,
    pub message: &'static str,
}

/// An attribute description such as `cn`, `commonName`, `2.5.4.3` or `cn;lang-de`.
///
/// It keeps the spelling it was given (for `Display`) and compares by a canonical key:
/// the type resolved through the built-in schema to its primary lower-case name (so
/// `commonName`, `CN` and `2.5.4.3` are one attribute) and the options lower-cased and
/// sorted (they are unordered).
///
/// Cloning one is cheap (its strings are shared).
#[derive(Clone)]
pub struct AttributeDescription {
    text: Arc<str>,
    key: Arc<str>,
    type_len: usize,
}

/// Descriptions remembered per thread, at most: entries repeat the same few dozen, and
/// one remembered costs two reference counts to parse again instead of three allocations
/// and a schema lookup. A bound, since the names come from the network.
const REMEMBERED: usize = 1024;

thread_local! {
    /// The descriptions this thread parsed, by spelling.
    static PARSED: RefCell<HashMap<Box<str>, AttributeDescription>> = RefCell::new(HashMap::new());
}

impl AttributeDescription {
    /// Parses an attribute description; the error names the offending byte.
    pub fn parse(text: &str) -> Result<Self, AttributeError> {
        if let Some(parsed) = PARSED.with_borrow(|parsed| parsed.get(text).cloned()) {
            return Ok(parsed);
        }
        let parsed = Self::parse_new(text)?;
        PARSED.with_borrow_mut(|remembered| {
            if remembered.len() < REMEMBERED {
                remembered.insert(text.into(), parsed.clone());
            }
        });
        Ok(parsed)
    }

    fn parse_new(text: &str) -> Result<Self, AttributeError> {
        let type_len = scan(text)?;
        let schema = Schema::builtin();
        let type_text = &text[..type_len];
        let mut key = match schema.attribute(type_text) {
            Some(at) => at.primary_name().to_ascii_lowercase(),
            None => type_text.to_ascii_lowercase(),
        };
        let key_type_len = key.len();
        if type_len < text.len() {
            let mut options: Vec<String> = text[type_len + 1..]
                .split(';')
                .map(str::to_ascii_lowercase)
                .collect();
            options.sort();
            options.dedup();
            for option in options {
                key.push(';');
                key.push_str(&option);
            }
        }
        Ok(AttributeDescription {
            text: text.into(),
            key: key.into(),
            type_len: key_type_len,
        })
    }

    /// The description as it was spelled.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical comparison key, e.g. `cn;lang-de` for `commonName;Lang-DE`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The canonical key of the type alone, without options (e.g. `cn`).
    pub fn type_key(&self) -> &str {
        &self.key[..self.type_len]
    }

    /// Whether the description carries options (`cn;lang-de`).
    pub fn has_options(&self) -> bool {
        self.type_len < self.key.len()
    }
}

/// Checks the RFC 4512 grammar and returns the length of the attribute type.
fn scan(text: &str) -> Result<usize, AttributeError> {
    let err = |offset: usize, message: &'static str| AttributeError {
        text: text.to_owned(),
        offset,
        message,
    };
    let bytes = text.as_bytes();
    let Some(&first) = bytes.first() else {
        return Err(err(0, "it is empty"));
    };
    let mut i = 0;
    if first.is_ascii_digit() {
        // numericoid = number 1*( "." number ), number without leading zeros
        let mut arcs = 0;
        loop {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(err(i, "expected a digit in the numeric OID"));
            }
            if bytes[start] == b'0' && i - start > 1 {
                return Err(err(start, "a numeric OID arc must not have a leading zero"));
            }
            arcs += 1;
            if i < bytes.len() && bytes[i] == b'.' {
                i += 1;
                continue;
            }
            break;
        }
        if arcs < 2 {
            return Err(err(
                i,
                "a numeric OID needs at least two arcs (like 2.5.4.3)",
            ));
        }
    } else if first.is_ascii_alphabetic() {
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
    } else {
        return Err(err(0, "an attribute type starts with a letter or a digit"));
    }
    let type_len = i;
    while i < bytes.len() {
        if bytes[i] != b';' {
            return Err(err(
                i,
                "expected letters, digits, '-' or ';' followed by an option",
            ));
        }
        i += 1;
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
            i += 1;
        }
        if i == start {
            return Err(err(i, "an option after ';' must not be empty"));
        }
    }
    Ok(type_len)
}

impl PartialEq for AttributeDescription {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.key, &other.key) || self.key == other.key
    }
}

impl Eq for AttributeDescription {}

impl Hash for AttributeDescription {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for AttributeDescription {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AttributeDescription {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl fmt::Display for AttributeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for AttributeDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

impl std::str::FromStr for AttributeDescription {
    type Err = AttributeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttributeDescription::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_oids_and_options() {
        for ok in [
            "cn",
            "objectClass",
            "x-custom-1",
            "2.5.4.3",
            "cn;lang-de",
            "cn;binary;x",
        ] {
            AttributeDescription::parse(ok).unwrap();
        }
    }

    #[test]
    fn rejects_with_offset() {
        for (bad, offset) in [
            ("", 0),
            ("1cn", 1),
            ("-cn", 0),
            ("cn;", 3),
            ("c n", 1),
            ("01.2", 0),
            ("2", 1),
            ("cn;a;", 5),
            ("uid_x", 3),
        ] {
            let e = AttributeDescription::parse(bad).unwrap_err();
            assert_eq!(e.offset, offset, "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_description_parsed_again_keeps_its_own_spelling() {
        for _ in 0..2 {
            let long = AttributeDescription::parse("commonName").unwrap();
            let short = AttributeDescription::parse("CN").unwrap();
            assert_eq!(long.to_string(), "commonName");
            assert_eq!(short.to_string(), "CN");
            assert_eq!(long, short);
            assert_eq!(long.key(), "cn");
            AttributeDescription::parse("c n").unwrap_err();
        }
    }

    #[test]
    fn compares_case_insensitively_with_unordered_options() {
        let a = AttributeDescription::parse("CN;Lang-DE;x-b").unwrap();
        let b = AttributeDescription::parse("cn;x-b;lang-de").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "CN;Lang-DE;x-b");
        assert_eq!(a.type_key(), "cn");
        assert!(a.has_options());
        assert_ne!(a, AttributeDescription::parse("cn").unwrap());
    }
}
