//! The canonical text of a filter: it parses back to the same AST.
//!
//! Attributes and rules are written as spelled; values escape `* ( ) \ NUL` and bytes
//! that are not UTF-8 as lowercase `\xx`, and keep every other UTF-8 character.
//!
//! The one AST that does not round-trip is an extensible match whose rule is literally
//! named `dn` without dnAttributes: `(cn:dn:=x)` reads back as the dnAttributes flag.

use std::fmt::{self, Write};

use super::Filter;

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('(')?;
        match self {
            Filter::And(items) | Filter::Or(items) => {
                f.write_char(if matches!(self, Filter::And(_)) {
                    '&'
                } else {
                    '|'
                })?;
                for item in items {
                    fmt::Display::fmt(item, f)?;
                }
            }
            Filter::Not(inner) => {
                f.write_char('!')?;
                fmt::Display::fmt(inner, f)?;
            }
            Filter::Equality(attr, value) => write!(f, "{attr}={}", Value(value))?,
            Filter::Approx(attr, value) => write!(f, "{attr}~={}", Value(value))?,
            Filter::GreaterOrEqual(attr, value) => write!(f, "{attr}>={}", Value(value))?,
            Filter::LessOrEqual(attr, value) => write!(f, "{attr}<={}", Value(value))?,
            Filter::Present(attr) => write!(f, "{attr}=*")?,
            Filter::Substrings {
                attr,
                initial,
                any,
                final_,
            } => {
                write!(f, "{attr}=")?;
                if let Some(initial) = initial {
                    Value(initial).fmt(f)?;
                }
                f.write_char('*')?;
                for piece in any {
                    write!(f, "{}*", Value(piece))?;
                }
                if let Some(final_) = final_ {
                    Value(final_).fmt(f)?;
                }
            }
            Filter::Extensible {
                attr,
                dn_attributes,
                rule,
                value,
            } => {
                if let Some(attr) = attr {
                    write!(f, "{attr}")?;
                }
                if *dn_attributes {
                    f.write_str(":dn")?;
                }
                if let Some(rule) = rule {
                    write!(f, ":{rule}")?;
                }
                write!(f, ":={}", Value(value))?;
            }
        }
        f.write_char(')')
    }
}

/// An assertion value in filter syntax.
pub(super) struct Value<'a>(pub(super) &'a [u8]);

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '*' | '(' | ')' | '\\' | '\0' => write!(f, "\\{:02x}", c as u8)?,
                    _ => f.write_char(c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_specials_and_invalid_utf8() {
        let v = [b'a', b'*', b'(', b')', b'\\', 0, 0xff, 0xc3, 0xbc, b'z'];
        assert_eq!(Value(&v).to_string(), "a\\2a\\28\\29\\5c\\00\\ffüz");
    }

    #[test]
    fn renders_canonically() {
        for text in [
            "(&(objectClass=inetOrgPerson)(uid=example))",
            "(|(cn~=x)(cn>=x)(cn<=x)(cn=*)(!(cn=a*b*c)))",
            "(&)",
            "(|)",
            "(cn=*a*)",
            "(CN;Lang-DE:dn:caseExactMatch:=x)",
            "(:1.2.3:=\\2a)",
        ] {
            assert_eq!(Filter::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            Filter::parse("(cn:DN:=\\4A\\c3\\bc)").unwrap().to_string(),
            "(cn:dn:=Jü)"
        );
    }
}
