//! What replicating an object to a replica writes, decided without I/O (the runtime's
//! coming `replication` module sends it; docs/semantics.md §8): which attributes may be
//! written, and the change records (the [`crate::ldif`] model, so that a rejected one is
//! written to `failed.ldif` as it was sent) of an add, of the minimal modify of the
//! replica's entry into the primary's and of the modrdn of a move; and whether a state is
//! newer than the replica's.
//!
//! Values are compared byte for byte, not by matching rule: a replica is a faithful copy,
//! so a change of spelling is a change.

use crate::dn::Dn;
use crate::entry::Entry;
use crate::ldif::{Change, ChangeRecord, ModOp, Modification};

/// Attributes a replica's slapd maintains itself, or that hold its local state: never
/// written (compared lower-cased).
pub const NOT_REPLICATED: &[&str] = &[
    "subschemasubentry",
    "hassubordinates",
    "entrydn",
    "contextcsn",
    "pwdchangedtime",
    "pwdaccountlockedtime",
    "pwdfailuretime",
    "pwdhistory",
    "pwdgraceusetime",
    "pwdreset",
    "pwdpolicysubentry",
    "numsubordinates",
    // Kept by the replica's own memberof overlay, from the groups it replicates.
    "memberof",
];

/// Multi-valued membership attributes: changed by value deltas, never replaced, so that a
/// group of 1,000 members gaining one writes one value (compared lower-cased).
pub const DELTA_ATTRIBUTES: &[&str] = &["member", "uniquemember", "memberuid"];

/// Sent on every modify, so that the replica's slapd does not stamp values of its own
/// (compared lower-cased).
pub const STAMPS: &[&str] = &["entrycsn", "modifytimestamp", "modifiersname"];

/// Whether the attribute `name` (a description, options included) is written to a
/// replica.
pub fn is_replicated(name: &str) -> bool {
    let base = name.split(';').next().unwrap_or(name).to_ascii_lowercase();
    !NOT_REPLICATED.contains(&base.as_str())
}

/// The add of `entry` to a replica: every attribute but [`NOT_REPLICATED`], the
/// operational ones a replica's updatedn may set (entryUUID, entryCSN, timestamps,
/// creatorsName, modifiersName, structuralObjectClass) included.
pub fn add(entry: &Entry) -> ChangeRecord {
    let mut copy = Entry::new(entry.dn().clone());
    for attr in entry
        .attributes()
        .filter(|a| is_replicated(a.desc.as_str()))
    {
        for value in &attr.values {
            // The names come from an entry: they parse.
            let _ = copy.push_value(attr.desc.as_str(), value.clone());
        }
    }
    record(entry.dn(), Change::Add(copy))
}

fn record(dn: &Dn, change: Change) -> ChangeRecord {
    ChangeRecord {
        dn: dn.clone(),
        controls: Vec::new(),
        change,
    }
}

/// The minimal modify that turns the replica's `local` entry into the primary's `new`:
/// nothing for an attribute whose values are the same bytes; value deltas for the
/// membership attributes; add, delete or replace for the others; and all the stamps
/// ([`STAMPS`]) whenever anything changes, a stamp included (a no-op modify on the
/// primary moves its entryCSN, and the copy follows). Empty when there is nothing to
/// write.
pub fn modifications(local: &Entry, new: &Entry) -> Vec<Modification> {
    let change = |op, attr: &crate::entry::Attribute, values| Modification {
        op,
        attr: attr.desc.clone(),
        values,
    };
    let mut changes = Vec::new();
    let mut stamps = Vec::new();
    let mut stamped = false;
    for attr in new.attributes() {
        let name = attr.desc.as_str();
        if !is_replicated(name) {
            continue;
        }
        let key = name.to_ascii_lowercase();
        let old = local.get(name).unwrap_or(&[]);
        if STAMPS.contains(&key.as_str()) {
            stamped |= !same_values(old, &attr.values);
            stamps.push(change(ModOp::Replace, attr, attr.values.clone()));
            continue;
        }
        if same_values(old, &attr.values) {
            continue;
        }
        if old.is_empty() {
            changes.push(change(ModOp::Add, attr, attr.values.clone()));
        } else if DELTA_ATTRIBUTES.contains(&key.as_str()) {
            let gone: Vec<Vec<u8>> = old
                .iter()
                .filter(|v| !attr.values.contains(v))
                .cloned()
                .collect();
            let added: Vec<Vec<u8>> = attr
                .values
                .iter()
                .filter(|v| !old.contains(v))
                .cloned()
                .collect();
            if !gone.is_empty() {
                changes.push(change(ModOp::Delete, attr, gone));
            }
            if !added.is_empty() {
                changes.push(change(ModOp::Add, attr, added));
            }
        } else {
            changes.push(change(ModOp::Replace, attr, attr.values.clone()));
        }
    }
    for attr in local.attributes() {
        let name = attr.desc.as_str();
        if is_replicated(name) && !new.contains(name) {
            changes.push(change(ModOp::Delete, attr, Vec::new()));
        }
    }
    if !changes.is_empty() || stamped {
        changes.extend(stamps);
    }
    changes
}

