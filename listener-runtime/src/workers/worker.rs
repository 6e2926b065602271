//! The worker process: `<bin> worker --module NAME`, started by `run` with the private
//! channel as its stdin. It loads the module, connects to LDAP with the credentials the
//! channel brings, runs the calls it is given one at a time, and asks the listener for
//! the module's shared variables and locks. It exits when the channel closes: the
//! workers die with the listener.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use listener_core::Dn;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};

use super::job::Job;
use super::wire::{
    FromWorker, Hello, Lifecycle, Outcome, SharedAnswer, SharedRequest, ToWorker, read_frame,
    write_frame,
};
use crate::api::context::Settings;
use crate::api::handler::BoxFuture;
use crate::api::registry::{ApiKind, ModuleRegistration};
use crate::ldap::Backoff;
use crate::listener::call::Module;
use crate::listener::fetch::Fetcher;
use crate::shared::{self, SharedError, SharedStore};

/// Runs the worker of `module` (one of `modules`) on the channel that is its stdin.
pub(crate) fn run_worker(module: &str, modules: &[&'static ModuleRegistration]) -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: worker of module {module}: {message}");
        ExitCode::FAILURE
    };
    let Some(registration) = modules
        .iter()
        .find(|r| r.name == module && r.kind == ApiKind::Async)
    else {
        return fail("no asynchronous module of that name is linked into this binary".into());
    };
    // The listener gives the worker one end of a socketpair as its stdin.
    let channel = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => std::os::unix::net::UnixStream::from(fd),
        Err(e) => return fail(format!("no channel on stdin: {e}")),
    };
    // One runtime thread, and every task on it: a call's frames, its timers and its
    // result pass no wake-up between threads (with two threads those hand-offs cost more
    // CPU than a short call). Multi-threaded all the same, so that `Context::search`
    // (`block_in_place`) has a runtime to hand the thread's other tasks to.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(runtime.spawn(serve(registration, channel))) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => fail(e),
        Err(e) => fail(format!("the worker's task ended abnormally: {e}")),
    }
}

async fn serve(
    registration: &'static ModuleRegistration,
    channel: std::os::unix::net::UnixStream,
) -> Result<(), String> {
    let not_a_channel = |e: std::io::Error| format!("stdin is not the listener's channel: {e}");
    channel.set_nonblocking(true).map_err(not_a_channel)?;
    let channel = tokio::net::UnixStream::from_std(channel).map_err(not_a_channel)?;
    let (mut read, mut write) = channel.into_split();
    let hello = match read_frame(&mut read).await.map_err(|e| e.to_string())? {
        Some(ToWorker::Hello(hello)) => hello,
        Some(_) => return Err("the listener did not introduce itself".into()),
        None => return Ok(()),
    };
    let (out, mut outgoing) = mpsc::unbounded_channel::<FromWorker>();
    tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if write_frame(&mut write, &message).await.is_err() {
                std::process::exit(0);
            }
        }
    });
    let store = Arc::new(Remote {
        out: out.clone(),
        waiting: Arc::default(),
        next: AtomicU64::new(1),
    });
    let (work_tx, mut work) = mpsc::unbounded_channel();
    tokio::spawn(read_loop(read, store.waiting.clone(), work_tx));

    let policy = hello.retry.clone();
    let mut module = Module::load(registration);
    module.share(store);
    let (fetcher, settings) = connect(&hello).await?;
    module.connect(fetcher, settings);
    let _ = out.send(FromWorker::Ready {
        pid: std::process::id(),
    });
    while let Some(message) = work.recv().await {
        let started = Instant::now();
        let (id, result) = match message {
            ToWorker::Call { id, job } => match Job::decode(&job) {
                Ok(job) => (
                    id,
                    module
                        .call(job.invocation(), &policy)
                        .await
                        .map_err(|f| (f.error, f.attempts)),
                ),
                Err(e) => (id, Err((e.to_string(), 0))),
            },
            ToWorker::Lifecycle { id, step } => {
                let result = match step {
                    Lifecycle::Initialize => module.initialize().await,
                    Lifecycle::Clean => module.clean().await,
                    Lifecycle::PostRun => module.post_run().await,
                };
                (id, result.map_err(|e| (format!("{e:#}"), 1)))
            }
            ToWorker::Hello(_) | ToWorker::Shared { .. } => continue,
        };
        let (error, attempts) = match result {
            Ok(()) => (None, 1),
            Err((error, attempts)) => (Some(error), attempts),
        };
        let outcome = Outcome {
            error,
            attempts,
            micros: started.elapsed().as_micros().try_into().unwrap_or(u64::MAX),
        };
        let _ = out.send(FromWorker::Done { id, outcome });
    }
    Ok(())
}

