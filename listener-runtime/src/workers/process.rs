//! The listener's side of one worker process: starting it (`<bin> worker --module NAME`,
//! its stdin one end of a fresh socketpair) and carrying its channel: the calls out, the
//! results and shared-state requests in. The shared-state requests are answered here,
//! with the listener's store and always for the worker's own module.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::wire::{
    FromWorker, Hello, Outcome, SharedAnswer, SharedRequest, ToWorker, read_frame, write_frame,
};
use crate::shared::SharedStore;

/// What a worker's channel reports to its pool.
#[derive(Debug)]
pub(crate) enum Event {
    /// Worker `slot` (started as generation `generation`) is ready.
    Ready {
        slot: usize,
        generation: u64,
        pid: u32,
    },
    /// It finished call `id`.
    Done {
        slot: usize,
        generation: u64,
        id: u64,
        outcome: Outcome,
    },
    /// It is gone (exited, killed or its channel broke); `why` says how.
    Exited {
        slot: usize,
        generation: u64,
        why: String,
    },
}

/// Starts a worker process of `module` and carries its channel in a task of its own.
/// The returned sender takes the frames to it; dropping every sender closes the channel,
/// and the worker exits.
pub(crate) fn start(
    slot: usize,
    generation: u64,
    hello: Hello,
    store: Arc<dyn SharedStore>,
    events: mpsc::UnboundedSender<Event>,
) -> std::io::Result<mpsc::UnboundedSender<ToWorker>> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    let (log_args, log_dir) = crate::ops::logging::worker_args();
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(log_args)
        .arg("worker")
        .arg("--module")
        .arg(&hello.module);
    if let Some(dir) = log_dir {
        command.arg("--log-dir").arg(dir);
    }
    // The password reaches the worker over its channel only, never through its
    // environment (the listener may have been given it there).
    command
        .env_remove("LISTENER_BIND_PASSWORD")
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let child = command.spawn()?;
    // Our copy of the worker's end goes with `command`: the channel then closes when
    // either side is gone.
    drop(command);
    ours.set_nonblocking(true)?;
    let channel = tokio::net::UnixStream::from_std(ours)?;
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(ToWorker::Hello(hello.clone()))
        .map_err(|_| std::io::Error::other("the channel closed at once"))?;
    let connection = Connection {
        slot,
        generation,
        module: hello.module,
        store,
        events,
        to_worker: tx.clone(),
        held: Arc::default(),
    };
    tokio::spawn(connection.run(channel, rx, child));
    Ok(tx)
}

struct Connection {
    slot: usize,
    generation: u64,
    module: String,
    store: Arc<dyn SharedStore>,
    events: mpsc::UnboundedSender<Event>,
    /// For the answers to shared-state requests.
    to_worker: mpsc::UnboundedSender<ToWorker>,
    /// The locks the worker holds (name, token): released when it dies, so that the
    /// other workers need not wait for their leases to end.
    held: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Connection {
    async fn run(
        self,
        channel: tokio::net::UnixStream,
        mut outgoing: mpsc::UnboundedReceiver<ToWorker>,
        mut child: Child,
    ) {
        let (mut read, mut write) = channel.into_split();
        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if write_frame(&mut write, &message).await.is_err() {
                    break;
                }
            }
            // Dropping the write half closes the worker's stdin: it exits.
        });
        let why = loop {
            match read_frame::<_, FromWorker>(&mut read).await {
                Ok(Some(message)) => self.received(message),
                Ok(None) => break "closed its channel".to_owned(),
                Err(e) => break e.to_string(),
            }
        };
        writer.abort();
        // It closed the channel or broke it: it is gone or about to be.
        let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => format!("cannot be waited for: {e}"),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                "killed: it kept running after closing its channel".to_owned()
            }
        };
        self.release_held().await;
        let _ = self.events.send(Event::Exited {
            slot: self.slot,
            generation: self.generation,
            why: format!("{why}, {status}"),
        });
    }

    /// Releases the locks of the dead worker (each by its own token: one whose lease
    /// already ended and that another call took is left alone).
    async fn release_held(&self) {
        let held: Vec<(String, String)> = match self.held.lock() {
            Ok(mut held) => held.drain().collect(),
            Err(_) => return,
        };
        for (name, token) in held {
            match self.store.unlock(&self.module, &name, &token).await {
                Ok(true) => {
                    tracing::info!(module = %self.module, lock = %name, "released a lock its dead worker held")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(module = %self.module, lock = %name, error = %e, "cannot release a lock of a dead worker; its lease runs out")
                }
            }
        }
    }

    fn received(&self, message: FromWorker) {
        let (slot, generation) = (self.slot, self.generation);
        let event = match message {
            FromWorker::Ready { pid } => Event::Ready {
                slot,
                generation,
                pid,
            },
            FromWorker::Done { id, outcome } => Event::Done {
                slot,
                generation,
                id,
                outcome,
            },
            FromWorker::Shared { id, request } => {
                let (store, module, reply, held) = (
                    self.store.clone(),
                    self.module.clone(),
                    self.to_worker.clone(),
                    self.held.clone(),
                );
                tokio::spawn(async move {
                    let answer = answer(&*store, &module, request, &held).await;
                    let _ = reply.send(ToWorker::Shared { id, answer });
                });
                return;
            }
        };
        let _ = self.events.send(event);
    }
}

/// Carries out a worker's shared-state request for `module`, noting in `held` the locks
/// it takes and gives back.
async fn answer(
    store: &dyn SharedStore,
    module: &str,
    request: SharedRequest,
    held: &Mutex<HashSet<(String, String)>>,
) -> SharedAnswer {
    let note = |taken: bool, name: String, token: String| {
        if let Ok(mut held) = held.lock() {
            match taken {
                true => held.insert((name, token)),
                false => held.remove(&(name, token)),
            };
        }
    };
    let result = match request {
        SharedRequest::Get { name } => store.get(module, &name).await.map(SharedAnswer::Value),
        SharedRequest::Set { name, value } => store
            .set(module, &name, &value)
            .await
            .map(|()| SharedAnswer::Stored),
        SharedRequest::TryLock {
            name,
            token,
            lease_ms,
        } => {
            let taken = store
                .try_lock(module, &name, &token, Duration::from_millis(lease_ms))
                .await;
            if let Ok(true) = taken {
                note(true, name, token);
            }
            taken.map(SharedAnswer::Taken)
        }
        SharedRequest::Unlock { name, token } => {
            let released = store.unlock(module, &name, &token).await;
            note(false, name, token);
            released.map(SharedAnswer::Taken)
        }
    };
    result.unwrap_or_else(SharedAnswer::failed)
}
