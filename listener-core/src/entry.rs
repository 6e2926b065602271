//! LDAP entries: a DN plus attributes whose descriptions compare case-insensitively and
//! whose values are bytes.

use std::borrow::Cow;
use std::collections::BTreeSet;

use crate::attr::AttributeDescription;
use crate::dn::Dn;
use crate::matching::MatchingRule;
use crate::schema::Schema;

/// Attributes slapd maintains on every entry; a change to these alone is not a change a
/// module that lists `attributes` cares about (semantics §5 and §7).
pub const METADATA_ATTRIBUTES: &[&str] = &[
    "createTimestamp",
    "creatorsName",
    "entryCSN",
    "entryDN",
    "entryUUID",
    "hasSubordinates",
    "modifiersName",
    "modifyTimestamp",
    "structuralObjectClass",
    "subschemaSubentry",
    "contextCSN",
];

/// Whether an attribute description names one of the [`METADATA_ATTRIBUTES`].
pub fn is_metadata(desc: &AttributeDescription) -> bool {
    METADATA_ATTRIBUTES
        .iter()
        .any(|m| m.eq_ignore_ascii_case(desc.type_key()))
}

/// One attribute of an entry: its description and its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub desc: AttributeDescription,
    pub values: Vec<Vec<u8>>,
}

/// An LDAP entry.
///
/// ```
/// use listener_core::{Dn, Entry};
/// let mut e = Entry::new(Dn::parse("uid=alice,dc=example,dc=com").unwrap());
/// e.insert("mail", ["alice@example.com"]).unwrap();
/// assert_eq!(e.first_str("MAIL"), Some("alice@example.com"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    dn: Dn,
    attrs: Vec<Attribute>,
}

impl Entry {
    /// An entry with no attributes.
    pub fn new(dn: Dn) -> Entry {
        Entry {
            dn,
            attrs: Vec::new(),
        }
    }

    pub fn dn(&self) -> &Dn {
        &self.dn
    }

    pub fn set_dn(&mut self, dn: Dn) {
        self.dn = dn;
    }

    /// Whether the entry has no attributes (the "empty" old/new of a create/delete).
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }

    /// All attributes, in insertion order.
    pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.attrs.iter()
    }

    fn position(&self, name: &str) -> Option<usize> {
        // Fast path: the spelling or canonical key matches without allocating.
        if let Some(i) = self.attrs.iter().position(|a| {
            a.desc.as_str().eq_ignore_ascii_case(name) || a.desc.key().eq_ignore_ascii_case(name)
        }) {
            return Some(i);
        }
        let desc = AttributeDescription::parse(name).ok()?;
        self.attrs.iter().position(|a| a.desc == desc)
    }

    /// All values of an attribute (name case-insensitive, aliases resolved).
    pub fn get(&self, name: &str) -> Option<&[Vec<u8>]> {
        self.position(name).map(|i| self.attrs[i].values.as_slice())
    }

    /// The first value of an attribute.
    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.get(name)?.first().map(Vec::as_slice)
    }

    /// The first value of an attribute as UTF-8; `None` if absent or not UTF-8.
    pub fn first_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.first(name)?).ok()
    }

    /// The values of an attribute that are valid UTF-8.
    pub fn strs<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.get(name)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| std::str::from_utf8(v).ok())
    }

    /// Whether the entry has the attribute.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets an attribute's values, replacing any it had; an empty list removes it.
    pub fn insert<I, V>(&mut self, name: &str, values: I) -> Result<(), crate::AttributeError>
    where
        I: IntoIterator<Item = V>,
        V: Into<Vec<u8>>,
    {
        let values: Vec<Vec<u8>> = values.into_iter().map(Into::into).collect();
        match self.position(name) {
            Some(i) if values.is_empty() => {
                self.attrs.remove(i);
            }
            Some(i) => self.attrs[i].values = values,
            None if values.is_empty() => {}
            None => self.attrs.push(Attribute {
                desc: AttributeDescription::parse(name)?,
                values,
            }),
        }
        Ok(())
    }

    /// Adds one value to an attribute, creating it if needed.
    pub fn push_value(
        &mut self,
        name: &str,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), crate::AttributeError> {
        // The values of one attribute usually come one after the other.
        if let Some(last) = self.attrs.last_mut()
            && last.desc.as_str() == name
        {
            last.values.push(value.into());
            return Ok(());
        }
        let desc = AttributeDescription::parse(name)?;
        match self.attrs.iter_mut().find(|a| a.desc == desc) {
            Some(attr) => attr.values.push(value.into()),
            None => self.attrs.push(Attribute {
                desc,
                values: vec![value.into()],
            }),
        }
        Ok(())
    }

    /// Removes an attribute, returning its values.
    pub fn remove(&mut self, name: &str) -> Option<Vec<Vec<u8>>> {
        self.position(name).map(|i| self.attrs.remove(i).values)
    }

    /// Removes the values of an attribute equal to `value` under its equality matching
    /// rule (as [`Entry::has_value`] compares them), and the attribute once it has none.
    pub fn remove_value(&mut self, name: &str, value: &[u8]) {
        let Some(i) = self.position(name) else {
            return;
        };
        let rule = equality_rule(&self.attrs[i]);
        let key = normalized(rule, value).into_owned();
        self.attrs[i]
            .values
            .retain(|v| normalized(rule, v).as_ref() != key.as_slice());
        if self.attrs[i].values.is_empty() {
            self.attrs.remove(i);
        }
    }

    /// Whether an attribute holds a value equal to `value` under the attribute's equality
    /// matching rule (bytes compared exactly where the rule cannot judge).
    ///
    /// ```
    /// use listener_core::{Dn, Entry};
    /// let mut e = Entry::new(Dn::parse("cn=g,dc=x").unwrap());
    /// e.insert("member", ["uid=Alice, dc=X"]).unwrap();
    /// assert!(e.has_value("member", b"UID=alice,dc=x"));
    /// ```
    pub fn has_value(&self, name: &str, value: &[u8]) -> bool {
        let Some(attr) = self.position(name).and_then(|i| self.attrs.get(i)) else {
            return false;
        };
        let rule = equality_rule(attr);
        let key = normalized(rule, value);
        attr.values.iter().any(|v| normalized(rule, v) == key)
    }
}

