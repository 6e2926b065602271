//! The protocol server: many listeners (and tools like `get_notifier_id`) at once, each
//! connection its own task, blocking requests answered as soon as their ID is durable.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::translog::Translog;
use crate::protocol::wire::{
    CAP_GET_DNS, CAP_LOG_ID, Framer, Handshake, MAX_VERSION, Message, ProtocolError, Request,
    reply, transaction_line,
};

/// Limits and choices of the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Clients below this protocol version are refused (closed).
    pub min_version: u32,
    /// Connections beyond this are closed at once.
    pub max_connections: usize,
    /// Blocking requests one connection may have outstanding.
    pub max_pending: usize,
    /// A client that does not take a reply within this time is disconnected, so it
    /// cannot hold anything up.
    pub write_timeout: Duration,
    /// Most lines one `GET_DNS` reply carries.
    pub max_batch: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            min_version: crate::protocol::wire::MIN_VERSION,
            max_connections: 1024,
            max_pending: 256,
            write_timeout: Duration::from_secs(60),
            max_batch: 1000,
        }
    }
}

/// What the server publishes: IDs only ever move forward, and only after they are durable.
#[derive(Clone)]
pub struct Published {
    /// The last durable transaction ID.
    pub last_id: watch::Receiver<u64>,
    /// The schema ID.
    pub schema_id: watch::Receiver<u64>,
    /// The transaction log, for `GET_DN`/`GET_DNS`.
    pub log: Arc<RwLock<Translog>>,
    /// Clients connected now: the server counts them, the metrics endpoint reads them.
    pub clients: Arc<AtomicU64>,
}

/// Accepts connections until `shutdown` completes, then ends every connection and
/// returns once they are gone (they hold the transaction log).
pub async fn serve(
    listener: TcpListener,
    published: Published,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    // Owned here so that stopping the server stops its connections (and their handles
    // on the transaction log) with it.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = &mut shutdown => {
                connections.shutdown().await;
                return;
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = config.max_connections, "connection limit reached; closing");
            continue;
        };
        let published = published.clone();
        let config = config.clone();
        connections.spawn(async move {
            let _counted = Counted::new(published.clients.clone());
            match connection(stream, peer, published, &config).await {
                Ok(()) => tracing::debug!(%peer, "client disconnected"),
                Err(e) => tracing::info!(%peer, error = %e, "closing connection"),
            }
            drop(slot);
        });
    }
}

/// Counts one connection while it lives (also when its task is aborted at shutdown).
struct Counted(Arc<AtomicU64>);

impl Counted {
    fn new(counter: Arc<AtomicU64>) -> Counted {
        counter.fetch_add(1, Ordering::Relaxed);
        Counted(counter)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection was closed by us.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    #[error("protocol version {got} is below the minimum {min}")]
    OldVersion { got: u32, min: u32 },
    #[error("more than {0} pending requests")]
    TooManyPending(usize),
    #[error("transaction {0} is not in the log any more (pruned)")]
    Pruned(u64),
    #[error("the client does not read its replies")]
    NotReading,
    #[error("reading the transaction log: {0}")]
    Log(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct Session<'a> {
    published: Published,
    config: &'a ServerConfig,
    batch: bool,
    /// Blocking requests in arrival order.
    pending: Vec<Message>,
    replies: mpsc::Sender<String>,
}

async fn connection(
    stream: TcpStream,
    _peer: SocketAddr,
    mut published: Published,
    config: &ServerConfig,
) -> Result<(), Closed> {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (replies, mut outbox) = mpsc::channel::<String>(64);
    let write_timeout = config.write_timeout;
    let mut writer_task = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            match tokio::time::timeout(write_timeout, writer.write_all(message.as_bytes())).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return,
            }
        }
    });

    let mut framer = Framer::default();
    let mut buf = vec![0u8; 4096];
    let mut session: Option<Session> = None;
    let mut last_id_rx = published.last_id.clone();
    let result = loop {
        let waiting = session.as_ref().is_some_and(|s| !s.pending.is_empty());
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break Ok(()),
                    Ok(n) => n,
                    Err(e) => break Err(e.into()),
                };
                framer.push(&buf[..n]);
                if let Err(e) = drain(&mut framer, &mut session, &mut published, config, &replies).await {
                    break Err(e);
                }
            }
            changed = last_id_rx.changed(), if waiting => {
                if changed.is_err() {
                    break Ok(()); // the notifier is shutting down
                }
                if let Some(s) = session.as_mut()
                    && let Err(e) = s.answer_ready().await
                {
                    break Err(e);
                }
            }
            _ = &mut writer_task => break Err(Closed::NotReading),
        }
    };
    drop(session);
    drop(replies);
    // Let queued replies go out (bounded by the write timeout), then close.
    let _ = tokio::time::timeout(write_timeout, writer_task).await;
    result
}

