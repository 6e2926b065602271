//! What a module call gets besides the change itself: its name, its logger, helpers.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ldap3::Scope;
use listener_core::{AttributeDescription, Dn, Entry};

use crate::api::error::HandlerError;
use crate::listener::fetch::Fetcher;
use crate::shared::{self, SharedError, SharedStore};

/// Passed to every module call.
///
/// It carries the module's name and a [`Logger`] scoped to the module, offers
/// [`Context::diff`], and — inside a running listener — a ready LDAP connection
/// ([`Context::search`], [`Context::ldap`]; UCS's `self.lo`) and the listener's
/// settings ([`Context::settings`]), and the module's shared variables and locks
/// ([`Context::get_shared_var`], [`Context::set_shared_var`], [`Context::lock`]).
#[derive(Debug)]
pub struct Context {
    module_name: String,
    logger: Logger,
    ldap: Option<Fetcher>,
    settings: Option<Arc<Settings>>,
    shared: Option<Arc<dyn SharedStore>>,
}

/// What a module may read of the listener's configuration (never the bind password).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The subtree the listener follows.
    pub base: Dn,
    /// The LDAP server's URI.
    pub ldap_uri: String,
    /// The DN the listener binds as.
    pub bind_dn: String,
    /// The notifier's `host:port`.
    pub notifier: String,
    /// The listener's cache directory.
    pub cache_dir: PathBuf,
}

impl Context {
    /// The context for the module called `module_name`. The runtime makes one per module
    /// instance; tests of modules make their own.
    pub fn new(module_name: &str) -> Context {
        Context {
            module_name: module_name.to_owned(),
            logger: Logger::new(module_name),
            ldap: None,
            settings: None,
            shared: None,
        }
    }

    /// Gives the context the store of shared variables and locks.
    pub(crate) fn share(&mut self, store: Arc<dyn SharedStore>) {
        self.shared = Some(store);
    }

    fn store(&self) -> Result<&Arc<dyn SharedStore>, SharedError> {
        self.shared.as_ref().ok_or(SharedError::NoStore)
    }