/// The modify record of [`modifications`], at the replica's DN of the object; `None` when
/// there is nothing to write.
pub fn modify(local: &Entry, new: &Entry) -> Option<ChangeRecord> {
    let changes = modifications(local, new);
    (!changes.is_empty()).then(|| record(local.dn(), Change::Modify(changes)))
}

fn same_values(a: &[Vec<u8>], b: &[Vec<u8>]) -> bool {
    a.len() == b.len() && b.iter().all(|v| a.contains(v))
}

/// The modrdn that moves the replica's object at `local_dn` to `new`'s DN: the new RDN,
/// `deleteoldrdn` when some value of the old RDN is gone from the new entry, and
/// `newSuperior` when the parent changed. `None` when the DN is the same (compared
/// normalized) or either DN has no RDN.
pub fn rename(local_dn: &Dn, new: &Entry) -> Option<ChangeRecord> {
    let new_dn = new.dn();
    if local_dn.normalized() == new_dn.normalized() {
        return None;
    }
    let old_rdn = local_dn.rdn()?;
    let new_rdn = new_dn.rdn()?;
    let delete_old_rdn = old_rdn
        .avas()
        .iter()
        .any(|ava| !new.has_value(ava.attr(), ava.string_value()));
    let (old_parent, new_parent) = (local_dn.parent(), new_dn.parent());
    let moved = old_parent.as_ref().map(Dn::normalized) != new_parent.as_ref().map(Dn::normalized);
    let change = Change::ModRdn {
        new_rdn: new_rdn.clone(),
        delete_old_rdn,
        new_superior: new_parent.filter(|_| moved),
    };
    Some(record(local_dn, change))
}

/// The replica's entry after the modrdn `rename` (made by [`rename`]) of `local`, as
/// slapd makes it (RFC 4511 §4.9): at the new DN, holding the new RDN's values, and
/// without the old RDN's when `deleteoldrdn` is set; values compared by their matching
/// rules. The stamps are still `local`'s (those of the modrdn are the replica's own,
/// which the modify that follows replaces). `None` for a record that is not a modrdn.
pub fn renamed(local: &Entry, rename: &ChangeRecord) -> Option<Entry> {
    let Change::ModRdn {
        new_rdn,
        delete_old_rdn,
        new_superior,
    } = &rename.change
    else {
        return None;
    };
    let mut entry = local.clone();
    entry.set_dn(rename.dn.rename(new_rdn, new_superior.as_ref()));
    if *delete_old_rdn && let Some(old_rdn) = rename.dn.rdn() {
        for ava in old_rdn.avas() {
            entry.remove_value(ava.attr(), ava.string_value());
        }
    }
    for ava in new_rdn.avas() {
        if !entry.has_value(ava.attr(), ava.string_value()) {
            entry
                .push_value(ava.attr(), ava.string_value().to_vec())
                .ok()?;
        }
    }
    Some(entry)
}

