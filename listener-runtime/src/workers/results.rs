//! The cache writes of a pool: rows done are removed, rows failed for good become failed
//! events, in batches on a blocking thread.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::listener::cache::{Cache, CacheError, FailedEvent};

/// A cache write of the pool.
pub(crate) enum Write {
    /// Row done.
    Remove(u64),
    /// Row failed for good.
    Fail(u64, Box<FailedEvent>),
}

/// Writes the pool's results to the cache, in batches, on a blocking thread (a write
/// waits while the listener's group holds the cache's write transaction). The commits
/// are not made durable on their own: the listener's next durable commit takes them
/// along, and a row whose removal a crash lost runs again (at least once).
pub(super) async fn write_loop(
    cache: Arc<Cache>,
    module: String,
    mut writes: mpsc::UnboundedReceiver<Write>,
) {
    while let Some(first) = writes.recv().await {
        let mut batch = vec![first];
        while batch.len() < 1024
            && let Ok(more) = writes.try_recv()
        {
            batch.push(more);
        }
        let (cache, name) = (cache.clone(), module.clone());
        let written = tokio::task::spawn_blocking(move || write_batch(&cache, &name, batch)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(module, error = %e, "cannot record finished asynchronous calls; they run again after a restart")
            }
            Err(e) => tracing::error!(module, error = %e, "the cache writer of the queue failed"),
        }
    }
}

fn write_batch(cache: &Cache, module: &str, batch: Vec<Write>) -> Result<(), CacheError> {
    let mut w = cache.write()?;
    w.set_durable(false)?;
    for write in batch {
        match write {
            Write::Remove(seq) => {
                w.remove_job(module, seq)?;
            }
            Write::Fail(seq, event) => {
                w.remove_job(module, seq)?;
                // As for a synchronous module: not registered any more, so the next
                // change of the object reaches the module as new, and a replay
                // delivers the current state.
                if let Some(c) = w.entry(&event.dn)?
                    && c.modules.contains(module)
                    && (event.entry_uuid.is_empty()
                        || c.entry.first_str("entryUUID") == Some(event.entry_uuid.as_str()))
                {
                    let mut modules = c.modules;
                    modules.remove(module);
                    w.set_registrations(c.entry.dn(), &modules)?;
                }
                w.add_failed_event(module, &event)?;
            }
        }
    }
    w.commit()
}
