//! The listener: follows a notifier, keeps a local cache of the objects it has seen and
//! calls listener modules (semantics §4–§6).

pub mod apply;
pub mod cache;
pub mod control;
pub mod dispatch;
pub mod fetch;
pub mod group;
pub mod invoke;
pub mod lifecycle;
pub mod metrics;
pub mod notifier_client;
pub mod pipeline;
pub mod process;
pub mod run;
pub mod stats;
