//! LDIF (RFC 2849): content records (entries) and change records (add, delete, modify,
//! modrdn), parsed with errors that name the line, and entries written with base64 and
//! line folding where the RFC asks for them.
//!
//! The runtime reads content records today (`verify` reads a dump); change records are
//! parsed for the coming replication module, which applies them to a local slapd.
//!
//! ```
//! use listener_core::ldif::{self, Change, Record};
//! let records = ldif::parse(
//!     "dn: cn=alice,dc=example,dc=com\n\
//!      changetype: modify\n\
//!      replace: mail\n\
//!      mail: alice@example.com\n\
//!      -\n",
//! )
//! .unwrap();
//! let Record::Change(change) = &records[0] else { panic!() };
//! assert!(matches!(change.change, Change::Modify(_)));
//! ```

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::attr::AttributeDescription;
use crate::dn::{Dn, Rdn};
use crate::entry::Entry;

/// Why a text is not valid LDIF; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LDIF line {line}: {message}")]
pub struct LdifError {
    /// The line where the problem is (the first line of a folded one).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// One record of an LDIF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An entry (a content record).
    Content(Entry),
    /// A change to apply.
    Change(ChangeRecord),
}

/// A change record: the DN, its controls and the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// The entry changed.
    pub dn: Dn,
    /// `control:` lines, in order.
    pub controls: Vec<Control>,
    /// What to do.
    pub change: Change,
}

/// An LDAP control given with a change record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// The control's OID.
    pub oid: String,
    /// Its criticality.
    pub critical: bool,
    /// Its value, if any.
    pub value: Option<Vec<u8>>,
}

/// The change a change record describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `changetype: add` with the new entry.
    Add(Entry),
    /// `changetype: delete`.
    Delete,
    /// `changetype: modify` with its modifications, in order.
    Modify(Vec<Modification>),
    /// `changetype: modrdn` (or `moddn`).
    ModRdn {
        /// The new RDN.
        new_rdn: Rdn,
        /// Whether the old RDN's values are removed.
        delete_old_rdn: bool,
        /// The new parent, for a move.
        new_superior: Option<Dn>,
    },
}

/// One modification of a `changetype: modify` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modification {
    /// add, delete, replace or increment.
    pub op: ModOp,
    /// The attribute modified.
    pub attr: AttributeDescription,
    /// The values (empty: delete or replace the whole attribute).
    pub values: Vec<Vec<u8>>,
}

/// A modification's operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModOp {
    /// `add:`
    Add,
    /// `delete:`
    Delete,
    /// `replace:`
    Replace,
    /// `increment:` (RFC 4525)
    Increment,
}

/// A logical line: folded lines joined, with the number of its first physical line.
struct Line {
    number: usize,
    text: String,
}

/// Parses LDIF text. A file holds either entries or change records, not both (RFC 2849).
pub fn parse(text: &str) -> Result<Vec<Record>, LdifError> {
    let mut records = Vec::new();
    let mut kind: Option<(bool, usize)> = None;
    for block in blocks(text)? {
        let record = parse_record(&block)?;
        let is_change = matches!(record, Record::Change(_));
        let line = block.first().map_or(0, |l| l.number);
        match kind {
            None => kind = Some((is_change, line)),
            Some((was_change, first)) if was_change != is_change => {
                return Err(LdifError {
                    line,
                    message: format!(
                        "a {} record in a file of {} records (the first at line {first}); \
                         LDIF files hold one kind",
                        if is_change { "change" } else { "content" },
                        if was_change { "change" } else { "content" },
                    ),
                });
            }
            Some(_) => {}
        }
        records.push(record);
    }
    Ok(records)
}

/// Splits the text into records of unfolded lines, dropping comments and `version:`.
fn blocks(text: &str) -> Result<Vec<Vec<Line>>, LdifError> {
    let mut blocks = Vec::new();
    let mut current: Vec<Line> = Vec::new();
    let mut in_comment = false;
    let mut seen_record = false;
    for (i, raw) in text.split('\n').enumerate() {
        let number = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix(' ') {
            if in_comment {
                continue;
            }
            match current.last_mut() {
                Some(line) => line.text.push_str(rest),
                None => {
                    return Err(LdifError {
                        line: number,
                        message: "a continuation line (starting with a space) follows no line"
                            .into(),
                    });
                }
            }
            continue;
        }
        in_comment = raw.starts_with('#');
        if in_comment {
            continue;
        }
        if raw.is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        }
        if !seen_record && current.is_empty() && raw.starts_with("version:") {
            let version = raw["version:".len()..].trim();
            if version != "1" {
                return Err(LdifError {
                    line: number,
                    message: format!("unsupported LDIF version {version:?} (only 1 exists)"),
                });
            }
            continue;
        }
        seen_record = true;
        current.push(Line {
            number,
            text: raw.to_owned(),
        });
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    Ok(blocks)
}

