//! The notifier: follows slapd's accesslog, numbers every write as a transaction, keeps
//! the transaction log and serves it over the UCS notifier protocol.

pub(crate) mod accesslog;
pub(crate) mod follower;
pub(crate) mod metrics;
pub(crate) mod schema_id;
pub(crate) mod server;
pub(crate) mod syncrepl;
pub(crate) mod translog;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::ldap::Backoff;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub(crate) use crate::ldap::LdapSettings;
use follower::Follower;
use schema_id::{SchemaId, subschema_fingerprint};
use server::{Published, ServerConfig};
use translog::Translog;

/// Why the notifier stopped.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// Connection trouble with slapd: retried with backoff.
    #[error("{0}")]
    Ldap(String),
    /// The transaction log cannot be used.
    #[error(transparent)]
    Translog(#[from] translog::TranslogError),
    /// slapd sent a sync message that does not decode.
    #[error(transparent)]
    Decode(#[from] syncrepl::DecodeError),
    /// An accesslog entry cannot be turned into transactions.
    #[error(transparent)]
    Accesslog(#[from] accesslog::AccesslogError),
    /// A file in the data directory is damaged or unreadable.
    #[error("{0}")]
    Data(String),
    /// Changes were purged from the accesslog before they were numbered.
    #[error(
        "the accesslog no longer holds the last change this notifier logged (transaction \
         {last_id}, CSN {csn}) and the directory has changed since (newest CSN {newest}): \
         changes were purged from cn=accesslog while the notifier was not running \
         (olcAccessLogPurge), so numbering them is impossible. To recover: move the data \
         directory aside, start the notifier again (it starts a new ID space) and \
         re-initialize the listeners"
    )]
    Purged {
        /// The last transaction this notifier logged.
        last_id: u64,
        /// The CSN the notifier had reached.
        csn: String,
        /// The newest CSN of the directory.
        newest: String,
    },
    /// slapd cannot resume from our cookie.
    #[error(
        "slapd demands a full refresh of cn=accesslog (e-syncRefreshRequired): it cannot \
         resume from the cookie in the data directory. To recover: move the data directory \
         aside, start the notifier again and re-initialize the listeners"
    )]
    RefreshRequired,
    /// The accesslog database lacks the syncprov overlay.
    #[error(
        "slapd does not offer RFC 4533 sync on cn=accesslog: add the syncprov overlay to the \
         accesslog database (see the README)"
    )]
    NoSyncprov,
    /// The protocol port cannot be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--metrics` cannot be served.
    #[error(transparent)]
    Metrics(#[from] crate::ops::metrics::MetricsError),
    /// A panic elsewhere left shared state unusable.
    #[error("an internal lock was poisoned by a panic")]
    Poisoned,
}

impl NotifierError {
    /// Whether reconnecting may help (slapd down or restarting).
    pub fn is_transient(&self) -> bool {
        matches!(self, NotifierError::Ldap(_))
    }
}

/// Everything `notifier` runs with.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// How to reach slapd.
    pub ldap: LdapSettings,
    /// Where the transaction log and the schema ID live.
    pub data_dir: PathBuf,
    /// The protocol's address (UCS: port 6669).
    pub listen: SocketAddr,
    /// Protocol server limits.
    pub server: ServerConfig,
    /// How often `cn=Subschema` is checked for changes.
    pub schema_interval: Duration,
    /// On the very first start, number what the accesslog already holds instead of
    /// starting at its end.
    pub replay_existing: bool,
    /// Most accesslog entries committed in one group (one fsync).
    pub max_group: usize,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
}

impl NotifierConfig {
    /// The defaults: 127.0.0.1:6669, schema checked every minute, a new log starting at the accesslog's end.
    pub fn new(ldap: LdapSettings, data_dir: PathBuf) -> NotifierConfig {
        NotifierConfig {
            ldap,
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 6669)),
            server: ServerConfig::default(),
            schema_interval: Duration::from_secs(60),
            replay_existing: false,
            max_group: 1000,
            metrics: None,
        }
    }
}

