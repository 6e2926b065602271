//! The listener: follows a notifier, keeps a local cache of the objects it has seen and
//! calls listener modules (semantics §4–§6).

pub mod apply;
pub mod cache;
pub mod call;
pub mod control;
pub mod decide;
pub mod dispatch;
pub mod fetch;
pub mod group;
pub mod lifecycle;
pub mod metrics;
pub mod run;
pub mod stats;
pub mod window;
