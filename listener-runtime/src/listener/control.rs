//! The control socket: how the administrator's tools (`status`, `dump`, `failed`,
//! `resync`, …) talk to a running listener, which holds its cache exclusively.
//! Requests that change the cache or the modules are carried out by the processing loop
//! between transactions ([`handle`]); reads are answered from a snapshot right away.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::apply::Applier;
use super::cache::Cache;
use super::run::RunConfig;
use super::stats::Stats;

/// A request for the processing loop.
#[derive(Debug)]
pub enum Request {}

/// Starts serving the control socket in the cache directory (nothing yet).
pub fn spawn_server(
    _config: &RunConfig,
    _cache: Arc<Cache>,
    _stats: Arc<Stats>,
    _requests: mpsc::Sender<Request>,
) {
}

/// Carries out `request` between transactions.
pub async fn handle(request: Request, _applier: &mut Applier, _cache: &Cache, _stats: &Stats) {
    match request {}
}
