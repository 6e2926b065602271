//! The RFC 4515 parser: a recursive descent over the bytes of the text, depth-limited.
//!
//! ```text
//! filter     = "(" filtercomp ")"
//! filtercomp = and / or / not / item
//! and        = "&" *filter          ; RFC 4515 says 1*filter; RFC 4526 allows "(&)"
//! or         = "|" *filter          ; likewise "(|)"
//! not        = "!" filter
//! item       = attr ( "=" / "~=" / ">=" / "<=" ) value      ; "=" also presence, substrings
//!            / attr [":dn"] [":" rule] ":=" value
//!            / [":dn"] ":" rule ":=" value
//! ```
//!
//! Values are bytes: `\XX` escapes any byte; `NUL ( ) * \` must be escaped (a `*` only
//! separates the pieces of a substrings assertion).

use super::{Filter, FilterError, MAX_DEPTH};
use crate::attr::AttributeDescription;

pub(super) fn parse(text: &str) -> Result<Filter, FilterError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    match p.peek() {
        None => return Err(p.error(0, "expected '(' to start the filter, not an empty text")),
        Some(b'(') => {}
        Some(_) => {
            return Err(p.error(
                0,
                "expected '(': a filter is enclosed in parentheses, like (uid=alice)",
            ));
        }
    }
    let filter = p.filter(0)?;
    if p.pos < p.bytes.len() {
        return Err(p.error(
            p.pos,
            "expected the end of the filter after its closing ')' (only one top-level \
             filter is allowed; combine several with (&…) or (|…))",
        ));
    }
    Ok(filter)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// What an assertion value may contain besides escaped bytes.
