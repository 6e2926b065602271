//! The control socket: how the administrator's tools (`status`, `dump`, `verify`,
//! `failed`, `resync`, `modules`) talk to a running listener, which holds its cache
//! exclusively (redb's multi-process modes forbid the non-durable commits group commit
//! needs).
//!
//! `<cache-dir>/control.sock`, mode 0600 (only the listener's user, who could read the
//! cache anyway), replaced at start if a killed listener left one, removed at a clean
//! shutdown. One JSON request line per connection ([`protocol`]). Reads are answered by
//! the socket's own tasks from a cache snapshot plus [`Stats`], so they never wait for
//! the processing loop; requests that change the cache or the modules go to the loop as a
//! [`Request`] and are carried out between transactions ([`handle`]). Nothing a client
//! sends can stop the listener: a malformed request gets an error answer.

pub(crate) mod actions;
pub(crate) mod client;
pub(crate) mod protocol;
pub(crate) mod report;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

pub(crate) use client::Client;
use protocol::{Answer, DropReport, HeldChange, Query, ReplayReport, ResyncReport};

use super::apply::Applier;
use super::cache::Cache;
use super::fetch::Fetcher;
use super::run::RunConfig;
use super::stats::Stats;
use crate::api::registry::ModuleRegistration;

/// The socket's file name in the cache directory.
pub(crate) const SOCKET: &str = "control.sock";

/// Ends a dump whose reading failed half-way (an LDIF comment, so what came before stays
/// valid LDIF); the client turns it into an error.
pub(crate) const DUMP_FAILED: &str = "# dump failed: ";

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request for the processing loop, answered through `reply`.
#[derive(Debug)]
pub(crate) enum Request {
    /// Re-deliver failed events ([`actions::replay`]).
    Replay {
        /// The module.
        module: String,
        /// One event, or all of the module's.
        seq: Option<u64>,
        /// The outcome.
        reply: oneshot::Sender<Result<ReplayReport, String>>,
    },
    /// Delete failed events.
    Drop {
        /// The module.
        module: String,
        /// One event, or all of the module's.
        seq: Option<u64>,
        /// The outcome.
        reply: oneshot::Sender<Result<DropReport, String>>,
    },
    /// Re-initialize modules ([`actions::resync`]).
    Resync {
        /// The modules.
        modules: Vec<String>,
        /// The outcome.
        reply: oneshot::Sender<Result<Vec<ResyncReport>, String>>,
    },
    /// Act on a halt: skip the held change (record it as a failed event) or retry it now.
    Halt {
        /// Skip rather than retry.
        skip: bool,
        /// The halt acted on.
        reply: oneshot::Sender<Result<HeldChange, String>>,
    },
}

impl Request {
    /// Whether carrying it out writes the cache (a replay or resync does; acting on a
    /// halt does not, so it is taken even between the two halves of a move).
    pub(crate) fn writes_cache(&self) -> bool {
        !matches!(self, Request::Halt { .. })
    }

    /// Answers the request with `why` instead of carrying it out.
    pub(crate) fn refuse(self, why: &str) {
        let why = why.to_owned();
        match self {
            Request::Replay { reply, .. } => drop(reply.send(Err(why))),
            Request::Drop { reply, .. } => drop(reply.send(Err(why))),
            Request::Resync { reply, .. } => drop(reply.send(Err(why))),
            Request::Halt { reply, .. } => drop(reply.send(Err(why))),
        }
    }
}

