//! Matching rules (RFC 4517): how values of an attribute are compared.
//!
//! Each rule defines a normal form: two values are equal under the rule exactly when their
//! normal forms are equal. Ordering and substring assertions work on normal forms too, so
//! a filter's assertion values are normalized once, at compile time.
//!
//! String rules follow the string preparation of RFC 4518: characters mapped to nothing
//! (soft hyphen, zero-width space, controls, variation selectors) are dropped, other
//! white space becomes SPACE, caseIgnore rules fold case, the result is NFKC-normalized,
//! and insignificant spaces are removed (leading and trailing spaces trimmed, inner runs
//! collapsed to one SPACE).
//!
//! # Substrings
//!
//! Normalize each piece with [`MatchingRule::normalize_substring`] (which collapses inner
//! space runs but keeps a piece's edge spaces, since `(cn=foo *)` must not match
//! `foobar`), and the value with [`MatchingRule::normalize`]; then call
//! [`MatchingRule::substrings_match`]. It drops leading spaces of the initial piece and
//! trailing spaces of the final piece (the value has none there), and matches pieces left
//! to right without overlap (`(cn=a*a)` does not match `a`).
//!
//! # Extensible match
//!
//! [`MatchingRule::lookup`] tells which kind of rule a name or OID denotes. The bitwise
//! rules [`MatchingRule::IntegerBitAnd`] and [`MatchingRule::IntegerBitOr`] have no
//! useful normal form: evaluate them with [`MatchingRule::bitwise_match`] on the raw
//! value and assertion.

use std::borrow::Cow;
use std::cmp::Ordering;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::dn::Dn;
use crate::schema::{Schema, object_class_oid};

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

/// Which of a family's rules a name or OID denotes (see [`MatchingRule::lookup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// An equality rule (`caseIgnoreMatch`); also the bitwise rules.
    Equality,
    /// An ordering rule (`caseIgnoreOrderingMatch`).
    Ordering,
    /// A substrings rule (`caseIgnoreSubstringsMatch`).
    Substrings,
}

use MatchingRule as M;
use RuleKind::{Equality as Eq_, Ordering as Ord_, Substrings as Sub};

/// Every rule name and OID we know: RFC 4517 and OpenLDAP's additions. Names are matched
/// case-insensitively.
static RULE_NAMES: &[(&str, &str, MatchingRule, RuleKind)] = &[
    (
        "objectIdentifierMatch",
        "2.5.13.0",
        M::ObjectIdentifier,
        Eq_,
    ),
    (
        "distinguishedNameMatch",
        "2.5.13.1",
        M::DistinguishedName,
        Eq_,
    ),
    ("caseIgnoreMatch", "2.5.13.2", M::CaseIgnore, Eq_),
    ("caseIgnoreOrderingMatch", "2.5.13.3", M::CaseIgnore, Ord_),
    ("caseIgnoreSubstringsMatch", "2.5.13.4", M::CaseIgnore, Sub),
    ("caseExactMatch", "2.5.13.5", M::CaseExact, Eq_),
    ("caseExactOrderingMatch", "2.5.13.6", M::CaseExact, Ord_),
    ("caseExactSubstringsMatch", "2.5.13.7", M::CaseExact, Sub),
    ("numericStringMatch", "2.5.13.8", M::NumericString, Eq_),
    (
        "numericStringOrderingMatch",
        "2.5.13.9",
        M::NumericString,
        Ord_,
    ),
    (
        "numericStringSubstringsMatch",
        "2.5.13.10",
        M::NumericString,
        Sub,
    ),
    ("caseIgnoreListMatch", "2.5.13.11", M::CaseIgnoreList, Eq_),
    (
        "caseIgnoreListSubstringsMatch",
        "2.5.13.12",
        M::CaseIgnoreList,
        Sub,
    ),
    ("booleanMatch", "2.5.13.13", M::Boolean, Eq_),
    ("integerMatch", "2.5.13.14", M::Integer, Eq_),
    ("integerOrderingMatch", "2.5.13.15", M::Integer, Ord_),
    ("octetStringMatch", "2.5.13.17", M::OctetString, Eq_),
    (
        "octetStringOrderingMatch",
        "2.5.13.18",
        M::OctetString,
        Ord_,
    ),
    (
        "octetStringSubstringsMatch",
        "2.5.13.19",
        M::OctetString,
        Sub,
    ),
    ("telephoneNumberMatch", "2.5.13.20", M::TelephoneNumber, Eq_),
    (
        "telephoneNumberSubstringsMatch",
        "2.5.13.21",
        M::TelephoneNumber,
        Sub,
    ),
    ("uniqueMemberMatch", "2.5.13.23", M::UniqueMember, Eq_),
    ("generalizedTimeMatch", "2.5.13.27", M::GeneralizedTime, Eq_),
    (
        "generalizedTimeOrderingMatch",
        "2.5.13.28",
        M::GeneralizedTime,
        Ord_,
    ),
    (
        "caseExactIA5Match",
        "1.3.6.1.4.1.1466.109.114.1",
        M::CaseExactIa5,
        Eq_,
    ),
    (
        "caseIgnoreIA5Match",
        "1.3.6.1.4.1.1466.109.114.2",
        M::CaseIgnoreIa5,
        Eq_,
    ),
    (
        "caseIgnoreIA5SubstringsMatch",
        "1.3.6.1.4.1.1466.109.114.3",
        M::CaseIgnoreIa5,
        Sub,
    ),
    (
        "caseExactIA5SubstringsMatch",
        "1.3.6.1.4.1.4203.1.2.1",
        M::CaseExactIa5,
        Sub,
    ),
    ("UUIDMatch", "1.3.6.1.1.16.2", M::Uuid, Eq_),
    ("UUIDOrderingMatch", "1.3.6.1.1.16.3", M::Uuid, Ord_),
    ("CSNMatch", "1.3.6.1.4.1.4203.666.11.2.2", M::Csn, Eq_),
    (
        "CSNOrderingMatch",
        "1.3.6.1.4.1.4203.666.11.2.3",
        M::Csn,
        Ord_,
    ),
    (
        "integerBitAndMatch",
        "1.2.840.113556.1.4.803",
        M::IntegerBitAnd,
        Eq_,
    ),
    (
        "integerBitOrMatch",
        "1.2.840.113556.1.4.804",
        M::IntegerBitOr,
        Eq_,
    ),
];