    /// The module's shared variable `name`, deserialized (`None` if it was never set).
    /// Variables are per module, and shared by every call of it.
    pub async fn get_shared_var<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, SharedError> {
        let Some(bytes) = self.store()?.get(&self.module_name, name).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SharedError::Value {
                name: name.to_owned(),
                message: format!("the stored value does not read as the type asked for: {e}"),
            })
    }

    /// Sets the module's shared variable `name` (serde JSON).
    pub async fn set_shared_var<T: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), SharedError> {
        let bytes = serde_json::to_vec(value).map_err(|e| SharedError::Value {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        self.store()?.set(&self.module_name, name, &bytes).await
    }

    /// Takes the module's lock `name` with a 60 s lease, waiting (with jitter, up to
    /// 30 s) while another call holds it. Released when the guard is dropped or by
    /// [`LockGuard::unlock`]; a holder that dies loses it when the lease ends.
    pub async fn lock(&self, name: &str) -> Result<LockGuard, SharedError> {
        self.lock_with(name, shared::DEFAULT_LEASE).await
    }

    /// [`Context::lock`] with the lease `ttl`.
    pub async fn lock_with(
        &self,
        name: &str,
        ttl: std::time::Duration,
    ) -> Result<LockGuard, SharedError> {
        let store = self.store()?.clone();
        let token = shared::token();
        let started = std::time::Instant::now();
        let mut attempt = 0;
        while !store.try_lock(&self.module_name, name, &token, ttl).await? {
            attempt += 1;
            if started.elapsed() >= shared::LOCK_DEADLINE {
                return Err(SharedError::LockTimeout {
                    name: name.to_owned(),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(shared::jitter(attempt)).await;
        }
        Ok(LockGuard {
            store: Some(store),
            module: self.module_name.clone(),
            name: name.to_owned(),
            token,
        })
    }

    /// Gives the context the listener's LDAP connection and settings (the runtime does
    /// this when the listener runs).
    pub fn connect(&mut self, ldap: Fetcher, settings: Arc<Settings>) {
        self.ldap = Some(ldap);
        self.settings = Some(settings);
    }

    /// The listener's settings; `None` outside a running listener (e.g. in a unit test).
    pub fn settings(&self) -> Option<&Settings> {
        self.settings.as_deref()
    }

    /// The listener's LDAP connection (bound as the listener), for asynchronous modules
    /// and for uses [`Context::search`] does not cover; `None` outside a running listener.
    pub fn ldap(&self) -> Option<ldap3::Ldap> {
        self.ldap.as_ref().map(Fetcher::handle)
    }

    /// Searches LDAP with the listener's connection (`*` and `+`), as UCS's
    /// `self.lo.search(...)`, from a synchronous module method.
    ///
    /// ```no_run
    /// # use listener_runtime::prelude::*;
    /// # fn f(ctx: &mut Context, dn: &Dn) -> HandlerResult {
    /// let groups = ctx.search("dc=example,dc=com", ldap3::Scope::Subtree,
    ///                         &format!("(member={dn})"))?;
    /// ctx.logger().info(format_args!("{dn} is in {} groups", groups.len()));
    /// # Ok(()) }
    /// ```
    pub fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> Result<Vec<Entry>, HandlerError> {
        let Some(ldap) = &self.ldap else {
            return Err(HandlerError::msg(
                "no LDAP connection: Context::search works inside a running listener",
            ));
        };
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| HandlerError::msg("Context::search needs the listener's runtime"))?;
        // Module methods run on the listener's multi-threaded runtime: let it move other
        // work off this thread while we wait.
        tokio::task::block_in_place(|| handle.block_on(ldap.search_entries(base, scope, filter)))
            .map_err(HandlerError::from)
    }

    /// The module's configured `name`.
    pub fn module_name(&self) -> &str {
        &self.module_name
    }

    /// The module's logger (UCS's `self.logger`).
    ///
    /// ```
    /// # let ctx = listener_runtime::Context::new("example");
    /// ctx.logger().debug(format_args!("dn: {}", "uid=x,dc=example"));
    /// ```
    pub fn logger(&self) -> &Logger {
        &self.logger
    }

    /// The attributes whose value sets differ between `old` and `new`, metadata
    /// (`entryCSN`, `modifyTimestamp`, …) ignored: UCS's `self.diff(old, new)`.
    pub fn diff(&self, old: &Entry, new: &Entry) -> Vec<AttributeDescription> {
        listener_core::entry::diff(old, new)
    }
}

/// A lock held by a module call ([`Context::lock`]). Dropping it releases the lock (in
/// the background); [`LockGuard::unlock`] releases it and reports errors.
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    store: Option<Arc<dyn SharedStore>>,
    module: String,
    name: String,
    token: String,
}

impl LockGuard {
    /// Releases the lock now. `Ok(false)`: the lease had ended and the lock was no
    /// longer this call's.
    pub async fn unlock(mut self) -> Result<bool, SharedError> {
        match self.store.take() {
            Some(store) => store.unlock(&self.module, &self.name, &self.token).await,
            None => Ok(false),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let Some(store) = self.store.take() else {
            return;
        };
        let (module, name, token) = (
            std::mem::take(&mut self.module),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.token),
        );
        // Without a runtime the lease simply runs out.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.unlock(&module, &name, &token).await {
                    tracing::warn!(module, lock = name, error = %e, "cannot release a lock; its lease runs out");
                }
            });
        }
    }
}

/// Writes to the module's log: `tracing` events (target `listener_module`) inside a span
/// `module` whose field `module` is the module's name, so `--log-level
/// info,listener_module=debug` selects every module's debug lines and `--log-level
/// info,printer=debug` one module's (see `crate::ops::logging`).
#[derive(Debug, Clone)]
pub struct Logger {
    span: tracing::Span,
}

/// The `tracing` target of every module log line.
pub(crate) const LOG_TARGET: &str = "listener_module";

impl Logger {
    fn new(module_name: &str) -> Logger {
        Logger {
            span: tracing::info_span!(target: LOG_TARGET, "module", module = module_name),
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
