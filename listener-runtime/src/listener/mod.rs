//! The listener: follows a notifier, keeps a local cache of the objects it has seen and
//! calls listener modules (semantics §4–§6).
//!
//! One change travels through these rooms in this order: the notifier reader in
//! [`run`] asks [`crate::protocol::client`] for transactions; [`window`] takes them in
//! and fetches their objects ahead ([`fetch`]); [`decide`] compares the fetched state with
//! the cached one; [`dispatch`] plans each module's calls; [`apply`] makes them through
//! [`call`] and writes the cache; [`group`] decides when that becomes durable. Module
//! initialization is [`lifecycle`]; the administrator's tools reach a running listener
//! through [`control`].
//!
//! # The `Module*` types
//!
//! | Type | What it holds | Where |
//! |---|---|---|
//! | `ModuleConfig` | a module's keys as the macro checked them (name, filter, attributes, priority, flags) | `listener_core::module_config` |
//! | `ModuleRegistration` | what `#[listener_module]` registers in the binary: the config's keys, the API and a constructor | [`crate::api::registry`] |
//! | `ModuleInstance` | a constructed module, behind the API it implements | [`crate::api::registry`] |
//! | `ModuleSpec` | what dispatch needs of a module: the compiled filter and attributes, the API, the flags | [`dispatch`] |
//! | `ModulePlan` | the calls one change gives one module, and its registration afterwards | [`dispatch`] |
//! | `Module` | a loaded module in the running listener: its instance, context and `pre_run` state | [`call`] |
//! | `ModuleState`, `ModulePhase` | what the cache records of a module: initializing, ready or failed, and for which filter | [`cache`] |
//! | `ModuleStats` | a module's call counters and timings for `status` and metrics | [`stats`] |
//! | `ModuleStatus` | a module's line in a `status` answer | [`control`] |
//! | `ModuleFiles`, `ModuleName` | the per-module log files and the log field naming the module | [`crate::ops::module_log`] |
//!
//! # The transaction types
//!
//! * `notifier::translog::Transaction`: a write as the notifier logs it (ID, DN,
//!   command, entryUUID, CSN, time).
//! * [`crate::protocol::client::TransactionRef`]: a transaction as the wire carries it to
//!   a listener (ID, DN text, command).
//! * [`decide::Transaction`]: the same with its DN parsed, as the listener processes it.

pub(crate) mod apply;
pub(crate) mod cache;
pub(crate) mod call;
pub(crate) mod compare;
pub(crate) mod control;
pub(crate) mod decide;
pub(crate) mod dispatch;
pub(crate) mod fetch;
pub(crate) mod group;
pub(crate) mod lifecycle;
pub(crate) mod metrics;
pub(crate) mod progress;
pub(crate) mod run;
pub(crate) mod stats;
pub(crate) mod window;
