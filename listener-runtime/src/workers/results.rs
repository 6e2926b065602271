//! What the pools finished and the cache must record: rows done are removed, rows failed
//! for good become failed events. The pools leave these here and the listener writes
//! them inside the write transaction it has open anyway (its group's, see
//! `crate::listener::group`), or in one of its own when it is idle. A pool therefore
//! never waits for the cache's one write transaction, and a catch-up does not pay a
//! commit for every batch of finished calls.
//!
//! The writes are not made durable on their own: the listener's next durable commit
//! takes them along, and a row whose removal a crash lost runs again (at least once).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use crate::listener::cache::{CacheError, FailedEvent, WriteTxn};

/// How long an idle listener collects finished calls before writing them in one commit.
const IDLE_BATCH: Duration = Duration::from_millis(50);

/// A cache write of a pool.
pub(crate) enum Write {
    /// Row done.
    Remove(u64),
    /// Row failed for good.
    Fail(u64, Box<FailedEvent>),
}

/// The finished calls of every pool, until the listener writes them.
#[derive(Default)]
pub(crate) struct Results {
    pending: Mutex<Vec<(Arc<str>, Write)>>,
    arrived: Notify,
}

impl Results {
    /// Leaves `write` of `module`'s pool for the listener.
    pub(super) fn push(&self, module: &Arc<str>, write: Write) {
        self.lock().push((module.clone(), write));
        self.arrived.notify_one();
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Completes when writes wait and an idle listener should write them: a short while
    /// after the first arrived, so that one commit takes many. Cancel-safe: what waits
    /// stays until written.
    pub(crate) async fn due(&self) {
        loop {
            if !self.is_empty() {
                tokio::time::sleep(IDLE_BATCH).await;
                return;
            }
            self.arrived.notified().await;
        }
    }

    /// Writes everything waiting into `w`; how many writes it made.
    pub(crate) fn write_into(&self, w: &mut WriteTxn) -> Result<usize, CacheError> {
        let writes = std::mem::take(&mut *self.lock());
        let count = writes.len();
        for (module, write) in writes {
            apply(w, &module, write)?;
        }
        Ok(count)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<str>, Write)>> {
        // A panic while holding the lock leaves a valid Vec behind.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn apply(w: &mut WriteTxn, module: &str, write: Write) -> Result<(), CacheError> {
    match write {
        Write::Remove(seq) => {
            w.remove_job(module, seq)?;
        }
        Write::Fail(seq, event) => {
            w.remove_job(module, seq)?;
            // As for a synchronous module: not registered any more, so the next change
            // of the object reaches the module as new, and a replay delivers the
            // current state.
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
    Ok(())
}
