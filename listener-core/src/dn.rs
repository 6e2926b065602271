//! Distinguished names (RFC 4514) with normalization for comparison (semantics §5.1).
//!
//! A [`Dn`] keeps the text it was parsed from (its `Display`, what modules see) and a
//! normalized form used for `Eq`, `Hash`, `Ord` and as a cache key: attribute types
//! resolved through the schema to their lower-case primary name (`commonName` and
//! `2.5.4.3` are `cn`), values normalized by the attribute's equality matching rule
//! (caseIgnore for unknown attributes), the AVAs of a multi-valued RDN sorted.
//!
//! ```
//! use listener_core::Dn;
//! let a = Dn::parse("CN=Test\\2C1, DC=Example").unwrap();
//! let b = Dn::parse("commonName=test\\,1,dc=example").unwrap();
//! assert_eq!(a, b);
//! assert_eq!(a.to_string(), "CN=Test\\2C1, DC=Example");
//! assert_eq!(a.normalized(), "cn=test\\,1,dc=example");
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use crate::matching::MatchingRule;
use crate::schema::Schema;

/// How deep DN-valued AVA values (`seeAlso=cn\=x\,dc\=y`) are normalized as DNs; deeper
/// ones compare exactly. Bounds the recursion on hostile input.
const MAX_NESTING: usize = 4;

/// Why a text is not a DN: the byte offset of the problem and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN {input:?} at byte {offset}: {message}")]
pub struct DnError {
    pub input: String,
    pub offset: usize,
    pub message: String,
}

/// One attribute-value assertion of an RDN (`cn=Alice`).
#[derive(Clone)]
pub struct Ava {
    attr: String,
    value: Vec<u8>,
    hex: bool,
    key: String,
    norm: String,
}

impl Ava {
    /// An AVA from an attribute type (a name or numeric OID) and a string value, which
    /// must be UTF-8.
    ///
    /// ```
    /// use listener_core::dn::Ava;
    /// let ava = Ava::new("CN", "a,b").unwrap();
    /// assert_eq!(ava.to_string(), "CN=a\\,b");
    /// assert_eq!(ava.normalized(), "cn=a\\,b");
    /// ```
    pub fn new(attr: &str, value: impl Into<Vec<u8>>) -> Result<Ava, DnError> {
        let value = value.into();
        let err = |offset: usize, message: &str| DnError {
            input: attr.to_owned(),
            offset,
            message: message.to_owned(),
        };
        match scan_type(attr.as_bytes(), 0) {
            Ok(end) if end == attr.len() => {}
            Ok(end) => return Err(err(end, "unexpected character in the attribute type")),
            Err((offset, message)) => return Err(err(offset, message)),
        }
        if std::str::from_utf8(&value).is_err() {
            return Err(err(0, "the value is not valid UTF-8"));
        }
        Ok(Ava::build(
            attr.to_owned(),
            value,
            false,
            Schema::builtin(),
            0,
        ))
    }

    fn build(attr: String, value: Vec<u8>, hex: bool, schema: &Schema, depth: usize) -> Ava {
        let key = match schema.attribute(&attr) {
            Some(at) => at.primary_name().to_ascii_lowercase(),
            None => attr.to_ascii_lowercase(),
        };
        let rule = schema.rules(&attr).equality;
        let mut norm = String::with_capacity(key.len() + value.len() + 1);
        norm.push_str(&key);
        norm.push('=');
        let content = if hex {
            ber_string_content(&value)
        } else {
            Some(value.as_slice())
        };
        match content.and_then(|c| normalize_value(rule, c, schema, depth)) {
            Some(v) => push_value(&mut norm, &v),
            // Not a string we can normalize: compare exactly, as the BER bytes.
            None if hex => push_hex(&mut norm, &value),
            None => push_value(&mut norm, &value),
        }
        Ava {
            attr,
            value,
            hex,
            key,
            norm,
        }
    }

    /// The attribute type as spelled.
    pub fn attr(&self) -> &str {
        &self.attr
    }

    /// The attribute type normalized: the schema's primary name, lower-cased (`cn`).
    pub fn attr_key(&self) -> &str {
        &self.key
    }

    /// The unescaped value bytes; for a hex-string value (`cn=#04026869`) the BER
    /// encoding it spelled.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Whether the value was given as a hex string (`#…`).
    pub fn is_hex(&self) -> bool {
        self.hex
    }

    /// The value as the attribute holds it: the string, or for a hex-string value the
    /// content of its BER string encoding (the raw BER bytes when it is none).
    pub fn string_value(&self) -> &[u8] {
        if self.hex {
            ber_string_content(&self.value).unwrap_or(&self.value)
        } else {
            &self.value
        }
    }