/// The served socket: stops serving and removes the socket file when dropped (at the
/// listener's shutdown).
#[derive(Debug)]
pub(crate) struct ControlSocket {
    path: PathBuf,
    server: tokio::task::AbortHandle,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection: no
        // task keeps the cache (and its lock) alive after the listener stopped.
        self.server.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the socket's tasks share.
struct Shared {
    modules: Vec<&'static ModuleRegistration>,
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    requests: mpsc::Sender<Request>,
}

/// Starts serving the control socket in the cache directory. Without it (the directory
/// refuses a socket) the listener still runs; the tools then say it is not reachable.
pub(crate) fn spawn_server(
    config: &RunConfig,
    modules: &[&'static ModuleRegistration],
    cache: Arc<Cache>,
    stats: Arc<Stats>,
    requests: mpsc::Sender<Request>,
) -> Option<ControlSocket> {
    let path = config.cache_dir.join(SOCKET);
    let listener = match bind(&path) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(socket = %path.display(), error = %e, "cannot serve the control socket; status, dump, failed and resync cannot reach this listener");
            return None;
        }
    };
    let shared = Arc::new(Shared {
        modules: modules.to_vec(),
        cache,
        stats,
        requests,
    });
    let server = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(serve(stream, shared.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Some(ControlSocket {
        path,
        server: server.abort_handle(),
    })
}

/// Binds the socket under a temporary name, restricts it to the owner, then renames it
/// into place: no moment in which another user could connect. A socket left by a killed
/// listener is replaced (the cache lock, already held, proves it is stale).
fn bind(path: &std::path::Path) -> std::io::Result<UnixListener> {
    let temporary = path.with_extension(format!("sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let listener = UnixListener::bind(&temporary)?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(listener)
}

/// One connection: read the request line, answer it.
async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(protocol::MAX_REQUEST as u64 + 1));
    let mut line = Vec::new();
    let answer =
        match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
            Err(_) => Answer::error(format!(
                "no request line within {} s",
                REQUEST_TIMEOUT.as_secs()
            )),
            // A probe (`Client::connect` without a request) or a broken connection.
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) if line.len() > protocol::MAX_REQUEST => Answer::error(format!(
                "request longer than {} bytes",
                protocol::MAX_REQUEST
            )),
            Ok(Ok(_)) => match std::str::from_utf8(&line)
                .map_err(|_| "the request is not UTF-8".to_owned())
                .and_then(protocol::parse_query)
            {
                Err(e) => Answer::error(e),
                Ok(Query::Dump) => {
                    stream_dump(&mut write, &shared).await;
                    return;
                }
                Ok(query) => answer(query, &shared).await,
            },
        };
    let _ = write.write_all(answer.to_line().as_bytes()).await;
    let _ = write.shutdown().await;
}

/// Answers everything but `dump`.
async fn answer(query: Query, shared: &Arc<Shared>) -> Answer {
    let known = |name: &str| shared.modules.iter().any(|m| m.name == name);
    match query {
        Query::FailedReplay { module, seq } => {
            if let Some(refused) = refuse_mutation(shared, &[&module]) {
                return refused;
            }
            ask_loop(shared, |reply| Request::Replay { module, seq, reply }).await
        }
        Query::FailedDrop { module, seq } => {
            if let Some(refused) = refuse_mutation(shared, &[&module]) {
                return refused;
            }
            ask_loop(shared, |reply| Request::Drop { module, seq, reply }).await
        }
        Query::Resync { modules } => {
            let names: Vec<&str> = modules.iter().map(String::as_str).collect();
            if let Some(refused) = refuse_mutation(shared, &names) {
                return refused;
            }
            ask_loop(shared, |reply| Request::Resync { modules, reply }).await
        }
        Query::HaltSkip => ask_loop(shared, |reply| Request::Halt { skip: true, reply }).await,
        Query::HaltRetry => ask_loop(shared, |reply| Request::Halt { skip: false, reply }).await,
        Query::FailedList {
            module: Some(module),
        }
        | Query::FailedShow { module, .. }
            if !known(&module) =>
        {
            Answer::error(unknown_module(shared, &module))
        }
        read => {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || read_answer(read, &shared))
                .await
                .unwrap_or_else(|e| Answer::error(format!("internal error: {e}")))
        }
    }
}

/// The reading requests, from one snapshot.
fn read_answer(query: Query, shared: &Shared) -> Answer {
    let result = (|| {
        let r = shared.cache.read()?;
        Ok::<_, super::cache::CacheError>(match query {
            Query::Status => Answer::ok(report::status(&shared.modules, &r, Some(&shared.stats))?),
            Query::Ids => {
                // The durable ID, as `status` reports it (the cache may hold a later,
                // not yet durable commit).
                let mut ids = report::ids(&r)?;
                ids.last_id = shared
                    .stats
                    .durable_id
                    .load(std::sync::atomic::Ordering::Relaxed);
                Answer::ok(ids)
            }
            Query::Check => Answer::ok(protocol::CheckReport::from(r.verify()?)),
            Query::Entry { dn } => match listener_core::Dn::parse(&dn) {
                Ok(dn) => Answer::ok(r.entry(&dn)?.as_ref().map(report::entry_ldif)),
                Err(e) => Answer::error(format!("{dn:?} is not a DN: {e}")),
            },
            Query::FailedList { module } => {
                Answer::ok(report::failed_list(&shared.modules, &r, module.as_deref())?)
            }
            Query::FailedShow { module, seq } => match r.failed_event(&module, seq)? {
                Some(event) => Answer::ok(report::failed_view(&module, seq, &event, true)),
                None => Answer::error(format!("module {module} has no failed event #{seq}")),
            },
            Query::Dump
            | Query::FailedReplay { .. }
            | Query::FailedDrop { .. }
            | Query::Resync { .. }
            | Query::HaltSkip
            | Query::HaltRetry => Answer::error("internal error: not a reading request"),
        })
    })();
    result.unwrap_or_else(|e| Answer::error(e.to_string()))
}

