//! The listener's side of the notifier protocol (semantics §3): handshake, getting
//! transactions in order, the current and schema IDs, keepalives.
//!
//! With our notifier the client asks for the `GET_DNS` capability and receives
//! transactions in batches; with a notifier that does not grant it (UDN) it speaks protocol
//! 2 and asks for one transaction at a time with `GET_DN`, as UDL does. Either way
//! [`NotifierClient::next_transactions`] returns consecutive transactions starting exactly
//! at the ID asked for: anything else from the server is an error, never skipped.
//!
//! Reconnecting is the caller's loop: every error leaves the client unusable, and
//! [`connect_with_backoff`] opens a new one.
//!
//! ```no_run
//! # async fn demo() -> Result<(), listener_runtime::testing::ClientError> {
//! use listener_runtime::testing::{ClientOptions, NotifierClient};
//!
//! let mut client = NotifierClient::connect("127.0.0.1:6669", ClientOptions::default()).await?;
//! let last = client.current_id().await?;
//! for t in client.next_transactions(last + 1, 100).await? {
//!     println!("{} {} {}", t.id, t.dn, t.command);
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use listener_core::Command;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::wire::{
    CAP_GET_DNS, CAP_LOG_ID, Framer, Handshake, Message, Request, parse_transaction_line,
};
use crate::ldap::Backoff;

/// How many message IDs of re-sent requests and keepalives are remembered, so a late or
/// duplicate reply to them is recognized and dropped instead of being an error.
const REMEMBERED_MSGIDS: usize = 64;

/// One transaction as the notifier serves it: `<id> <dn> <cmd>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRef {
    /// The transaction ID.
    pub id: u64,
    /// The DN as the notifier recorded it (a line break inside it arrives as `\0a`).
    pub dn: String,
    /// `a`, `m`, `d` or `r`.
    pub command: Command,
}

/// Choices of the client; [`ClientOptions::default`] is what a listener uses.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The protocol version asked for: 3 (default) or 2. A server that grants no
    /// `GET_DNS` is asked again with version 2, which is how UDN serves DNs.
    pub version: u32,
    /// Ask for our batch capability `GET_DNS` (default on).
    pub batch: bool,
    /// While a blocking request waits longer than this, send `ALIVE` and re-send the
    /// request with the same MSGID (UDL: 300 s). A keepalive unanswered for a whole
    /// interval means the connection is dead.
    pub keepalive: Duration,
    /// How long connecting and the handshake may take.
    pub connect_timeout: Duration,
    /// How long a non-blocking request (`GET_ID`, `GET_SCHEMA_ID`) may take.
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            version: 3,
            batch: true,
            keepalive: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What went wrong talking to the notifier. Every message names its address; after any
/// error the client is unusable and the caller reconnects.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection cannot be opened.
    #[error("cannot connect to the notifier at {addr}: {source}")]
    Connect {
        /// The notifier's address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("lost the connection to the notifier at {addr}: {source}")]
    Io {
        /// The notifier's address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The notifier closed the connection (restart, shutdown, or it rejected a request).
    #[error("the notifier at {addr} closed the connection {during}")]
    Closed {
        /// The notifier's address.
        addr: String,
        /// What the client was doing.
        during: String,
    },
    /// No answer in time.
    #[error("the notifier at {addr} did not answer {what} within {timeout:?}")]
    Timeout {
        /// The notifier's address.
        addr: String,
        /// What was not answered.
        what: String,
        /// The limit.
        timeout: Duration,
    },
    /// The handshake failed or offers nothing this client can use.
    #[error("handshake with the notifier at {addr} failed: {reason}")]
    Handshake {
        /// The notifier's address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A reply that does not follow the protocol.
    #[error("the notifier at {addr} sent a malformed reply: {reason}")]
    Malformed {
        /// The notifier's address.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A transaction other than the one asked for (semantics §4: never skipped).
    #[error(
        "the notifier at {addr} sent transaction {got} where {expected} was expected; \
         transactions are never skipped, so the listener stops here"
    )]
    UnexpectedId {
        /// The notifier's address.
        addr: String,
        /// The ID the client needed.
        expected: u64,
        /// The ID that came.
        got: u64,
    },
    /// The notifier answered with `ERROR <text>` (only with our capability).
    #[error("the notifier at {addr} reports: {message}")]
    Server {
        /// The notifier's address.
        addr: String,
        /// Its text.
        message: String,
    },
}

impl ClientError {
    /// Whether reconnecting may help: the notifier is down, restarting or unreachable.
    /// Protocol violations and missing transactions are not transient.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Io { .. }
                | ClientError::Closed { .. }
                | ClientError::Timeout { .. }
        )
    }
}