/// `name: value`, `name:: base64` or `name:< url`, split and decoded.
fn attr_value(line: &Line) -> Result<(&str, Vec<u8>), LdifError> {
    let err = |message: String| LdifError {
        line: line.number,
        message,
    };
    let Some(colon) = line.text.find(':') else {
        return Err(err(format!(
            "expected `name: value`, found {:?}",
            line.text
        )));
    };
    let name = &line.text[..colon];
    let rest = &line.text[colon + 1..];
    let value = if let Some(encoded) = rest.strip_prefix(':') {
        BASE64
            .decode(encoded.trim())
            .map_err(|e| err(format!("the base64 value of {name} does not decode: {e}")))?
    } else if rest.starts_with('<') {
        return Err(err(format!(
            "{name} takes its value from a URL (`:<`), which is not supported; put the \
             value in the file (base64 with `::` for binary data)"
        )));
    } else {
        rest.strip_prefix(' ')
            .unwrap_or(rest)
            .trim_start_matches(' ')
            .as_bytes()
            .to_vec()
    };
    Ok((name, value))
}

fn utf8(line: &Line, what: &str, value: Vec<u8>) -> Result<String, LdifError> {
    String::from_utf8(value).map_err(|_| LdifError {
        line: line.number,
        message: format!("{what} is not UTF-8"),
    })
}

fn parse_dn(line: &Line, text: &str) -> Result<Dn, LdifError> {
    Dn::parse(text).map_err(|e| LdifError {
        line: line.number,
        message: e.to_string(),
    })
}

fn parse_attr(line: &Line, name: &str) -> Result<AttributeDescription, LdifError> {
    AttributeDescription::parse(name).map_err(|e| LdifError {
        line: line.number,
        message: e.to_string(),
    })
}

fn parse_record(block: &[Line]) -> Result<Record, LdifError> {
    let first = &block[0];
    let (name, value) = attr_value(first)?;
    if !name.eq_ignore_ascii_case("dn") {
        return Err(LdifError {
            line: first.number,
            message: format!("a record starts with `dn:`, not {name:?}"),
        });
    }
    let dn_text = utf8(first, "the DN", value)?;
    let dn = parse_dn(first, &dn_text)?;
    let mut rest = &block[1..];
    let mut controls = Vec::new();
    while let Some(line) = rest.first() {
        let (name, value) = attr_value(line)?;
        if !name.eq_ignore_ascii_case("control") {
            break;
        }
        controls.push(parse_control(line, value)?);
        rest = &rest[1..];
    }
    let changetype = match rest.first() {
        Some(line) => {
            let (name, value) = attr_value(line)?;
            if name.eq_ignore_ascii_case("changetype") {
                Some((line, utf8(line, "the changetype", value)?))
            } else {
                None
            }
        }
        None => None,
    };
    let Some((ct_line, changetype)) = changetype else {
        if !controls.is_empty() {
            return Err(LdifError {
                line: first.number,
                message: "controls are only allowed on change records".into(),
            });
        }
        return Ok(Record::Content(entry(dn, rest)?));
    };
    let body = &rest[1..];
    let change = match changetype.trim().to_ascii_lowercase().as_str() {
        "add" => Change::Add(entry(dn.clone(), body)?),
        "delete" => {
            if let Some(line) = body.first() {
                return Err(LdifError {
                    line: line.number,
                    message: "a delete record has nothing after `changetype: delete`".into(),
                });
            }
            Change::Delete
        }
        "modify" => Change::Modify(modifications(body)?),
        "modrdn" | "moddn" => modrdn(ct_line, body)?,
        other => {
            return Err(LdifError {
                line: ct_line.number,
                message: format!(
                    "unknown changetype {other:?}; expected add, delete, modify, modrdn or moddn"
                ),
            });
        }
    };
    Ok(Record::Change(ChangeRecord {
        dn,
        controls,
        change,
    }))
}

