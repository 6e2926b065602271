//! Asynchronous modules (`run_asynchronously`) run in worker processes: `parallelism`
//! processes of the listener's own binary (`<bin> worker --module NAME`), each with the
//! module's own instance and LDAP connection, started and supervised by `run`.
//!
//! The path of a call: the listener decides a transaction as for any module, and writes
//! the calls of each asynchronous module as rows of that module's queue in the
//! transaction's own cache commit (the outbox, [`job`]); then it goes on. The module's
//! [`pool`] hands the rows to idle workers as the ordering allows ([`lanes`]: calls for
//! one object never overlap and keep their order), over a private channel per worker
//! ([`wire`], [`process`]), by the pool's task ([`executor`]). A row goes away when its
//! worker reports success: the listener removes it in the next cache write transaction
//! it makes ([`results`]). The worker ([`worker`]) retries a failing call as the
//! listener would and reports the last error; the row then becomes a failed event. The
//! module's shared variables and locks are asked of the listener over the same channel.
//!
//! See docs/semantics.md §7.1 for the promises.

pub(crate) mod executor;
pub(crate) mod job;
pub(crate) mod lanes;
pub(crate) mod pool;
pub(crate) mod process;
pub(crate) mod results;
pub(crate) mod wire;
pub(crate) mod worker;

pub(crate) use pool::{Pool, PoolConfig, QueueStats};
pub(crate) use results::Results;
pub(crate) use worker::run_worker;
