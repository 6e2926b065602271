//! Which module gets which call for one processed change: the rules of semantics §5, the
//! move delivery of §4 and the three APIs of §7.
//!
//! Everything here is a pure function of the change (old and new state), the modules'
//! configurations and the modules registered on the cached entry. The listener's loop
//! looks the change up (§4 steps 1–3), asks [`plan`] what to do and only executes the
//! answer: the calls in order, then the registration change of each module whose calls
//! all succeeded (a failed module stays unregistered, §5 rule 4).
//!
//! ```
//! use std::collections::BTreeSet;
//! use listener_core::{Dn, Entry, ModuleConfig, ModuleForm, Schema};
//! use listener_runtime::testing::{Call, Change, ModuleSpec, Registration, plan};
//!
//! let config = ModuleConfig::new("users", "", "(objectClass=person)", ModuleForm::Struct);
//! let modules = [ModuleSpec::from_config(&config, Schema::builtin()).unwrap()];
//! let mut new = Entry::new(Dn::parse("uid=alice,dc=example").unwrap());
//! new.insert("objectClass", ["person"]).unwrap();
//!
//! let plans = plan(&Change::Update { old: None, new: &new }, &BTreeSet::new(), &modules);
//! assert!(matches!(plans[0].calls[..], [Call::Create { .. }]));
//! assert_eq!(plans[0].on_success, Registration::Register);
//! ```
//!
//! Decisions that docs/semantics.md §5 states briefly, in detail:
//! * **Order of rules.** Rule 1 (up to date) is checked before the filter, as written and
//!   as UDL does: a module with `attributes` whose attributes did not change keeps its
//!   registration even if the object no longer matches its filter; it gets the remove with
//!   the next change of one of its attributes, or the delete.
//! * **What counts as changed.** For a module without `attributes`, any attribute whose
//!   value set differs, operational ones included ([`diff_with`] with metadata). For a
//!   module with `attributes`, only non-metadata attributes count, even if the module lists
//!   a metadata attribute ("metadata-only changes alone never call a module that lists
//!   attributes").
//! * **Which listed attribute covers which changed one.** As in filters: a listed
//!   description covers a changed one of the same type (names and OIDs resolved, case
//!   ignored) whose options include all the listed options, so `cn` covers `cn;lang-de`
//!   but `cn;lang-de` does not cover `cn`. Supertypes are not expanded (`name` does not
//!   cover `cn`).
//! * **Registered without a cached entry.** Registrations live on the cached entry, so a
//!   module counts as registered only when there is an old entry.
//! * **Moves are always delivered** to a registered module whose filter still matches,
//!   even when none of its `attributes` changed: its DN did. The up-to-date rule only
//!   decides the classic `m` after `r`/`a`.
//! * **`handle_every_delete`** applies to real deletes only ([`DeleteCause::Deleted`]),
//!   not to objects that vanished or became hidden while processing an `a`, `m` or move:
//!   those are deleted (or re-appear) in a later transaction. Without a cached entry the
//!   new API gets an empty entry at the deleted DN, the classic API `old = None`.
//! * **Registration after a delete** is [`Registration::Unregister`] for every called
//!   module; the cache entry is dropped anyway.

use std::borrow::Cow;
use std::collections::BTreeSet;

use listener_core::entry::{diff_with, is_metadata};
use listener_core::filter::{CompileError, CompiledFilter, FilterError};
use listener_core::{
    AttributeDescription, AttributeError, Command, Dn, Entry, Filter, ModuleConfig, ModuleForm,
    Schema,
};

use crate::api::registry::{ApiKind, ModuleRegistration};

#[cfg(test)]
mod tests;

