//! The UCS notifier protocol (semantics §3): the wire format both sides share
//! ([`wire`]) and the one client of it ([`client`]), used by the listener, `status` and
//! `notifier-id`. The server side is the notifier's (`crate::notifier::server`).

pub(crate) mod client;
pub(crate) mod wire;