impl MatchingRule {
    /// Looks a rule up by any of its names (`caseIgnoreMatch`, `caseIgnoreOrderingMatch`,
    /// `caseIgnoreSubstringsMatch`, case-insensitively) or OIDs.
    ///
    /// Rules of RFC 4517 we do not model (`bitStringMatch`, `wordMatch`, `keywordMatch`,
    /// the `…FirstComponentMatch` rules, …) are `None`: a filter using them must be
    /// rejected, not guessed.
    pub fn from_name(name_or_oid: &str) -> Option<MatchingRule> {
        Self::lookup(name_or_oid).map(|(rule, _)| rule)
    }

    /// Like [`MatchingRule::from_name`], also telling whether the name denotes the
    /// family's equality, ordering or substrings rule.
    ///
    /// ```
    /// use listener_core::matching::{MatchingRule, RuleKind};
    /// assert_eq!(
    ///     MatchingRule::lookup("2.5.13.3"),
    ///     Some((MatchingRule::CaseIgnore, RuleKind::Ordering))
    /// );
    /// ```
    pub fn lookup(name_or_oid: &str) -> Option<(MatchingRule, RuleKind)> {
        let name_or_oid = name_or_oid.trim();
        RULE_NAMES
            .iter()
            .find(|(name, oid, _, _)| *oid == name_or_oid || name.eq_ignore_ascii_case(name_or_oid))
            .map(|&(_, _, rule, kind)| (rule, kind))
    }

