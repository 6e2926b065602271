//! Running the daemons in production: the log on stderr and its per-module levels,
//! per-module log files, and the Prometheus metrics endpoint.

pub mod logging;
pub mod metrics;
pub mod module_log;