#[derive(Clone, Copy, PartialEq)]
enum Stars {
    /// `*` separates substrings pieces (`=`).
    Separate,
    /// `*` is an error (`~=`, `>=`, `<=`, extensible).
    Forbidden,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, offset: usize, expected: impl Into<String>) -> FilterError {
        FilterError {
            filter: self.text.to_owned(),
            offset,
            expected: expected.into(),
        }
    }

    /// `"(" filtercomp ")"`; the caller has seen the `(`.
    fn filter(&mut self, depth: usize) -> Result<Filter, FilterError> {
        let open = self.pos;
        if depth >= MAX_DEPTH {
            return Err(self.error(
                open,
                format!("expected at most {MAX_DEPTH} levels of nested filters"),
            ));
        }
        self.pos += 1;
        let filter = match self.peek() {
            Some(b'&') => {
                self.pos += 1;
                Filter::And(self.list(open, depth)?)
            }
            Some(b'|') => {
                self.pos += 1;
                Filter::Or(self.list(open, depth)?)
            }
            Some(b'!') => {
                self.pos += 1;
                if self.peek() != Some(b'(') {
                    return Err(self.error(
                        self.pos,
                        "expected '(' to start the filter that '!' negates",
                    ));
                }
                let inner = self.filter(depth + 1)?;
                if self.peek() != Some(b')') {
                    return Err(self.error(
                        self.pos,
                        format!(
                            "expected ')' to close the '!' filter opened at byte {open} \
                             ('!' takes exactly one filter)"
                        ),
                    ));
                }
                Filter::Not(Box::new(inner))
            }
            _ => self.item(open)?,
        };
        // Every branch leaves the closing ')' to us.
        if self.peek() != Some(b')') {
            return Err(self.error(
                self.pos,
                format!("expected ')' to close the filter opened at byte {open}"),
            ));
        }
        self.pos += 1;
        Ok(filter)
    }

    /// `*filter` up to (not including) the closing `)`.
    fn list(&mut self, open: usize, depth: usize) -> Result<Vec<Filter>, FilterError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                Some(b'(') => items.push(self.filter(depth + 1)?),
                Some(b')') => return Ok(items),
                _ => {
                    return Err(self.error(
                        self.pos,
                        format!(
                            "expected '(' to start a nested filter or ')' to close the \
                             filter opened at byte {open}"
                        ),
                    ));
                }
            }
        }
    }

    /// An item, up to (not including) the closing `)`.
    fn item(&mut self, open: usize) -> Result<Filter, FilterError> {
        let attr = if self.peek() == Some(b':') {
            None
        } else {
            Some(self.attribute()?)
        };
        let op = self.pos;
        match (self.peek(), self.bytes.get(self.pos + 1).copied()) {
            (Some(b':'), _) => return self.extensible(attr, open),
            (Some(b'='), _) => self.pos += 1,
            (Some(b'~' | b'>' | b'<'), Some(b'=')) => self.pos += 2,
            _ => {
                return Err(self.error(
                    op,
                    "expected '=', '~=', '>=', '<=' or ':' after the attribute description",
                ));
            }
        }
        // Without an attribute the item started with ':' and went to `extensible` above.
        let Some(attr) = attr else {
            return Err(self.error(op, "expected an attribute description"));
        };
        match self.bytes[op] {
            b'~' => Ok(Filter::Approx(attr, self.value(open, Stars::Forbidden)?)),
            b'>' => Ok(Filter::GreaterOrEqual(
                attr,
                self.value(open, Stars::Forbidden)?,
            )),
            b'<' => Ok(Filter::LessOrEqual(
                attr,
                self.value(open, Stars::Forbidden)?,
            )),
            _ => self.equality(attr, open),
        }
    }

    /// An attribute description: scanned liberally, validated by [`AttributeDescription`].
    fn attribute(&mut self) -> Result<AttributeDescription, FilterError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b';') {
                self.pos += 1;
            } else {
                break;
            }
        }
        if start == self.pos {
            return Err(self.error(
                start,
                "expected an attribute description (like cn or cn;lang-de), '&', '|' or '!'",
            ));
        }
        AttributeDescription::parse(&self.text[start..self.pos]).map_err(|e| {
            self.error(
                start + e.offset,
                format!("expected a valid attribute description: {}", e.message),
            )
        })
    }

    /// `=`: equality, presence or substrings; the `=` is consumed.
    fn equality(&mut self, attr: AttributeDescription, open: usize) -> Result<Filter, FilterError> {
        let first = self.value(open, Stars::Separate)?;
        if self.peek() != Some(b'*') {
            return Ok(Filter::Equality(attr, first));
        }
        let mut pieces = Vec::new();
        while self.peek() == Some(b'*') {
            let star = self.pos;
            self.pos += 1;
            if self.peek() == Some(b'*') {
                return Err(self.error(
                    self.pos,
                    format!(
                        "expected a substring or ')' after the '*' at byte {star} (\"**\" would be an \
                         empty substring; escape a literal '*' as \\2a)"
                    ),
                ));
            }
            pieces.push(self.value(open, Stars::Separate)?);
        }
        // The piece after the last '*' is the final one (empty when the value ends in '*').
        let last = pieces.pop().unwrap_or_default();
        if first.is_empty() && last.is_empty() && pieces.is_empty() {
            return Ok(Filter::Present(attr));
        }
        Ok(Filter::Substrings {
            attr,
            initial: (!first.is_empty()).then_some(first),
            any: pieces,
            final_: (!last.is_empty()).then_some(last),
        })
    }

    /// `[":dn"] [":" rule] ":=" value`, at the first ':'.
    fn extensible(
        &mut self,
        attr: Option<AttributeDescription>,
        open: usize,
    ) -> Result<Filter, FilterError> {
        let mut dn_attributes = false;
        let mut rule: Option<String> = None;
        loop {
            // At a ':'.
            self.pos += 1;
            if self.peek() == Some(b'=') {
                self.pos += 1;
                break;
            }
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.') {
                    self.pos += 1;
                } else {
                    break;
                }
            }
            let token = &self.text[start..self.pos];
            if token.is_empty() {
                let expected = if rule.is_some() {
                    "expected '=' after ':' (an extensible match ends in ':=value')"
                } else if dn_attributes {
                    "expected a matching rule or '=' after ':'"
                } else {
                    "expected 'dn', a matching rule or '=' after ':'"
                };
                return Err(self.error(start, expected));
            }
            if rule.is_some() {
                return Err(self.error(
                    start,
                    "expected '=' after ':' (the matching rule comes after ':dn' and only once)",
                ));
            }
            if !dn_attributes && token.eq_ignore_ascii_case("dn") {
                dn_attributes = true;
            } else {
                // A rule is an OID: a descr or a numericoid, the grammar of an attribute type.
                if let Err(e) = AttributeDescription::parse(token) {
                    return Err(self.error(
                        start + e.offset,
                        format!(
                            "expected a matching rule name or numeric OID: {}",
                            e.message
                        ),
                    ));
                }
                rule = Some(token.to_owned());
            }
            if self.peek() != Some(b':') {
                return Err(self.error(self.pos, "expected ':=' or ':' and a matching rule"));
            }
        }
        if attr.is_none() && rule.is_none() {
            return Err(self.error(
                self.pos - 2,
                "expected a matching rule before ':=' (an extensible match without an attribute \
                 needs one, like (:caseExactMatch:=x))",
            ));
        }
        let value = self.value(open, Stars::Forbidden)?;
        Ok(Filter::Extensible {
            attr,
            dn_attributes,
            rule,
            value,
        })
    }

    /// An assertion value up to `)` (or `*` when it separates pieces), unescaped.
    fn value(&mut self, open: usize, stars: Stars) -> Result<Vec<u8>, FilterError> {
        let mut value = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error(
                    self.pos,
                    format!("expected ')' to close the filter opened at byte {open}"),
                ));
            };
            match b {
                b')' => return Ok(value),
                b'*' if stars == Stars::Separate => return Ok(value),
                b'*' => {
                    return Err(self.error(
                        self.pos,
                        "expected a value without '*' ('*' only makes substrings in '=' \
                         assertions; escape a literal '*' as \\2a)",
                    ));
                }
                b'(' => {
                    return Err(self.error(
                        self.pos,
                        "expected a value character or ')'; escape a literal '(' as \\28",
                    ));
                }
                0 => {
                    return Err(
                        self.error(self.pos, "expected a value character; escape NUL as \\00")
                    );
                }
                b'\\' => {
                    let hex = |i: usize| self.bytes.get(i).and_then(|&c| (c as char).to_digit(16));
                    let Some(hi) = hex(self.pos + 1) else {
                        return Err(self.error(
                            self.pos + 1,
                            "expected two hex digits after '\\' (escape a literal '\\' as \\5c)",
                        ));
                    };
                    let Some(lo) = hex(self.pos + 2) else {
                        return Err(self.error(
                            self.pos + 2,
                            "expected a second hex digit after '\\' (escapes are \\XX)",
                        ));
                    };
                    value.push((hi * 16 + lo) as u8);
                    self.pos += 3;
                }
                _ => {
                    // The text is a str: a non-ASCII byte starts a whole UTF-8 character.
                    value.push(b);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ad(s: &str) -> AttributeDescription {
        AttributeDescription::parse(s).unwrap()
    }

    fn ok(text: &str) -> Filter {
        match parse(text) {
            Ok(f) => f,
            Err(e) => panic!("{text:?} should parse:\n{e}"),
        }
    }

    fn err(text: &str) -> FilterError {
        match parse(text) {
            Ok(f) => panic!("{text:?} should not parse, got {f:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn simple_items() {
        assert_eq!(ok("(cn=a)"), Filter::Equality(ad("cn"), b"a".to_vec()));
        assert_eq!(ok("(cn~=a)"), Filter::Approx(ad("cn"), b"a".to_vec()));
        assert_eq!(
            ok("(cn>=a)"),
            Filter::GreaterOrEqual(ad("cn"), b"a".to_vec())
        );
        assert_eq!(ok("(cn<=a)"), Filter::LessOrEqual(ad("cn"), b"a".to_vec()));
        assert_eq!(ok("(cn=*)"), Filter::Present(ad("cn")));
        assert_eq!(ok("(cn=)"), Filter::Equality(ad("cn"), vec![]));
        assert_eq!(
            ok("(2.5.4.3;lang-de=x)"),
            Filter::Equality(ad("cn;lang-de"), b"x".to_vec())
        );
    }

    #[test]
    fn substrings() {
        let s = |i: Option<&str>, a: &[&str], f: Option<&str>| Filter::Substrings {
            attr: ad("cn"),
            initial: i.map(|x| x.as_bytes().to_vec()),
            any: a.iter().map(|x| x.as_bytes().to_vec()).collect(),
            final_: f.map(|x| x.as_bytes().to_vec()),
        };
        assert_eq!(ok("(cn=a*)"), s(Some("a"), &[], None));
        assert_eq!(ok("(cn=*a)"), s(None, &[], Some("a")));
        assert_eq!(ok("(cn=*a*)"), s(None, &["a"], None));
        assert_eq!(ok("(cn=A*b*C)"), s(Some("A"), &["b"], Some("C")));
        assert_eq!(ok("(cn=*a*b*c*)"), s(None, &["a", "b", "c"], None));
        assert_eq!(ok("(cn=\\2a*)"), s(Some("*"), &[], None));
        assert_eq!(ok("(cn=\\2a)"), Filter::Equality(ad("cn"), b"*".to_vec()));
        assert_eq!(err("(cn=**)").offset, 5);
        assert_eq!(err("(cn=a**b)").offset, 6);
    }

    #[test]
    fn escapes_are_bytes() {
        assert_eq!(
            ok("(cn=\\ff\\00\\5C\\28)"),
            Filter::Equality(ad("cn"), vec![0xff, 0, b'\\', b'('])
        );
        assert_eq!(
            ok("(cn=Jürgen)"),
            Filter::Equality(ad("cn"), "Jürgen".as_bytes().to_vec())
        );
        assert_eq!(err("(cn=\\g0)").offset, 5);
        assert_eq!(err("(cn=\\0)").offset, 6);
        assert_eq!(err("(cn=\\").offset, 5);
        assert_eq!(err("(cn=a\0)").offset, 5);
        assert_eq!(err("(cn=a(b)").offset, 5);
        assert_eq!(err("(cn>=a*)").offset, 6);
    }

    #[test]
    fn composites() {
        assert_eq!(ok("(&)"), Filter::And(vec![]));
        assert_eq!(ok("(|)"), Filter::Or(vec![]));
        assert_eq!(
            ok("(!(&(a=b)(|(c=d))))"),
            Filter::Not(Box::new(Filter::And(vec![
                Filter::Equality(ad("a"), b"b".to_vec()),
                Filter::Or(vec![Filter::Equality(ad("c"), b"d".to_vec())]),
            ])))
        );
        assert_eq!(err("(!)").offset, 2);
        assert_eq!(err("(!(a=b)(c=d))").offset, 7);
        assert_eq!(err("(&(a=b)x)").offset, 7);
        assert_eq!(err("(&(a=b)").offset, 7);
    }

    #[test]
    fn extensible() {
        let x = |attr: Option<&str>, dn: bool, rule: Option<&str>| Filter::Extensible {
            attr: attr.map(ad),
            dn_attributes: dn,
            rule: rule.map(str::to_owned),
            value: b"v".to_vec(),
        };
        assert_eq!(ok("(cn:=v)"), x(Some("cn"), false, None));
        assert_eq!(ok("(cn:dn:=v)"), x(Some("cn"), true, None));
        assert_eq!(ok("(cn:DN:=v)"), x(Some("cn"), true, None));
        assert_eq!(
            ok("(cn:caseExactMatch:=v)"),
            x(Some("cn"), false, Some("caseExactMatch"))
        );
        assert_eq!(
            ok("(cn:dn:2.5.13.5:=v)"),
            x(Some("cn"), true, Some("2.5.13.5"))
        );
        assert_eq!(
            ok("(:dn:caseExactMatch:=v)"),
            x(None, true, Some("caseExactMatch"))
        );
        assert_eq!(
            ok("(:caseExactMatch:=v)"),
            x(None, false, Some("caseExactMatch"))
        );
        assert_eq!(
            ok("(cn:dnQualifierMatch:=v)"),
            x(Some("cn"), false, Some("dnQualifierMatch"))
        );
        assert_eq!(err("(:=v)").offset, 1);
        assert_eq!(err("(:dn:=v)").offset, 4);
        assert_eq!(err("(cn:rule:dn:=v)").offset, 9);
        assert_eq!(err("(cn:ru_le:=v)").offset, 6);
        assert_eq!(err("(cn:1.02:=v)").offset, 6);
        assert_eq!(err("(cn:rule=v)").offset, 8);
    }

    #[test]
    fn rejects_with_offsets() {
        for (text, offset) in [
            ("", 0),
            ("cn=a", 0),
            (" (cn=a)", 0),
            ("(cn=a) ", 6),
            ("(cn=a)(cn=b)", 6),
            ("(cn=a", 5),
            ("()", 1),
            ("(=a)", 1),
            ("(c n=a)", 2),
            ("(cn)", 3),
            ("(cn<a)", 3),
            ("(1cn=a)", 2),
            ("(cn;=a)", 4),
            ("(ü=a)", 1),
        ] {
            let e = err(text);
            assert_eq!(e.offset, offset, "{text:?}: {e}");
        }
    }

    #[test]
    fn depth_is_limited() {
        let deep = |n: usize| format!("{}(a=b){}", "(!".repeat(n), ")".repeat(n));
        ok(&deep(MAX_DEPTH - 1));
        assert_eq!(err(&deep(MAX_DEPTH)).offset, 2 * MAX_DEPTH);
        let e = err(&"(&".repeat(100_000));
        assert!(e.expected.contains("nested"), "{e}");
    }
}
