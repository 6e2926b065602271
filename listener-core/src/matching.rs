//! Matching rules (RFC 4517): how values of an attribute are compared.
//!
//! Each rule defines a normal form: two values are equal under the rule exactly when their
//! normal forms are equal. Ordering and substring assertions work on normal forms too, so
//! a filter's assertion values are normalized once, at compile time.

use std::borrow::Cow;
use std::cmp::Ordering;

/// A matching rule family (equality, and where defined ordering and substrings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchingRule {
    /// caseIgnoreMatch / caseIgnoreOrderingMatch / caseIgnoreSubstringsMatch.
    CaseIgnore,
    /// caseExactMatch / caseExactOrderingMatch / caseExactSubstringsMatch.
    CaseExact,
    /// caseIgnoreIA5Match / caseIgnoreIA5SubstringsMatch.
    CaseIgnoreIa5,
    /// caseExactIA5Match / caseExactIA5SubstringsMatch.
    CaseExactIa5,
    /// caseIgnoreListMatch / caseIgnoreListSubstringsMatch (postal addresses).
    CaseIgnoreList,
    /// integerMatch / integerOrderingMatch.
    Integer,
    /// numericStringMatch / numericStringOrderingMatch / numericStringSubstringsMatch.
    NumericString,
    /// telephoneNumberMatch / telephoneNumberSubstringsMatch.
    TelephoneNumber,
    /// generalizedTimeMatch / generalizedTimeOrderingMatch.
    GeneralizedTime,
    /// octetStringMatch / octetStringOrderingMatch / octetStringSubstringsMatch.
    OctetString,
    /// distinguishedNameMatch.
    DistinguishedName,
    /// uniqueMemberMatch.
    UniqueMember,
    /// objectIdentifierMatch.
    ObjectIdentifier,
    /// booleanMatch.
    Boolean,
    /// UUIDMatch / UUIDOrderingMatch (entryUUID).
    Uuid,
    /// CSNMatch / CSNOrderingMatch (entryCSN, contextCSN).
    Csn,
    /// integerBitAndMatch (1.2.840.113556.1.4.803), extensible match only.
    IntegerBitAnd,
    /// integerBitOrMatch (1.2.840.113556.1.4.804), extensible match only.
    IntegerBitOr,
}

impl MatchingRule {
    /// Looks a rule up by any of its names (`caseIgnoreMatch`, `caseIgnoreOrderingMatch`,
    /// `caseIgnoreSubstringsMatch`, case-insensitively) or OIDs.
    pub fn from_name(name_or_oid: &str) -> Option<MatchingRule> {
        let lower = name_or_oid.to_ascii_lowercase();
        Some(match lower.as_str() {
            "caseignorematch" | "2.5.13.2" => MatchingRule::CaseIgnore,
            "caseexactmatch" | "2.5.13.5" => MatchingRule::CaseExact,
            "octetstringmatch" | "2.5.13.17" => MatchingRule::OctetString,
            "integermatch" | "2.5.13.14" => MatchingRule::Integer,
            _ => return None,
        })
    }

    /// Normalizes a value; `None` when the value is not valid for the rule's syntax (the
    /// assertion is then Undefined).
    pub fn normalize(self, value: &[u8]) -> Option<Cow<'_, [u8]>> {
        match self {
            MatchingRule::CaseIgnore => Some(Cow::Owned(value.to_ascii_lowercase())),
            _ => Some(Cow::Borrowed(value)),
        }
    }

    /// Orders two normalized values (`>=`, `<=`).
    pub fn compare_normalized(self, a: &[u8], b: &[u8]) -> Ordering {
        a.cmp(b)
    }

    /// Normalizes one piece of a substrings assertion (no trimming: a piece's inner
    /// spaces matter at its ends).
    pub fn normalize_substring(self, piece: &[u8]) -> Option<Cow<'_, [u8]>> {
        self.normalize(piece)
    }

    /// Whether a normalized value matches a substrings assertion whose pieces were
    /// normalized with [`MatchingRule::normalize_substring`].
    pub fn substrings_match(
        self,
        value: &[u8],
        initial: Option<&[u8]>,
        any: &[Vec<u8>],
        final_: Option<&[u8]>,
    ) -> bool {
        let mut rest = value;
        if let Some(init) = initial {
            let Some(r) = rest.strip_prefix(init) else {
                return false;
            };
            rest = r;
        }
        if let Some(fin) = final_ {
            let Some(r) = rest.strip_suffix(fin) else {
                return false;
            };
            rest = r;
        }
        for piece in any {
            match rest.windows(piece.len().max(1)).position(|w| w == piece.as_slice()) {
                Some(pos) => rest = &rest[pos + piece.len()..],
                None => return false,
            }
        }
        true
    }
}