    /// The name of the family's equality rule (`caseIgnoreMatch`).
    pub fn name(self) -> &'static str {
        RULE_NAMES
            .iter()
            .find(|(_, _, rule, kind)| *rule == self && *kind == RuleKind::Equality)
            .map_or("unknown", |(name, _, _, _)| name)
    }

    /// Whether the family has an ordering rule (`>=`, `<=` can be evaluated).
    pub fn has_ordering(self) -> bool {
        matches!(
            self,
            M::CaseIgnore
                | M::CaseExact
                | M::Integer
                | M::NumericString
                | M::GeneralizedTime
                | M::OctetString
                | M::Uuid
                | M::Csn
        )
    }

    /// Whether the family has a substrings rule.
    pub fn has_substrings(self) -> bool {
        matches!(
            self,
            M::CaseIgnore
                | M::CaseExact
                | M::CaseIgnoreIa5
                | M::CaseExactIa5
                | M::CaseIgnoreList
                | M::NumericString
                | M::TelephoneNumber
                | M::OctetString
        )
    }

    /// Normalizes a value; `None` when the value is not valid for the rule's syntax (the
    /// assertion is then Undefined). Values already in normal form are borrowed.
    ///
    /// ```
    /// use listener_core::MatchingRule;
    /// let n = MatchingRule::CaseIgnore.normalize("  Jürgen   MÜLLER ".as_bytes()).unwrap();
    /// assert_eq!(&*n, "jürgen müller".as_bytes());
    /// assert_eq!(&*MatchingRule::Integer.normalize(b"-7").unwrap(), b"-7");
    /// assert!(MatchingRule::Integer.normalize(b"-007").is_none());
    /// assert!(MatchingRule::Integer.normalize(b"12a").is_none());
    /// ```
    pub fn normalize(self, value: &[u8]) -> Option<Cow<'_, [u8]>> {
        match self {
            M::CaseIgnore => prep_string(value, true, true),
            M::CaseExact => prep_string(value, false, true),
            M::CaseIgnoreIa5 => prep_ia5(value, true, true),
            M::CaseExactIa5 => prep_ia5(value, false, true),
            M::CaseIgnoreList => normalize_list(value),
            M::Integer | M::IntegerBitAnd | M::IntegerBitOr => normalize_integer(value),
            M::NumericString => normalize_numeric(value),
            M::TelephoneNumber => normalize_telephone(value),
            M::GeneralizedTime => normalize_time(value).map(|t| Cow::Owned(t.into_bytes())),
            M::OctetString | M::Csn => Some(Cow::Borrowed(value)),
            M::DistinguishedName => {
                let dn = Dn::parse(std::str::from_utf8(value).ok()?).ok()?;
                Some(Cow::Owned(dn.normalized().as_bytes().to_vec()))
            }
            M::UniqueMember => normalize_unique_member(value),
            M::ObjectIdentifier => normalize_oid(value),
            M::Boolean => match value {
                b"TRUE" | b"FALSE" => Some(Cow::Borrowed(value)),
                _ => None,
            },
            M::Uuid => normalize_uuid(value),
        }
    }

    /// Orders two normalized values (`>=`, `<=`).
    pub fn compare_normalized(self, a: &[u8], b: &[u8]) -> Ordering {
        match self {
            M::Integer | M::IntegerBitAnd | M::IntegerBitOr => compare_integers(a, b),
            // The other normal forms are built so that byte order is the rule's order
            // (generalizedTime: fixed-width UTC; UUID: lower-case hex; strings: code
            // points, since UTF-8 preserves their order).
            _ => a.cmp(b),
        }
    }

    /// Normalizes one piece of a substrings assertion (no trimming: a piece's inner
    /// spaces matter at its ends). `None` when the piece cannot occur in a valid value.
    pub fn normalize_substring(self, piece: &[u8]) -> Option<Cow<'_, [u8]>> {
        match self {
            M::CaseIgnore | M::CaseIgnoreList => prep_string(piece, true, false),
            M::CaseExact => prep_string(piece, false, false),
            M::CaseIgnoreIa5 => prep_ia5(piece, true, false),
            M::CaseExactIa5 => prep_ia5(piece, false, false),
            M::NumericString => normalize_numeric(piece),
            M::TelephoneNumber => normalize_telephone(piece),
            M::OctetString => Some(Cow::Borrowed(piece)),
            _ => self.normalize(piece),
        }
    }

    /// Whether a normalized value matches a substrings assertion whose pieces were
    /// normalized with [`MatchingRule::normalize_substring`]: `initial` at the start,
    /// then each `any` piece in order, then `final_` at the end, no two overlapping.
    ///
    /// ```
    /// use listener_core::MatchingRule;
    /// let r = MatchingRule::CaseIgnore;
    /// assert!(r.substrings_match(b"abcabc", None, &[], Some(b"abc")));
    /// assert!(r.substrings_match(b"a x b y c", Some(b"a"), &[b"b".to_vec()], Some(b"c")));
    /// assert!(!r.substrings_match(b"a", Some(b"a"), &[], Some(b"a")));
    /// ```
    pub fn substrings_match(
        self,
        value: &[u8],
        initial: Option<&[u8]>,
        any: &[Vec<u8>],
        final_: Option<&[u8]>,
    ) -> bool {
        // Insignificant-space handling of RFC 4518 §2.6.1: a normalized value neither
        // starts nor ends with a space, so the initial piece's leading and the final
        // piece's trailing spaces are insignificant.
        let spaced = matches!(
            self,
            M::CaseIgnore | M::CaseExact | M::CaseIgnoreIa5 | M::CaseExactIa5 | M::CaseIgnoreList
        );
        let mut rest = value;
        if let Some(mut init) = initial {
            if spaced {
                init = trim_spaces_start(init);
            }
            let Some(r) = rest.strip_prefix(init) else {
                return false;
            };
            rest = r;
        }
        if let Some(mut fin) = final_ {
            if spaced {
                fin = trim_spaces_end(fin);
            }
            let Some(r) = rest.strip_suffix(fin) else {
                return false;
            };
            rest = r;
        }
        for piece in any {
            if piece.is_empty() {
                continue;
            }
            match find(rest, piece) {
                Some(pos) => rest = rest.get(pos + piece.len()..).unwrap_or_default(),
                None => return false,
            }
        }
        true
    }

    /// Evaluates the bitwise rules (`integerBitAndMatch`: all bits of the assertion set in
    /// the value; `integerBitOrMatch`: any of them). Both operands are integers (raw or
    /// normalized), taken as 64-bit two's complement as Active Directory does. `None` when
    /// `self` is not a bitwise rule or an operand is not an integer in range (Undefined).
    ///
    /// ```
    /// use listener_core::MatchingRule;
    /// assert_eq!(MatchingRule::IntegerBitAnd.bitwise_match(b"514", b"2"), Some(true));
    /// assert_eq!(MatchingRule::IntegerBitOr.bitwise_match(b"512", b"3"), Some(false));
    /// ```
    pub fn bitwise_match(self, value: &[u8], assertion: &[u8]) -> Option<bool> {
        let v = parse_i64(value)?;
        let a = parse_i64(assertion)?;
        match self {
            M::IntegerBitAnd => Some(v & a == a),
            M::IntegerBitOr => Some(v & a != 0),
            _ => None,
        }
    }
}

fn parse_i64(value: &[u8]) -> Option<i64> {
    let n = normalize_integer(value)?;
    let text = std::str::from_utf8(&n).ok()?;
    // Accept the full unsigned 64-bit range too (flag words are often written unsigned).
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<u64>().ok().map(|u| u as i64))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_spaces_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ').count();
    s.get(n..).unwrap_or_default()
}

fn trim_spaces_end(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&b| b == b' ').count();
    s.get(..s.len() - n).unwrap_or_default()
}