/// What dispatch needs to know about a module, built once at start from the registry.
#[derive(Debug, Clone)]
pub struct ModuleSpec {
    /// The module's unique name, as stored in the cache's registrations.
    pub name: String,
    /// Lower runs first; ties by name.
    pub priority: f64,
    /// The API the module is written against; decides the shape of its calls.
    pub api: ApiKind,
    /// Classic modules only: moves arrive as `r`/`a`/`m` instead of `d`/`a`.
    pub modrdn: bool,
    /// The module is called for every real delete, registered or not.
    pub handle_every_delete: bool,
    /// The module's `ldap_filter`, compiled.
    pub filter: CompiledFilter,
    /// The attributes whose change calls the module; empty means any attribute.
    pub attributes: Vec<AttributeDescription>,
}

/// Why a module's configuration cannot be turned into a [`ModuleSpec`]. The macro
/// validates configurations at compile time, so this only happens with a schema that
/// disagrees with the built-in one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The filter does not parse.
    #[error("listener module `{module}`: ldap_filter {filter:?} is invalid: {source}")]
    Filter {
        /// The module's name.
        module: String,
        /// The filter as configured.
        filter: String,
        /// What is wrong with it.
        source: FilterError,
    },
    /// The filter parses but cannot be evaluated against the schema.
    #[error("listener module `{module}`: ldap_filter {filter:?} cannot be evaluated: {source}")]
    Compile {
        /// The module's name.
        module: String,
        /// The filter as configured.
        filter: String,
        /// Why it cannot be evaluated.
        source: CompileError,
    },
    /// An entry of `attributes` is no attribute description.
    #[error("listener module `{module}`: {source}")]
    Attribute {
        /// The module's name.
        module: String,
        /// What is wrong with the attribute.
        source: AttributeError,
    },
}

impl ModuleSpec {
    /// The spec of a module configuration, its filter compiled against `schema` (the
    /// built-in schema; refining it from the server's `cn=Subschema` is not built yet).
    pub fn from_config(config: &ModuleConfig, schema: &Schema) -> Result<ModuleSpec, SpecError> {
        let filter = Filter::parse(&config.ldap_filter)
            .map_err(|source| SpecError::Filter {
                module: config.name.clone(),
                filter: config.ldap_filter.clone(),
                source,
            })?
            .compile(schema)
            .map_err(|source| SpecError::Compile {
                module: config.name.clone(),
                filter: config.ldap_filter.clone(),
                source,
            })?;
        let attributes = config
            .attributes
            .iter()
            .map(|a| AttributeDescription::parse(a))
            .collect::<Result<_, _>>()
            .map_err(|source| SpecError::Attribute {
                module: config.name.clone(),
                source,
            })?;
        let api = match (config.form, config.run_asynchronously) {
            (ModuleForm::Function, _) => ApiKind::Classic,
            (ModuleForm::Struct, true) => ApiKind::Async,
            (ModuleForm::Struct, false) => ApiKind::New,
        };
        Ok(ModuleSpec {
            name: config.name.clone(),
            priority: config.priority,
            api,
            modrdn: config.modrdn,
            handle_every_delete: config.handle_every_delete,
            filter,
            attributes,
        })
    }

    /// The spec of a module linked into the binary.
    pub fn from_registration(
        registration: &ModuleRegistration,
        schema: &Schema,
    ) -> Result<ModuleSpec, SpecError> {
        ModuleSpec::from_config(&registration.config(), schema)
    }

    /// Rule 1: whether a module registered on the old entry is up to date, given the
    /// attributes that changed.
    fn up_to_date(&self, changed: &Changed) -> bool {
        if self.attributes.is_empty() {
            return !changed.any;
        }
        !changed
            .content
            .iter()
            .any(|c| self.attributes.iter().any(|listed| covers(listed, c)))
    }
}

/// The attributes that changed between two states, worked out once per change for all
/// modules.
#[derive(Debug, Default)]
struct Changed {
    /// Whether any attribute changed, metadata included ([`diff_with`] with metadata).
    any: bool,
    /// The changed attributes that are not metadata: the only ones a module's
    /// `attributes` can select.
    content: Vec<AttributeDescription>,
}

