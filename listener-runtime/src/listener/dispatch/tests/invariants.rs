//! Properties every plan has, whatever the modules, states and registrations: call order,
//! the shape of each API's calls, registrations that agree with the calls, and no module
//! forgotten that §5 says must be called.

use proptest::prelude::*;

use super::super::*;
use super::{obj, patch, with};

const FILTERS: &[&str] = &[
    "(objectClass=*)",
    "(objectClass=person)",
    "(description=x*)",
    "(!(mail=*))",
];
const ATTRIBUTES: &[&[&str]] = &[&[], &["description"], &["mail", "cn"], &["entryCSN"]];
const PRIORITIES: &[f64] = &[0.0, 50.0, 50.0, 10.5];
const VALUES: &[&str] = &["x", "xy", "y"];

#[derive(Debug, Clone)]
struct Module {
    priority: usize,
    api: usize,
    modrdn: bool,
    handle_every_delete: bool,
    filter: usize,
    attributes: usize,
}

fn module() -> impl Strategy<Value = Module> {
    (
        0..PRIORITIES.len(),
        0..3usize,
        any::<bool>(),
        any::<bool>(),
        0..FILTERS.len(),
        0..ATTRIBUTES.len(),
    )
        .prop_map(
            |(priority, api, modrdn, handle_every_delete, filter, attributes)| Module {
                priority,
                api,
                modrdn,
                handle_every_delete,
                filter,
                attributes,
            },
        )
}

/// Names are assigned in reverse so that ties by priority are not in input order.
fn specs(modules: &[Module]) -> Vec<ModuleSpec> {
    modules
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let (form, asynchronous) = match m.api {
                0 => (ModuleForm::Struct, false),
                1 => (ModuleForm::Struct, true),
                _ => (ModuleForm::Function, false),
            };
            let name = format!("m{}", modules.len() - i);
            let mut config = ModuleConfig::new(&name, "", FILTERS[m.filter], form);
            config.run_asynchronously = asynchronous;
            config.modrdn = m.modrdn && form == ModuleForm::Function;
            config.handle_every_delete = m.handle_every_delete;
            config.priority = PRIORITIES[m.priority];
            config.attributes = ATTRIBUTES[m.attributes]
                .iter()
                .map(|a| (*a).to_owned())
                .collect();
            ModuleSpec::from_config(&config, Schema::builtin()).unwrap()
        })
        .collect()
}

/// An object's state: person or not, description, mail, CSN.
#[derive(Debug, Clone)]
struct State {
    person: bool,
    description: Option<usize>,
    mail: Option<usize>,
    csn: u8,
}

fn state() -> impl Strategy<Value = State> {
    (
        any::<bool>(),
        proptest::option::of(0..VALUES.len()),
        proptest::option::of(0..VALUES.len()),
        0..2u8,
    )
        .prop_map(|(person, description, mail, csn)| State {
            person,
            description,
            mail,
            csn,
        })
}

impl State {
    fn at(&self, base: &Entry) -> Entry {
        let classes: &[&str] = if self.person {
            &["top", "person"]
        } else {
            &["top", "device"]
        };
        let value = |v: Option<usize>| v.map(|i| VALUES[i]).into_iter().collect::<Vec<_>>();
        let e = with(base, "objectClass", classes);
        let e = with(&e, "description", &value(self.description));
        let e = with(&e, "mail", &value(self.mail));
        with(&e, "entryCSN", &[&self.csn.to_string()])
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Update(Option<State>, State),
    Delete(Option<State>, bool),
    Move(State, Option<State>),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (proptest::option::of(state()), state()).prop_map(|(o, n)| Kind::Update(o, n)),
        (proptest::option::of(state()), any::<bool>()).prop_map(|(o, d)| Kind::Delete(o, d)),
        (state(), proptest::option::of(state())).prop_map(|(o, f)| Kind::Move(o, f)),
    ]
}

/// The entries of a change, owned, so that a [`Change`] can borrow them.
struct Entries {
    old_dn: Dn,
    old: Option<Entry>,
    new: Option<Entry>,
    patched: Option<Entry>,
}

