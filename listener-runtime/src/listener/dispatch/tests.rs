//! The rules of semantics §5 and the move delivery of §4, each on small hand-made entries,
//! and the §10 scenarios that can be expressed as single `plan` calls.

use super::*;

mod invariants;

// ---- builders -------------------------------------------------------------------------

fn dn(text: &str) -> Dn {
    Dn::parse(text).unwrap()
}

/// An object with `objectClass: person`, the RDN value as `cn`, an entryUUID and a CSN.
fn obj(at: &str, uuid: &str) -> Entry {
    let dn = dn(at);
    let mut e = Entry::new(dn.clone());
    e.insert("objectClass", ["top", "person"]).unwrap();
    let rdn = dn.rdn().unwrap().avas()[0].value().to_vec();
    e.insert("cn", [rdn]).unwrap();
    e.insert("entryUUID", [uuid]).unwrap();
    e.insert("entryCSN", ["1"]).unwrap();
    e
}

/// `e` with `name` set to `values` (removed when empty).
fn with(e: &Entry, name: &str, values: &[&str]) -> Entry {
    let mut e = e.clone();
    e.insert(name, values.iter().copied()).unwrap();
    e
}

/// What the listener caches after a modrdn: the DN and the RDN value changed.
fn patch(old: &Entry, new_dn: &str) -> Entry {
    let new_dn = dn(new_dn);
    let mut e = old.clone();
    let rdn = new_dn.rdn().unwrap().avas()[0].value().to_vec();
    e.insert("cn", [rdn]).unwrap();
    e.set_dn(new_dn);
    e
}

/// What LDAP returns after a modrdn: the patched state with slapd's metadata updated.
fn after_modrdn(patched: &Entry) -> Entry {
    with(patched, "entryCSN", &["2"])
}

fn spec(name: &str, filter: &str, form: ModuleForm, asynchronous: bool) -> ModuleSpec {
    let mut config = ModuleConfig::new(name, "", filter, form);
    config.run_asynchronously = asynchronous;
    ModuleSpec::from_config(&config, Schema::builtin()).unwrap()
}

fn new_api(name: &str, filter: &str) -> ModuleSpec {
    spec(name, filter, ModuleForm::Struct, false)
}

fn async_api(name: &str, filter: &str) -> ModuleSpec {
    spec(name, filter, ModuleForm::Struct, true)
}

/// A classic module with `modrdn`.
fn classic(name: &str, filter: &str) -> ModuleSpec {
    ModuleSpec {
        modrdn: true,
        ..spec(name, filter, ModuleForm::Function, false)
    }
}

/// A classic module without `modrdn`.
fn classic_plain(name: &str, filter: &str) -> ModuleSpec {
    spec(name, filter, ModuleForm::Function, false)
}

fn listing(mut spec: ModuleSpec, attributes: &[&str]) -> ModuleSpec {
    spec.attributes = attributes
        .iter()
        .map(|a| AttributeDescription::parse(a).unwrap())
        .collect();
    spec
}

