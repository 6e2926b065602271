//! Prometheus metrics: the text exposition format ([`text`]) and the small HTTP endpoint
//! that serves it ([`http`]). The listener (`listener::metrics`) and the notifier each
//! render their own counters with these; neither keeps a metrics registry of its own,
//! they read the atomics the daemons already maintain when a scrape comes in.

pub(crate) mod http;
pub(crate) mod text;

pub(crate) use http::{MetricsError, MetricsServer, serve};
pub(crate) use text::{Exposition, Kind, Value};
