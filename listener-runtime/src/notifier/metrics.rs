//! The notifier's Prometheus metrics (`notifier --metrics ADDR`): the IDs it publishes and
//! the clients connected. Names start with `notifier_`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::server::Published;
use crate::metrics::{Exposition, Kind, MetricsError, MetricsServer, Value};

/// Serves what `published` shows on `addr` (if given) until the result is dropped.
pub(crate) fn spawn(
    addr: Option<SocketAddr>,
    published: &Published,
) -> Result<Option<MetricsServer>, MetricsError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let published = published.clone();
    let started = Instant::now();
    let render = move || {
        render(&Snapshot {
            uptime_seconds: started.elapsed().as_secs_f64(),
            last_id: *published.last_id.borrow(),
            schema_id: *published.schema_id.borrow(),
            clients: published.clients.load(Ordering::Relaxed),
        })
    };
    crate::metrics::serve(addr, Arc::new(render)).map(Some)
}

/// The values of one scrape.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    uptime_seconds: f64,
    last_id: u64,
    schema_id: u64,
    clients: u64,
}

fn render(s: &Snapshot) -> String {
    let mut e = Exposition::new();
    let mut gauge = |name: &str, help: &str, value: Value| {
        e.family(name, Kind::Gauge, help);
        e.sample(name, &[], value);
    };
    gauge(
        "notifier_uptime_seconds",
        "Seconds since the notifier started.",
        s.uptime_seconds.into(),
    );
    gauge(
        "notifier_last_id",
        "The last durable transaction ID, the one listeners are told.",
        s.last_id.into(),
    );
    gauge(
        "notifier_schema_id",
        "The schema ID listeners are told.",
        s.schema_id.into(),
    );
    gauge(
        "notifier_connected_clients",
        "Protocol clients (listeners, tools) connected now.",
        s.clients.into(),
    );
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_ids_and_clients() {
        let text = render(&Snapshot {
            uptime_seconds: 3.5,
            last_id: 120,
            schema_id: 2,
            clients: 4,
        });
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
