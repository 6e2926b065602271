//! The notifier: follows slapd's accesslog, numbers every write as a transaction, keeps
//! the transaction log and serves it over the UCS notifier protocol.

pub mod protocol;
pub mod server;
pub mod translog;
