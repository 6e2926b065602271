//! The listener: follows a notifier, keeps a local cache of the objects it has seen and
//! calls listener modules (semantics §4–§6).

pub mod cache;
pub mod fetch;
pub mod notifier_client;