fn equality_rule(attr: &Attribute) -> Option<MatchingRule> {
    Schema::builtin().rules(attr.desc.type_key()).equality
}

/// A value's normal form under `rule`; the bytes themselves where there is no rule or the
/// value is invalid for it (so an invalid value equals only itself).
fn normalized(rule: Option<MatchingRule>, value: &[u8]) -> Cow<'_, [u8]> {
    rule.and_then(|r| r.normalize(value))
        .unwrap_or(Cow::Borrowed(value))
}

/// The normalized value set of an attribute under its equality rule.
fn value_set(attr: &Attribute) -> BTreeSet<Cow<'_, [u8]>> {
    let rule = equality_rule(attr);
    attr.values.iter().map(|v| normalized(rule, v)).collect()
}

/// The attributes whose value *sets* differ between `old` and `new` under their equality
/// matching rules (added, removed or changed), sorted, without the
/// [`METADATA_ATTRIBUTES`].
pub fn diff(old: &Entry, new: &Entry) -> Vec<AttributeDescription> {
    diff_with(old, new, false)
}

/// Like [`diff`], including metadata attributes when `include_metadata` is set.
pub fn diff_with(old: &Entry, new: &Entry, include_metadata: bool) -> Vec<AttributeDescription> {
    let mut changed = BTreeSet::new();
    for a in &old.attrs {
        let differs = match new.attrs.iter().find(|b| b.desc == a.desc) {
            // Byte-identical values (the common case) are the same set; only values
            // that differ in bytes or order need their matching rule.
            Some(b) => a.values != b.values && value_set(a) != value_set(b),
            None => true,
        };
        if differs {
            changed.insert(a.desc.clone());
        }
    }
    for b in &new.attrs {
        if !old.attrs.iter().any(|a| a.desc == b.desc) {
            changed.insert(b.desc.clone());
        }
    }
    changed
        .into_iter()
        .filter(|d| include_metadata || !is_metadata(d))
        .collect()
}

