//! The module API: what a module crate codes against. The three handler traits
//! ([`crate::Handler`], [`crate::AsyncHandler`], [`crate::ClassicHandler`]), the [`crate::Context`] a call gets, the
//! [`crate::HandlerResult`] it returns, and the registry of the modules linked into the binary.
//! Everything here is re-exported at the crate root and in the prelude.

pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod handler;
pub(crate) mod registry;