/// Whether an ASCII value is already in the normal form of the string rules: no control
/// characters, no upper case (when folding), no leading, trailing or double spaces.
fn ascii_is_normal(value: &[u8], fold: bool, trim: bool) -> bool {
    if trim && (value.first() == Some(&b' ') || value.last() == Some(&b' ')) {
        return false;
    }
    let mut prev_space = false;
    for &b in value {
        if !(0x20..0x7f).contains(&b) || (fold && b.is_ascii_uppercase()) {
            return false;
        }
        let space = b == b' ';
        if space && prev_space {
            return false;
        }
        prev_space = space;
    }
    true
}

/// RFC 4518 string preparation. `trim` is false for substring pieces, whose edge spaces
/// are significant (collapsed to one, but kept).
fn prep_string(value: &[u8], fold: bool, trim: bool) -> Option<Cow<'_, [u8]>> {
    if value.is_ascii() && ascii_is_normal(value, fold, trim) {
        return Some(Cow::Borrowed(value));
    }
    let text = std::str::from_utf8(value).ok()?;
    let mut mapped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // Mapped to nothing (RFC 4518 §2.2).
            c if is_mapped_to_nothing(c) => {}
            '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{85}' => mapped.push(' '),
            c if c.is_control() => {}
            c if c.is_whitespace() => mapped.push(' '),
            c if fold => fold_char(c, &mut mapped),
            c => mapped.push(c),
        }
    }
    let mut normalized: String = mapped.nfkc().collect();
    // NFKC can yield upper case again (U+3392 SQUARE MHZ is "MHz"); RFC 3454's table
    // B.2 folds those too, and a second fold-and-normalize does the same.
    if fold && normalized.chars().any(char::is_uppercase) {
        let mut refolded = String::with_capacity(normalized.len());
        for c in normalized.chars() {
            fold_char(c, &mut refolded);
        }
        normalized = refolded.nfkc().collect();
    }
    let folded = fold_spaces(&normalized, trim);
    // A value that starts with a combining mark is not a valid prepared string (RFC 4518
    // §2.4 prohibits it, slapd rejects it); a substring piece may well start with one.
    if trim && folded.chars().next().is_some_and(is_combining_mark) {
        return None;
    }
    Some(Cow::Owned(folded.into_bytes()))
}

/// Characters RFC 4518 §2.2 maps to nothing (besides controls).
fn is_mapped_to_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{1806}'
            | '\u{034F}'
            | '\u{180B}'..='\u{180D}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFFC}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
    )
}

/// Unicode case folding (the full folding of RFC 3454 table B.2 where it differs from
/// lower-casing for common letters).
fn fold_char(c: char, out: &mut String) {
    match c {
        'ß' | 'ẞ' => out.push_str("ss"),
        'ς' => out.push('σ'),
        c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
        c => out.extend(c.to_lowercase()),
    }
}

/// Insignificant-space handling: collapse runs of spaces to one, and trim both ends when
/// `trim` is set.
fn fold_spaces(s: &str, trim: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_space = false;
    for c in s.chars() {
        if c == ' ' {
            if !prev_space {
                out.push(' ');
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = false;
        }
    }
    if trim {
        let t = out.trim_matches(' ');
        if t.len() != out.len() {
            return t.to_owned();
        }
    }
    out
}

/// IA5 strings: ASCII only; space handling as for directory strings.
fn prep_ia5(value: &[u8], fold: bool, trim: bool) -> Option<Cow<'_, [u8]>> {
    if !value.is_ascii() {
        return None;
    }
    prep_string(value, fold, trim)
}

/// caseIgnoreList: the `$`-separated lines of a postal address, each prepared as
/// caseIgnore (escapes `\24` and `\5C` of RFC 4517 §3.3.28 are kept as written).
fn normalize_list(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    let mut out = Vec::with_capacity(value.len());
    for (i, line) in value.split(|&b| b == b'$').enumerate() {
        if i > 0 {
            out.push(b'$');
        }
        out.extend_from_slice(&prep_string(line, true, true)?);
    }
    Some(Cow::Owned(out))
}

/// integer = ( HYPHEN LDIGIT *DIGIT ) / number (RFC 4517 §3.3.16): no leading zeros, no
/// `-0`. slapd rejects those forms too, in values and in assertions (where the item is then
/// Undefined), so `(uidNumber=007)` matches nothing rather than `uidNumber: 7`.
fn normalize_integer(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    let digits = match value.split_first() {
        Some((b'-', rest)) => rest,
        _ => value,
    };
    let valid = match digits {
        [] => false,
        [b'0'] => digits.len() == value.len(),
        [first, ..] => *first != b'0' && digits.iter().all(u8::is_ascii_digit),
    };
    valid.then_some(Cow::Borrowed(value))
}

fn compare_integers(a: &[u8], b: &[u8]) -> Ordering {
    let (a_neg, a_digits) = match a.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, a),
    };
    let (b_neg, b_digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    match (a_neg, b_neg) {
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (neg, _) => {
            let magnitude = a_digits
                .len()
                .cmp(&b_digits.len())
                .then_with(|| a_digits.cmp(b_digits));
            if neg { magnitude.reverse() } else { magnitude }
        }
    }
}

/// numericString: digits and spaces; spaces are insignificant and removed.
fn normalize_numeric(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !value.iter().all(|b| b.is_ascii_digit() || *b == b' ') {
        return None;
    }
    if value.contains(&b' ') {
        Some(Cow::Owned(
            value.iter().copied().filter(|&b| b != b' ').collect(),
        ))
    } else {
        Some(Cow::Borrowed(value))
    }
}

