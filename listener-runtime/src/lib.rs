//! The runtime (placeholder: being written).
pub use listener_core::{Command, Dn, Entry};
pub mod listener;
pub mod notifier;
