//! Prometheus metrics: the text exposition format ([`text`]) and the small HTTP endpoint
//! that serves it ([`http`]). The listener (`listener::metrics`) and the notifier each
//! render their own counters with these; neither keeps a metrics registry of its own,
//! they read the atomics the daemons already maintain when a scrape comes in.

pub mod http;
pub mod text;

pub use http::{MetricsError, MetricsServer, serve};
pub use text::{CONTENT_TYPE, Exposition, Kind, Value};