fn names(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

const ALL: &str = "(objectClass=*)";
const PEOPLE: &str = "(objectClass=person)";

// ---- rendering ------------------------------------------------------------------------

/// `test` for `cn=test,dc=x`.
fn leaf(dn: &Dn) -> String {
    String::from_utf8_lossy(dn.rdn().unwrap().avas()[0].value()).into_owned()
}

/// The entryUUID as §10 writes it: `-` for no entry, `∅` for an empty one.
fn uuid(e: Option<&Entry>) -> String {
    match e {
        None => "-".to_owned(),
        Some(e) if e.is_empty() => "∅".to_owned(),
        Some(e) => e.first_str("entryUUID").unwrap_or("?").to_owned(),
    }
}

/// A call in the notation of semantics §10, `test(old,new,cmd)`; a new-API call names
/// its method instead of the letter, a move's modify its old DN.
fn render(call: &Call<'_>) -> String {
    match call {
        Call::Create { dn, new } => format!("{}(-,{},create)", leaf(dn), uuid(Some(new))),
        Call::Modify {
            dn,
            old,
            new,
            old_dn,
        } => {
            let from = old_dn
                .map(|d| format!(" from {}", leaf(d)))
                .unwrap_or_default();
            format!(
                "{}({},{},modify){from}",
                leaf(dn),
                uuid(Some(old)),
                uuid(Some(new))
            )
        }
        Call::Remove { dn, old } => format!("{}({},-,remove)", leaf(dn), uuid(Some(old))),
        Call::Classic {
            dn,
            new,
            old,
            command,
        } => format!("{}({},{},{command})", leaf(dn), uuid(*old), uuid(*new)),
    }
}

/// Every planned call as `module: call`, up-to-date modules as `module: up to date`.
fn trace(change: &Change<'_>, registered: &[&str], modules: &[ModuleSpec]) -> Vec<String> {
    let mut out = Vec::new();
    for p in plan(change, &names(registered), modules) {
        let name = &modules[p.module].name;
        if p.calls.is_empty() {
            out.push(format!("{name}: up to date"));
        }
        out.extend(p.calls.iter().map(|c| format!("{name}: {}", render(c))));
    }
    out
}

/// The registration change per module, in call order.
fn registrations(
    change: &Change<'_>,
    registered: &[&str],
    modules: &[ModuleSpec],
) -> Vec<(String, Registration)> {
    plan(change, &names(registered), modules)
        .into_iter()
        .map(|p| (modules[p.module].name.clone(), p.on_success))
        .collect()
}

/// The calls for the single §10 module (classic, `modrdn`, `(objectClass=*)`).
fn row(change: &Change<'_>, registered: bool) -> Vec<String> {
    let modules = [classic("test", ALL)];
    let registered: &[&str] = if registered { &["test"] } else { &[] };
    plan(change, &names(registered), &modules)
        .iter()
        .flat_map(|p| p.calls.iter().map(render))
        .collect()
}

// ---- order ----------------------------------------------------------------------------

#[test]
fn modules_run_by_ascending_priority_ties_by_name() {
    let mut modules = vec![
        new_api("b", ALL),
        new_api("a", ALL),
        new_api("c", ALL),
        new_api("replication", ALL),
    ];
    modules[2].priority = 10.0;
    modules[3].priority = 0.0;
    let new = obj("cn=test,dc=x", "a");
    let plans = plan(
        &Change::Update {
            old: None,
            new: &new,
        },
        &names(&[]),
        &modules,
    );
    let order: Vec<usize> = plans.iter().map(|p| p.module).collect();
    assert_eq!(order, [3, 2, 1, 0]);
}

// ---- rule 2 for an object the module does not know yet --------------------------------

#[test]
fn a_new_object_is_created_in_every_api() {
    let new = obj("cn=test,dc=x", "a");
    let modules = [
        new_api("new", PEOPLE),
        async_api("async", PEOPLE),
        classic("classic", PEOPLE),
        new_api("groups", "(objectClass=posixGroup)"),
    ];
    let change = Change::Update {
        old: None,
        new: &new,
    };
    assert_eq!(
        trace(&change, &[], &modules),
        [
            "async: test(-,a,create)",
            "classic: test(-,a,a)",
            "new: test(-,a,create)",
        ]
    );
    assert!(
        registrations(&change, &[], &modules)
            .iter()
            .all(|(_, r)| *r == Registration::Register)
    );
}

#[test]
fn a_registration_without_cached_entry_does_not_count() {
    let new = obj("cn=test,dc=x", "a");
    let modules = [classic("m", ALL)];
    let change = Change::Update {
        old: None,
        new: &new,
    };
    assert_eq!(trace(&change, &["m"], &modules), ["m: test(-,a,a)"]);
}

// ---- rule 1: up to date ---------------------------------------------------------------

#[test]
fn a_modify_calls_registered_modules_with_old_and_new() {
    let old = obj("cn=test,dc=x", "a");
    let new = with(&old, "description", &["changed"]);
    let modules = [new_api("new", PEOPLE), classic("classic", PEOPLE)];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(
        trace(&change, &["new", "classic"], &modules),
        ["classic: test(a,a,m)", "new: test(a,a,modify)"]
    );
    let plans = plan(&change, &names(&["new", "classic"]), &modules);
    assert_eq!(
        plans[0].calls,
        [Call::Classic {
            dn: new.dn(),
            new: Some(&new),
            old: Some(&old),
            command: Command::Modify,
        }]
    );
    assert_eq!(
        plans[1].calls,
        [Call::Modify {
            dn: new.dn(),
            old: &old,
            new: &new,
            old_dn: None,
        }]
    );
    assert!(plans.iter().all(|p| p.on_success == Registration::Register));
}

#[test]
fn nothing_changed_means_up_to_date() {
    let old = obj("cn=test,dc=x", "a");
    let modules = [classic("m", ALL), listing(classic("l", ALL), &["cn"])];
    let change = Change::Update {
        old: Some(&old),
        new: &old.clone(),
    };
    assert_eq!(
        trace(&change, &["m", "l"], &modules),
        ["l: up to date", "m: up to date"]
    );
    assert!(
        registrations(&change, &["m", "l"], &modules)
            .iter()
            .all(|(_, r)| *r == Registration::Keep)
    );
}

#[test]
fn metadata_only_changes_call_only_modules_without_attributes() {
    let old = obj("cn=test,dc=x", "a");
    let new = with(
        &with(&old, "entryCSN", &["2"]),
        "modifyTimestamp",
        &["20260101000000Z"],
    );
    let modules = [
        classic("all", ALL),
        listing(classic("listing", ALL), &["cn", "description"]),
        listing(classic("metadata", ALL), &["entryCSN"]),
    ];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(
        trace(&change, &["all", "listing", "metadata"], &modules),
        [
            "all: test(a,a,m)",
            "listing: up to date",
            "metadata: up to date"
        ]
    );
}

#[test]
fn values_equal_under_the_matching_rule_are_no_change() {
    // description is caseIgnore: another order and case of the same set is no change.
    let old = with(&obj("cn=test,dc=x", "a"), "description", &["One", "two"]);
    let new = with(&old, "description", &["TWO", "one"]);
    let modules = [classic("m", ALL)];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(trace(&change, &["m"], &modules), ["m: up to date"]);

    // memberUid is caseExactIA5: a case-only difference is a change.
    let old = with(&old, "memberUid", &["alice"]);
    let new = with(&old, "memberUid", &["Alice"]);
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(trace(&change, &["m"], &modules), ["m: test(a,a,m)"]);
}

#[test]
fn a_module_with_attributes_is_called_only_when_one_of_them_changed() {
    let old = obj("cn=test,dc=x", "a");
    let modules = [
        listing(new_api("mail", ALL), &["MAIL"]),
        listing(new_api("alias", ALL), &["rfc822Mailbox"]),
        listing(new_api("oid", ALL), &["0.9.2342.19200300.100.1.3"]),
        listing(new_api("desc", ALL), &["description"]),
    ];
    let registered = ["mail", "alias", "oid", "desc"];
    let new = with(&old, "mail", &["test@example.com"]);
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(
        trace(&change, &registered, &modules),
        [
            "alias: test(a,a,modify)",
            "desc: up to date",
            "mail: test(a,a,modify)",
            "oid: test(a,a,modify)",
        ]
    );
}

#[test]
fn a_listed_attribute_without_options_covers_its_options() {
    let old = with(&obj("cn=test,dc=x", "a"), "cn;lang-de", &["Test"]);
    let lang = with(&old, "cn;lang-de", &["Prüfung"]);
    let plain = with(&old, "cn", &["test", "other"]);
    let modules = [
        listing(new_api("cn", ALL), &["commonName"]),
        listing(new_api("de", ALL), &["cn;Lang-DE"]),
        listing(new_api("en", ALL), &["cn;lang-en"]),
    ];
    let registered = ["cn", "de", "en"];
    assert_eq!(
        trace(
            &Change::Update {
                old: Some(&old),
                new: &lang
            },
            &registered,
            &modules
        ),
        [
            "cn: test(a,a,modify)",
            "de: test(a,a,modify)",
            "en: up to date"
        ]
    );
    assert_eq!(
        trace(
            &Change::Update {
                old: Some(&old),
                new: &plain
            },
            &registered,
            &modules
        ),
        ["cn: test(a,a,modify)", "de: up to date", "en: up to date"]
    );
}

// ---- rule 2: the filter ---------------------------------------------------------------

#[test]
fn leaving_the_filter_delivers_a_remove_and_unregisters() {
    // UDL unregisters silently; we call remove (classic `d`).
    let old = obj("cn=test,dc=x", "a");
    let new = with(&old, "objectClass", &["top", "device"]);
    let modules = [new_api("new", PEOPLE), classic("classic", PEOPLE)];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(
        trace(&change, &["new", "classic"], &modules),
        ["classic: test(a,-,d)", "new: test(a,-,remove)"]
    );
    let plans = plan(&change, &names(&["new", "classic"]), &modules);
    assert_eq!(
        plans[1].calls,
        [Call::Remove {
            dn: old.dn(),
            old: Cow::Borrowed(&old)
        }]
    );
    assert!(
        plans
            .iter()
            .all(|p| p.on_success == Registration::Unregister)
    );
}

#[test]
fn entering_the_filter_on_a_modify_is_a_create() {
    let old = with(&obj("cn=test,dc=x", "a"), "objectClass", &["top", "device"]);
    let new = with(&old, "objectClass", &["top", "person"]);
    let modules = [new_api("new", PEOPLE), classic("classic", PEOPLE)];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(
        trace(&change, &[], &modules),
        ["classic: test(-,a,a)", "new: test(-,a,create)"]
    );
    assert!(
        registrations(&change, &[], &modules)
            .iter()
            .all(|(_, r)| *r == Registration::Register)
    );
}

#[test]
fn a_module_not_registered_on_a_matching_object_gets_a_create() {
    // E.g. its last call failed (semantics §5 rule 4): the next change reaches it as new.
    let old = obj("cn=test,dc=x", "a");
    let new = with(&old, "description", &["x"]);
    let modules = [classic("m", PEOPLE)];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(trace(&change, &[], &modules), ["m: test(-,a,a)"]);
}

#[test]
fn a_registered_module_whose_filter_did_not_match_old_gets_a_create() {
    let old = with(&obj("cn=test,dc=x", "a"), "objectClass", &["top", "device"]);
    let new = with(&old, "objectClass", &["top", "person"]);
    let modules = [classic("m", PEOPLE)];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(trace(&change, &["m"], &modules), ["m: test(-,a,a)"]);
}

#[test]
fn matching_neither_state_means_nothing() {
    let old = with(&obj("cn=test,dc=x", "a"), "objectClass", &["top", "device"]);
    let new = with(&old, "description", &["x"]);
    let modules = [classic("m", PEOPLE)];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert!(plan(&change, &names(&[]), &modules).is_empty());
}

#[test]
fn up_to_date_comes_before_the_filter() {
    // Rule 1 first, as written and as UDL does: the listed attributes did not change,
    // so the module keeps its registration though the object left its filter.
    let old = obj("cn=test,dc=x", "a");
    let new = with(&old, "objectClass", &["top", "device"]);
    let modules = [listing(classic("m", PEOPLE), &["mail"])];
    let change = Change::Update {
        old: Some(&old),
        new: &new,
    };
    assert_eq!(trace(&change, &["m"], &modules), ["m: up to date"]);
    // Its next change of `mail` delivers the remove.
    let later = with(&new, "mail", &["x@example.com"]);
    let change = Change::Update {
        old: Some(&new),
        new: &later,
    };
    assert_eq!(trace(&change, &["m"], &modules), ["m: test(a,-,d)"]);
}

// ---- rule 3: delete -------------------------------------------------------------------

#[test]
fn a_delete_calls_every_registered_module() {
    let old = obj("cn=test,dc=x", "a");
    let modules = [
        new_api("new", PEOPLE),
        classic("classic", PEOPLE),
        classic("other", PEOPLE),
    ];
    let change = Change::Delete {
        dn: old.dn(),
        old: Some(&old),
        cause: DeleteCause::Deleted,
    };
    assert_eq!(
        trace(&change, &["new", "classic"], &modules),
        ["classic: test(a,-,d)", "new: test(a,-,remove)"]
    );
    assert!(
        registrations(&change, &["new", "classic"], &modules)
            .iter()
            .all(|(_, r)| *r == Registration::Unregister)
    );
}

#[test]
fn handle_every_delete_gets_deletes_of_objects_it_never_saw() {
    let at = dn("cn=test,dc=x");
    let cached = with(&obj("cn=test,dc=x", "a"), "objectClass", &["top", "device"]);
    let every = |m: ModuleSpec| ModuleSpec {
        handle_every_delete: true,
        ..m
    };
    let modules = [
        every(new_api("new", PEOPLE)),
        every(classic("classic", PEOPLE)),
        classic("plain", PEOPLE),
    ];
    // Not cached at all: the new API gets an empty entry, the classic API no old.
    let uncached = Change::Delete {
        dn: &at,
        old: None,
        cause: DeleteCause::Deleted,
    };
    assert_eq!(
        trace(&uncached, &[], &modules),
        ["classic: test(-,-,d)", "new: test(∅,-,remove)"]
    );
    let plans = plan(&uncached, &names(&[]), &modules);
    assert_eq!(
        plans[1].calls,
        [Call::Remove {
            dn: &at,
            old: Cow::Owned(Entry::new(at.clone()))
        }]
    );
    // Cached, filter not matching, not registered: called with the cached state.
    let unregistered = Change::Delete {
        dn: &at,
        old: Some(&cached),
        cause: DeleteCause::Deleted,
    };
    assert_eq!(
        trace(&unregistered, &[], &modules),
        ["classic: test(a,-,d)", "new: test(a,-,remove)"]
    );
}

#[test]
fn handle_every_delete_is_for_real_deletes_only() {
    let old = obj("cn=test,dc=x", "a");
    let modules = [
        ModuleSpec {
            handle_every_delete: true,
            ..classic("every", PEOPLE)
        },
        classic("registered", PEOPLE),
    ];
    let gone = Change::Delete {
        dn: old.dn(),
        old: Some(&old),
        cause: DeleteCause::Gone,
    };
    assert_eq!(
        trace(&gone, &["registered"], &modules),
        ["registered: test(a,-,d)"]
    );
}

// ---- moves (§4 Move, §7) --------------------------------------------------------------

/// A rename `cn=test` → `cn=test2` under `dc=x`, with the listed fresh state.
struct Rename {
    old_dn: Dn,
    old: Entry,
    patched: Entry,
    fresh: Entry,
}

impl Rename {
    fn new() -> Rename {
        let old = with(&obj("cn=test,dc=x", "a"), "description", &["before"]);
        let patched = patch(&old, "cn=test2,dc=x");
        let fresh = after_modrdn(&patched);
        Rename {
            old_dn: old.dn().clone(),
            old,
            patched,
            fresh,
        }
    }

    fn change<'a>(&'a self, fresh: Option<&'a Entry>) -> Change<'a> {
        Change::Move {
            old_dn: &self.old_dn,
            old: &self.old,
            patched: &self.patched,
            fresh,
        }
    }
}

#[test]
fn a_classic_module_with_modrdn_gets_r_a_m() {
    let mv = Rename::new();
    let modules = [classic("m", PEOPLE)];
    let change = mv.change(Some(&mv.fresh));
    assert_eq!(
        trace(&change, &["m"], &modules),
        ["m: test(a,-,r)", "m: test2(-,a,a)", "m: test2(a,a,m)"]
    );
    let plans = plan(&change, &names(&["m"]), &modules);
    assert_eq!(
        plans[0].calls,
        [
            Call::Classic {
                dn: &mv.old_dn,
                new: None,
                old: Some(&mv.old),
                command: Command::Rename,
            },
            Call::Classic {
                dn: mv.patched.dn(),
                new: Some(&mv.patched),
                old: None,
                command: Command::Add,
            },
            Call::Classic {
                dn: mv.fresh.dn(),
                new: Some(&mv.fresh),
                old: Some(&mv.patched),
                command: Command::Modify,
            },
        ]
    );
    assert_eq!(plans[0].on_success, Registration::Register);
}

#[test]
fn the_m_after_r_a_follows_the_up_to_date_rule() {
    let mv = Rename::new();
    let modules = [
        classic("m", PEOPLE),
        listing(classic("l", PEOPLE), &["description"]),
    ];
    // fresh == patched: nothing to follow.
    assert_eq!(
        trace(&mv.change(Some(&mv.patched)), &["m", "l"], &modules),
        [
            "l: test(a,-,r)",
            "l: test2(-,a,a)",
            "m: test(a,-,r)",
            "m: test2(-,a,a)"
        ]
    );
    // Metadata only: only the module without attributes gets the `m`.
    assert_eq!(
        trace(&mv.change(Some(&mv.fresh)), &["m", "l"], &modules),
        [
            "l: test(a,-,r)",
            "l: test2(-,a,a)",
            "m: test(a,-,r)",
            "m: test2(-,a,a)",
            "m: test2(a,a,m)"
        ]
    );
    // A listed attribute changed too: both.
    let fresh = with(&mv.fresh, "description", &["after"]);
    assert_eq!(
        trace(&mv.change(Some(&fresh)), &["m", "l"], &modules),
        [
            "l: test(a,-,r)",
            "l: test2(-,a,a)",
            "l: test2(a,a,m)",
            "m: test(a,-,r)",
            "m: test2(-,a,a)",
            "m: test2(a,a,m)"
        ]
    );
}

#[test]
fn a_move_that_moved_on_again_is_delivered_with_the_cached_state() {
    let mv = Rename::new();
    let modules = [
        classic("classic", PEOPLE),
        classic_plain("plain", PEOPLE),
        new_api("new", PEOPLE),
    ];
    let change = mv.change(None);
    assert_eq!(
        trace(&change, &["classic", "plain", "new"], &modules),
        [
            "classic: test(a,-,r)",
            "classic: test2(-,a,a)",
            "new: test2(a,a,modify) from test",
            "plain: test(a,-,d)",
            "plain: test2(-,a,a)",
        ]
    );
    let plans = plan(&change, &names(&["classic", "plain", "new"]), &modules);
    assert_eq!(
        plans[1].calls,
        [Call::Modify {
            dn: mv.patched.dn(),
            old: &mv.old,
            new: &mv.patched,
            old_dn: Some(&mv.old_dn),
        }]
    );
}

#[test]
fn a_classic_module_without_modrdn_gets_d_then_a_with_the_final_state() {
    let mv = Rename::new();
    let modules = [classic_plain("m", PEOPLE)];
    let plans = plan(&mv.change(Some(&mv.fresh)), &names(&["m"]), &modules);
    assert_eq!(
        plans[0].calls,
        [
            Call::Classic {
                dn: &mv.old_dn,
                new: None,
                old: Some(&mv.old),
                command: Command::Delete,
            },
            Call::Classic {
                dn: mv.fresh.dn(),
                new: Some(&mv.fresh),
                old: None,
                command: Command::Add,
            },
        ]
    );
    assert_eq!(plans[0].on_success, Registration::Register);
}

#[test]
fn the_new_and_async_apis_get_one_modify_with_the_final_state() {
    let mv = Rename::new();
    // Even a module whose attributes did not change: its object's DN did.
    let modules = [
        new_api("new", PEOPLE),
        listing(async_api("async", PEOPLE), &["mail"]),
    ];
    let plans = plan(
        &mv.change(Some(&mv.fresh)),
        &names(&["new", "async"]),
        &modules,
    );
    let expected = [Call::Modify {
        dn: mv.fresh.dn(),
        old: &mv.old,
        new: &mv.fresh,
        old_dn: Some(&mv.old_dn),
    }];
    assert_eq!(plans.len(), 2);
    assert!(plans.iter().all(|p| p.calls == expected));
    assert!(plans.iter().all(|p| p.on_success == Registration::Register));
}

#[test]
fn moving_out_of_a_filter_removes_at_the_old_dn() {
    let mv = Rename::new();
    let fresh = with(&mv.fresh, "objectClass", &["top", "device"]);
    let modules = [
        classic("classic", PEOPLE),
        classic_plain("plain", PEOPLE),
        new_api("new", PEOPLE),
    ];
    let change = mv.change(Some(&fresh));
    let registered = ["classic", "plain", "new"];
    assert_eq!(
        trace(&change, &registered, &modules),
        [
            "classic: test(a,-,d)",
            "new: test(a,-,remove)",
            "plain: test(a,-,d)"
        ]
    );
    assert!(
        registrations(&change, &registered, &modules)
            .iter()
            .all(|(_, r)| *r == Registration::Unregister)
    );
}

#[test]
fn moving_into_a_filter_creates_at_the_new_dn() {
    let mv = Rename::new();
    let modules = [
        classic("classic", "(cn=test2)"),
        new_api("new", "(cn=test2)"),
        classic("never", "(cn=other)"),
    ];
    let change = mv.change(Some(&mv.fresh));
    assert_eq!(
        trace(&change, &[], &modules),
        ["classic: test2(-,a,a)", "new: test2(-,a,create)"]
    );
    assert!(
        registrations(&change, &[], &modules)
            .iter()
            .all(|(_, r)| *r == Registration::Register)
    );
}

// ---- specs ----------------------------------------------------------------------------

#[test]
fn specs_come_from_the_configuration() {
    let mut config = ModuleConfig::new("m", "", "(cn=x)", ModuleForm::Function);
    config.attributes = vec!["cn".into(), "mail".into()];
    config.priority = 10.0;
    config.modrdn = true;
    config.handle_every_delete = true;
    let spec = ModuleSpec::from_config(&config, Schema::builtin()).unwrap();
    assert_eq!(spec.api, ApiKind::Classic);
    assert!(spec.modrdn && spec.handle_every_delete);
    assert_eq!(spec.priority, 10.0);
    assert_eq!(spec.attributes.len(), 2);
    assert_eq!(async_api("a", ALL).api, ApiKind::Async);
    assert_eq!(new_api("n", ALL).api, ApiKind::New);

    config.ldap_filter = "(cn=x".into();
    let err = ModuleSpec::from_config(&config, Schema::builtin()).unwrap_err();
    assert!(matches!(err, SpecError::Filter { .. }), "{err}");
    assert!(err.to_string().contains("listener module `m`"), "{err}");
    config.ldap_filter = "(cn:noSuchMatch:=x)".into();
    let err = ModuleSpec::from_config(&config, Schema::builtin()).unwrap_err();
    assert!(matches!(err, SpecError::Compile { .. }), "{err}");
}

// ---- semantics §10 (classic module with modrdn, filter (objectClass=*)) ----------------

#[test]
fn row_1_create_then_delete() {
    let a = obj("cn=test,dc=x", "a");
    assert_eq!(
        row(&Change::Update { old: None, new: &a }, false),
        ["test(-,a,a)"]
    );
    let delete = Change::Delete {
        dn: a.dn(),
        old: Some(&a),
        cause: DeleteCause::Deleted,
    };
    assert_eq!(row(&delete, true), ["test(a,-,d)"]);
}

#[test]
fn row_3_modify_an_attribute() {
    let a = obj("cn=test,dc=x", "a");
    let modified = with(&a, "description", &["x"]);
    let change = Change::Update {
        old: Some(&a),
        new: &modified,
    };
    assert_eq!(row(&change, true), ["test(a,a,m)"]);
}

#[test]
fn row_5_rename() {
    let mv = Rename::new();
    // Other calls may follow (the `m` for slapd's metadata), so check both.
    assert_eq!(
        row(&mv.change(Some(&mv.patched)), true),
        ["test(a,-,r)", "test2(-,a,a)"]
    );
    assert_eq!(
        row(&mv.change(Some(&mv.fresh)), true)[..2],
        ["test(a,-,r)", "test2(-,a,a)"]
    );
}

#[test]
fn row_8_move_to_the_base() {
    let old = obj("cn=test,cn=visible,dc=x", "a");
    let patched = patch(&old, "cn=test,dc=x");
    let fresh = after_modrdn(&patched);
    let change = Change::Move {
        old_dn: old.dn(),
        old: &old,
        patched: &patched,
        fresh: Some(&fresh),
    };
    let plans = plan(&change, &names(&["test"]), &[classic("test", ALL)]);
    let dns: Vec<(String, Command)> = plans[0]
        .calls
        .iter()
        .map(|c| (c.dn().to_string(), c.command()))
        .collect();
    assert_eq!(
        dns[..2],
        [
            ("cn=test,cn=visible,dc=x".to_owned(), Command::Rename),
            ("cn=test,dc=x".to_owned(), Command::Add)
        ]
    );
}

#[test]
fn row_9_move_into_a_hidden_container() {
    // The object is not found by its entryUUID: a delete at the old DN, nothing else.
    let old = obj("cn=test,cn=visible,dc=x", "a");
    let change = Change::Delete {
        dn: old.dn(),
        old: Some(&old),
        cause: DeleteCause::Gone,
    };
    let plans = plan(&change, &names(&["test"]), &[classic("test", ALL)]);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].calls.len(), 1);
    assert_eq!(
        plans[0].calls[0].dn().to_string(),
        "cn=test,cn=visible,dc=x"
    );
    assert_eq!(render(&plans[0].calls[0]), "test(a,-,d)");
}