    /// The normalized form (`cn=test\,1`).
    pub fn normalized(&self) -> &str {
        &self.norm
    }
}

impl fmt::Display for Ava {
    /// The RFC 4514 §2.4 rendering: the type as spelled, the value minimally escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(self.attr.len() + self.value.len() + 1);
        s.push_str(&self.attr);
        s.push('=');
        if self.hex {
            push_hex(&mut s, &self.value);
        } else {
            push_value(&mut s, &self.value);
        }
        f.write_str(&s)
    }
}

impl PartialEq for Ava {
    fn eq(&self, other: &Self) -> bool {
        self.norm == other.norm
    }
}
impl Eq for Ava {}

/// A relative distinguished name: one or more AVAs joined by `+`, compared as a set.
#[derive(Clone)]
pub struct Rdn {
    avas: Vec<Ava>,
    text: String,
    norm: String,
}

impl Rdn {
    /// Parses a single RDN (`cn=a+uid=b`).
    pub fn parse(text: &str) -> Result<Rdn, DnError> {
        let mut dn = Dn::parse(text)?;
        if dn.rdns.len() != 1 {
            return Err(DnError {
                input: text.into(),
                offset: 0,
                message: format!("expected exactly one RDN, found {}", dn.rdns.len()),
            });
        }
        Ok(dn.rdns.remove(0))
    }

    /// An RDN of the given AVAs; `None` when there are none.
    pub fn new(avas: Vec<Ava>) -> Option<Rdn> {
        if avas.is_empty() {
            return None;
        }
        let text = render_avas(&avas);
        let norm = normalize_avas(&avas);
        Some(Rdn { avas, text, norm })
    }

    fn from_parsed(avas: Vec<Ava>, text: String) -> Rdn {
        let norm = normalize_avas(&avas);
        Rdn { avas, text, norm }
    }

    /// The AVAs in the order spelled.
    pub fn avas(&self) -> &[Ava] {
        &self.avas
    }

    /// The RDN as spelled.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The normalized form (AVAs normalized and sorted).
    pub fn normalized(&self) -> &str {
        &self.norm
    }

    /// The RFC 4514 §2.4 rendering of the AVAs in their order, types as spelled.
    pub fn canonical(&self) -> String {
        render_avas(&self.avas)
    }

    /// The value of the AVA for `attr` (a name, alias or OID; case-insensitive), as the
    /// attribute holds it (see [`Ava::string_value`]).
    ///
    /// ```
    /// use listener_core::Rdn;
    /// let rdn = Rdn::parse("uid=alice+commonName=Alice A").unwrap();
    /// assert_eq!(rdn.value_of("CN"), Some(&b"Alice A"[..]));
    /// assert_eq!(rdn.value_of("2.5.4.3"), Some(&b"Alice A"[..]));
    /// assert_eq!(rdn.value_of("sn"), None);
    /// ```
    pub fn value_of(&self, attr: &str) -> Option<&[u8]> {
        let key = match Schema::builtin().attribute(attr) {
            Some(at) => at.primary_name(),
            None => attr,
        };
        self.avas
            .iter()
            .find(|a| a.key.eq_ignore_ascii_case(key))
            .map(Ava::string_value)
    }
}

impl PartialEq for Rdn {
    fn eq(&self, other: &Self) -> bool {
        self.norm == other.norm
    }
}
impl Eq for Rdn {}

impl Hash for Rdn {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.norm.hash(state);
    }
}

impl fmt::Display for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Rdn {
    type Err = DnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rdn::parse(s)
    }
}

fn render_avas(avas: &[Ava]) -> String {
    let mut s = String::new();
    for (i, ava) in avas.iter().enumerate() {
        if i > 0 {
            s.push('+');
        }
        let _ = write!(s, "{ava}");
    }
    s
}

fn normalize_avas(avas: &[Ava]) -> String {
    if let [ava] = avas {
        return ava.norm.clone();
    }
    let mut norms: Vec<&str> = avas.iter().map(|a| a.norm.as_str()).collect();
    norms.sort_unstable();
    norms.join("+")
}

/// A distinguished name, kept as spelled (`Display`) and compared by its normalized form.
///
/// ```
/// use listener_core::{Dn, Rdn};
/// let dn = Dn::parse("uid=alice,ou=people,dc=example").unwrap();
/// let base = Dn::parse("DC=Example").unwrap();
/// assert!(dn.is_descendant_of(&base));
/// assert_eq!(dn.parent().unwrap().to_string(), "ou=people,dc=example");
/// let moved = dn.rename(&Rdn::parse("uid=bob").unwrap(), Some(&base));
/// assert_eq!(moved.to_string(), "uid=bob,DC=Example");
/// ```
#[derive(Clone)]
pub struct Dn {
    text: String,
    rdns: Vec<Rdn>,
    norm: String,
}

