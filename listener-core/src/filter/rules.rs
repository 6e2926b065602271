//! Matching-rule facts the filter needs beyond [`MatchingRule`]: which member of a rule
//! family an extensible match names (equality, ordering or substrings), and the bitwise
//! integer rules.
//!
//! (Private helpers until `matching.rs` offers them; see the report on the filter issue.)

use crate::matching::MatchingRule;
use crate::schema::Rules;

/// The matching rule named in an extensible match, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExtensibleRule {
    /// TRUE when the value equals the assertion under the rule.
    Equality(MatchingRule),
    /// TRUE when the value is less than the assertion (RFC 4517 ordering rules).
    Ordering(MatchingRule),
    /// A substrings rule: its assertion syntax has no string form in a filter value.
    Substrings(MatchingRule),
    /// integerBitAndMatch: every bit of the assertion is set in the value.
    BitAnd,
    /// integerBitOrMatch: some bit of the assertion is set in the value.
    BitOr,
}

impl ExtensibleRule {
    /// The rule family (the bitwise rules belong to integerMatch's).
    pub(super) fn family(self) -> MatchingRule {
        match self {
            ExtensibleRule::BitAnd | ExtensibleRule::BitOr => MatchingRule::Integer,
            ExtensibleRule::Equality(r)
            | ExtensibleRule::Ordering(r)
            | ExtensibleRule::Substrings(r) => r,
        }
    }

    /// Whether the rule applies to an attribute type with these rules (RFC 4511
    /// §4.5.1.7.7: a rule is compared against the attributes that support it).
    ///
    /// slapd decides by syntax (`mr_usable_with_at`): caseExactMatch applies to every
    /// directoryString attribute, not only to those whose EQUALITY it is. The table has
    /// no syntaxes, so the syntax is read off the attribute's rules: the caseIgnore and
    /// caseExact families share directoryString, their IA5 forms IA5String, and every
    /// other family has a syntax of its own.
    pub(super) fn applies_to(self, rules: &Rules) -> bool {
        let own = rules.equality.or(rules.ordering).or(rules.substr);
        let wanted = syntax_of(self.family());
        own.is_some_and(|r| {
            let syntax = syntax_of(r);
            // slapd lists telephoneNumber among the syntaxes compatible with the
            // directoryString rules (`directoryStringSyntaxes` in schema_init.c).
            syntax == wanted
                || (wanted == MatchingRule::CaseIgnore && syntax == MatchingRule::TelephoneNumber)
        })
    }
}

/// A stand-in for the assertion syntax of a rule family (see
/// [`ExtensibleRule::applies_to`]).
fn syntax_of(rule: MatchingRule) -> MatchingRule {
    match rule {
        MatchingRule::CaseExact => MatchingRule::CaseIgnore,
        MatchingRule::CaseExactIa5 => MatchingRule::CaseIgnoreIa5,
        MatchingRule::IntegerBitAnd | MatchingRule::IntegerBitOr => MatchingRule::Integer,
        r => r,
    }
}

/// Ordering rules by OID (by name they end in `OrderingMatch`).
const ORDERING_OIDS: &[&str] = &[
    "2.5.13.3",                    // caseIgnoreOrderingMatch
    "2.5.13.6",                    // caseExactOrderingMatch
    "2.5.13.9",                    // numericStringOrderingMatch
    "2.5.13.15",                   // integerOrderingMatch
    "2.5.13.18",                   // octetStringOrderingMatch
    "2.5.13.28",                   // generalizedTimeOrderingMatch
    "1.3.6.1.1.16.3",              // UUIDOrderingMatch
    "1.3.6.1.4.1.4203.666.11.2.3", // CSNOrderingMatch
];

/// Substrings rules by OID (by name they end in `SubstringsMatch`).
const SUBSTRINGS_OIDS: &[&str] = &[
    "2.5.13.4",                   // caseIgnoreSubstringsMatch
    "2.5.13.7",                   // caseExactSubstringsMatch
    "2.5.13.10",                  // numericStringSubstringsMatch
    "2.5.13.12",                  // caseIgnoreListSubstringsMatch
    "2.5.13.21",                  // telephoneNumberSubstringsMatch
    "1.3.6.1.4.1.1466.109.114.3", // caseIgnoreIA5SubstringsMatch
    "1.3.6.1.4.1.4203.1.2.1",     // caseExactIA5SubstringsMatch
];

