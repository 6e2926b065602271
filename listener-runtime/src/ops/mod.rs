//! Running the daemons in production: the log on stderr and its per-module levels,
//! per-module log files, the Prometheus metrics endpoint, and how memory is taken.

pub(crate) mod logging;
pub(crate) mod memory;
pub(crate) mod metrics;
pub(crate) mod module_log;
