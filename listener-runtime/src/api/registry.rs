//! The modules linked into the binary: what `#[listener_module]` registers, and how the
//! runtime finds, orders and checks them.

use std::fmt;

use listener_core::{ModuleConfig, ModuleForm};

use crate::api::handler::{ClassicHandler, ErasedAsyncHandler, Handler};

/// Which of the three APIs (semantics §7) a module is written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKind {
    /// A struct implementing [`Handler`].
    New,
    /// A struct implementing [`AsyncHandler`](crate::AsyncHandler), `run_asynchronously`.
    Async,
    /// A function with the [`ClassicHandler`] signature.
    Classic,
}

impl ApiKind {
    /// `new`, `async` or `classic`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiKind::New => "new",
            ApiKind::Async => "async",
            ApiKind::Classic => "classic",
        }
    }
}

impl fmt::Display for ApiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fresh module instance, ready to be called.
pub enum ModuleInstance {
    /// A new-API module.
    Sync(Box<dyn Handler>),
    /// An asynchronous module.
    Async(Box<dyn ErasedAsyncHandler>),
    /// A classic module's function.
    Classic(ClassicHandler),
}

impl fmt::Debug for ModuleInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModuleInstance::Sync(_) => "ModuleInstance::Sync(..)",
            ModuleInstance::Async(_) => "ModuleInstance::Async(..)",
            ModuleInstance::Classic(_) => "ModuleInstance::Classic(..)",
        })
    }
}

/// Where a module was declared: the Rust item and the `#[listener_module]` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceLocation {
    /// The item's path, e.g. `my_modules::ListenerModuleTemplate`.
    pub item: &'static str,
    /// The source file of the attribute.
    pub file: &'static str,
    /// The line of the attribute.
    pub line: u32,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` at {}:{}", self.item, self.file, self.line)
    }
}

/// One module as `#[listener_module(...)]` registers it (with [`inventory`]); the
/// configuration was validated when the module was compiled.
///
/// Built by the macro; read by the runtime through [`registered_modules`].
#[derive(Debug)]
pub struct ModuleRegistration {
    /// `name`: unique among the binary's modules.
    pub name: &'static str,
    /// `description`.
    pub description: &'static str,
    /// `ldap_filter` (RFC 4515).
    pub ldap_filter: &'static str,
    /// `attributes`: the module is only called when one of these changed; empty = all.
    pub attributes: &'static [&'static str],
    /// `priority`: lower runs first.
    pub priority: f64,
    /// `handle_every_delete`.
    pub handle_every_delete: bool,
    /// `blocking`: a failing call halts processing instead of becoming a failed event.
    pub blocking: bool,
    /// `modrdn` (classic modules).
    pub modrdn: bool,
    /// `parallelism` as written (`None` when absent; asynchronous modules then run one
    /// worker).
    pub parallelism: Option<u32>,
    /// The API the module is written against (`run_asynchronously` ⇔ [`ApiKind::Async`]).
    pub kind: ApiKind,
    /// Makes a fresh instance (for asynchronous modules: one per worker).
    pub constructor: fn() -> ModuleInstance,
    /// Where the module was declared.
    pub source: SourceLocation,
}

inventory::collect!(ModuleRegistration);

impl ModuleRegistration {
    /// The module's configuration in listener-core's form.
    pub fn config(&self) -> ModuleConfig {
        let form = match self.kind {
            ApiKind::New | ApiKind::Async => ModuleForm::Struct,
            ApiKind::Classic => ModuleForm::Function,
        };
        let mut config = ModuleConfig::new(self.name, self.description, self.ldap_filter, form);
        config.attributes = self.attributes.iter().map(|a| (*a).to_owned()).collect();
        config.priority = self.priority;
        config.handle_every_delete = self.handle_every_delete;
        config.blocking = self.blocking;
        config.modrdn = self.modrdn;
        config.run_asynchronously = self.kind == ApiKind::Async;
        config.parallelism = self.parallelism;
        config
    }

    /// A fresh instance of the module.
    pub fn instantiate(&self) -> ModuleInstance {
        (self.constructor)()
    }

    /// Worker processes of an asynchronous module (1 unless `parallelism` says
    /// otherwise); `None` for synchronous modules.
    pub fn workers(&self) -> Option<u32> {
        (self.kind == ApiKind::Async).then(|| self.parallelism.unwrap_or(1))
    }
}

/// Two modules with the same name: the listener refuses to start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "two listener modules are named `{name}`: {first} and {second}; module names must be \
     unique, rename one of them"
)]
pub struct DuplicateModuleName {
    /// The name both use.
    pub name: &'static str,
    /// Where the first one (in name/priority order) was declared.
    pub first: SourceLocation,
    /// Where the second one was declared.
    pub second: SourceLocation,
}