/// Streams the cache as LDIF after an `ok` line; a read error half-way ends the text with
/// a [`DUMP_FAILED`] line.
async fn stream_dump(write: &mut tokio::net::unix::OwnedWriteHalf, shared: &Arc<Shared>) {
    let (tx, mut rx) = mpsc::channel::<String>(4);
    let cache = shared.cache.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let sent = (|| {
            let r = cache.read()?;
            report::write_dump(&r, |chunk| {
                // The client went away: stop reading the cache.
                tx.blocking_send(chunk).map_err(|_| DumpStop::Gone)
            })
        })();
        match sent {
            Err(DumpStop::Cache(e)) => {
                let _ = tx.blocking_send(format!("{DUMP_FAILED}{e}\n"));
            }
            Ok(()) | Err(DumpStop::Gone) => {}
        }
    });
    if write
        .write_all(Answer::stream().to_line().as_bytes())
        .await
        .is_ok()
    {
        while let Some(chunk) = rx.recv().await {
            if write.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
    }
    drop(rx);
    let _ = producer.await;
    let _ = write.shutdown().await;
}

enum DumpStop {
    Cache(super::cache::CacheError),
    Gone,
}

impl From<super::cache::CacheError> for DumpStop {
    fn from(e: super::cache::CacheError) -> Self {
        DumpStop::Cache(e)
    }
}

/// Why a change cannot be asked for now: an unknown module, or processing halted (the
/// loop is retrying a transaction and takes no requests until it goes through).
fn refuse_mutation(shared: &Shared, modules: &[&str]) -> Option<Answer> {
    if modules.is_empty() {
        return Some(Answer::error("name at least one module"));
    }
    if let Some(unknown) = modules
        .iter()
        .find(|name| !shared.modules.iter().any(|m| m.name == **name))
    {
        return Some(Answer::error(unknown_module(shared, unknown)));
    }
    shared.stats.halted().map(|h| {
        Answer::error(format!(
            "processing is halted at transaction {} by the blocking module {} ({}); \
             changes are carried out between transactions, so this has to wait until \
             that module takes the transaction",
            h.id, h.module, h.error
        ))
    })
}

fn unknown_module(shared: &Shared, name: &str) -> String {
    let known: Vec<&str> = shared.modules.iter().map(|m| m.name).collect();
    format!(
        "no module named {name:?} in this listener (it has: {})",
        known.join(", ")
    )
}

/// Hands a request to the processing loop and waits for its outcome.
async fn ask_loop<T: serde::Serialize>(
    shared: &Shared,
    request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Request,
) -> Answer {
    let (reply, outcome) = oneshot::channel();
    if shared.requests.send(request(reply)).await.is_err() {
        return Answer::error("the listener is shutting down");
    }
    match outcome.await {
        Ok(Ok(result)) => Answer::ok(result),
        Ok(Err(e)) => Answer::error(e),
        Err(_) => Answer::error("the listener stopped before carrying the request out"),
    }
}