impl Changed {
    fn between(old: &Entry, new: &Entry) -> Changed {
        let all = diff_with(old, new, true);
        Changed {
            any: !all.is_empty(),
            content: all.into_iter().filter(|c| !is_metadata(c)).collect(),
        }
    }
}

/// Whether a listed attribute description covers a changed one: same type, and the
/// changed one carries at least the listed options (`cn` covers `cn;lang-de`).
fn covers(listed: &AttributeDescription, changed: &AttributeDescription) -> bool {
    listed.type_key() == changed.type_key()
        && options(listed).all(|o| options(changed).any(|c| c == o))
}

/// The options of a description, lower-cased (from its canonical key).
fn options(desc: &AttributeDescription) -> impl Iterator<Item = &str> {
    desc.key()[desc.type_key().len()..]
        .split(';')
        .filter(|o| !o.is_empty())
}

/// What happened to the object; semantics §4 step 3 has already decided which.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// An `a` or `m` (an `a` for an object the cache already has is an update).
    Update {
        /// The cached entry; `None` if the object is not cached.
        old: Option<&'a Entry>,
        /// The object as LDAP has it now.
        new: &'a Entry,
    },
    /// A `d`, or an object that vanished or became hidden from the listener.
    Delete {
        /// The DN of the transaction.
        dn: &'a Dn,
        /// The cached entry; `None` if the object is not cached.
        old: Option<&'a Entry>,
        /// A real delete, or an object that is merely gone from view.
        cause: DeleteCause,
    },
    /// An `r` followed by its `a`: the object was renamed or moved.
    Move {
        /// The DN of the `r` transaction.
        old_dn: &'a Dn,
        /// The cached entry at the old DN.
        old: &'a Entry,
        /// The cached entry with its DN and RDN values changed to the new DN.
        patched: &'a Entry,
        /// The object as LDAP has it now if it is still at the new DN; `None` if it has
        /// moved on again (the move is then delivered with the cached state, and the
        /// later transactions bring the rest, semantics §4).
        fresh: Option<&'a Entry>,
    },
}

/// Why an object is treated as deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteCause {
    /// A `d` transaction: modules with `handle_every_delete` are called too.
    Deleted,
    /// The object of an `a`, `m` or move was not found or is hidden by ACLs: only the
    /// modules registered on it are called.
    Gone,
}

/// One call of a module. It borrows the states of the change it was planned for, so
/// planning a change for many modules copies no entries.
#[derive(Debug, Clone, PartialEq)]
pub enum Call<'a> {
    /// New and async API `create(dn, new)`.
    Create {
        /// The object's DN.
        dn: &'a Dn,
        /// The object.
        new: &'a Entry,
    },
    /// New and async API `modify(dn, old, new, old_dn)`.
    Modify {
        /// The object's (new) DN.
        dn: &'a Dn,
        /// The state the module saw last.
        old: &'a Entry,
        /// The state now.
        new: &'a Entry,
        /// The DN before a move; `None` for a plain modify.
        old_dn: Option<&'a Dn>,
    },
    /// New and async API `remove(dn, old)`.
    Remove {
        /// The object's DN.
        dn: &'a Dn,
        /// The state the module saw last; owned only when dispatch made it up (an empty
        /// entry for an unknown object deleted under `handle_every_delete`).
        old: Cow<'a, Entry>,
    },
    /// Classic API `handler(dn, new, old, command)`.
    Classic {
        /// The DN the command is about.
        dn: &'a Dn,
        /// The new state (`a`, `m`, `n`).
        new: Option<&'a Entry>,
        /// The old state (`m`, `d`, `r`).
        old: Option<&'a Entry>,
        /// The command letter.
        command: Command,
    },
}

impl Call<'_> {
    /// The DN the call is about (the new DN of a move).
    pub fn dn(&self) -> &Dn {
        match self {
            Call::Create { dn, .. }
            | Call::Modify { dn, .. }
            | Call::Remove { dn, .. }
            | Call::Classic { dn, .. } => dn,
        }
    }

    /// The command letter the call stands for (for logs and the failed-events store).
    pub fn command(&self) -> Command {
        match self {
            Call::Create { .. } => Command::Add,
            Call::Modify { .. } => Command::Modify,
            Call::Remove { .. } => Command::Delete,
            Call::Classic { command, .. } => *command,
        }
    }
}