async fn drain<'a>(
    framer: &mut Framer,
    session: &mut Option<Session<'a>>,
    published: &mut Published,
    config: &'a ServerConfig,
    replies: &mpsc::Sender<String>,
) -> Result<(), Closed> {
    while let Some(lines) = framer.next_message()? {
        match session {
            None => {
                let hello = Handshake::parse(&lines)?;
                if hello.version < config.min_version {
                    return Err(Closed::OldVersion {
                        got: hello.version,
                        min: config.min_version,
                    });
                }
                let asked = |cap: &str| hello.capabilities.iter().any(|c| c == cap);
                let batch = asked(CAP_GET_DNS);
                // Only what the client asked for: a UDN client sees UDN's handshake.
                let mut capabilities = Vec::new();
                if batch {
                    capabilities.push(CAP_GET_DNS.to_owned());
                }
                if asked(CAP_LOG_ID) {
                    let log = published
                        .log
                        .read()
                        .map_err(|_| Closed::Log("log lock poisoned".into()))?;
                    capabilities.push(format!("{CAP_LOG_ID}={}", log.identity()));
                }
                let answer = Handshake {
                    version: hello.version.min(MAX_VERSION),
                    capabilities,
                };
                send(replies, answer.render()).await?;
                *session = Some(Session {
                    published: published.clone(),
                    config,
                    batch,
                    pending: Vec::new(),
                    replies: replies.clone(),
                });
            }
            Some(s) => {
                let message = Message::parse(&lines)?;
                s.handle(message).await?;
            }
        }
    }
    Ok(())
}

async fn send(replies: &mpsc::Sender<String>, message: String) -> Result<(), Closed> {
    replies.send(message).await.map_err(|_| Closed::NotReading)
}

impl Session<'_> {
    async fn handle(&mut self, message: Message) -> Result<(), Closed> {
        let payload = match message.request {
            Request::GetId => self.last_id().to_string(),
            Request::GetSchemaId => self.published.schema_id.borrow().to_string(),
            Request::Alive => "OKAY".to_owned(),
            Request::GetDns { .. } if !self.batch => {
                return Err(ProtocolError::UnknownRequest("GET_DNS".into()).into());
            }
            Request::GetDn(_) | Request::WaitId(_) | Request::GetDns { .. } => {
                // A request re-sent with the MSGID of a pending one replaces it (what
                // UDL does after its ALIVE), so it gets exactly one reply.
                self.pending.retain(|p| p.msgid != message.msgid);
                if self.pending.len() >= self.config.max_pending {
                    return Err(Closed::TooManyPending(self.config.max_pending));
                }
                self.pending.push(message);
                return self.answer_ready().await;
            }
        };
        send(&self.replies, reply(message.msgid, &payload)).await
    }

    fn last_id(&self) -> u64 {
        *self.published.last_id.borrow()
    }

    /// Answers, in arrival order, every pending request whose ID now exists (`>=`, where
    /// UDN answers only on an exact match).
    async fn answer_ready(&mut self) -> Result<(), Closed> {
        let last = self.last_id();
        let (ready, waiting): (Vec<Message>, Vec<Message>) = self
            .pending
            .drain(..)
            .partition(|m| m.request.waits_for().is_some_and(|id| id <= last));
        self.pending = waiting;
        for message in ready {
            let payload = self.payload(message.request, last)?;
            send(&self.replies, reply(message.msgid, &payload)).await?;
        }
        Ok(())
    }

    fn payload(&self, request: Request, last: u64) -> Result<String, Closed> {
        let log = self
            .published
            .log
            .read()
            .map_err(|_| Closed::Log("log lock poisoned".into()))?;
        match request {
            Request::WaitId(_) => Ok(last.to_string()),
            Request::GetDn(id) => match log.get(id) {
                Ok(Some(t)) => Ok(transaction_line(t.id, &t.dn, t.command.letter())),
                Ok(None) => Err(Closed::Pruned(id)),
                Err(e) => Err(Closed::Log(e.to_string())),
            },
            Request::GetDns { from, max } => {
                // Never beyond the published ID, even if the log already holds more.
                let max = max.clamp(1, self.config.max_batch).min(last + 1 - from) as usize;
                let transactions = log
                    .range(from, max)
                    .map_err(|e| Closed::Log(e.to_string()))?;
                if transactions.first().is_none_or(|t| t.id != from) {
                    return Ok(format!(
                        "ERROR transaction {from} is not in the log any more"
                    ));
                }
                Ok(transactions
                    .iter()
                    .map(|t| transaction_line(t.id, &t.dn, t.command.letter()))
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
            Request::GetId | Request::GetSchemaId | Request::Alive => Ok(String::new()),
        }
    }
}
