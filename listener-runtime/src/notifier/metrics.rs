//! The notifier's Prometheus metrics (`notifier --metrics ADDR`): the IDs it publishes and
//! the clients connected. Names start with `notifier_`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::server::Published;
use crate::ops::metrics::{self, MetricsError, MetricsServer};

/// Serves what `published` shows on `addr` (if given) until the result is dropped.
pub(crate) fn spawn(
    addr: Option<SocketAddr>,
    published: &Published,
) -> Result<Option<MetricsServer>, MetricsError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let collector = PublishedCollector {
        published: published.clone(),
        started: Instant::now(),
    };
    metrics::serve(addr, metrics::registry(collector)).map(Some)
}

/// The notifier's metrics, read from what it publishes at each scrape.
struct PublishedCollector {
    published: Published,
    started: Instant,
}

impl std::fmt::Debug for PublishedCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedCollector")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Collector for PublishedCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        Snapshot {
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            last_id: *self.published.last_id.borrow(),
            schema_id: *self.published.schema_id.borrow(),
            clients: self.published.clients.load(Ordering::Relaxed),
        }
        .encode(encoder)
    }
}

/// The values of one scrape.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    uptime_seconds: f64,
    last_id: u64,
    schema_id: u64,
    clients: u64,
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let e = &mut e;
        metrics::gauge(
            e,
            "notifier_uptime_seconds",
            "Seconds since the notifier started.",
            self.uptime_seconds,
        )?;
        metrics::gauge(
            e,
            "notifier_last_id",
            "The last durable transaction ID, the one listeners are told.",
            self.last_id,
        )?;
        metrics::gauge(
            e,
            "notifier_schema_id",
            "The schema ID listeners are told.",
            self.schema_id,
        )?;
        metrics::gauge(
            e,
            "notifier_connected_clients",
            "Protocol clients (listeners, tools) connected now.",
            self.clients,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ids_and_clients() {
        let text = metrics::render(&metrics::registry(Snapshot {
            uptime_seconds: 3.5,
            last_id: 120,
            schema_id: 2,
            clients: 4,
        }));
        assert_eq!(
            text,
            "# HELP notifier_uptime_seconds Seconds since the notifier started.\n\
             # TYPE notifier_uptime_seconds gauge\n\
             notifier_uptime_seconds 3.5\n\
             # HELP notifier_last_id The last durable transaction ID, the one listeners are told.\n\
             # TYPE notifier_last_id gauge\n\
             notifier_last_id 120\n\
             # HELP notifier_schema_id The schema ID listeners are told.\n\
             # TYPE notifier_schema_id gauge\n\
             notifier_schema_id 2\n\
             # HELP notifier_connected_clients Protocol clients (listeners, tools) connected now.\n\
             # TYPE notifier_connected_clients gauge\n\
             notifier_connected_clients 4\n"
        );
    }
}
