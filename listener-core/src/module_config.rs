//! A listener module's configuration and its validation, shared by `#[listener_module]`
//! (at compile time) and the runtime (at start).

use std::fmt;

use crate::attr::AttributeDescription;
use crate::filter::Filter;
use crate::schema::Schema;

/// The default module priority (semantics §5); lower runs first.
pub const DEFAULT_PRIORITY: f64 = 50.0;

/// Which API a module is written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModuleForm {
    /// A struct implementing `Handler` (the new API), or `AsyncHandler` when
    /// `run_asynchronously` is set.
    Struct,
    /// A function taking the command letter (the classic API).
    Function,
}

/// A module's configuration keys (semantics §7).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleConfig {
    pub name: String,
    pub description: String,
    pub ldap_filter: String,
    pub attributes: Vec<String>,
    pub priority: f64,
    pub handle_every_delete: bool,
    /// A failing call halts processing (retried until it succeeds) instead of going to
    /// the failed events: for modules that must not miss or reorder a change
    /// (replication).
    pub blocking: bool,
    pub modrdn: bool,
    pub run_asynchronously: bool,
    /// Worker processes; `None` means the key was not given (1 for async modules).
    pub parallelism: Option<u32>,
    pub form: ModuleForm,
}

impl ModuleConfig {
    /// A configuration with the given required keys and every other key at its default.
    pub fn new(name: &str, description: &str, ldap_filter: &str, form: ModuleForm) -> Self {
        ModuleConfig {
            name: name.into(),
            description: description.into(),
            ldap_filter: ldap_filter.into(),
            attributes: Vec::new(),
            priority: DEFAULT_PRIORITY,
            handle_every_delete: false,
            blocking: false,
            modrdn: false,
            run_asynchronously: false,
            parallelism: None,
            form,
        }
    }

    /// Checks every key and returns every problem found (not only the first).
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut fail = |key, message: String| errors.push(ConfigError { key, message });

        if self.name.is_empty() {
            fail(ConfigKey::Name, "the module name must not be empty".into());
        } else if let Some((i, c)) = self
            .name
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, ',' | '.' | '_' | '-')))
        {
            fail(
                ConfigKey::Name,
                format!(
                    "the module name {:?} contains {c:?} at byte {i}; \
                     allowed are letters, digits and `,` `.` `_` `-`",
                    self.name
                ),
            );
        }
        if self.description.trim().is_empty() {
            fail(
                ConfigKey::Description,
                "the description must not be empty".into(),
            );
        }
        match Filter::parse(&self.ldap_filter) {
            Ok(filter) => {
                if let Err(e) = filter.compile(Schema::builtin()) {
                    fail(ConfigKey::LdapFilter, e.to_string());
                }
            }
            Err(e) => fail(ConfigKey::LdapFilter, e.to_string()),
        }
        for (index, attr) in self.attributes.iter().enumerate() {
            if let Err(e) = AttributeDescription::parse(attr) {
                fail(ConfigKey::Attribute(index), e.to_string());
            }
        }
        if !self.priority.is_finite() {
            fail(
                ConfigKey::Priority,
                format!(
                    "the priority must be a finite number, not {}",
                    self.priority
                ),
            );
        }
        match self.parallelism {
            Some(0) => fail(
                ConfigKey::Parallelism,
                "parallelism must be at least 1".into(),
            ),
            Some(_) if !self.run_asynchronously => fail(
                ConfigKey::Parallelism,
                "parallelism needs `run_asynchronously`: only asynchronous modules run in \
                 worker processes"
                    .into(),
            ),
            _ => {}
        }
        if self.modrdn && self.form != ModuleForm::Function {
            fail(
                ConfigKey::Modrdn,
                "`modrdn` is only for classic (function) modules; struct modules receive \
                 moves as `modify` with `old_dn`"
                    .into(),
            );
        }
        if self.run_asynchronously && self.form != ModuleForm::Function {
            // fine: async struct modules implement AsyncHandler
        } else if self.run_asynchronously {
            fail(
                ConfigKey::RunAsynchronously,
                "`run_asynchronously` is only for struct modules implementing `AsyncHandler`"
                    .into(),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Worker processes for an asynchronous module.
    pub fn workers(&self) -> u32 {
        self.parallelism.unwrap_or(1)
    }
}

/// The key a configuration error is about, so the macro can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKey {
    Name,
    Description,
    LdapFilter,
    /// The attribute at this index of `attributes`.
    Attribute(usize),
    Priority,
    HandleEveryDelete,
    Modrdn,
    RunAsynchronously,
    Parallelism,
}

impl ConfigKey {
    /// The key as written in `#[listener_module(...)]`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConfigKey::Name => "name",
            ConfigKey::Description => "description",
            ConfigKey::LdapFilter => "ldap_filter",
            ConfigKey::Attribute(_) => "attributes",
            ConfigKey::Priority => "priority",
            ConfigKey::HandleEveryDelete => "handle_every_delete",
            ConfigKey::Modrdn => "modrdn",
            ConfigKey::RunAsynchronously => "run_asynchronously",
            ConfigKey::Parallelism => "parallelism",
        }
    }
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}`: {message}", key.as_str())]
pub struct ConfigError {
    pub key: ConfigKey,
    pub message: String,
}

impl fmt::Display for ModuleForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModuleForm::Struct => "struct",
            ModuleForm::Function => "function",
        })
    }
}