fn parse_control(line: &Line, value: Vec<u8>) -> Result<Control, LdifError> {
    let text = utf8(line, "the control", value)?;
    let mut parts = text.splitn(2, ' ');
    let oid = parts.next().unwrap_or_default().to_owned();
    if oid.is_empty() || !oid.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(LdifError {
            line: line.number,
            message: format!("a control starts with its numeric OID, not {oid:?}"),
        });
    }
    let mut rest = parts.next().unwrap_or_default().trim_start();
    let mut critical = false;
    for (word, flag) in [("true", true), ("false", false)] {
        if let Some(after) = rest.strip_prefix(word) {
            critical = flag;
            rest = after.trim_start();
        }
    }
    let value = if let Some(encoded) = rest.strip_prefix("::") {
        Some(BASE64.decode(encoded.trim()).map_err(|e| LdifError {
            line: line.number,
            message: format!("the control's base64 value does not decode: {e}"),
        })?)
    } else {
        rest.strip_prefix(':')
            .map(|v| v.trim_start().as_bytes().to_vec())
    };
    Ok(Control {
        oid,
        critical,
        value,
    })
}

fn entry(dn: Dn, lines: &[Line]) -> Result<Entry, LdifError> {
    let mut entry = Entry::new(dn);
    for line in lines {
        let (name, value) = attr_value(line)?;
        parse_attr(line, name)?;
        entry.push_value(name, value).map_err(|e| LdifError {
            line: line.number,
            message: e.to_string(),
        })?;
    }
    Ok(entry)
}

fn modifications(lines: &[Line]) -> Result<Vec<Modification>, LdifError> {
    let mut mods = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let head = &lines[i];
        let (op_name, attr) = attr_value(head)?;
        let op = match op_name.to_ascii_lowercase().as_str() {
            "add" => ModOp::Add,
            "delete" => ModOp::Delete,
            "replace" => ModOp::Replace,
            "increment" => ModOp::Increment,
            other => {
                return Err(LdifError {
                    line: head.number,
                    message: format!(
                        "expected `add:`, `delete:`, `replace:` or `increment:`, found {other:?}"
                    ),
                });
            }
        };
        let attr_text = utf8(head, "the attribute name", attr)?;
        let attr = parse_attr(head, attr_text.trim())?;
        i += 1;
        let mut values = Vec::new();
        loop {
            let Some(line) = lines.get(i) else {
                return Err(LdifError {
                    line: head.number,
                    message: format!("the {op_name} of {attr} does not end with a `-` line"),
                });
            };
            i += 1;
            if line.text == "-" {
                break;
            }
            let (name, value) = attr_value(line)?;
            if parse_attr(line, name)? != attr {
                return Err(LdifError {
                    line: line.number,
                    message: format!("a value of {name} inside the {op_name} of {attr}"),
                });
            }
            values.push(value);
        }
        mods.push(Modification { op, attr, values });
    }
    Ok(mods)
}

fn modrdn(ct_line: &Line, lines: &[Line]) -> Result<Change, LdifError> {
    let mut new_rdn = None;
    let mut delete_old_rdn = None;
    let mut new_superior = None;
    for line in lines {
        let (name, value) = attr_value(line)?;
        let value = utf8(line, name, value)?;
        match name.to_ascii_lowercase().as_str() {
            "newrdn" => {
                new_rdn = Some(Rdn::parse(&value).map_err(|e| LdifError {
                    line: line.number,
                    message: e.to_string(),
                })?);
            }
            "deleteoldrdn" => {
                delete_old_rdn = Some(match value.trim() {
                    "0" => false,
                    "1" => true,
                    other => {
                        return Err(LdifError {
                            line: line.number,
                            message: format!("deleteoldrdn is 0 or 1, not {other:?}"),
                        });
                    }
                });
            }
            "newsuperior" => new_superior = Some(parse_dn(line, &value)?),
            other => {
                return Err(LdifError {
                    line: line.number,
                    message: format!(
                        "expected newrdn, deleteoldrdn or newsuperior in a modrdn record, \
                         found {other:?}"
                    ),
                });
            }
        }
    }
    let missing = |what: &str| LdifError {
        line: ct_line.number,
        message: format!("a modrdn record needs {what}"),
    };
    Ok(Change::ModRdn {
        new_rdn: new_rdn.ok_or_else(|| missing("newrdn"))?,
        delete_old_rdn: delete_old_rdn.ok_or_else(|| missing("deleteoldrdn"))?,
        new_superior,
    })
}