impl Entry {
    /// See [`diff`]: the attributes that differ from `old` to `self`.
    pub fn diff(old: &Entry, new: &Entry) -> Vec<AttributeDescription> {
        diff(old, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_values_join_their_attribute_under_any_spelling() {
        let mut e = Entry::new(Dn::parse("cn=x,dc=example").unwrap());
        for (name, value) in [
            ("cn", "a"),
            ("cn", "b"),
            ("sn", "s"),
            ("commonName", "c"),
            ("2.5.4.3", "d"),
            ("cn;lang-de", "e"),
        ] {
            e.push_value(name, value).unwrap();
        }
        assert_eq!(e.get("CN").unwrap(), [b"a", b"b", b"c", b"d"]);
        assert_eq!(e.get("cn;Lang-DE").unwrap(), [b"e"]);
        let spellings: Vec<String> = e.attributes().map(|a| a.desc.to_string()).collect();
        assert_eq!(spellings, ["cn", "sn", "cn;lang-de"]);
        assert!(e.push_value("c n", "x").is_err());
    }

    fn entry(attrs: &[(&str, &[&str])]) -> Entry {
        let mut e = Entry::new(Dn::parse("cn=x,dc=example").unwrap());
        for (name, values) in attrs {
            e.insert(name, values.iter().map(|v| v.as_bytes().to_vec()))
                .unwrap();
        }
        e
    }

    #[test]
    fn names_are_case_insensitive() {
        let e = entry(&[("objectClass", &["top", "person"])]);
        assert_eq!(e.get("objectclass").unwrap().len(), 2);
        assert_eq!(e.first_str("OBJECTCLASS"), Some("top"));
        assert!(e.get("sn").is_none());
    }

    #[test]
    fn diff_compares_value_sets_and_skips_metadata() {
        let old = entry(&[
            ("cn", &["A", "b"]),
            ("sn", &["x"]),
            ("entryCSN", &["1"]),
            ("mail", &["m"]),
        ]);
        let new = entry(&[
            ("CN", &["b", "a"]),
            ("sn", &["y"]),
            ("entryCSN", &["2"]),
            ("description", &["d"]),
        ]);
        let names: Vec<String> = diff(&old, &new)
            .iter()
            .map(|d| d.key().to_owned())
            .collect();
        assert_eq!(names, ["description", "mail", "sn"]);
        let all: Vec<String> = diff_with(&old, &new, true)
            .iter()
            .map(|d| d.key().to_owned())
            .collect();
        assert_eq!(all, ["description", "entrycsn", "mail", "sn"]);
    }

    #[test]
    fn diff_uses_matching_rules() {
        let old = entry(&[
            ("member", &["uid=Alice,dc=X", "uid=bob,dc=x"]),
            ("uidNumber", &["42"]),
            ("mail", &["A@Example.com"]),
            ("userPassword", &["secret"]),
            ("description", &["two  spaces"]),
            ("entryUUID", &["0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"]),
        ]);
        let new = entry(&[
            (
                "member",
                &["uid=bob, dc=X", "UID=alice,DC=x", "uid=alice,dc=x"],
            ),
            ("uidnumber", &["42"]),
            ("rfc822Mailbox", &["a@example.COM"]),
            ("userPassword", &["Secret"]),
            ("description", &[" Two Spaces "]),
            ("entryUUID", &["0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"]),
        ]);
        let names: Vec<String> = diff_with(&old, &new, true)
            .iter()
            .map(|d| d.key().to_owned())
            .collect();
        assert_eq!(names, ["userpassword"]);
        assert!(new.has_value("uidNumber", b"42"));
        assert!(old.has_value("uidNumber", b"42"));
        assert!(!old.has_value("uidNumber", b"43"));
        assert!(!new.has_value("userPassword", b"secret"));
        assert!(new.has_value("2.5.4.31", b"uid=ALICE,dc=x"));
        assert!(!new.has_value("sn", b"x"));
    }

    #[test]
    fn options_make_distinct_attributes() {
        let old = entry(&[("cn;lang-de", &["x"]), ("cn", &["x"])]);
        let new = entry(&[("CN;Lang-DE", &["y"]), ("commonName", &["X"])]);
        let names: Vec<String> = diff(&old, &new)
            .iter()
            .map(|d| d.key().to_owned())
            .collect();
        assert_eq!(names, ["cn;lang-de"]);
        assert_eq!(new.first_str("cn;lang-de"), Some("y"));
        assert_eq!(new.first_str("cn"), Some("X"));
    }
}