impl Dn {
    /// Parses an RFC 4514 DN, normalizing against the built-in schema. The empty string
    /// is the root DN. Spaces around `,`, `+` and `=` are tolerated.
    pub fn parse(text: &str) -> Result<Dn, DnError> {
        Dn::parse_with_schema(text, Schema::builtin())
    }

    /// Parses a DN, normalizing its values by the matching rules of `schema` (e.g. the
    /// built-in table refined by the server's `cn=Subschema`).
    pub fn parse_with_schema(text: &str, schema: &Schema) -> Result<Dn, DnError> {
        Parser {
            s: text,
            b: text.as_bytes(),
            i: 0,
            schema,
            depth: 0,
        }
        .dn()
    }

    /// The empty (root) DN.
    pub fn root() -> Dn {
        Dn {
            text: String::new(),
            rdns: Vec::new(),
            norm: String::new(),
        }
    }

    /// A DN of RDNs from the leaf to the root, spelled as the RDNs are.
    pub fn from_rdns(rdns: Vec<Rdn>) -> Dn {
        let text = join(rdns.iter().map(Rdn::as_str));
        let norm = join(rdns.iter().map(Rdn::normalized));
        Dn { text, rdns, norm }
    }

    /// The DN as the server (or user) spelled it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The normalized form: equal for equal DNs, usable as a key.
    pub fn normalized(&self) -> &str {
        &self.norm
    }

    /// The RFC 4514 §2.4 rendering (minimal escaping, no spaces, types as spelled).
    pub fn canonical(&self) -> String {
        join(
            self.rdns
                .iter()
                .map(Rdn::canonical)
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )
    }

    /// RDNs from the leaf to the root.
    pub fn rdns(&self) -> &[Rdn] {
        &self.rdns
    }

