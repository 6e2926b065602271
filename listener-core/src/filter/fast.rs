//! Allocation-free normalization of common entry values.
//!
//! `MatchingRule::normalize` returns an owned value whenever normalization changes the
//! value, and the usual mixed-case values (`inetOrgPerson`, `Alice`) do change under the
//! case-insensitive rules. For value shapes where normalization is plain ASCII
//! lower-casing we lower-case ourselves, on the stack. Whether a rule really behaves that
//! way is probed once per rule at compile time, so a rule implementation that does more
//! (say, maps object class names to OIDs) simply disables the fast path.

use crate::matching::MatchingRule;

/// Values up to this length are lower-cased in a stack buffer.
const BUFFER: usize = 256;

/// Values up to this length use a smaller buffer.
const SHORT: usize = 32;

/// A shape of values that a rule normalizes by ASCII lower-casing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fast {
    /// No fast path: always call `normalize`.
    None,
    /// Non-empty printable ASCII (caseIgnore and friends: no mapping, NFKC leaves it
    /// alone); with `spaces`, also single spaces between words, when the rule keeps those
    /// (RFC 4518 space handling only touches leading, trailing and repeated spaces).
    Printable { spaces: bool },
    /// An RFC 4512 `descr` (a letter, then letters, digits and `-`), for objectIdentifier
    /// values such as object class names.
    Descr,
}

impl Fast {
    /// The fast path for `rule`, if the rule's `normalize` agrees with it on probes.
    pub(super) fn probe(rule: MatchingRule) -> Fast {
        let agrees = |samples: &[&[u8]]| {
            samples
                .iter()
                .all(|s| rule.normalize(s).as_deref() == Some(s.to_ascii_lowercase().as_slice()))
        };
        match rule {
            // Not caseIgnoreList: `$` separates lines there, and spaces around it go.
            MatchingRule::CaseIgnore | MatchingRule::CaseIgnoreIa5
                if agrees(&[b"AbC-9.x~!Z", b"Alice", b"inetOrgPerson", b"q"]) =>
            {
                Fast::Printable {
                    spaces: agrees(&[b"Alice Liddell", b"a B c", b"X-1 y.Z"]),
                }
            }
            MatchingRule::ObjectIdentifier
                if agrees(&[b"inetOrgPerson", b"A-b9", b"univentionObject", b"top"]) =>
            {
                Fast::Descr
            }
            _ => Fast::None,
        }
    }

    /// Whether the byte at `index` keeps `value` in the shape.
    #[inline]
    fn byte_fits(self, value: &[u8], index: usize) -> bool {
        let b = value[index];
        match self {
            Fast::None => false,
            Fast::Printable { spaces } => {
                b.is_ascii_graphic()
                    || (spaces
                        && b == b' '
                        && index > 0
                        && index + 1 < value.len()
                        && value[index - 1] != b' ')
            }
            Fast::Descr if index == 0 => b.is_ascii_alphabetic(),
            Fast::Descr => b.is_ascii_alphanumeric() || b == b'-',
        }
    }

    /// Compares `value` with a normalized `assertion` by equality: `None` when the value
    /// is not in the shape (ask `normalize`).
    #[inline]
    pub(super) fn equals(self, value: &[u8], assertion: &[u8]) -> Option<bool> {
        if self == Fast::None || value.is_empty() {
            return None;
        }
        let mut equal = value.len() == assertion.len();
        for (i, &b) in value.iter().enumerate() {
            if !self.byte_fits(value, i) {
                return None;
            }
            // Once unequal, keep scanning only to confirm the shape.
            equal = equal && b.to_ascii_lowercase() == assertion[i];
        }
        Some(equal)
    }

    /// Calls `f` with the normalized value, lower-cased on the stack when the value is in
    /// the shape, else from `normalize`; `None` when the value is invalid for the rule.
    #[inline]
    pub(super) fn with_normalized<R>(
        self,
        rule: MatchingRule,
        value: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        if self != Fast::None && !value.is_empty() && value.len() <= BUFFER {
            let fits = (0..value.len()).all(|i| self.byte_fits(value, i));
            if fits {
                // Most values are short, and a small buffer is cheaper to initialize.
                return Some(if value.len() <= SHORT {
                    lowered::<SHORT, R>(value, f)
                } else {
                    lowered::<BUFFER, R>(value, f)
                });
            }
        }
        rule.normalize(value).map(|normal| f(&normal))
    }
}

/// Calls `f` with `value` ASCII-lower-cased in a stack buffer of `N >= value.len()` bytes.
#[inline]
fn lowered<const N: usize, R>(value: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buffer = [0u8; N];
    for (slot, &b) in buffer.iter_mut().zip(value) {
        *slot = b.to_ascii_lowercase();
    }
    f(&buffer[..value.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_decides_only_in_shape() {
        let f = Fast::Printable { spaces: false };
        assert_eq!(f.equals(b"Alice", b"alice"), Some(true));
        assert_eq!(f.equals(b"Alicia", b"alice"), Some(false));
        assert_eq!(f.equals(b"Al ice", b"al ice"), None);
        let f = Fast::Printable { spaces: true };
        assert_eq!(f.equals(b"Al ice", b"al ice"), Some(true));
        assert_eq!(f.equals(b"Al  ice", b"al ice"), None);
        assert_eq!(f.equals(b" Al", b"al"), None);
        assert_eq!(f.equals(b"Al ", b"al"), None);
        assert_eq!(f.equals(b"J\xc3\xbcrgen", b"j\xc3\xbcrgen"), None);
        assert_eq!(f.equals(b"", b""), None);
        assert_eq!(
            Fast::Descr.equals(b"inetOrgPerson", b"inetorgperson"),
            Some(true)
        );
        assert_eq!(Fast::Descr.equals(b"2.5.6.0", b"2.5.6.0"), None);
        assert_eq!(Fast::None.equals(b"a", b"a"), None);
    }

    #[test]
    fn with_normalized_lowercases_in_shape() {
        let r = Fast::Printable { spaces: true }.with_normalized(
            MatchingRule::CaseIgnore,
            b"AbC",
            |v| v.to_vec(),
        );
        assert_eq!(r, Some(b"abc".to_vec()));
    }
}