/// A connection to the notifier, after the handshake.
#[derive(Debug)]
pub struct NotifierClient {
    addr: String,
    stream: TcpStream,
    framer: Framer,
    buf: Vec<u8>,
    options: ClientOptions,
    version: u32,
    batch: bool,
    last_msgid: u64,
    /// Message IDs whose replies may still come but are no longer wanted: keepalives and
    /// re-sent requests already answered (the re-sent copy can cross the first reply).
    stale: VecDeque<u64>,
    /// The name of the notifier's ID space, when it tells it (our `LOG_ID` capability).
    identity: Option<String>,
}

impl NotifierClient {
    /// Connects to `addr` (`host:port`) and does the handshake: protocol
    /// `options.version`, asking for `GET_DNS` if `options.batch`. A server that grants
    /// no `GET_DNS` is asked again with protocol 2, whose `GET_DN` serves DNs.
    pub async fn connect(
        addr: &str,
        options: ClientOptions,
    ) -> Result<NotifierClient, ClientError> {
        let mut client = Self::handshake(addr, options.clone(), options.version).await?;
        if !client.batch && client.version > 2 {
            tracing::debug!(
                notifier = addr,
                "no GET_DNS granted; falling back to protocol 2"
            );
            drop(client);
            client = match Self::handshake(addr, options, 2).await {
                // Closing is how a notifier refuses a version below its minimum.
                Err(ClientError::Closed { .. }) => {
                    return Err(ClientError::Handshake {
                        addr: addr.to_owned(),
                        reason: "the server grants no GET_DNS and refuses protocol 2, so \
                                 it serves no DNs (protocol 3 translog lookups in LDAP are \
                                 not supported)"
                            .to_owned(),
                    });
                }
                result => result?,
            };
        }
        if !client.batch && client.version != 2 {
            return Err(ClientError::Handshake {
                addr: addr.to_owned(),
                reason: format!(
                    "the server speaks protocol {} without GET_DNS, so it serves no DNs",
                    client.version
                ),
            });
        }
        Ok(client)
    }

    async fn handshake(
        addr: &str,
        options: ClientOptions,
        version: u32,
    ) -> Result<NotifierClient, ClientError> {
        let timeout = options.connect_timeout;
        let timed_out = || ClientError::Timeout {
            addr: addr.to_owned(),
            what: "the connection and handshake".to_owned(),
            timeout,
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| timed_out())?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // Requests are small and latency-bound.
        let _ = stream.set_nodelay(true);
        let ask_batch = options.batch && version >= 3;
        let mut client = NotifierClient {
            addr: addr.to_owned(),
            stream,
            framer: Framer::default(),
            buf: vec![0; 16 * 1024],
            options,
            version,
            batch: false,
            last_msgid: 0,
            stale: VecDeque::new(),
            identity: None,
        };
        let hello = Handshake {
            version,
            capabilities: if ask_batch {
                vec![CAP_GET_DNS.to_owned(), CAP_LOG_ID.to_owned()]
            } else {
                Vec::new()
            },
        };
        client.write(hello.render().as_bytes()).await?;
        let lines = tokio::time::timeout(timeout, client.read_message("during the handshake"))
            .await
            .map_err(|_| timed_out())??;
        let answer = Handshake::parse(&lines).map_err(|e| client.handshake_error(e.to_string()))?;
        if answer.version < 2 || answer.version > version {
            return Err(client.handshake_error(format!(
                "asked for protocol {version}, the server answered {}",
                answer.version
            )));
        }
        client.version = answer.version;
        client.batch = ask_batch && answer.capabilities.iter().any(|c| c == CAP_GET_DNS);
        client.identity = answer.capabilities.iter().find_map(|c| {
            c.strip_prefix(CAP_LOG_ID)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        });
        tracing::debug!(
            notifier = addr,
            version = client.version,
            batch = client.batch,
            "connected to the notifier"
        );
        Ok(client)
    }

