//! Running the daemons in production: the log on stderr and its per-module levels,
//! per-module log files, and the Prometheus metrics endpoint.

pub(crate) mod logging;
pub(crate) mod metrics;
pub(crate) mod module_log;
