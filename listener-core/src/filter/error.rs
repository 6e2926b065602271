//! The two ways a filter can fail: it does not parse, or it cannot be evaluated.

/// Why a text is not a valid filter: the byte offset and what was expected there.
///
/// Its `Display` is meant for a compiler error or a log: a headline, the filter, and a
/// caret under the offending character.
///
/// ```
/// use listener_core::Filter;
/// let e = Filter::parse("(&(uid=a)").unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "invalid LDAP filter at byte 9: expected '(' to start a nested filter or ')' to \
///      close the filter opened at byte 0\n    (&(uid=a)\n             ^"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid LDAP filter at byte {offset}: {expected}\n{}", caret(.filter, *.offset))]
pub struct FilterError {
    /// The whole filter text.
    pub filter: String,
    /// Byte offset into `filter` where the problem is (may equal its length).
    pub offset: usize,
    /// What was expected at `offset`.
    pub expected: String,
}

/// The filter indented, and a caret line under byte `offset` (columns counted in chars).
fn caret(filter: &str, offset: usize) -> String {
    const INDENT: &str = "    ";
    // Control characters would break the alignment of the caret line.
    let shown: String = filter
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let column = match filter.get(..offset) {
        Some(prefix) => prefix.chars().count(),
        None => offset.min(filter.len()),
    };
    format!("{INDENT}{shown}\n{INDENT}{}^", " ".repeat(column))
}

/// Why a parsed filter cannot be evaluated (e.g. an unknown extensible matching rule).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot evaluate {item}: {message}")]
pub struct CompileError {
    /// The offending filter item, rendered.
    pub item: String,
    /// Why it cannot be evaluated.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_counts_chars_not_bytes() {
        let e = FilterError {
            filter: "(cn=Jürgen".into(),
            offset: 11,
            expected: "x".into(),
        };
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "    (cn=Jürgen");
        assert_eq!(lines[2], "              ^");
    }

    #[test]
    fn caret_survives_odd_offsets_and_control_chars() {
        let e = FilterError {
            filter: "(a\n=ü".into(),
            offset: 5,
            expected: "x".into(),
        };
        assert_eq!(e.to_string().lines().nth(1), Some("    (a?=ü"));
    }
}