    /// The name of the notifier's ID space, if it tells it (a UDN notifier does not).
    pub fn identity(&self) -> Option<&str> {
        self.identity.as_deref()
    }

    /// The notifier's address, as given to [`NotifierClient::connect`].
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The negotiated protocol version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether the server granted `GET_DNS` (batches); otherwise `GET_DN` one by one.
    pub fn batched(&self) -> bool {
        self.batch
    }

    /// The notifier's current (last) transaction ID (`GET_ID`).
    pub async fn current_id(&mut self) -> Result<u64, ClientError> {
        self.simple_number(Request::GetId, "GET_ID").await
    }

    /// The notifier's current schema ID (`GET_SCHEMA_ID`).
    pub async fn schema_id(&mut self) -> Result<u64, ClientError> {
        self.simple_number(Request::GetSchemaId, "GET_SCHEMA_ID")
            .await
    }

    /// Up to `max` (at least one) consecutive transactions starting at `from`, waiting
    /// until `from` exists. With `GET_DNS` one request returns what exists (up to `max`);
    /// without it, one `GET_DN` returns exactly one transaction.
    ///
    /// The first transaction is always `from` and the rest follow without gaps; a reply
    /// that breaks this is [`ClientError::UnexpectedId`].
    pub async fn next_transactions(
        &mut self,
        from: u64,
        max: usize,
    ) -> Result<Vec<TransactionRef>, ClientError> {
        let max = max.max(1);
        let request = if self.batch {
            Request::GetDns {
                from,
                max: u64::try_from(max).unwrap_or(u64::MAX),
            }
        } else {
            Request::GetDn(from)
        };
        let payload = self.blocking(request).await?;
        let transactions = parse_transactions(&payload, from, max).map_err(|e| match e {
            Invalid::Malformed(reason) => self.malformed(reason),
            Invalid::Unexpected { expected, got } => ClientError::UnexpectedId {
                addr: self.addr.clone(),
                expected,
                got,
            },
            Invalid::Server(message) => ClientError::Server {
                addr: self.addr.clone(),
                message,
            },
        })?;
        if !self.batch && transactions.len() != 1 {
            return Err(self.malformed(format!(
                "GET_DN {from} was answered with {} lines",
                transactions.len()
            )));
        }
        Ok(transactions)
    }

    async fn simple_number(&mut self, request: Request, name: &str) -> Result<u64, ClientError> {
        let msgid = self.send(request).await?;
        let timeout = self.options.request_timeout;
        let payload = tokio::time::timeout(timeout, self.reply_to(msgid, name))
            .await
            .map_err(|_| ClientError::Timeout {
                addr: self.addr.clone(),
                what: name.to_owned(),
                timeout,
            })??;
        match payload.as_slice() {
            [line] => parse_number(line)
                .ok_or_else(|| self.malformed(format!("{name} answered {line:?}, not a number"))),
            _ => Err(self.malformed(format!("{name} answered {} lines", payload.len()))),
        }
    }