/// Carries out `request` between transactions (called by the processing loop, never
/// between the `r` and `a` of a move: the pair commits the stashed entry's registrations,
/// which would undo what a replay or resync wrote meanwhile).
pub(crate) async fn handle(
    request: Request,
    applier: &mut Applier,
    cache: &Cache,
    stats: &Stats,
    fetcher: &Fetcher,
) {
    match request {
        Request::Replay { module, seq, reply } => {
            let outcome = actions::replay(applier, cache, &module, seq).await;
            let _ = reply.send(outcome);
        }
        Request::Drop { module, seq, reply } => {
            let outcome = actions::drop_events(cache, &module, seq)
                .map(|dropped| DropReport { dropped })
                .map_err(|e| e.to_string());
            let _ = reply.send(outcome);
        }
        Request::Resync { modules, reply } => {
            let outcome = actions::resync(applier, cache, fetcher, &modules).await;
            let _ = reply.send(outcome);
        }
        Request::Halt { skip, reply } => {
            let outcome = match stats.halted() {
                Some(halt) => {
                    if skip {
                        applier.skip = Some((halt.id, halt.module.clone()));
                    }
                    Ok(HeldChange {
                        id: halt.id,
                        module: halt.module,
                    })
                }
                None => Err("processing is not halted (status shows `halted` when it is)".into()),
            };
            let _ = reply.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::ldap::LdapSettings;

    fn config(dir: &std::path::Path) -> RunConfig {
        let ldap = LdapSettings {
            uri: "ldap://127.0.0.1:1".into(),
            bind_dn: "cn=admin".into(),
            bind_password: String::new(),
            starttls: false,
            timeout: Duration::from_secs(1),
        };
        RunConfig::new(
            ldap,
            listener_core::Dn::parse("dc=example").unwrap(),
            "127.0.0.1:1".into(),
            dir.to_owned(),
        )
    }

    /// Sends `bytes` as the request, returns the answer line.
    fn raw(path: &std::path::Path, bytes: &[u8]) -> String {
        let mut stream = UnixStream::connect(path).unwrap();
        stream.write_all(bytes).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        line
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_socket_answers_reads_refuses_garbage_and_forwards_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(Cache::open(dir.path()).unwrap());
        {
            let mut w = cache.write().unwrap();
            w.set_last_id(5).unwrap();
            w.commit().unwrap();
        }
        let stats = Arc::new(Stats::new(std::iter::empty()));
        stats.set_durable(5);
        // A stale socket from a killed listener is replaced.
        std::fs::write(dir.path().join(SOCKET), b"stale").unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let socket = spawn_server(&config(dir.path()), &[], cache, stats, tx).unwrap();
        let path = dir.path().join(SOCKET);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        // The loop's side: answers one drop request.
        let loop_side = tokio::spawn(async move {
            match rx.recv().await {
                Some(Request::Drop { module, seq, reply }) => {
                    assert_eq!((module.as_str(), seq), ("m", Some(2)));
                    reply.send(Ok(DropReport { dropped: 1 })).unwrap();
                }
                other => panic!("{other:?}"),
            }
        });

        let path2 = path.clone();
        tokio::task::spawn_blocking(move || {
            let path = path2;
            let mut client = Client::connect(path.parent().unwrap()).unwrap();
            let status: protocol::StatusReport = client.call(&Query::Status).unwrap();
            assert!(status.running);
            assert_eq!(status.last_id, 5);
            let mut dump = Vec::new();
            Client::connect(path.parent().unwrap())
                .unwrap()
                .dump(&mut dump)
                .unwrap();
            assert!(dump.is_empty());
            for (garbage, says) in [
                (&b"not json\n"[..], "malformed request"),
                (b"\xff\xfe\n", "not UTF-8"),
                (
                    b"{\"request\":\"failed_show\",\"module\":\"x\",\"seq\":1}\n",
                    "no module named",
                ),
                (
                    b"{\"request\":\"failed_drop\",\"module\":\"x\"}\n",
                    "no module named",
                ),
            ] {
                let answer = raw(&path, garbage);
                assert!(answer.starts_with("{\"ok\":false"), "{answer}");
                assert!(answer.contains(says), "{answer}");
            }
            let long = vec![b'x'; protocol::MAX_REQUEST + 10];
            assert!(raw(&path, &long).contains("longer than"));
            // A probe without a request, then the server still answers.
            drop(UnixStream::connect(&path).unwrap());
            assert!(raw(&path, b"{\"request\":\"ids\"}\n").contains("\"last_id\":5"));
        })
        .await
        .unwrap();
        assert!(!loop_side.is_finished());
        loop_side.abort();
        drop(socket);
        assert!(!path.exists(), "removed at shutdown");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_reach_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(Cache::open(dir.path()).unwrap());
        let stats = Arc::new(Stats::new(["m"]));
        static M: ModuleRegistration = ModuleRegistration {
            name: "m",
            description: "",
            ldap_filter: "(objectClass=*)",
            attributes: &[],
            priority: 50.0,
            handle_every_delete: false,
            blocking: false,
            modrdn: false,
            parallelism: None,
            kind: crate::api::registry::ApiKind::New,
            constructor: || unreachable!(),
            source: crate::api::registry::SourceLocation {
                item: "m",
                file: "m.rs",
                line: 1,
            },
        };
        let (tx, mut rx) = mpsc::channel(4);
        let _socket = spawn_server(&config(dir.path()), &[&M], cache, stats.clone(), tx).unwrap();
        tokio::spawn(async move {
            while let Some(request) = rx.recv().await {
                if let Request::Drop { reply, .. } = request {
                    let _ = reply.send(Ok(DropReport { dropped: 1 }));
                }
            }
        });
        let dir_path = dir.path().to_owned();
        let answers = tokio::task::spawn_blocking(move || {
            let drop: Result<DropReport, String> =
                Client::connect(&dir_path)
                    .unwrap()
                    .call(&Query::FailedDrop {
                        module: "m".into(),
                        seq: Some(2),
                    });
            stats.set_halted(Some(super::super::stats::Halt {
                id: 9,
                module: "replication".into(),
                error: "down".into(),
                since: std::time::SystemTime::now(),
            }));
            let halted: Result<DropReport, String> =
                Client::connect(&dir_path)
                    .unwrap()
                    .call(&Query::FailedDrop {
                        module: "m".into(),
                        seq: None,
                    });
            (drop, halted)
        })
        .await
        .unwrap();
        assert_eq!(answers.0, Ok(DropReport { dropped: 1 }));
        let e = answers.1.unwrap_err();
        assert!(
            e.contains("halted at transaction 9 by the blocking module replication"),
            "{e}"
        );
    }
}
