//! The module API: what a module crate codes against. The three handler traits
//! ([`Handler`], [`AsyncHandler`], [`ClassicHandler`]), the [`Context`] a call gets, the
//! [`HandlerResult`] it returns, and the registry of the modules linked into the binary.
//! Everything here is re-exported at the crate root and in the prelude.

pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod handler;
pub(crate) mod registry;