    /// Sends a blocking request and waits for its reply, with keepalives: after each
    /// quiet interval an `ALIVE`, and the request again with the same MSGID (the server
    /// replaces the pending copy, so one reply comes; a duplicate that crossed is dropped).
    async fn blocking(&mut self, request: Request) -> Result<Vec<String>, ClientError> {
        let msgid = self.send(request).await?;
        let what = Message { msgid, request }.render();
        let what = what.lines().nth(1).unwrap_or_default().to_owned();
        let mut alive_pending: Option<u64> = None;
        let mut resent = false;
        loop {
            let deadline = Instant::now() + self.options.keepalive;
            match tokio::time::timeout_at(
                deadline,
                self.reply_or_alive(msgid, &what, &mut alive_pending),
            )
            .await
            {
                Ok(result) => {
                    if resent {
                        // A re-sent copy may cross the reply and be answered again.
                        self.remember_stale(msgid);
                    }
                    return result;
                }
                Err(_) => {
                    if let Some(unanswered) = alive_pending {
                        return Err(ClientError::Timeout {
                            addr: self.addr.clone(),
                            what: format!("the keepalive (MSGID {unanswered})"),
                            timeout: self.options.keepalive,
                        });
                    }
                    tracing::debug!(notifier = %self.addr, request = %what, "still waiting; sending ALIVE and re-sending the request");
                    alive_pending = Some(self.send(Request::Alive).await?);
                    self.write(Message { msgid, request }.render().as_bytes())
                        .await?;
                    resent = true;
                }
            }
        }
    }

    /// Reads replies until the one to `msgid`; an `ALIVE` answer on the way clears
    /// `alive_pending`.
    async fn reply_or_alive(
        &mut self,
        msgid: u64,
        what: &str,
        alive_pending: &mut Option<u64>,
    ) -> Result<Vec<String>, ClientError> {
        loop {
            let (got, payload) = self.read_reply(what).await?;
            if got == msgid {
                return Ok(payload);
            }
            if Some(got) == *alive_pending {
                if payload != ["OKAY"] {
                    return Err(self.malformed(format!("ALIVE was answered {payload:?}")));
                }
                *alive_pending = None;
                continue;
            }
            self.unwanted(got, msgid)?;
        }
    }

    async fn reply_to(&mut self, msgid: u64, what: &str) -> Result<Vec<String>, ClientError> {
        loop {
            let (got, payload) = self.read_reply(what).await?;
            if got == msgid {
                return Ok(payload);
            }
            self.unwanted(got, msgid)?;
        }
    }

    /// A reply to another message ID: dropped if it is a stale one, else an error.
    fn unwanted(&mut self, got: u64, wanted: u64) -> Result<(), ClientError> {
        // MSGIDs are never reused, so a remembered one stays harmless until it ages out.
        if self.stale.contains(&got) {
            tracing::debug!(notifier = %self.addr, msgid = got, "dropping a late duplicate reply");
            return Ok(());
        }
        Err(self.malformed(format!(
            "a reply with MSGID {got} while waiting for MSGID {wanted}"
        )))
    }

    fn remember_stale(&mut self, msgid: u64) {
        if self.stale.len() >= REMEMBERED_MSGIDS {
            self.stale.pop_front();
        }
        self.stale.push_back(msgid);
    }