/// Whether RFC 2849 lets `value` be written as it is (a SAFE-STRING); otherwise base64.
fn is_safe(value: &[u8]) -> bool {
    match value.first() {
        None => true,
        Some(b' ' | b':' | b'<') => false,
        Some(_) => {
            value.last() != Some(&b' ')
                && value
                    .iter()
                    .all(|&b| b != 0 && b != b'\n' && b != b'\r' && b < 0x80)
        }
    }
}

/// Appends `name: value` (or `name:: base64`), folded at 76 columns as ldapsearch does.
pub fn write_line(out: &mut String, name: &str, value: &[u8]) {
    let mut line = String::with_capacity(name.len() + value.len() + 4);
    line.push_str(name);
    if is_safe(value) {
        line.push_str(": ");
        // Safe strings are ASCII.
        line.extend(value.iter().map(|&b| b as char));
    } else {
        line.push_str(":: ");
        line.push_str(&BASE64.encode(value));
    }
    fold(out, &line);
}

fn fold(out: &mut String, line: &str) {
    const WIDTH: usize = 76;
    let mut rest = line;
    let mut first = true;
    loop {
        let width = if first { WIDTH } else { WIDTH - 1 };
        if rest.len() <= width {
            if !first {
                out.push(' ');
            }
            out.push_str(rest);
            out.push('\n');
            return;
        }
        // Folded lines are ASCII (safe strings and base64), so any byte is a boundary.
        let (head, tail) = rest.split_at(width);
        if !first {
            out.push(' ');
        }
        out.push_str(head);
        out.push('\n');
        rest = tail;
        first = false;
    }
}

/// Appends an entry as an LDIF content record (attributes in the entry's order), followed
/// by an empty line.
pub fn write_entry(out: &mut String, entry: &Entry) {
    write_line(out, "dn", entry.dn().as_str().as_bytes());
    for attr in entry.attributes() {
        for value in &attr.values {
            write_line(out, attr.desc.as_str(), value);
        }
    }
    out.push('\n');
}

/// An entry as an LDIF content record.
pub fn entry_to_string(entry: &Entry) -> String {
    let mut out = String::new();
    write_entry(&mut out, entry);
    out
}

impl std::fmt::Display for ModOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModOp::Add => "add",
            ModOp::Delete => "delete",
            ModOp::Replace => "replace",
            ModOp::Increment => "increment",
        })
    }
}

/// Renders a change record as LDIF (what [`parse`] reads back).
pub fn change_to_string(record: &ChangeRecord) -> String {
    let mut out = String::new();
    write_line(&mut out, "dn", record.dn.as_str().as_bytes());
    for control in &record.controls {
        let mut line = format!("control: {}", control.oid);
        if control.critical {
            line.push_str(" true");
        }
        if let Some(value) = &control.value {
            let _ = write!(line, ":: {}", BASE64.encode(value));
        }
        fold(&mut out, &line);
    }
    match &record.change {
        Change::Add(entry) => {
            out.push_str("changetype: add\n");
            for attr in entry.attributes() {
                for value in &attr.values {
                    write_line(&mut out, attr.desc.as_str(), value);
                }
            }
        }
        Change::Delete => out.push_str("changetype: delete\n"),
        Change::Modify(mods) => {
            out.push_str("changetype: modify\n");
            for m in mods {
                write_line(&mut out, &m.op.to_string(), m.attr.as_str().as_bytes());
                for value in &m.values {
                    write_line(&mut out, m.attr.as_str(), value);
                }
                out.push_str("-\n");
            }
        }
        Change::ModRdn {
            new_rdn,
            delete_old_rdn,
            new_superior,
        } => {
            out.push_str("changetype: modrdn\n");
            write_line(&mut out, "newrdn", new_rdn.as_str().as_bytes());
            let _ = writeln!(out, "deleteoldrdn: {}", u8::from(*delete_old_rdn));
            if let Some(superior) = new_superior {
                write_line(&mut out, "newsuperior", superior.as_str().as_bytes());
            }
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests;
