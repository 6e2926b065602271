//! The listener: follows a notifier, keeps a local cache of the objects it has seen and
//! calls listener modules (semantics §4–§6).

pub(crate) mod apply;
pub(crate) mod cache;
pub(crate) mod call;
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