/// Whether the primary's state with `new_csn` should be written over the replica's with
/// `local_csn`: not when the replica's is newer or the same (a replayed transaction, or
/// a state older than the replica's). An entry without a CSN is always written. CSNs
/// (`YYYYmmddHHMMSS.uuuuuuZ#count#sid#mod`) compare as strings.
pub fn is_newer(new_csn: Option<&str>, local_csn: Option<&str>) -> bool {
    match (new_csn, local_csn) {
        (Some(new), Some(local)) => new > local,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &[&str])]) -> Entry {
        let mut e = Entry::new(Dn::parse(dn).unwrap());
        for (name, values) in attrs {
            e.insert(name, values.iter().map(|v| v.as_bytes().to_vec()))
                .unwrap();
        }
        e
    }

    /// Applies `changes` to `local` as slapd would.
    fn apply(local: &Entry, changes: &[Modification]) -> Entry {
        let mut e = local.clone();
        for m in changes {
            let a = m.attr.as_str();
            match m.op {
                ModOp::Add => {
                    for v in &m.values {
                        e.push_value(a, v.clone()).unwrap();
                    }
                }
                ModOp::Delete if m.values.is_empty() => {
                    e.remove(a);
                }
                ModOp::Delete => {
                    let kept: Vec<Vec<u8>> = e
                        .get(a)
                        .unwrap_or(&[])
                        .iter()
                        .filter(|v| !m.values.contains(v))
                        .cloned()
                        .collect();
                    e.insert(a, kept).unwrap();
                }
                ModOp::Replace => e.insert(a, m.values.clone()).unwrap(),
                ModOp::Increment => unreachable!("never planned"),
            }
        }
        e
    }

    /// The replicated attributes of `e`, names lower-cased, values sorted.
    fn replicated(e: &Entry) -> Vec<(String, Vec<Vec<u8>>)> {
        let Change::Add(copy) = add(e).change else {
            panic!("an add");
        };
        let mut attrs: Vec<(String, Vec<Vec<u8>>)> = copy
            .attributes()
            .map(|a| {
                let mut values = a.values.clone();
                values.sort();
                (a.desc.as_str().to_ascii_lowercase(), values)
            })
            .collect();
        attrs.sort();
        attrs
    }

    fn m(op: ModOp, attr: &str, values: &[&[u8]]) -> Modification {
        Modification {
            op,
            attr: crate::AttributeDescription::parse(attr).unwrap(),
            values: values.iter().map(|v| v.to_vec()).collect(),
        }
    }

    #[test]
    fn local_state_and_maintained_attributes_are_not_replicated() {
        assert!(!is_replicated("pwdFailureTime"));
        assert!(!is_replicated("contextCSN"));
        assert!(!is_replicated("hasSubordinates"));
        assert!(!is_replicated("memberOf"));
        assert!(is_replicated("entryUUID"));
        assert!(is_replicated("entryCSN"));
        assert!(is_replicated("userCertificate;binary"));
        let e = entry(
            "uid=a,dc=x",
            &[
                ("uid", &["a"]),
                ("entryUUID", &["1"]),
                ("pwdFailureTime", &["20260101000000Z"]),
                ("subschemaSubentry", &["cn=Subschema"]),
            ],
        );
        let Change::Add(copy) = add(&e).change else {
            panic!("an add");
        };
        let names: Vec<&str> = copy.attributes().map(|a| a.desc.as_str()).collect();
        assert_eq!(names, ["uid", "entryUUID"]);
    }

    #[test]
    fn a_group_gaining_one_member_writes_one_value_and_the_stamps() {
        let members: Vec<String> = (0..1000).map(|i| format!("uid=u{i},dc=x")).collect();
        let refs: Vec<&str> = members.iter().map(String::as_str).collect();
        let local = entry(
            "cn=g,dc=x",
            &[("cn", &["g"]), ("member", &refs), ("entryCSN", &["1"])],
        );
        let mut more = refs.clone();
        more.push("uid=new,dc=x");
        let new = entry(
            "cn=g,dc=x",
            &[("cn", &["g"]), ("member", &more), ("entryCSN", &["2"])],
        );
        let changes = modifications(&local, &new);
        assert_eq!(
            changes,
            [
                m(ModOp::Add, "member", &[b"uid=new,dc=x"]),
                m(ModOp::Replace, "entryCSN", &[b"2"]),
            ]
        );
        // And losing one: one value deleted.
        let changes = modifications(&new, &local);
        assert_eq!(changes[0], m(ModOp::Delete, "member", &[b"uid=new,dc=x"]));
    }

    #[test]
    fn unchanged_attributes_are_not_rewritten_and_nothing_changed_writes_nothing() {
        let local = entry(
            "uid=a,dc=x",
            &[("uid", &["a"]), ("cn", &["A"]), ("entryCSN", &["1"])],
        );
        let new = entry(
            "uid=a,dc=x",
            &[("uid", &["a"]), ("cn", &["A"]), ("entryCSN", &["2"])],
        );
        // Nothing differs: nothing to write.
        assert!(modifications(&new, &new).is_empty());
        // Only the stamp differs: the stamp alone.
        assert_eq!(
            modifications(&local, &new),
            [m(ModOp::Replace, "entryCSN", &[b"2"])]
        );
        // A change of spelling is a change (a faithful copy).
        let respelled = entry(
            "uid=a,dc=x",
            &[("uid", &["a"]), ("cn", &["a"]), ("entryCSN", &["2"])],
        );
        assert_eq!(
            modifications(&local, &respelled)[0],
            m(ModOp::Replace, "cn", &[b"a"])
        );
    }

    #[test]
    fn applying_the_modifications_gives_the_primarys_state() {
        let local = entry(
            "uid=a,dc=x",
            &[
                ("uid", &["a"]),
                ("cn", &["A"]),
                ("mail", &["a@x", "b@x"]),
                ("memberUid", &["p", "q"]),
                ("description", &["gone"]),
                ("pwdFailureTime", &["local"]),
                ("entryCSN", &["1"]),
            ],
        );
        let new = entry(
            "uid=a,dc=x",
            &[
                ("uid", &["a"]),
                ("cn", &["A"]),
                ("mail", &["b@x", "c@x"]),
                ("memberUid", &["q", "r"]),
                ("sn", &["new"]),
                ("entryCSN", &["2"]),
                ("modifyTimestamp", &["20261204000000Z"]),
            ],
        );
        let changed = apply(&local, &modifications(&local, &new));
        assert_eq!(replicated(&changed), replicated(&new));
        // The replica's local password-policy state is left alone.
        assert_eq!(changed.first_str("pwdFailureTime"), Some("local"));
    }

    /// The modrdn parts of [`rename`]'s record.
    fn modrdn(local: &Dn, new: &Entry) -> Option<(String, bool, Option<String>)> {
        let record = rename(local, new)?;
        assert_eq!(&record.dn, local);
        match record.change {
            Change::ModRdn {
                new_rdn,
                delete_old_rdn,
                new_superior,
            } => Some((
                new_rdn.as_str().to_owned(),
                delete_old_rdn,
                new_superior.map(|s| s.as_str().to_owned()),
            )),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_move_is_a_modrdn_with_new_superior_and_delete_old_rdn_as_needed() {
        let local = Dn::parse("uid=a,ou=old,dc=x").unwrap();
        let moved = entry("uid=a,ou=new,dc=x", &[("uid", &["a"])]);
        assert_eq!(
            modrdn(&local, &moved),
            Some(("uid=a".into(), false, Some("ou=new,dc=x".into())))
        );
        let renamed = entry("uid=b,ou=old,dc=x", &[("uid", &["b"])]);
        assert_eq!(modrdn(&local, &renamed), Some(("uid=b".into(), true, None)));
        // The old value kept as a second value: deleteoldrdn is false.
        let kept = entry("uid=b,ou=old,dc=x", &[("uid", &["b", "a"])]);
        assert_eq!(modrdn(&local, &kept).map(|r| r.1), Some(false));
        // The same DN, spelled otherwise: no modrdn.
        let same = entry("UID=a,OU=old,DC=x", &[("uid", &["a"])]);
        assert_eq!(modrdn(&local, &same), None);
    }

    #[test]
    fn a_renamed_entry_holds_the_new_rdn_and_loses_the_old_one_as_slapd_does() {
        let local = entry(
            "cn=Old,ou=a,dc=x",
            &[("cn", &["old", "other"]), ("entryCSN", &["1"])],
        );
        // Renamed and moved, the old value gone (matched case-insensitively, as cn's
        // rule says), the new one added.
        let new = entry("cn=New,ou=b,dc=x", &[("cn", &["New", "other"])]);
        let record = rename(local.dn(), &new).unwrap();
        let moved = renamed(&local, &record).unwrap();
        assert_eq!(moved.dn().as_str(), "cn=New,ou=b,dc=x");
        assert_eq!(moved.strs("cn").collect::<Vec<_>>(), ["other", "New"]);
        assert_eq!(moved.first_str("entryCSN"), Some("1"), "stamps untouched");
        // Moved only: the values stay as they were.
        let new = entry("cn=Old,ou=b,dc=x", &[("cn", &["old", "other"])]);
        let moved = renamed(&local, &rename(local.dn(), &new).unwrap()).unwrap();
        assert_eq!(moved.dn().as_str(), "cn=Old,ou=b,dc=x");
        assert_eq!(moved.strs("cn").collect::<Vec<_>>(), ["old", "other"]);
        // The old value kept (deleteoldrdn off): both.
        let new = entry("cn=New,ou=a,dc=x", &[("cn", &["New", "old", "other"])]);
        let moved = renamed(&local, &rename(local.dn(), &new).unwrap()).unwrap();
        assert_eq!(
            moved.strs("cn").collect::<Vec<_>>(),
            ["old", "other", "New"]
        );
        // Not a modrdn: nothing.
        assert_eq!(renamed(&local, &add(&local)), None);
    }

    #[test]
    fn the_records_read_back_as_ldif_for_failed_ldif() {
        let local = entry("cn=g,dc=x", &[("cn", &["g"]), ("member", &["uid=a,dc=x"])]);
        let new = entry(
            "cn=g,dc=x",
            &[("cn", &["g"]), ("member", &["uid=a,dc=x", "uid=b,dc=x"])],
        );
        for record in [
            add(&new),
            modify(&local, &new).unwrap(),
            rename(&Dn::parse("cn=h,dc=x").unwrap(), &new).unwrap(),
        ] {
            let text = crate::ldif::change_to_string(&record);
            let parsed = crate::ldif::parse(&text).unwrap();
            assert_eq!(parsed, [crate::ldif::Record::Change(record)], "{text}");
        }
        assert_eq!(modify(&new, &new), None);
    }

    proptest::proptest! {
        #[test]
        fn the_modifications_always_lead_to_the_primarys_state(
            local in attributes(), new in attributes()
        ) {
            let local = from(&local);
            let new = from(&new);
            let changed = apply(&local, &modifications(&local, &new));
            proptest::prop_assert_eq!(replicated(&changed), replicated(&new));
        }
    }

    /// Up to 5 attributes of a small vocabulary (membership and stamps included), up to
    /// 4 distinct values each.
    fn attributes() -> impl proptest::strategy::Strategy<Value = Vec<(String, Vec<String>)>> {
        use proptest::prelude::*;
        let names = prop::sample::select(vec![
            "cn",
            "mail",
            "member",
            "memberUid",
            "entryCSN",
            "description",
            "pwdReset",
        ]);
        let values = prop::collection::btree_set("[a-c]{1,2}", 1..4);
        prop::collection::btree_map(names, values, 0..5).prop_map(|attrs| {
            attrs
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.into_iter().collect()))
                .collect()
        })
    }

    fn from(attrs: &[(String, Vec<String>)]) -> Entry {
        let mut e = Entry::new(Dn::parse("cn=p,dc=x").unwrap());
        for (name, values) in attrs {
            e.insert(name, values.iter().map(|v| v.as_bytes().to_vec()))
                .unwrap();
        }
        e
    }

    #[test]
    fn only_a_newer_csn_is_written() {
        let older = "20261204000000.000001Z#000000#000#000000";
        let newer = "20261204000000.000002Z#000000#000#000000";
        assert!(is_newer(Some(newer), Some(older)));
        assert!(!is_newer(Some(older), Some(newer)));
        assert!(
            !is_newer(Some(newer), Some(newer)),
            "a replay is not written"
        );
        assert!(is_newer(Some(newer), None));
        assert!(is_newer(None, Some(older)));
    }
}