/// What becomes of a module's registration on the entry once all its calls succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Register the module on the (new) entry.
    Register,
    /// Remove the module's registration.
    Unregister,
    /// Leave the registration as it is.
    Keep,
}

/// The calls for one module and what to do with its registration afterwards; the calls
/// borrow from the [`Change`] planned.
#[derive(Debug, Clone, PartialEq)]
pub struct ModulePlan<'a> {
    /// Index of the module in the specs given to [`plan`].
    pub module: usize,
    /// The calls, in order; empty when the module is up to date (rule 1).
    pub calls: Vec<Call<'a>>,
    /// Applied when every call succeeded; on failure the module is unregistered (semantics §5 rule 4).
    pub on_success: Registration,
}

/// Decides, for one change, which module gets which calls, in call order: ascending
/// priority, ties by name (semantics §5).
///
/// `registered` holds the names of the modules registered on the cached entry (empty if
/// the object is not cached). Modules with nothing to do are left out; modules that are
/// up to date (rule 1) are listed with no calls and [`Registration::Keep`].
pub fn plan<'a>(
    change: &Change<'a>,
    registered: &BTreeSet<String>,
    modules: &[ModuleSpec],
) -> Vec<ModulePlan<'a>> {
    // The attribute changes are the same for every module: compute them once.
    let changed = match *change {
        Change::Update {
            old: Some(old),
            new,
        } => Changed::between(old, new),
        Change::Move {
            patched,
            fresh: Some(fresh),
            ..
        } => Changed::between(patched, fresh),
        _ => Changed::default(),
    };
    call_order(modules)
        .into_iter()
        .filter_map(|index| {
            let spec = &modules[index];
            let registered = registered.contains(&spec.name);
            let (calls, on_success) = match *change {
                Change::Update { old, new } => {
                    update(spec, old.filter(|_| registered), new, &changed)
                }
                Change::Delete { dn, old, cause } => delete(spec, dn, old, registered, cause),
                Change::Move {
                    old_dn,
                    old,
                    patched,
                    fresh,
                } => moved(spec, registered, old_dn, old, patched, fresh, &changed),
            }?;
            Some(ModulePlan {
                module: index,
                calls,
                on_success,
            })
        })
        .collect()
}

/// Indices of `modules` by ascending priority, ties by name.
fn call_order(modules: &[ModuleSpec]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..modules.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&modules[a], &modules[b]);
        a.priority
            .total_cmp(&b.priority)
            .then_with(|| a.name.cmp(&b.name))
    });
    order
}

type Decision<'a> = Option<(Vec<Call<'a>>, Registration)>;

/// Rules 1 and 2 for an update; `registered_old` is the cached entry if the module is
/// registered on it.
fn update<'a>(
    spec: &ModuleSpec,
    registered_old: Option<&'a Entry>,
    new: &'a Entry,
    changed: &Changed,
) -> Decision<'a> {
    // 1. Up to date.
    if registered_old.is_some() && spec.up_to_date(changed) {
        return Some((Vec::new(), Registration::Keep));
    }
    // 2. Filter: new matches ⇒ create or modify; left the filter ⇒ remove; else nothing.
    if spec.filter.matches(new) {
        let call = match registered_old {
            Some(old) if spec.filter.matches(old) => modify(spec, old, new),
            _ => create(spec, new),
        };
        Some((vec![call], Registration::Register))
    } else {
        // UDL unregisters silently here; we deliver the remove.
        let old = registered_old?;
        Some((
            vec![remove(spec, old.dn(), Some(old))],
            Registration::Unregister,
        ))
    }
}