#[test]
fn row_11_modify_then_move_while_stopped() {
    // The `m` was delayed (the object had moved); the move brings the final state.
    let old = obj("cn=test,cn=visible,dc=x", "a");
    let patched = patch(&old, "cn=test,dc=x");
    let fresh = with(&after_modrdn(&patched), "description", &["modified"]);
    let change = Change::Move {
        old_dn: old.dn(),
        old: &old,
        patched: &patched,
        fresh: Some(&fresh),
    };
    let plans = plan(&change, &names(&["test"]), &[classic("test", ALL)]);
    let calls: Vec<(String, String)> = plans[0]
        .calls
        .iter()
        .map(|c| (c.dn().to_string(), render(c)))
        .collect();
    assert_eq!(
        calls,
        [
            (
                "cn=test,cn=visible,dc=x".to_owned(),
                "test(a,-,r)".to_owned()
            ),
            ("cn=test,dc=x".to_owned(), "test(-,a,a)".to_owned()),
            ("cn=test,dc=x".to_owned(), "test(a,a,m)".to_owned()),
        ]
    );
}

#[test]
fn row_14_delete_and_recreate_while_stopped() {
    let a = obj("cn=test,dc=x", "a");
    let b = obj("cn=test,dc=x", "b");
    // The `d` is delivered with the cached state although `b` exists now …
    let delete = Change::Delete {
        dn: a.dn(),
        old: Some(&a),
        cause: DeleteCause::Deleted,
    };
    assert_eq!(row(&delete, true), ["test(a,-,d)"]);
    // … and the `a` finds nothing cached.
    let add = Change::Update { old: None, new: &b };
    assert_eq!(row(&add, false), ["test(-,b,a)"]);
}