/// Runs the notifier until `shutdown` completes or a fatal error occurs. `on_listening`
/// learns the bound address (useful with port 0).
pub async fn run(
    config: NotifierConfig,
    on_listening: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()>,
) -> Result<(), NotifierError> {
    let log = Translog::open(&config.data_dir)?;
    let last = log.last_id();
    let fresh = log.cookie().is_none() && last == 0;
    let log = Arc::new(RwLock::new(log));
    let (last_tx, last_rx) = watch::channel(last);
    let follower = Follower {
        log: log.clone(),
        last_id: last_tx,
        max_group: config.max_group.max(1),
    };
    // The first connection comes before serving anything: a new log is positioned (its
    // ID space begins with the next write) and a resumed one is checked for a purged gap.
    let mut first = Some(connect_with_retry(&config.ldap).await?);
    if let Some(ldap) = first.as_mut() {
        if fresh && !config.replay_existing {
            follower.position_at_end(ldap).await?;
            tracing::info!("new transaction log starts at the current end of cn=accesslog");
        }
        follower.check_no_gap(ldap).await?;
    }
    let schema = Arc::new(Mutex::new(SchemaId::open(&config.data_dir)?));
    let schema_now = schema.lock().map_err(|_| NotifierError::Poisoned)?.id();
    let (schema_tx, schema_rx) = watch::channel(schema_now);
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| NotifierError::Listen {
                addr: config.listen,
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| NotifierError::Listen {
            addr: config.listen,
            source,
        })?;
    tracing::info!(%addr, last_id = last, data_dir = %config.data_dir.display(), "notifier listening");
    on_listening(addr);
    let published = Published {
        last_id: last_rx,
        schema_id: schema_rx,
        log: log.clone(),
        clients: Default::default(),
    };
    let _metrics = metrics::spawn(config.metrics, &published)?;
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server::serve(
        listener,
        published,
        config.server.clone(),
        async move {
            let _ = server_stopped.await;
        },
    ));
    let work = async {
        let mut retry = Backoff::default().start();
        loop {
            let connected = match first.take() {
                Some(ldap) => Ok(ldap),
                None => match connect(&config.ldap).await {
                    Ok(mut ldap) => follower.check_no_gap(&mut ldap).await.map(|()| ldap),
                    Err(e) => Err(e),
                },
            };
            let result = match connected {
                Ok(mut ldap) => {
                    retry.reset();
                    let poll = tokio::spawn(poll_schema(
                        ldap.clone(),
                        schema.clone(),
                        schema_tx.clone(),
                        config.schema_interval,
                    ));
                    let result = follower.follow(&mut ldap).await;
                    poll.abort();
                    let _ = ldap.unbind().await;
                    result
                }
                Err(e) => Err(e),
            };
            let delay = retry.failed().unwrap_or_default();
            match result {
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?delay, "lost slapd; reconnecting");
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            tokio::time::sleep(delay).await;
        }
    };
    let result = tokio::select! {
        result = work => result,
        () = shutdown => {
            tracing::info!("notifier stopping");
            Ok(())
        }
    };
    // Wait until the server and its connections are gone: they hold the log's lock.
    let _ = stop_server.send(());
    let _ = server.await;
    result
}

/// Opens and binds a connection; failing is transient (slapd down or restarting).
async fn connect(settings: &LdapSettings) -> Result<ldap3::Ldap, NotifierError> {
    crate::ldap::connect(settings)
        .await
        .map_err(|e| NotifierError::Ldap(e.to_string()))
}

/// Connects, retrying with backoff while slapd is unreachable.
async fn connect_with_retry(settings: &LdapSettings) -> Result<ldap3::Ldap, NotifierError> {
    let mut retry = Backoff::default().start();
    loop {
        match connect(settings).await {
            Err(e) if e.is_transient() => {
                let delay = retry.failed().unwrap_or_default();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reach slapd yet");
                tokio::time::sleep(delay).await;
            }
            result => return result,
        }
    }
}

async fn poll_schema(
    mut ldap: ldap3::Ldap,
    schema: Arc<Mutex<SchemaId>>,
    published: watch::Sender<u64>,
    interval: Duration,
) {
    loop {
        match subschema_fingerprint(&mut ldap).await {
            Ok(fingerprint) => {
                let observed = schema
                    .lock()
                    .map_err(|_| NotifierError::Poisoned)
                    .and_then(|mut s| s.observe(fingerprint));
                match observed {
                    Ok(Some(id)) => {
                        tracing::info!(schema_id = id, "the LDAP schema changed");
                        published.send_replace(id);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "cannot record the schema ID"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the LDAP schema"),
        }
        tokio::time::sleep(interval).await;
    }
}