/// Rule 3: every module registered on the old entry, and on a real delete every module
/// with `handle_every_delete`.
fn delete<'a>(
    spec: &ModuleSpec,
    dn: &'a Dn,
    old: Option<&'a Entry>,
    registered: bool,
    cause: DeleteCause,
) -> Decision<'a> {
    let registered = registered && old.is_some();
    let every_delete = spec.handle_every_delete && cause == DeleteCause::Deleted;
    (registered || every_delete).then(|| (vec![remove(spec, dn, old)], Registration::Unregister))
}

/// A move (semantics §4) combined with the filter of rule 2, judged on the state the
/// module will be given: the fresh one, or the patched cached one if it moved on again.
fn moved<'a>(
    spec: &ModuleSpec,
    registered: bool,
    old_dn: &'a Dn,
    old: &'a Entry,
    patched: &'a Entry,
    fresh: Option<&'a Entry>,
    changed_since_cache: &Changed,
) -> Decision<'a> {
    let new = fresh.unwrap_or(patched);
    match (registered, spec.filter.matches(new)) {
        (true, true) => {
            let calls = match spec.api {
                ApiKind::Classic if spec.modrdn => {
                    let mut calls = vec![
                        classic(old_dn, None, Some(old), Command::Rename),
                        classic(patched.dn(), Some(patched), None, Command::Add),
                    ];
                    // The `a` carried the cached state; the fresh one follows when it
                    // differs for this module (rule 1 between patched and fresh).
                    if let Some(fresh) = fresh
                        && !spec.up_to_date(changed_since_cache)
                    {
                        calls.push(classic(
                            fresh.dn(),
                            Some(fresh),
                            Some(patched),
                            Command::Modify,
                        ));
                    }
                    calls
                }
                ApiKind::Classic => vec![
                    classic(old_dn, None, Some(old), Command::Delete),
                    classic(new.dn(), Some(new), None, Command::Add),
                ],
                // One modify with the final state (UDL's adapter sends the stale cached
                // state and then a second modify).
                ApiKind::New | ApiKind::Async => vec![Call::Modify {
                    dn: new.dn(),
                    old,
                    new,
                    old_dn: Some(old_dn),
                }],
            };
            Some((calls, Registration::Register))
        }
        // Left the filter with the move: remove where the module knew it.
        (true, false) => Some((
            vec![remove(spec, old_dn, Some(old))],
            Registration::Unregister,
        )),
        // Entered the filter with the move: a create at the new DN.
        (false, true) => Some((vec![create(spec, new)], Registration::Register)),
        (false, false) => None,
    }
}

fn create<'a>(spec: &ModuleSpec, new: &'a Entry) -> Call<'a> {
    match spec.api {
        ApiKind::Classic => classic(new.dn(), Some(new), None, Command::Add),
        ApiKind::New | ApiKind::Async => Call::Create { dn: new.dn(), new },
    }
}

fn modify<'a>(spec: &ModuleSpec, old: &'a Entry, new: &'a Entry) -> Call<'a> {
    match spec.api {
        ApiKind::Classic => classic(new.dn(), Some(new), Some(old), Command::Modify),
        ApiKind::New | ApiKind::Async => Call::Modify {
            dn: new.dn(),
            old,
            new,
            old_dn: None,
        },
    }
}

/// `old` is `None` only for a delete under `handle_every_delete` of an uncached object.
fn remove<'a>(spec: &ModuleSpec, dn: &'a Dn, old: Option<&'a Entry>) -> Call<'a> {
    match spec.api {
        ApiKind::Classic => classic(dn, None, old, Command::Delete),
        ApiKind::New | ApiKind::Async => Call::Remove {
            dn,
            old: old.map_or_else(|| Cow::Owned(Entry::new(dn.clone())), Cow::Borrowed),
        },
    }
}

fn classic<'a>(
    dn: &'a Dn,
    new: Option<&'a Entry>,
    old: Option<&'a Entry>,
    command: Command,
) -> Call<'a> {
    Call::Classic {
        dn,
        new,
        old,
        command,
    }
}