/// Resolves a rule named in an extensible match; `None` when the rule is unknown.
pub(super) fn resolve(name: &str) -> Option<ExtensibleRule> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "integerbitandmatch" | "1.2.840.113556.1.4.803" => return Some(ExtensibleRule::BitAnd),
        "integerbitormatch" | "1.2.840.113556.1.4.804" => return Some(ExtensibleRule::BitOr),
        _ => {}
    }
    let family = MatchingRule::from_name(name)?;
    Some(
        if lower.ends_with("orderingmatch") || ORDERING_OIDS.contains(&lower.as_str()) {
            ExtensibleRule::Ordering(family)
        } else if lower.ends_with("substringsmatch") || SUBSTRINGS_OIDS.contains(&lower.as_str()) {
            ExtensibleRule::Substrings(family)
        } else {
            ExtensibleRule::Equality(family)
        },
    )
}

/// A rule family's name for messages (`caseIgnoreIA5Match`, `UUIDMatch`).
pub(super) fn name(rule: MatchingRule) -> String {
    rule.name().to_owned()
}

/// Parses an INTEGER value (RFC 4517 §3.3.16: `0` or an optional `-` and digits without
/// leading zeros) without allocating; `None` when invalid or out of range.
pub(super) fn parse_integer(value: &[u8]) -> Option<i64> {
    let (negative, digits) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, value),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        // Accumulate negatively so that i64::MIN parses.
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative { Some(n) } else { n.checked_neg() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"-12"), Some(-12));
        assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"01",
            b"1a",
            b" 1",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_for_messages() {
        assert_eq!(name(MatchingRule::CaseIgnore), "caseIgnoreMatch");
        assert_eq!(name(MatchingRule::Integer), "integerMatch");
        assert_eq!(name(MatchingRule::CaseIgnoreIa5), "caseIgnoreIA5Match");
    }

    #[test]
    fn rules_apply_by_syntax() {
        let rules = |equality| Rules {
            equality: Some(equality),
            ordering: None,
            substr: None,
        };
        let exact = resolve("caseExactMatch").unwrap();
        // Found by tests/tests/matcher_agrees_with_slapd.rs: slapd applies
        // caseExactMatch to every directoryString attribute (cn), not only labeledURI.
        assert!(exact.applies_to(&rules(MatchingRule::CaseIgnore)));
        assert!(exact.applies_to(&rules(MatchingRule::CaseExact)));
        assert!(!exact.applies_to(&rules(MatchingRule::CaseIgnoreIa5)));
        assert!(!exact.applies_to(&rules(MatchingRule::Integer)));
        assert!(exact.applies_to(&rules(MatchingRule::TelephoneNumber)));
        let phone = resolve("telephoneNumberMatch").unwrap();
        assert!(!phone.applies_to(&rules(MatchingRule::CaseIgnore)));
        let ia5 = resolve("caseIgnoreIA5Match").unwrap();
        assert!(ia5.applies_to(&rules(MatchingRule::CaseExactIa5)));
        assert!(!ia5.applies_to(&rules(MatchingRule::CaseIgnore)));
        let bits = resolve("integerBitAndMatch").unwrap();
        assert!(bits.applies_to(&rules(MatchingRule::Integer)));
        assert!(!bits.applies_to(&rules(MatchingRule::CaseIgnore)));
        assert!(!bits.applies_to(&Rules {
            equality: None,
            ordering: None,
            substr: None
        }));
    }

    #[test]
    fn bit_rules_and_kinds() {
        assert_eq!(resolve("integerBitAndMatch"), Some(ExtensibleRule::BitAnd));
        assert_eq!(
            resolve("1.2.840.113556.1.4.804"),
            Some(ExtensibleRule::BitOr)
        );
        assert_eq!(
            resolve("caseExactMatch"),
            Some(ExtensibleRule::Equality(MatchingRule::CaseExact))
        );
        assert_eq!(resolve("noSuchMatch"), None);
    }
}