fn entries(kind: &Kind) -> Entries {
    let base = obj("cn=test,dc=x", "a");
    let old_dn = base.dn().clone();
    match kind {
        Kind::Update(old, new) => Entries {
            old_dn,
            old: old.as_ref().map(|s| s.at(&base)),
            new: Some(new.at(&base)),
            patched: None,
        },
        Kind::Delete(old, _) => Entries {
            old_dn,
            old: old.as_ref().map(|s| s.at(&base)),
            new: None,
            patched: None,
        },
        Kind::Move(old, fresh) => {
            let old = old.at(&base);
            let patched = patch(&old, "cn=test2,ou=moved,dc=x");
            Entries {
                old_dn,
                new: fresh.as_ref().map(|s| s.at(&patched)),
                old: Some(old),
                patched: Some(patched),
            }
        }
    }
}

fn change<'a>(kind: &Kind, e: &'a Entries) -> Change<'a> {
    match kind {
        Kind::Update(..) => Change::Update {
            old: e.old.as_ref(),
            new: e.new.as_ref().unwrap(),
        },
        Kind::Delete(_, deleted) => Change::Delete {
            dn: &e.old_dn,
            old: e.old.as_ref(),
            cause: if *deleted {
                DeleteCause::Deleted
            } else {
                DeleteCause::Gone
            },
        },
        Kind::Move(..) => Change::Move {
            old_dn: &e.old_dn,
            old: e.old.as_ref().unwrap(),
            patched: e.patched.as_ref().unwrap(),
            fresh: e.new.as_ref(),
        },
    }
}

/// The state a call leaves the module with: its new entry, or `None` after a remove.
fn final_state<'a>(call: &Call<'a>) -> Option<&'a Entry> {
    match call {
        Call::Create { new, .. } | Call::Modify { new, .. } => Some(new),
        Call::Remove { .. } => None,
        Call::Classic { new, .. } => *new,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plans_keep_the_rules(
        modules in proptest::collection::vec(module(), 1..6),
        kind in kind(),
        registered in proptest::collection::vec(any::<bool>(), 6),
    ) {
        let specs = specs(&modules);
        let e = entries(&kind);
        let change = change(&kind, &e);
        let registered: BTreeSet<String> = specs
            .iter()
            .zip(&registered)
            .filter(|(_, r)| **r)
            .map(|(s, _)| s.name.clone())
            .collect();
        let plans = plan(&change, &registered, &specs);
        let is_registered = |s: &ModuleSpec| e.old.is_some() && registered.contains(&s.name);

        // Ascending priority, ties by name, each module once.
        for pair in plans.windows(2) {
            let (a, b) = (&specs[pair[0].module], &specs[pair[1].module]);
            prop_assert!(a.priority.total_cmp(&b.priority).then(a.name.cmp(&b.name)).is_lt());
        }

        for p in &plans {
            let spec = &specs[p.module];
            // Each API gets its own shape of call.
            for call in &p.calls {
                prop_assert_eq!(
                    matches!(call, Call::Classic { .. }),
                    spec.api == ApiKind::Classic
                );
                if let Call::Classic { command, .. } = call {
                    prop_assert!(*command != Command::Initialize);
                    if *command == Command::Rename {
                        prop_assert!(spec.modrdn);
                    }
                }
            }
            // The registration agrees with the calls.
            match p.on_success {
                Registration::Keep => {
                    prop_assert!(p.calls.is_empty());
                    prop_assert!(is_registered(spec));
                }
                Registration::Register => {
                    // The object now matches; the module saw a state of it last (a classic
                    // `a` after `r` may carry the patched state when the fresh one differs
                    // only in attributes the module does not list).
                    prop_assert!(final_state(p.calls.last().unwrap()).is_some());
                    let now = match change {
                        Change::Update { new, .. } => new,
                        Change::Move { patched, fresh, .. } => fresh.unwrap_or(patched),
                        Change::Delete { .. } => unreachable!("a delete never registers"),
                    };
                    prop_assert!(spec.filter.matches(now));
                }
                Registration::Unregister => {
                    prop_assert_eq!(p.calls.last().unwrap().command(), Command::Delete);
                }
            }
        }

        // Nobody §5 calls is forgotten.
        let planned = |s: &ModuleSpec| plans.iter().any(|p| specs[p.module].name == s.name);
        for spec in &specs {
            let must = match (&kind, &change) {
                (Kind::Delete(_, deleted), _) => {
                    is_registered(spec) || (*deleted && spec.handle_every_delete)
                }
                (_, Change::Update { new, .. }) => {
                    spec.filter.matches(new) || is_registered(spec)
                }
                (_, Change::Move { patched, fresh, .. }) => {
                    spec.filter.matches(fresh.unwrap_or(patched)) || is_registered(spec)
                }
                _ => unreachable!(),
            };
            prop_assert_eq!(planned(spec), must, "{}", spec.name);
        }
    }
}