/// Hands the listener's frames on: answers to the waiting shared-state requests, the
/// rest to the call loop. The channel closing means the listener is gone: exit at once,
/// even in the middle of a call, whose result nobody could take.
async fn read_loop(
    mut read: OwnedReadHalf,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<SharedAnswer>>>>,
    work: mpsc::UnboundedSender<ToWorker>,
) {
    loop {
        match read_frame::<_, ToWorker>(&mut read).await {
            Ok(Some(ToWorker::Shared { id, answer })) => {
                let sender = waiting.lock().ok().and_then(|mut w| w.remove(&id));
                if let Some(sender) = sender {
                    let _ = sender.send(answer);
                }
            }
            Ok(Some(other)) => {
                if work.send(other).is_err() {
                    std::process::exit(0);
                }
            }
            Ok(None) => std::process::exit(0),
            Err(super::wire::WireError::Io(e))
                if e.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                std::process::exit(0)
            }
            Err(e) => {
                tracing::error!(error = %e, "worker channel failed; exiting");
                std::process::exit(1);
            }
        }
    }
}

/// Connects to LDAP as the listener does, retrying while it is unreachable.
async fn connect(hello: &Hello) -> Result<(Fetcher, Arc<Settings>), String> {
    let ldap = &hello.ldap;
    let base = Dn::parse(&hello.base).map_err(|e| format!("base {:?}: {e}", hello.base))?;
    let mut retry = Backoff::default().start();
    let fetcher = loop {
        match Fetcher::connect(ldap, base.clone()).await {
            Ok(fetcher) => break fetcher,
            Err(e) if e.is_transient() => {
                let delay = retry.failed().unwrap_or_default();
                tracing::warn!(error = %e, retry_in = ?delay, "worker cannot reach LDAP; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let settings = Arc::new(Settings {
        base,
        ldap_uri: ldap.uri.clone(),
        bind_dn: ldap.bind_dn.clone(),
        notifier: hello.notifier.clone(),
        cache_dir: hello.cache_dir.clone(),
    });
    Ok((fetcher, settings))
}

/// The shared state of a worker's module: every request goes to the listener, which owns
/// the store (embedded or memcached) and knows which module the worker runs.
#[derive(Debug)]
struct Remote {
    out: mpsc::UnboundedSender<FromWorker>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<SharedAnswer>>>>,
    next: AtomicU64,
}

impl Remote {
    async fn ask(&self, request: SharedRequest) -> Result<SharedAnswer, SharedError> {
        let gone = || SharedError::Backend {
            backend: "the listener".to_owned(),
            message: "the channel to the listener is closed".to_owned(),
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().map_err(|_| gone())?.insert(id, tx);
        self.out
            .send(FromWorker::Shared { id, request })
            .map_err(|_| gone())?;
        match rx.await.map_err(|_| gone())? {
            SharedAnswer::Failed { backend, message } => {
                Err(SharedError::Backend { backend, message })
            }
            answer => Ok(answer),
        }
    }
}

fn unexpected(answer: SharedAnswer) -> SharedError {
    SharedError::Backend {
        backend: "the listener".to_owned(),
        message: format!("unexpected answer {answer:?}"),
    }
}

impl SharedStore for Remote {
    fn get<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, SharedError>> {
        Box::pin(async move {
            shared::key(shared::Kind::Variable, module, name)?;
            let name = name.to_owned();
            match self.ask(SharedRequest::Get { name }).await? {
                SharedAnswer::Value(value) => Ok(value),
                other => Err(unexpected(other)),
            }
        })
    }

    fn set<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(async move {
            shared::key(shared::Kind::Variable, module, name)?;
            let (name, value) = (name.to_owned(), value.to_vec());
            match self.ask(SharedRequest::Set { name, value }).await? {
                SharedAnswer::Stored => Ok(()),
                other => Err(unexpected(other)),
            }
        })
    }

    fn try_lock<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedError>> {
        Box::pin(async move {
            shared::key(shared::Kind::Lock, module, name)?;
            let request = SharedRequest::TryLock {
                name: name.to_owned(),
                token: token.to_owned(),
                lease_ms: lease.as_millis().try_into().unwrap_or(u64::MAX),
            };
            match self.ask(request).await? {
                SharedAnswer::Taken(taken) => Ok(taken),
                other => Err(unexpected(other)),
            }
        })
    }

    fn unlock<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<bool, SharedError>> {
        Box::pin(async move {
            shared::key(shared::Kind::Lock, module, name)?;
            let request = SharedRequest::Unlock {
                name: name.to_owned(),
                token: token.to_owned(),
            };
            match self.ask(request).await? {
                SharedAnswer::Taken(released) => Ok(released),
                other => Err(unexpected(other)),
            }
        })
    }
}
