//! What a module call gets besides the change itself: its name, its logger, helpers.

use std::fmt;

use listener_core::{AttributeDescription, Entry};

/// Passed to every module call.
///
/// For now it carries the module's name and a [`Logger`] scoped to the module, and offers
/// [`Context::diff`]; the LDAP connection and the async modules' shared state will live
/// here too.
#[derive(Debug)]
pub struct Context {
    module_name: String,
    logger: Logger,
}

impl Context {
    /// The context for the module called `module_name`. The runtime makes one per module
    /// instance; tests of modules make their own.
    pub fn new(module_name: &str) -> Context {
        Context {
            module_name: module_name.to_owned(),
            logger: Logger::new(module_name),
        }
    }

    /// The module's configured `name`.
    pub fn module_name(&self) -> &str {
        &self.module_name
    }

    /// The module's logger (the seed's `self.logger`).
    ///
    /// ```
    /// # let ctx = listener_runtime::Context::new("example");
    /// ctx.logger().debug(format_args!("dn: {}", "uid=x,dc=example"));
    /// ```
    pub fn logger(&self) -> &Logger {
        &self.logger
    }

    /// The attributes whose value sets differ between `old` and `new`, metadata
    /// (`entryCSN`, `modifyTimestamp`, …) ignored: the seed's `self.diff(old, new)`.
    pub fn diff(&self, old: &Entry, new: &Entry) -> Vec<AttributeDescription> {
        listener_core::entry::diff(old, new)
    }
}

/// Writes to the module's log: `tracing` events inside a span carrying the module name,
/// so `RUST_LOG=listener_module=debug` or a per-span filter selects one module's lines.
#[derive(Debug, Clone)]
pub struct Logger {
    span: tracing::Span,
}

/// The `tracing` target of every module log line.
pub const LOG_TARGET: &str = "listener_module";

impl Logger {
    fn new(module_name: &str) -> Logger {
        Logger {
            span: tracing::info_span!(target: LOG_TARGET, "module", name = module_name),
        }
    }

    /// The span every line of this module is logged in.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl fmt::Display) {
        self.span
            .in_scope(|| tracing::debug!(target: LOG_TARGET, "{message}"));
    }

    /// Logs at info level.
    pub fn info(&self, message: impl fmt::Display) {
        self.span
            .in_scope(|| tracing::info!(target: LOG_TARGET, "{message}"));
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl fmt::Display) {
        self.span
            .in_scope(|| tracing::warn!(target: LOG_TARGET, "{message}"));
    }

    /// Logs at error level.
    pub fn error(&self, message: impl fmt::Display) {
        self.span
            .in_scope(|| tracing::error!(target: LOG_TARGET, "{message}"));
    }
}