    async fn send(&mut self, request: Request) -> Result<u64, ClientError> {
        self.last_msgid += 1;
        let msgid = self.last_msgid;
        if request == Request::Alive {
            // Its reply may come after the request it accompanies was answered.
            self.remember_stale(msgid);
        }
        self.write(Message { msgid, request }.render().as_bytes())
            .await?;
        Ok(msgid)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|source| ClientError::Io {
                addr: self.addr.clone(),
                source,
            })
    }

    /// The next reply: its MSGID and payload lines.
    async fn read_reply(&mut self, what: &str) -> Result<(u64, Vec<String>), ClientError> {
        let lines = self
            .read_message(&format!("while waiting for {what}"))
            .await?;
        parse_reply(lines).map_err(|reason| self.malformed(reason))
    }

    /// The next message. Cancel-safe: bytes are moved into the framer only after a read
    /// completes, so a keepalive timeout in between loses nothing.
    async fn read_message(&mut self, during: &str) -> Result<Vec<String>, ClientError> {
        loop {
            match self.framer.next_message() {
                Ok(Some(lines)) => return Ok(lines),
                Ok(None) => {}
                Err(e) => return Err(self.malformed(e.to_string())),
            }
            let n = self
                .stream
                .read(&mut self.buf)
                .await
                .map_err(|source| ClientError::Io {
                    addr: self.addr.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(ClientError::Closed {
                    addr: self.addr.clone(),
                    during: during.to_owned(),
                });
            }
            self.framer.push(&self.buf[..n]);
        }
    }

    fn malformed(&self, reason: String) -> ClientError {
        ClientError::Malformed {
            addr: self.addr.clone(),
            reason,
        }
    }

    fn handshake_error(&self, reason: String) -> ClientError {
        ClientError::Handshake {
            addr: self.addr.clone(),
            reason,
        }
    }
}