/// telephoneNumber: a printable string; spaces and hyphens are insignificant, case is
/// ignored (RFC 4517 §4.2.29 with RFC 4518's telephoneNumber insignificant characters).
fn normalize_telephone(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    let text = std::str::from_utf8(value).ok()?;
    if text
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'-' && !b.is_ascii_uppercase())
    {
        return Some(Cow::Borrowed(value));
    }
    // NFKC first: it turns e.g. NO-BREAK SPACE into a SPACE, which is then dropped.
    let mut out = String::with_capacity(text.len());
    for c in text.nfkc() {
        match c {
            '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' | '\u{FF0D}' => {}
            c if c.is_whitespace() || c.is_control() || is_mapped_to_nothing(c) => {}
            c => fold_char(c, &mut out),
        }
    }
    if !out.is_ascii() {
        out = out.nfkc().collect();
    }
    Some(Cow::Owned(out.into_bytes()))
}

/// uniqueMember: `<DN>[#'<bits>'B]`; the DN part is normalized, the optional UID kept.
fn normalize_unique_member(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    let text = std::str::from_utf8(value).ok()?;
    let (dn, uid) = match text.rsplit_once('#') {
        Some((dn, uid)) if is_bit_string(uid) => (dn, Some(uid)),
        _ => (text, None),
    };
    let dn = Dn::parse(dn).ok()?;
    let mut out = dn.normalized().to_owned();
    if let Some(uid) = uid {
        out.push('#');
        out.push_str(uid);
    }
    Some(Cow::Owned(out.into_bytes()))
}

fn is_bit_string(s: &str) -> bool {
    s.strip_prefix('\'')
        .and_then(|s| s.strip_suffix("'B"))
        .is_some_and(|bits| bits.bytes().all(|b| b == b'0' || b == b'1'))
}

/// objectIdentifier: a numeric OID as is, a descriptor resolved to its OID where it names
/// a known object class or attribute type, else lower-cased.
fn normalize_oid(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    let text = std::str::from_utf8(value).ok()?.trim_matches(' ');
    let first = text.bytes().next()?;
    if first.is_ascii_digit() {
        let valid = text.split('.').count() >= 2
            && text.split('.').all(|arc| {
                !arc.is_empty()
                    && arc.bytes().all(|b| b.is_ascii_digit())
                    && (arc == "0" || !arc.starts_with('0'))
            });
        return valid.then_some(Cow::Borrowed(text.as_bytes()));
    }
    if !first.is_ascii_alphabetic() || !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return None;
    }
    if let Some(oid) = object_class_oid(text) {
        return Some(Cow::Borrowed(oid.as_bytes()));
    }
    if let Some(at) = Schema::builtin().attribute(text) {
        return Some(Cow::Borrowed(at.oid.as_bytes()));
    }
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(text.to_ascii_lowercase().into_bytes()))
    } else {
        Some(Cow::Borrowed(text.as_bytes()))
    }
}

/// UUID: 8-4-4-4-12 hex digits, normalized to lower case.
fn normalize_uuid(value: &[u8]) -> Option<Cow<'_, [u8]>> {
    if value.len() != 36 {
        return None;
    }
    for (i, b) in value.iter().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (*b == b'-') || (!dash && !b.is_ascii_hexdigit()) {
            return None;
        }
    }
    if value.iter().any(u8::is_ascii_uppercase) {
        Some(Cow::Owned(value.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(value))
    }
}