    /// The leaf RDN; `None` for the root DN.
    pub fn rdn(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    /// The number of RDNs (0 for the root DN).
    pub fn len(&self) -> usize {
        self.rdns.len()
    }

    /// Whether this is the root DN (no RDNs).
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// Whether this is the root DN (no RDNs); the same as [`Dn::is_root`].
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// The DN without its leaf RDN; `None` for the root DN.
    pub fn parent(&self) -> Option<Dn> {
        let rest = self.rdns.get(1..)?;
        Some(Dn::from_rdns(rest.to_vec()))
    }

    /// Whether `self` lies strictly below `ancestor` (`uid=a,dc=x` below `dc=x`; a DN is
    /// not its own descendant; every non-root DN is below the root).
    pub fn is_descendant_of(&self, ancestor: &Dn) -> bool {
        self.len() > ancestor.len() && self.ends_with(ancestor)
    }

    /// Whether `self` lies strictly above `descendant`.
    pub fn is_ancestor_of(&self, descendant: &Dn) -> bool {
        descendant.is_descendant_of(self)
    }

    /// Whether `self` is `base` or below it (a subtree search's scope).
    pub fn is_within(&self, base: &Dn) -> bool {
        self.len() >= base.len() && self.ends_with(base)
    }

    fn ends_with(&self, suffix: &Dn) -> bool {
        let skip = self.len().saturating_sub(suffix.len());
        self.rdns
            .iter()
            .skip(skip)
            .zip(&suffix.rdns)
            .all(|(a, b)| a.norm == b.norm)
    }

    /// The DN of a child of `self` named `rdn`.
    pub fn child(&self, rdn: &Rdn) -> Dn {
        let mut rdns = Vec::with_capacity(self.rdns.len() + 1);
        rdns.push(rdn.clone());
        rdns.extend(self.rdns.iter().cloned());
        let (text, norm) = if self.is_root() {
            (rdn.text.clone(), rdn.norm.clone())
        } else {
            (
                format!("{},{}", rdn.text, self.text),
                format!("{},{}", rdn.norm, self.norm),
            )
        };
        Dn { text, rdns, norm }
    }

    /// The DN after a modrdn: the leaf RDN replaced by `new_rdn`, under `new_superior`
    /// when given, else under the current parent.
    pub fn rename(&self, new_rdn: &Rdn, new_superior: Option<&Dn>) -> Dn {
        match new_superior {
            Some(superior) => superior.child(new_rdn),
            None => self.parent().unwrap_or_default().child(new_rdn),
        }
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::new();
    for (i, p) in parts.enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(p);
    }
    s
}

impl Default for Dn {
    fn default() -> Self {
        Dn::root()
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

impl PartialOrd for Dn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dn {
    /// Orders by normalized form (arbitrary but stable; equal DNs are equal).
    fn cmp(&self, other: &Self) -> Ordering {
        self.norm.cmp(&other.norm)
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

/// Normalizes an AVA's value by its equality rule; `None` when the rule has no normal form
/// for it (compared exactly then). DN-valued values are parsed with bounded nesting.
fn normalize_value(
    rule: Option<MatchingRule>,
    value: &[u8],
    schema: &Schema,
    depth: usize,
) -> Option<Vec<u8>> {
    match rule? {
        MatchingRule::DistinguishedName if depth < MAX_NESTING => {
            let text = std::str::from_utf8(value).ok()?;
            let dn = Parser {
                s: text,
                b: value,
                i: 0,
                schema,
                depth: depth + 1,
            }
            .dn()
            .ok()?;
            Some(dn.norm.into_bytes())
        }
        MatchingRule::DistinguishedName | MatchingRule::UniqueMember => None,
        rule => rule.normalize(value).map(|v| v.into_owned()),
    }
}

/// The content of a BER-encoded primitive string (OCTET STRING, UTF8String,
/// NumericString, PrintableString, T61String, IA5String, VisibleString) that is exactly
/// `ber`, else `None`.
fn ber_string_content(ber: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = ber.split_first()?;
    if !matches!(tag, 0x04 | 0x0c | 0x12 | 0x13 | 0x14 | 0x16 | 0x1a) {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, rest) = rest.split_at(n);
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    (rest.len() == len).then_some(rest)
}

/// Appends a value with RFC 4514 §2.4 escaping (UTF-8 values) or as `#hex`.
fn push_value(out: &mut String, value: &[u8]) {
    let Ok(text) = std::str::from_utf8(value) else {
        push_hex(out, value);
        return;
    };
    let last = text.len().saturating_sub(1);
    for (i, c) in text.char_indices() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            // NUL must be escaped; other controls are, for readable logs.
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
}

fn push_hex(out: &mut String, value: &[u8]) {
    out.push('#');
    for b in value {
        let _ = write!(out, "{b:02x}");
    }
}

/// Scans an attribute type (descr or numericoid) starting at `i`; returns its end.
fn scan_type(b: &[u8], start: usize) -> Result<usize, (usize, &'static str)> {
    let mut i = start;
    match b.get(i) {
        Some(c) if c.is_ascii_alphabetic() => {
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-')
            {
                i += 1;
            }
            Ok(i)
        }
        Some(c) if c.is_ascii_digit() => {
            let mut arcs = 0;
            loop {
                let arc = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                if i == arc {
                    return Err((i, "expected a digit in the numeric OID"));
                }
                if b.get(arc) == Some(&b'0') && i - arc > 1 {
                    return Err((arc, "a numeric OID arc must not have a leading zero"));
                }
                arcs += 1;
                if b.get(i) == Some(&b'.') {
                    i += 1;
                } else {
                    break;
                }
            }
            if arcs < 2 {
                return Err((i, "a numeric OID needs at least two arcs (like 2.5.4.3)"));
            }
            Ok(i)
        }
        Some(_) | None => Err((
            i,
            "expected an attribute type (a name like cn or an OID like 2.5.4.3)",
        )),
    }
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    schema: &'a Schema,
    depth: usize,
}

impl Parser<'_> {
    fn err(&self, offset: usize, message: impl Into<String>) -> DnError {
        DnError {
            input: self.s.to_owned(),
            offset,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn dn(mut self) -> Result<Dn, DnError> {
        self.skip_spaces();
        let mut rdns = Vec::new();
        if self.peek().is_none() {
            return Ok(Dn {
                text: self.s.to_owned(),
                rdns,
                norm: String::new(),
            });
        }
        loop {
            rdns.push(self.rdn()?);
            self.skip_spaces();
            match self.peek() {
                None => break,
                Some(b',') => self.i += 1,
                // A value stops only at ',', '+' or the end; anything else is a bug here,
                // reported rather than panicking.
                Some(_) => return Err(self.err(self.i, "expected ',' between RDNs")),
            }
        }
        let norm = join(rdns.iter().map(Rdn::normalized));
        Ok(Dn {
            text: self.s.to_owned(),
            rdns,
            norm,
        })
    }

    fn rdn(&mut self) -> Result<Rdn, DnError> {
        self.skip_spaces();
        let start = self.i;
        let mut avas = Vec::new();
        let mut end;
        loop {
            let (ava, ava_end) = self.ava()?;
            avas.push(ava);
            end = ava_end;
            self.skip_spaces();
            if self.peek() == Some(b'+') {
                self.i += 1;
            } else {
                break;
            }
        }
        let text = self.s.get(start..end).unwrap_or_default().to_owned();
        Ok(Rdn::from_parsed(avas, text))
    }

    /// Parses `type=value`; returns the AVA and the end of its significant text.
    fn ava(&mut self) -> Result<(Ava, usize), DnError> {
        self.skip_spaces();
        let type_start = self.i;
        let type_end = match scan_type(self.b, type_start) {
            Ok(end) => end,
            Err((offset, message)) => {
                let message = match self.peek() {
                    None if type_start > 0 => {
                        "expected an attribute type after the separator (a DN does not end with ',' or '+')"
                    }
                    Some(b',' | b'+') => "expected an attribute type, found an empty RDN",
                    Some(b'=') => "the attribute type before '=' is empty",
                    _ => message,
                };
                return Err(self.err(offset, message));
            }
        };
        self.i = type_end;
        let attr = self.s.get(type_start..type_end).unwrap_or_default();
        self.skip_spaces();
        if self.peek() != Some(b'=') {
            let found = match self.peek() {
                None => "the end".to_owned(),
                Some(_) => format!(
                    "{:?}",
                    self.s
                        .get(self.i..)
                        .and_then(|r| r.chars().next())
                        .unwrap_or(' ')
                ),
            };
            return Err(self.err(
                self.i,
                format!("expected '=' after the attribute type {attr:?}, found {found}"),
            ));
        }
        self.i += 1;
        self.skip_spaces();
        let (value, hex, end) = if self.peek() == Some(b'#') {
            self.hex_value()?
        } else {
            self.string_value()?
        };
        let ava = Ava::build(attr.to_owned(), value, hex, self.schema, self.depth);
        Ok((ava, end))
    }

    fn hex_value(&mut self) -> Result<(Vec<u8>, bool, usize), DnError> {
        let sharp = self.i;
        self.i += 1;
        let mut bytes = Vec::new();
        while let Some(hi) = self.peek().and_then(hex_digit) {
            let Some(lo) = self.b.get(self.i + 1).copied().and_then(hex_digit) else {
                return Err(self.err(
                    self.i + 1,
                    "a hex string needs an even number of hex digits",
                ));
            };
            bytes.push(hi << 4 | lo);
            self.i += 2;
        }
        if bytes.is_empty() {
            return Err(self.err(
                sharp + 1,
                "expected hex digits after '#' (escape a leading '#' in a value as \\#)",
            ));
        }
        let end = self.i;
        self.skip_spaces();
        match self.peek() {
            None | Some(b',' | b'+') => Ok((bytes, true, end)),
            Some(_) => Err(self.err(
                self.i,
                "unexpected character after the hex string (expected ',', '+' or the end)",
            )),
        }
    }

    fn string_value(&mut self) -> Result<(Vec<u8>, bool, usize), DnError> {
        let value_start = self.i;
        let mut buf = Vec::new();
        // Unescaped trailing spaces are insignificant: remember where the value last
        // ended with something significant.
        let mut significant = 0;
        let mut end = self.i;
        while let Some(c) = self.peek() {
            match c {
                b',' | b'+' => break,
                b'\\' => {
                    let esc = self.i;
                    self.i += 1;
                    let Some(next) = self.peek() else {
                        return Err(self.err(
                            esc,
                            "a '\\' at the end of the DN must escape something (write \\\\ for a backslash)",
                        ));
                    };
                    if matches!(
                        next,
                        b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' | b'=' | b'#' | b' '
                    ) {
                        buf.push(next);
                        self.i += 1;
                    } else if let Some(hi) = hex_digit(next) {
                        let Some(lo) = self.b.get(self.i + 1).copied().and_then(hex_digit) else {
                            return Err(self.err(
                                esc,
                                "invalid escape: '\\' must be followed by two hex digits or one of  \"+,;<>\\=# and space",
                            ));
                        };
                        buf.push(hi << 4 | lo);
                        self.i += 2;
                    } else {
                        return Err(self.err(
                            esc,
                            "invalid escape: '\\' must be followed by two hex digits or one of  \"+,;<>\\=# and space",
                        ));
                    }
                    significant = buf.len();
                    end = self.i;
                }
                b'"' | b';' | b'<' | b'>' => {
                    return Err(self.err(
                        self.i,
                        format!(
                            "the character '{}' must be escaped in a value (as \\{})",
                            c as char, c as char
                        ),
                    ));
                }
                0 => return Err(self.err(self.i, "a NUL byte must be escaped as \\00")),
                b' ' => {
                    buf.push(c);
                    self.i += 1;
                }
                _ => {
                    buf.push(c);
                    self.i += 1;
                    significant = buf.len();
                    end = self.i;
                }
            }
        }
        buf.truncate(significant);
        if std::str::from_utf8(&buf).is_err() {
            return Err(self.err(
                value_start,
                "the value's escaped bytes are not valid UTF-8 (use a #hex string for binary values)",
            ));
        }
        Ok((buf, false, end))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

// `Debug` shows the spelling, as a module author logging `{dn:?}` (UCS's `%r`)
// expects, not the parsed structure.
impl fmt::Debug for Dn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Dn").field(&self.text).finish()
    }
}

impl fmt::Debug for Rdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Rdn").field(&self.text).finish()
    }
}

impl fmt::Debug for Ava {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ava")
            .field("attr", &self.attr)
            .field("value", &String::from_utf8_lossy(&self.value))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> Dn {
        Dn::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[track_caller]
    fn same(a: &str, b: &str) {
        assert_eq!(
            dn(a),
            dn(b),
            "{a:?} vs {b:?}: {} / {}",
            dn(a).norm,
            dn(b).norm
        );
    }

    #[track_caller]
    fn differ(a: &str, b: &str) {
        assert_ne!(dn(a), dn(b), "{a:?} vs {b:?}");
    }

    #[test]
    fn equal_dns() {
        same("cn=Test\\2C1", "CN=test\\,1");
        same("cn=aÄ", "cn=aä");
        same("cn=a\\C3\\84", "cn=AÄ");
        same("cn=a+uid=b", "uid=B+cn=A");
        same("commonName=x,dc=y", "cn=X, DC=Y");
        same("2.5.4.3=x", "CN=x");
        same("cn = a , dc = b", "cn=a,dc=b");
        same("cn=a  b", "cn=A B");
        same("cn=  a  ", "cn=a");
        same("cn=#0403616263", "cn=abc");
        same("cn=#0C03616263  ,dc=x", "cn=ABC,dc=x");
        same("cn=\\#1", "CN=\\231");
        same("cn=a\\=b", "cn=a=b");
        same("", "");
        // caseIgnore: an escaped trailing space is still insignificant.
        same("cn=a\\ ", "cn=a");
        same("uid=x+cn=y,dc=z", "CN=Y + UID=X , dc=Z");
    }

    #[test]
    fn different_dns() {
        differ("cn=a", "cn=b");
        differ("cn=a,dc=x", "cn=a");
        differ("cn=a\\ b", "cn=ab");
        differ("cn=a+uid=b", "cn=a,uid=b");
        differ("cn=#04026869", "cn=#04026868");
        differ("cn=#0102", "cn=#0103");
        // octetString attributes compare exactly.
        differ("userPassword=A", "userPassword=a");
        differ("cn=a b", "cn=ab");
    }

    #[test]
    fn values_are_unescaped() {
        let d = dn("cn=Smith\\, John\\+1\\5C\\22 \\3Cx\\3E,dc=x");
        let ava = &d.rdns()[0].avas()[0];
        assert_eq!(ava.value(), b"Smith, John+1\\\" <x>");
        assert_eq!(ava.attr(), "cn");
        let d = dn("cn=\\ lead and trail\\ ");
        assert_eq!(d.rdns()[0].value_of("cn"), Some(&b" lead and trail "[..]));
        let d = dn("cn=#0403616263");
        let ava = &d.rdns()[0].avas()[0];
        assert!(ava.is_hex());
        assert_eq!(ava.value(), b"\x04\x03abc");
        assert_eq!(ava.string_value(), b"abc");
        assert_eq!(d.canonical(), "cn=#0403616263");
    }

    #[test]
    fn display_keeps_spelling_and_canonical_escapes_minimally() {
        let d = dn(" CN=Test\\2C1 ,  DC=Example ");
        assert_eq!(d.to_string(), " CN=Test\\2C1 ,  DC=Example ");
        assert_eq!(d.as_str(), d.to_string());
        assert_eq!(d.canonical(), "CN=Test\\,1,DC=Example");
        assert_eq!(d.normalized(), "cn=test\\,1,dc=example");
        assert_eq!(d.rdns()[0].as_str(), "CN=Test\\2C1");
        assert_eq!(dn("cn=\\#a\\20b\\20").canonical(), "cn=\\#a b\\ ");
        assert_eq!(dn("uid=B+cn=A").normalized(), "cn=a+uid=b");
    }

    #[test]
    fn navigation() {
        let d = dn("uid=alice,ou=People,dc=example,dc=com");
        assert_eq!(d.len(), 4);
        assert!(!d.is_root());
        assert_eq!(d.rdn().unwrap().as_str(), "uid=alice");
        let parent = d.parent().unwrap();
        assert_eq!(parent, dn("ou=people,dc=example,dc=com"));
        assert_eq!(parent.to_string(), "ou=People,dc=example,dc=com");
        let base = dn("DC=Example,DC=Com");
        assert!(d.is_descendant_of(&base));
        assert!(base.is_ancestor_of(&d));
        assert!(!base.is_descendant_of(&base));
        assert!(base.is_within(&base));
        assert!(d.is_descendant_of(&Dn::root()));
        assert!(!dn("dc=com").is_descendant_of(&d));
        assert!(!dn("uid=a,dc=other,dc=com").is_descendant_of(&base));
        assert_eq!(dn("dc=com").parent().unwrap(), Dn::root());
        assert!(Dn::root().parent().is_none());
        assert!(Dn::root().is_root() && Dn::root().rdn().is_none());

        let bob = Rdn::parse("uid=bob").unwrap();
        assert_eq!(
            d.rename(&bob, None).to_string(),
            "uid=bob,ou=People,dc=example,dc=com"
        );
        let moved = d.rename(&bob, Some(&base));
        assert_eq!(moved.to_string(), "uid=bob,DC=Example,DC=Com");
        assert_eq!(moved, dn("uid=bob,dc=example,dc=com"));
        assert_eq!(base.child(&bob), moved);
        assert_eq!(Dn::root().child(&bob).to_string(), "uid=bob");
        let case_only = d.rename(&Rdn::parse("uid=ALICE").unwrap(), None);
        assert_eq!(case_only, d);
        assert_ne!(case_only.to_string(), d.to_string());
    }

    #[test]
    fn rdn_and_ava_construction() {
        let rdn = Rdn::new(vec![
            Ava::new("uid", "b").unwrap(),
            Ava::new("CN", "a,").unwrap(),
        ])
        .unwrap();
        assert_eq!(rdn.as_str(), "uid=b+CN=a\\,");
        assert_eq!(rdn, Rdn::parse("cn=A\\2c+uid=B").unwrap());
        assert!(Rdn::new(vec![]).is_none());
        assert!(Ava::new("c n", "x").is_err());
        assert!(Ava::new("", "x").is_err());
        assert!(Ava::new("cn", vec![0xff]).is_err());
        assert!(Rdn::parse("cn=a,dc=b").is_err());
        assert!(Rdn::parse("").is_err());
        assert_eq!(Rdn::parse(" cn=a\\  ").unwrap().as_str(), "cn=a\\ ");
        let d = Dn::from_rdns(vec![rdn, Rdn::parse("dc=x").unwrap()]);
        assert_eq!(d, dn("cn=a\\,+uid=b,dc=x"));
    }

    #[test]
    fn dn_valued_attributes_normalize_as_dns() {
        same("seeAlso=cn\\=A\\,dc\\=X", "seeAlso=CN\\=a\\, DC\\=x");
    }

    #[test]
    fn errors_have_offsets() {
        for (bad, offset, needle) in [
            ("cn", 2, "expected '='"),
            ("cn=a,dc", 7, "expected '='"),
            ("cn x=1", 3, "expected '='"),
            ("=a", 0, "empty"),
            ("cn=a,=b", 5, "empty"),
            ("cn=\\zz", 3, "invalid escape"),
            ("cn=\\4", 3, "invalid escape"),
            ("cn=a\\", 4, "at the end"),
            ("cn=a,", 5, "does not end with"),
            ("cn=a+", 5, "does not end with"),
            ("cn=a,,dc=b", 5, "empty RDN"),
            ("cn=#zz", 4, "hex digits"),
            ("cn=#041", 7, "even number"),
            ("cn=#0403616263 x", 15, "after the hex string"),
            ("cn=#04036162 63", 13, "after the hex string"),
            ("cn=a\"b", 4, "must be escaped"),
            ("cn=a;dc=b", 4, "must be escaped"),
            ("cn=<a>", 3, "must be escaped"),
            ("cn=a\0", 4, "NUL"),
            ("cn=\\ff", 3, "UTF-8"),
            ("1.2.=a", 4, "digit"),
            ("01.2=a", 0, "leading zero"),
            ("2=a", 1, "two arcs"),
            ("_x=a", 0, "attribute type"),
        ] {
            let e = Dn::parse(bad).expect_err(bad);
            assert_eq!(e.offset, offset, "{bad:?}: {e}");
            assert!(e.message.contains(needle), "{bad:?}: {e}");
            assert_eq!(e.input, bad);
        }
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for s in [
            "\\",
            "#",
            "+",
            ",",
            "=",
            "a=#",
            "a=\\",
            "ä=b",
            "a=ä\\",
            "a=#ä",
            "a=b+",
            "a=\\c3",
            "a=\\c3\\",
            " , ",
            "a=#00+b=#",
            "member=member=member=x",
        ] {
            let _ = Dn::parse(s);
        }
        let deep = "member=".repeat(10_000) + "x";
        assert!(Dn::parse(&deep).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const TYPES: &[&str] = &[
            "cn",
            "CN",
            "commonName",
            "2.5.4.3",
            "uid",
            "ou",
            "o",
            "description",
            "x-custom",
            "dc",
        ];
        const SPECIALS: &[char] = &[
            ' ', '"', '+', ',', ';', '<', '>', '\\', '=', '#', '\0', '\n', 'a', 'Z', 'ä', 'Ä', 'ß',
            'Σ', '日', 'e', '\u{301}', '\u{A0}', '😀',
        ];

        fn value() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![3 => prop::sample::select(SPECIALS), 1 => any::<char>()],
                0..8,
            )
            .prop_map(|chars| chars.into_iter().collect())
        }

        fn rdn() -> impl Strategy<Value = Vec<(&'static str, String)>> {
            prop::collection::vec((prop::sample::select(TYPES), value()), 1..4)
        }

        fn build(rdns: &[Vec<(&'static str, String)>]) -> Dn {
            Dn::from_rdns(
                rdns.iter()
                    .map(|avas| {
                        Rdn::new(
                            avas.iter()
                                .map(|(t, v)| Ava::new(t, v.as_bytes()).unwrap())
                                .collect(),
                        )
                        .unwrap()
                    })
                    .collect(),
            )
        }

        /// Spells a value with a random mix of raw characters (where RFC 4514 allows
        /// them), `\c` escapes (where defined) and `\XX` escapes.
        fn spell(value: &str, choices: &[u8]) -> String {
            let chars: Vec<char> = value.chars().collect();
            let mut out = String::new();
            for (i, &c) in chars.iter().enumerate() {
                let choice = choices.get(i).copied().unwrap_or(0) % 3;
                let raw_ok = !matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '\0')
                    && !(i == 0 && (c == '#' || c == ' '))
                    && !(i == chars.len() - 1 && c == ' ');
                let pair_ok = matches!(
                    c,
                    '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' | '#' | ' '
                );
                if choice == 0 && raw_ok {
                    out.push(c);
                } else if choice <= 1 && pair_ok {
                    out.push('\\');
                    out.push(c);
                } else {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\{b:02x}"));
                    }
                }
            }
            out
        }

        proptest! {
            #[test]
            fn canonical_rendering_round_trips(rdns in prop::collection::vec(rdn(), 0..4)) {
                let dn = build(&rdns);
                let text = dn.canonical();
                let parsed = Dn::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&parsed, &dn);
                prop_assert_eq!(parsed.canonical(), text.clone());
                prop_assert_eq!(parsed.as_str(), text);
                prop_assert_eq!(parsed.len(), rdns.len());
                for (p, avas) in parsed.rdns().iter().zip(&rdns) {
                    for (ava, (_, v)) in p.avas().iter().zip(avas) {
                        prop_assert_eq!(ava.value(), v.as_bytes());
                    }
                }
            }

            #[test]
            fn every_escape_variant_parses_to_the_same_dn(
                rdns in prop::collection::vec(rdn(), 1..4),
                choices in prop::collection::vec(any::<u8>(), 64),
                spaces in any::<bool>(),
            ) {
                let dn = build(&rdns);
                let (comma, plus, equals) = if spaces { (" , ", " + ", " =") } else { (",", "+", "=") };
                let mut k = 0;
                let text = rdns
                    .iter()
                    .map(|avas| {
                        avas.iter()
                            .map(|(t, v)| {
                                k += 8;
                                format!("{t}{equals}{}", spell(v, &choices[k % 56..]))
                            })
                            .collect::<Vec<_>>()
                            .join(plus)
                    })
                    .collect::<Vec<_>>()
                    .join(comma);
                let parsed = Dn::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&parsed, &dn, "{}", text);
                prop_assert_eq!(parsed.canonical(), dn.canonical());
            }

            #[test]
            fn arbitrary_text_never_panics(text in ".{0,40}") {
                let _ = Dn::parse(&text);
            }

            #[test]
            fn dn_ish_text_never_panics(text in "[a-z0-9=,+#\\\\ \"<>;.ä]{0,30}") {
                if let Ok(dn) = Dn::parse(&text) {
                    // Whatever parses renders to something that parses back equal.
                    let again = Dn::parse(&dn.canonical()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(again, dn);
                }
            }
        }
    }
}