/// Connects like [`NotifierClient::connect`], retrying transient failures (notifier down
/// or restarting) with exponential backoff and a warning per failure. Other errors (a
/// handshake that cannot work) are returned at once, as is the last error after
/// `backoff.max_attempts`.
pub async fn connect_with_backoff(
    addr: &str,
    options: &ClientOptions,
    backoff: &Backoff,
) -> Result<NotifierClient, ClientError> {
    let mut retry = backoff.start();
    loop {
        let attempt = retry.attempt();
        match NotifierClient::connect(addr, options.clone()).await {
            Ok(client) => {
                if attempt > 1 {
                    tracing::info!(notifier = addr, attempt, "connected to the notifier");
                }
                return Ok(client);
            }
            Err(e) if e.is_transient() => {
                let Some(delay) = retry.failed() else {
                    return Err(e);
                };
                tracing::warn!(error = %e, retry_in = ?delay, attempt, "notifier not reachable; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Splits a reply into its MSGID and payload lines.
fn parse_reply(mut lines: Vec<String>) -> Result<(u64, Vec<String>), String> {
    if lines.is_empty() {
        return Err("an empty message".to_owned());
    }
    let first = lines.remove(0);
    let msgid = first
        .split_once(':')
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case("MSGID"))
        .and_then(|(_, value)| parse_number(value))
        .ok_or_else(|| format!("a reply that does not start with `MSGID: <n>`: {first:?}"))?;
    Ok((msgid, lines))
}

fn parse_number(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[derive(Debug, PartialEq, Eq)]
enum Invalid {
    Malformed(String),
    Unexpected { expected: u64, got: u64 },
    Server(String),
}

/// Checks a `GET_DN`/`GET_DNS` payload: one `<id> <dn> <cmd>` per line, the first `from`,
/// each the previous plus one, at most `max`, commands of transactions only.
fn parse_transactions(
    payload: &[String],
    from: u64,
    max: usize,
) -> Result<Vec<TransactionRef>, Invalid> {
    if let [line] = payload
        && let Some(message) = line.strip_prefix("ERROR")
    {
        return Err(Invalid::Server(message.trim().to_owned()));
    }
    if payload.is_empty() {
        return Err(Invalid::Malformed(format!(
            "no transaction in the reply for {from}"
        )));
    }
    if payload.len() > max {
        return Err(Invalid::Malformed(format!(
            "{} transactions where at most {max} were asked for",
            payload.len()
        )));
    }
    let mut out = Vec::with_capacity(payload.len());
    let mut expected = from;
    for line in payload {
        let (id, dn, letter) = parse_transaction_line(line)
            .ok_or_else(|| Invalid::Malformed(format!("not `<id> <dn> <cmd>`: {line:?}")))?;
        if id != expected {
            return Err(Invalid::Unexpected { expected, got: id });
        }
        let command = Command::from_letter(letter)
            .filter(|c| *c != Command::Initialize)
            .ok_or_else(|| Invalid::Malformed(format!("unknown command {letter:?} in {line:?}")))?;
        if dn.is_empty() {
            return Err(Invalid::Malformed(format!("no DN in {line:?}")));
        }
        out.push(TransactionRef {
            id,
            dn: dn.to_owned(),
            command,
        });
        expected = expected
            .checked_add(1)
            .ok_or_else(|| Invalid::Malformed("transaction ID overflow".to_owned()))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn replies_split_into_msgid_and_payload() {
        assert_eq!(
            parse_reply(lines(&["MSGID: 7", "42"])),
            Ok((7, lines(&["42"])))
        );
        assert_eq!(parse_reply(lines(&["msgid:3"])), Ok((3, vec![])));
        for bad in [
            &[][..],
            &["MSGID: x", "1"],
            &["MSGID: -1"],
            &["MSGID: 99999999999999999999999"],
            &["42"],
            &["ID: 1", "1"],
        ] {
            assert!(parse_reply(lines(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn transactions_must_start_at_from_and_be_consecutive() {
        let ok = parse_transactions(
            &lines(&["5 cn=a b,dc=x m", "6 cn=a\\0ab,dc=x r", "7 cn=c,dc=x a"]),
            5,
            10,
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[0].dn, "cn=a b,dc=x");
        assert_eq!(ok[1].command, Command::Rename);
        assert_eq!(ok[2].id, 7);

        assert_eq!(
            parse_transactions(&lines(&["6 cn=a,dc=x m"]), 5, 10),
            Err(Invalid::Unexpected {
                expected: 5,
                got: 6
            })
        );
        assert_eq!(
            parse_transactions(&lines(&["5 cn=a,dc=x m", "7 cn=a,dc=x m"]), 5, 10),
            Err(Invalid::Unexpected {
                expected: 6,
                got: 7
            })
        );
        assert_eq!(
            parse_transactions(&lines(&["5 cn=a,dc=x m", "5 cn=a,dc=x m"]), 5, 10),
            Err(Invalid::Unexpected {
                expected: 6,
                got: 5
            })
        );
    }

    #[test]
    fn malformed_transaction_payloads_are_errors() {
        for bad in [
            &[][..],
            &["5"],
            &["5 m"],
            &["5 cn=a,dc=x"],
            &["5 cn=a,dc=x mm"],
            &["5 cn=a,dc=x n"],
            &["5 cn=a,dc=x x"],
            &["x cn=a,dc=x m"],
            &["-5 cn=a,dc=x m"],
            &["5  m"],
            &["18446744073709551616 cn=a,dc=x m"],
        ] {
            assert!(
                matches!(
                    parse_transactions(&lines(bad), 5, 10),
                    Err(Invalid::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        // More than asked for.
        assert!(matches!(
            parse_transactions(&lines(&["5 a=b m", "6 a=b m"]), 5, 1),
            Err(Invalid::Malformed(_))
        ));
        // The last possible ID cannot be followed by another.
        let max = u64::MAX.to_string();
        assert!(matches!(
            parse_transactions(
                &[format!("{max} a=b m"), format!("{max} a=b m")],
                u64::MAX,
                2
            ),
            Err(Invalid::Malformed(_) | Invalid::Unexpected { .. })
        ));
    }

    #[test]
    fn an_error_payload_is_the_servers_message() {
        assert_eq!(
            parse_transactions(
                &lines(&["ERROR transaction 3 is not in the log any more"]),
                3,
                5
            ),
            Err(Invalid::Server(
                "transaction 3 is not in the log any more".to_owned()
            ))
        );
    }
}
