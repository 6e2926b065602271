//! The listener's model, free of I/O: distinguished names (RFC 4514), entries, attribute
//! descriptions, RFC 4515 filters with a schema-aware matcher, the listener's commands and
//! the module configuration with the one validation shared by `#[listener_module]` (at
//! compile time) and the runtime.

pub mod attr;
pub mod command;
pub mod dn;
pub mod entry;
pub mod filter;
pub mod ldif;
pub mod matching;
pub mod module_config;
pub mod replica;
pub mod schema;

pub use attr::{AttributeDescription, AttributeError};
pub use command::Command;
pub use dn::{Ava, Dn, DnError, Rdn};
pub use entry::{Entry, METADATA_ATTRIBUTES};
pub use filter::{Filter, FilterError};
pub use matching::MatchingRule;
pub use module_config::{ConfigError, ConfigKey, ModuleConfig, ModuleForm};
pub use schema::Schema;