/// generalizedTime (RFC 4517 §3.3.13): `YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|±HH[MM])`,
/// normalized to UTC as `YYYYMMDDHHMMSS.nnnnnnnnnZ` (fixed width, so byte order is time
/// order; fractions finer than a nanosecond are dropped).
fn normalize_time(value: &[u8]) -> Option<String> {
    let mut p = Cursor { s: value, i: 0 };
    let year = p.digits(4)?;
    let month = p.digits(2)?;
    let day = p.digits(2)?;
    let hour = p.digits(2)?;
    let (mut minute, mut second) = (0, 0);
    // Seconds per unit of the last field given, for the fraction.
    let mut unit: i64 = 3600;
    if p.peek().is_some_and(|b| b.is_ascii_digit()) {
        minute = p.digits(2)?;
        unit = 60;
        if p.peek().is_some_and(|b| b.is_ascii_digit()) {
            second = p.digits(2)?;
            unit = 1;
        }
    }
    let mut frac_nanos: i64 = 0;
    if matches!(p.peek(), Some(b'.' | b',')) {
        p.i += 1;
        let start = p.i;
        while p.peek().is_some_and(|b| b.is_ascii_digit()) {
            p.i += 1;
        }
        let digits = value.get(start..p.i)?;
        if digits.is_empty() {
            return None;
        }
        // fraction * unit seconds, in nanoseconds, from at most 18 digits.
        let used = &digits[..digits.len().min(18)];
        let numerator: u128 = std::str::from_utf8(used).ok()?.parse().ok()?;
        let denominator = 10u128.pow(used.len() as u32);
        frac_nanos = (numerator * unit as u128 * 1_000_000_000 / denominator) as i64;
    }
    let offset_secs: i64 = match p.next()? {
        b'Z' => 0,
        sign @ (b'+' | b'-') => {
            let oh = p.digits(2)?;
            let om = if p.peek().is_some() { p.digits(2)? } else { 0 };
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = i64::from(oh * 3600 + om * 60);
            if sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    if p.peek().is_some() {
        return None;
    }
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let total_nanos: i128 = (i128::from(days) * 86_400
        + i128::from(hour * 3600 + minute * 60 + second)
        - i128::from(offset_secs))
        * 1_000_000_000
        + i128::from(frac_nanos);
    let secs = total_nanos.div_euclid(1_000_000_000) as i64;
    let nanos = total_nanos.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    if !(0..=9999).contains(&y) {
        return None;
    }
    let sod = secs.rem_euclid(86_400);
    Some(format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}.{nanos:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    ))
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let b = self.next()?;
            if !b.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(b - b'0');
        }
        Some(v)
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(rule: MatchingRule, v: &str) -> Option<String> {
        rule.normalize(v.as_bytes())
            .map(|n| String::from_utf8_lossy(&n).into_owned())
    }

    fn eq(rule: MatchingRule, a: &str, b: &str) -> bool {
        match (norm(rule, a), norm(rule, b)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    #[test]
    fn every_name_and_oid_resolves_and_round_trips() {
        for (name, oid, rule, kind) in RULE_NAMES {
            assert_eq!(MatchingRule::lookup(name), Some((*rule, *kind)));
            assert_eq!(
                MatchingRule::lookup(&name.to_uppercase()),
                Some((*rule, *kind))
            );
            assert_eq!(MatchingRule::lookup(oid), Some((*rule, *kind)));
            assert_eq!(MatchingRule::from_name(rule.name()), Some(*rule));
        }
        assert_eq!(MatchingRule::from_name("wordMatch"), None);
        assert_eq!(MatchingRule::from_name("2.5.13.16"), None);
        assert_eq!(MatchingRule::Uuid.name(), "UUIDMatch");
    }

    #[test]
    fn case_ignore_folds_case_unicode_and_spaces() {
        let r = MatchingRule::CaseIgnore;
        assert!(matches!(
            r.normalize(b"already normal"),
            Some(Cow::Borrowed(_))
        ));
        assert!(eq(r, "  Hello   World ", "hello world"));
        assert!(eq(r, "aÄ", "aä"));
        assert!(eq(r, "STRASSE", "straße"));
        assert!(eq(r, "ΟΔΟΣ", "οδος"));
        assert!(eq(r, "ﬁ", "FI"), "NFKC of a ligature");
        assert!(
            eq(r, "\u{3392}", "mhz"),
            "upper case produced by NFKC is folded"
        );
        assert_eq!(norm(r, "\u{301}a"), None);
        assert!(r.normalize_substring("\u{301}a".as_bytes()).is_some());
        assert!(eq(r, "e\u{301}", "É"), "composed and decomposed");
        assert!(eq(r, "a\u{AD}b\u{200B}", "ab"), "mapped to nothing");
        assert!(eq(r, "a\u{A0}\tb", "a b"), "other white space is SPACE");
        assert!(!eq(r, "a b", "ab"));
        assert_eq!(norm(r, "   "), Some(String::new()));
        assert!(r.normalize(b"\xff").is_none());
        assert_eq!(r.compare_normalized(b"a", b"b"), Ordering::Less);
    }

    #[test]
    fn case_exact_keeps_case() {
        let r = MatchingRule::CaseExact;
        assert!(eq(r, " A  b ", "A b"));
        assert!(!eq(r, "A", "a"));
        assert!(eq(r, "e\u{301}", "é"));
    }

    #[test]
    fn ia5_rules_are_ascii_only() {
        assert!(eq(
            MatchingRule::CaseIgnoreIa5,
            "Foo@Example.COM",
            "foo@example.com"
        ));
        assert!(!eq(MatchingRule::CaseExactIa5, "/home/A", "/home/a"));
        assert!(eq(MatchingRule::CaseExactIa5, "/bin/sh ", "/bin/sh"));
        assert_eq!(norm(MatchingRule::CaseIgnoreIa5, "ä"), None);
        assert_eq!(norm(MatchingRule::CaseExactIa5, "ä"), None);
    }

    #[test]
    fn case_ignore_list_normalizes_each_line() {
        let r = MatchingRule::CaseIgnoreList;
        assert!(eq(r, "1 Main  St $ Springfield", "1 main st$SPRINGFIELD"));
        assert!(!eq(r, "a$b", "ab"));
        // In a substrings piece `$` is a plain character and the spaces next to it count,
        // as slapd has it for `any` pieces (tests/tests/matcher_agrees_with_slapd.rs).
        assert!(sub(r, "1 Main  St $ Bremen", "*st$bre*"));
        assert!(!sub(r, "1 Main St$Bremen", "*st $ bre*"));
    }

    #[test]
    fn integers() {
        let r = MatchingRule::Integer;
        assert_eq!(norm(r, "0"), Some("0".into()));
        assert_eq!(norm(r, "-42"), Some("-42".into()));
        assert!(matches!(r.normalize(b"17"), Some(Cow::Borrowed(_))));
        // Leading zeros and `-0` are invalid (RFC 4517 §3.3.16); slapd agrees
        // (tests/tests/matcher_agrees_with_slapd.rs).
        for bad in [
            "", "-", "1.5", " 1", "+1", "1e3", "--1", "0042", "-0", "-000", "00",
        ] {
            assert_eq!(norm(r, bad), None, "{bad:?}");
        }
        let mut values = ["10", "-3", "2", "0", "-20", "100", "-1"];
        values.sort_by(|a, b| r.compare_normalized(a.as_bytes(), b.as_bytes()));
        assert_eq!(values, ["-20", "-3", "-1", "0", "2", "10", "100"]);
    }

    #[test]
    fn numeric_and_telephone() {
        assert!(eq(MatchingRule::NumericString, "123 456", "123456"));
        assert_eq!(norm(MatchingRule::NumericString, "12a"), None);
        let t = MatchingRule::TelephoneNumber;
        assert!(eq(t, "+49 421-22232", "+4942122232"));
        assert!(eq(t, "ext. 12", "EXT.12"));
        assert!(!eq(t, "+49 421", "+49 422"));
    }

    #[test]
    fn generalized_time_normalizes_to_utc() {
        let r = MatchingRule::GeneralizedTime;
        assert_eq!(
            norm(r, "20240131235959Z"),
            Some("20240131235959.000000000Z".into())
        );
        assert!(eq(r, "202401312359Z", "20240131235900Z"));
        assert!(eq(r, "2024013123Z", "20240131230000.0Z"));
        assert!(eq(r, "20240201013000+0200", "20240131233000Z"));
        assert!(eq(r, "20240131180000-05", "20240131230000Z"));
        assert!(
            eq(r, "2024013123.5Z", "20240131233000Z"),
            "fraction of an hour"
        );
        assert!(
            eq(r, "202401312330,25Z", "20240131233015Z"),
            "fraction of a minute"
        );
        assert!(
            eq(r, "20231231230000-0100", "20240101000000Z"),
            "year carry"
        );
        assert!(eq(r, "20240229000000Z", "20240229000000.000Z"));
        for bad in [
            "",
            "2024",
            "20240230000000Z",
            "20241301000000Z",
            "20240101240000Z",
            "20240101000000",
            "20240101000000+2400",
            "20240101000000Zx",
            "20240101000000.Z",
            "2024010100000Z",
            "20230229000000Z",
        ] {
            assert_eq!(norm(r, bad), None, "{bad:?}");
        }
        let a = r.normalize(b"20240101000000+0100").unwrap();
        let b = r.normalize(b"20231231233000Z").unwrap();
        assert_eq!(r.compare_normalized(&a, &b), Ordering::Less);
    }

    #[test]
    fn octet_string_and_csn_are_exact() {
        assert!(!eq(MatchingRule::OctetString, "A", "a"));
        assert!(eq(MatchingRule::OctetString, "A", "A"));
        let c = "20240101000000.000000Z#000000#000#000000";
        assert!(matches!(
            MatchingRule::Csn.normalize(c.as_bytes()),
            Some(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn distinguished_names_and_unique_member() {
        let r = MatchingRule::DistinguishedName;
        assert!(eq(r, "CN=Test\\2C1, DC=Example", "cn=test\\,1,dc=example"));
        assert!(eq(r, "commonName=x,dc=y", "cn=X,DC=Y"));
        assert_eq!(norm(r, "cn"), None);
        let u = MatchingRule::UniqueMember;
        assert!(eq(u, "CN=A,dc=x#'0101'B", "cn=a, dc=X#'0101'B"));
        assert!(!eq(u, "cn=a,dc=x#'0101'B", "cn=a,dc=x"));
        assert!(eq(u, "cn=a\\#b,dc=x", "CN=A\\#B,dc=x"));
    }

    #[test]
    fn object_identifiers_resolve_names() {
        let r = MatchingRule::ObjectIdentifier;
        assert!(eq(r, "2.5.6.6", "person"));
        assert!(eq(r, "PERSON", "person"));
        assert!(eq(r, "inetOrgPerson", "2.16.840.1.113730.3.2.2"));
        assert!(eq(r, "commonName", "2.5.4.3"), "attribute names too");
        assert!(eq(r, "univentionObject", "UNIVENTIONOBJECT"));
        for bad in ["", "1", "1.02", "a_b", "1.", "-x"] {
            assert_eq!(norm(r, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn booleans_and_uuids() {
        assert!(eq(MatchingRule::Boolean, "TRUE", "TRUE"));
        assert_eq!(norm(MatchingRule::Boolean, "true"), None);
        let u = MatchingRule::Uuid;
        assert!(eq(
            u,
            "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        ));
        assert_eq!(norm(u, "0f1e2d3c4b5a69788796a5b4c3d2e1f0"), None);
        assert_eq!(norm(u, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg"), None);
    }

    #[test]
    fn bitwise_rules() {
        let and = MatchingRule::IntegerBitAnd;
        let or = MatchingRule::IntegerBitOr;
        assert_eq!(and.bitwise_match(b"514", b"514"), Some(true));
        assert_eq!(and.bitwise_match(b"512", b"2"), Some(false));
        assert_eq!(or.bitwise_match(b"514", b"3"), Some(true));
        assert_eq!(and.bitwise_match(b"-1", b"4294967296"), Some(true));
        assert_eq!(and.bitwise_match(b"x", b"1"), None);
        assert_eq!(MatchingRule::Integer.bitwise_match(b"1", b"1"), None);
        assert!(!and.has_ordering() && !and.has_substrings());
    }

    fn sub(rule: MatchingRule, value: &str, pattern: &str) -> bool {
        // A miniature of the filter engineer's work: split at '*', normalize pieces.
        let parts: Vec<&str> = pattern.split('*').collect();
        let piece = |s: &str| rule.normalize_substring(s.as_bytes()).unwrap().into_owned();
        let initial = (!parts[0].is_empty()).then(|| piece(parts[0]));
        let last = parts[parts.len() - 1];
        let final_ = (!last.is_empty()).then(|| piece(last));
        let any: Vec<Vec<u8>> = parts[1..parts.len() - 1]
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| piece(p))
            .collect();
        let value = rule.normalize(value.as_bytes()).unwrap();
        rule.substrings_match(&value, initial.as_deref(), &any, final_.as_deref())
    }

    #[test]
    fn substrings() {
        let r = MatchingRule::CaseIgnore;
        assert!(sub(r, "abcabc", "*abc"));
        assert!(sub(r, "abcabc", "abc*"));
        assert!(sub(r, "abcabc", "abc*abc"));
        assert!(!sub(r, "abc", "abc*abc"), "pieces do not overlap");
        assert!(sub(r, "aXbXc", "a*b*c"));
        assert!(!sub(r, "aXcXb", "a*b*c"), "order matters");
        assert!(sub(r, "a b c", "*b*"));
        assert!(!sub(r, "abcb", "a*bc*cb"));
        assert!(sub(r, "Müller", "MÜ*"));
        assert!(sub(r, "foo  bar", "foo *"));
        assert!(
            !sub(r, "foobar", "foo *"),
            "a space inside the value is significant"
        );
        assert!(
            sub(r, "foo bar", "   foo*  "),
            "edge spaces of initial/final are not"
        );
        assert!(sub(r, "foo bar", "*o  b*"));
        assert!(sub(r, "x", "*"));
        let t = MatchingRule::TelephoneNumber;
        assert!(sub(t, "+49 421-22232", "+49421*"));
        assert!(sub(MatchingRule::NumericString, "123 456", "*34*"));
        assert!(!sub(MatchingRule::CaseExact, "Abc", "a*"));
        assert!(sub(MatchingRule::OctetString, "abc", "a*c"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const CHARS: &[char] = &[
            ' ', ' ', 'a', 'B', 'c', '-', '0', '7', 'ä', 'Ä', 'ß', 'Σ', 'ς', 'ﬁ', '\u{301}',
            '\u{A0}', '\t', '\u{AD}', '日', 'İ', '\u{3392}', 'Ⅻ',
        ];

        fn text() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![4 => prop::sample::select(CHARS), 1 => any::<char>()],
                0..12,
            )
            .prop_map(|c| c.into_iter().collect())
        }

        const RULES: &[MatchingRule] = &[
            M::CaseIgnore,
            M::CaseExact,
            M::CaseIgnoreIa5,
            M::CaseExactIa5,
            M::CaseIgnoreList,
            M::TelephoneNumber,
            M::NumericString,
            M::Integer,
        ];

        proptest! {
            #[test]
            fn normal_forms_are_fixed_points(rule in prop::sample::select(RULES), s in text()) {
                if let Some(n) = rule.normalize(s.as_bytes()) {
                    let again = rule.normalize(&n);
                    prop_assert_eq!(again.as_deref(), Some(&*n), "{:?}", s);
                }
            }

            #[test]
            fn a_value_matches_substrings_cut_from_it(
                rule in prop::sample::select(&RULES[..7]),
                s in text(),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
                anchored in any::<(bool, bool)>(),
            ) {
                let Some(n) = rule.normalize(s.as_bytes()) else { return Ok(()) };
                let Ok(n) = std::str::from_utf8(&n) else { return Ok(()) };
                // Cut the normal form at char boundaries into pieces separated by gaps.
                let bounds: Vec<usize> = n.char_indices().map(|(i, _)| i).chain([n.len()]).collect();
                let mut points: Vec<usize> = cuts.iter().map(|c| bounds[c.index(bounds.len())]).collect();
                points.push(0);
                points.push(n.len());
                points.sort_unstable();
                let segments: Vec<&str> = points.windows(2).map(|w| &n[w[0]..w[1]]).collect();
                // Even segments are pieces, odd ones the gaps a '*' skips.
                let pieces: Vec<&str> = segments.iter().step_by(2).copied().collect();
                let piece = |p: &str| rule.normalize_substring(p.as_bytes()).map(Cow::into_owned);
                let Some(normalized): Option<Vec<Vec<u8>>> = pieces.iter().map(|p| piece(p)).collect() else {
                    return Ok(());
                };
                let (first_anchored, last_anchored) = anchored;
                let initial = first_anchored.then(|| normalized[0].clone());
                let last = normalized.len() - 1;
                let final_ = (last_anchored && segments.len() % 2 == 1 && last > 0)
                    .then(|| normalized[last].clone());
                let skip_first = usize::from(initial.is_some());
                let take = normalized.len() - skip_first - usize::from(final_.is_some());
                let any: Vec<Vec<u8>> = normalized.iter().skip(skip_first).take(take).cloned().collect();
                prop_assert!(
                    rule.substrings_match(n.as_bytes(), initial.as_deref(), &any, final_.as_deref()),
                    "{:?} {:?} {:?} {:?} {:?}", n, initial, any, final_, segments
                );
            }
        }
    }
}
