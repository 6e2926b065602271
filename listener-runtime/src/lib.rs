//! The Univention Directory Listener runtime: the module API, the module registry and the
//! command line.
//!
//! A module crate writes modules with [`listener_module`] (see [`prelude`]); a binary
//! links them and hands over to [`main`]:
//!
//! ```no_run
//! // use my_modules as _;   // link the module crate, or its modules are not registered
//! fn main() -> std::process::ExitCode {
//!     listener_runtime::main()
//! }
//! ```

#![warn(missing_docs, unreachable_pub)]

pub(crate) mod api;
mod cli;
mod dir_lock;
pub(crate) mod ldap;
pub(crate) mod listener;
pub(crate) mod notifier;
pub(crate) mod ops;
pub(crate) mod protocol;
pub(crate) mod replication;
pub(crate) mod shared;
mod utc;
pub(crate) mod workers;

pub use listener_core::{AttributeDescription, Command, Dn, Entry};
pub use listener_macros::listener_module;

pub use crate::api::context::{Context, LockGuard, Logger, Settings};
pub use crate::api::error::{HandlerError, HandlerResult};
pub use crate::api::handler::{
    AsyncHandler, BoxFuture, ClassicHandler, ErasedAsyncHandler, Handler,
};
pub use crate::api::registry::{
    ApiKind, DuplicateModuleName, ModuleInstance, ModuleRegistration, SourceLocation,
    check_unique_names, registered_modules,
};
pub use crate::cli::{main, main_from};
pub use crate::shared::SharedError;

/// What a module crate needs: `use listener_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AsyncHandler, ClassicHandler, Command, Context, Dn, Entry, Handler, HandlerError,
        HandlerResult, listener_module,
    };
}

/// Used by the code `#[listener_module]` generates; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;

    pub use crate::api::handler::{AsyncHandler, ClassicHandler, Handler};
    pub use crate::api::registry::{ApiKind, ModuleInstance, ModuleRegistration, SourceLocation};

    /// `Default`, with a message that says why a listener module needs it.
    #[diagnostic::on_unimplemented(
        message = "listener module `{Self}` does not implement `Default`",
        label = "the runtime creates `{Self}` with `Default::default()`",
        note = "add `#[derive(Default)]` to `{Self}`, or `impl Default for {Self}` to set it up"
    )]
    pub trait ModuleDefault: Sized {
        /// `Default::default()`.
        fn construct() -> Self;
    }

    impl<T: Default> ModuleDefault for T {
        fn construct() -> T {
            T::default()
        }
    }

    /// The constructor of a new-API module.
    pub fn new_sync<T: Handler + ModuleDefault>() -> ModuleInstance {
        ModuleInstance::Sync(Box::new(T::construct()))
    }

    /// The constructor of an asynchronous module.
    pub fn new_async<T: AsyncHandler + ModuleDefault>() -> ModuleInstance {
        ModuleInstance::Async(Box::new(T::construct()))
    }
}

/// The runtime's internals that the project's own integration tests and benchmarks drive
/// directly (the cache, the fetcher, the notifier and its log, the protocol client). Not
/// a stable API: module authors use [`prelude`] and [`main`].
#[doc(hidden)]
pub mod testing {
    pub use crate::api::context::Settings;
    pub use crate::ldap::{Backoff, LdapSettings};
    pub use crate::listener::cache::{
        Cache, CacheError, CachedEntry, Entries, FailedEvent, ModulePhase, ModuleState, ReadTxn,
        VerifyReport, WriteTxn,
    };
    pub use crate::listener::decide::FetchBy;
    pub use crate::listener::decide::Transaction;
    pub use crate::listener::dispatch::{Call, Change, ModuleSpec, Registration, SpecError, plan};
    pub use crate::listener::fetch::{FetchError, Fetcher};
    pub use crate::listener::window::{BadDn, CacheView, Window};
    pub use crate::notifier::accesslog::{ATTRIBUTES, Write};
    pub use crate::notifier::server::{Published, ServerConfig, serve as serve_notifier};
    pub use crate::notifier::translog::{
        Transaction as LogTransaction, Translog, check as check_translog,
    };
    pub use crate::notifier::{NotifierConfig, NotifierError, run as run_notifier};
    pub use crate::protocol::client::{
        ClientError, ClientOptions, NotifierClient, TransactionRef, connect_with_backoff,
    };
    pub use crate::protocol::wire::Framer;

    /// A store of shared variables and locks, for tests of [`crate::Context`]'s shared
    /// state against each backend.
    #[derive(Debug, Clone)]
    pub struct SharedStore(std::sync::Arc<dyn crate::shared::SharedStore>);

    impl SharedStore {
        /// The memcached at `addr`.
        pub fn memcached(addr: &str) -> SharedStore {
            SharedStore(std::sync::Arc::new(
                crate::shared::memcached::Memcached::new(addr),
            ))
        }

        /// The embedded store in `dir`.
        pub fn embedded(dir: &std::path::Path) -> Result<SharedStore, crate::SharedError> {
            Ok(SharedStore(std::sync::Arc::new(
                crate::shared::embedded::Embedded::open(dir)?,
            )))
        }

        /// A context of module `module` on this store.
        pub fn context(&self, module: &str) -> crate::Context {
            let mut ctx = crate::Context::new(module);
            ctx.share(self.0.clone());
            ctx
        }
    }
}