/// Every module linked into the binary, by ascending priority, ties by name (the order
/// the listener calls them in, semantics §5).
///
/// A module crate the binary never refers to is not linked: `use my_modules as _;`.
pub fn registered_modules() -> Vec<&'static ModuleRegistration> {
    let mut modules: Vec<_> = inventory::iter::<ModuleRegistration>.into_iter().collect();
    sort_modules(&mut modules);
    modules
}

/// Sorts by ascending priority, ties by name, then by source location so the order is
/// total and does not depend on link order.
pub(crate) fn sort_modules(modules: &mut [&ModuleRegistration]) {
    modules.sort_by(|a, b| {
        a.priority
            .total_cmp(&b.priority)
            .then_with(|| a.name.cmp(b.name))
            .then_with(|| a.source.item.cmp(b.source.item))
            .then_with(|| a.source.file.cmp(b.source.file))
            .then_with(|| a.source.line.cmp(&b.source.line))
    });
}

/// Fails on the first name used by two modules, naming both.
pub fn check_unique_names(modules: &[&ModuleRegistration]) -> Result<(), DuplicateModuleName> {
    let mut by_name: Vec<&ModuleRegistration> = modules.to_vec();
    by_name.sort_by(|a, b| a.name.cmp(b.name));
    match by_name.windows(2).find(|w| w[0].name == w[1].name) {
        Some(pair) => Err(DuplicateModuleName {
            name: pair[0].name,
            first: pair[0].source,
            second: pair[1].source,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(
        _: &mut crate::Context,
        _: &listener_core::Dn,
        _: Option<&listener_core::Entry>,
        _: Option<&listener_core::Entry>,
        _: listener_core::Command,
    ) -> crate::HandlerResult {
        Ok(())
    }

    fn construct() -> ModuleInstance {
        ModuleInstance::Classic(noop)
    }

    const fn module(name: &'static str, priority: f64, item: &'static str) -> ModuleRegistration {
        ModuleRegistration {
            name,
            description: "test module",
            ldap_filter: "(objectClass=*)",
            attributes: &[],
            priority,
            handle_every_delete: false,
            blocking: false,
            modrdn: false,
            parallelism: None,
            kind: ApiKind::Classic,
            constructor: construct,
            source: SourceLocation {
                item,
                file: "src/lib.rs",
                line: 7,
            },
        }
    }

    static REPLICATION: ModuleRegistration = module("replication", 0.0, "r::Replication");
    static ZETA: ModuleRegistration = module("zeta", 50.0, "z::Zeta");
    static ALPHA: ModuleRegistration = module("alpha", 50.0, "a::Alpha");
    static EARLY: ModuleRegistration = module("early", -5.5, "e::Early");
    static LATE: ModuleRegistration = module("late", 99.0, "l::Late");
    static ALPHA_AGAIN: ModuleRegistration = module("alpha", 10.0, "other::Alpha");

    fn names(modules: &[&ModuleRegistration]) -> Vec<&'static str> {
        modules.iter().map(|m| m.name).collect()
    }

    #[test]
    fn sorted_by_priority_then_name() {
        let mut modules = vec![&LATE, &ZETA, &REPLICATION, &ALPHA, &EARLY];
        sort_modules(&mut modules);
        assert_eq!(
            names(&modules),
            ["early", "replication", "alpha", "zeta", "late"]
        );
    }

    #[test]
    fn unique_names_pass() {
        assert_eq!(check_unique_names(&[&ZETA, &ALPHA, &LATE]), Ok(()));
        assert_eq!(check_unique_names(&[]), Ok(()));
    }

    #[test]
    fn duplicate_names_name_both_modules() {
        let err = check_unique_names(&[&ZETA, &ALPHA, &LATE, &ALPHA_AGAIN]).unwrap_err();
        assert_eq!(err.name, "alpha");
        let message = err.to_string();
        assert!(message.contains("`alpha`"), "{message}");
        assert!(message.contains("`a::Alpha` at src/lib.rs:7"), "{message}");
        assert!(
            message.contains("`other::Alpha` at src/lib.rs:7"),
            "{message}"
        );
    }

    #[test]
    fn config_round_trips() {
        let config = ALPHA.config();
        assert_eq!(config.name, "alpha");
        assert_eq!(config.form, ModuleForm::Function);
        assert!(!config.run_asynchronously);
        assert_eq!(ALPHA.workers(), None);
        assert!(matches!(ALPHA.instantiate(), ModuleInstance::Classic(_)));
    }
}