#[test]
fn row_16_modify_then_delete_while_stopped() {
    let a = obj("cn=test,dc=x", "a");
    // The `m` finds the object gone: delete with the cached state.
    let gone = Change::Delete {
        dn: a.dn(),
        old: Some(&a),
        cause: DeleteCause::Gone,
    };
    assert_eq!(row(&gone, true), ["test(a,-,d)"]);
    // The `d` then finds nothing cached: no second call.
    let delete = Change::Delete {
        dn: a.dn(),
        old: None,
        cause: DeleteCause::Deleted,
    };
    assert!(row(&delete, false).is_empty());
}

#[test]
fn row_24_swap_two_objects_through_a_third_name_while_stopped() {
    // r test1 / a test2; r test3 / a test1; r test2 / a test3, processed afterwards.
    let a_at_1 = obj("cn=test1,dc=x", "a");
    let b_at_3 = obj("cn=test3,dc=x", "b");

    // a moved test1 → test2, but is at test3 by now: the cached state, no `m`.
    let a_at_2 = patch(&a_at_1, "cn=test2,dc=x");
    let first = Change::Move {
        old_dn: a_at_1.dn(),
        old: &a_at_1,
        patched: &a_at_2,
        fresh: None,
    };
    // b moved test3 → test1 and is still there.
    let b_at_1 = patch(&b_at_3, "cn=test1,dc=x");
    let b_fresh = after_modrdn(&b_at_1);
    let second = Change::Move {
        old_dn: b_at_3.dn(),
        old: &b_at_3,
        patched: &b_at_1,
        fresh: Some(&b_fresh),
    };
    // a moved test2 → test3 and is still there.
    let a_at_3 = patch(&a_at_2, "cn=test3,dc=x");
    let a_fresh = after_modrdn(&a_at_3);
    let third = Change::Move {
        old_dn: a_at_2.dn(),
        old: &a_at_2,
        patched: &a_at_3,
        fresh: Some(&a_fresh),
    };

    let calls: Vec<String> = [first, second, third]
        .iter()
        .flat_map(|c| row(c, true))
        .collect();
    assert_eq!(
        calls,
        [
            "test1(a,-,r)",
            "test2(-,a,a)",
            "test3(b,-,r)",
            "test1(-,b,a)",
            "test1(b,b,m)",
            "test2(a,-,r)",
            "test3(-,a,a)",
            "test3(a,a,m)",
        ]
    );
}

#[test]
fn row_27_rename_to_a_non_ascii_rdn() {
    let old = obj("cn=test,dc=x", "a");
    let patched = patch(&old, "cn=Unmöglich,dc=x");
    let change = Change::Move {
        old_dn: old.dn(),
        old: &old,
        patched: &patched,
        fresh: Some(&patched),
    };
    assert_eq!(row(&change, true), ["test(a,-,r)", "Unmöglich(-,a,a)"]);
}
