//! The memcached backend (`run --memcached HOST:PORT`), on memcached's meta protocol:
//! `mg`/`ms` for variables; a lock is `ms … ME` (add: stored only if absent) with the
//! lease as TTL and a random token as value, released by `mg … c` then `md … C<cas>`, a
//! delete that happens only if the item is still the one whose token was read. Run
//! memcached with `-M`, so that it never evicts a lock to make room.
//!
//! One connection, opened on first use and again after any error (a memcached that went
//! away makes the calls that need it fail until it is back).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::{Kind, SharedError, SharedStore, key};
use crate::api::handler::BoxFuture;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Larger values are refused (memcached's default item limit is 1 MiB).
const MAX_VALUE: usize = 1 << 20;

/// A memcached server holding the shared state.
#[derive(Debug)]
pub(crate) struct Memcached {
    addr: String,
    conn: Mutex<Option<BufReader<TcpStream>>>,
}

/// A reply's first line, split into its code and its tokens.
struct Reply {
    code: String,
    tokens: Vec<String>,
}

impl Memcached {
    /// A store on the memcached at `addr` (`host:port`); nothing is connected yet.
    pub(crate) fn new(addr: &str) -> Memcached {
        Memcached {
            addr: addr.to_owned(),
            conn: Mutex::new(None),
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> SharedError {
        SharedError::Backend {
            backend: format!("memcached at {}", self.addr),
            message: message.to_string(),
        }
    }

    /// Sends `request` (with `data` as its value block, if any) and reads the reply; a
    /// `VA` reply's value comes with it. The connection is taken out for the exchange
    /// and put back only after a whole one: a failure, or a caller that stops waiting
    /// (a timeout around `lock`), closes it, so no reply is ever read as another's.
    async fn call(
        &self,
        request: &str,
        data: Option<&[u8]>,
    ) -> Result<(Reply, Option<Vec<u8>>), SharedError> {
        let mut conn = self.conn.lock().await;
        let open = conn.take();
        let result = tokio::time::timeout(TIMEOUT, async {
            let mut stream = match open {
                Some(stream) => stream,
                None => {
                    let stream = TcpStream::connect(&self.addr).await?;
                    stream.set_nodelay(true)?;
                    BufReader::new(stream)
                }
            };
            let mut message = Vec::with_capacity(request.len() + 4 + data.map_or(0, <[u8]>::len));
            message.extend_from_slice(request.as_bytes());
            message.extend_from_slice(b"\r\n");
            if let Some(data) = data {
                message.extend_from_slice(data);
                message.extend_from_slice(b"\r\n");
            }
            stream.get_mut().write_all(&message).await?;
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("the connection was closed"));
            }
            let mut tokens = line.split_ascii_whitespace().map(str::to_owned);
            let code = tokens.next().unwrap_or_default();
            let reply = Reply {
                code,
                tokens: tokens.collect(),
            };
            let value = if reply.code == "VA" {
                let len: usize = reply
                    .tokens
                    .first()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n <= MAX_VALUE)
                    .ok_or_else(|| std::io::Error::other(format!("a bad reply: {line:?}")))?;
                let mut value = vec![0; len + 2];
                stream.read_exact(&mut value).await?;
                value.truncate(len);
                Some(value)
            } else {
                None
            };
            Ok((reply, value, stream))
        })
        .await;
        match result {
            Ok(Ok((reply, value, stream))) => {
                *conn = Some(stream);
                Ok((reply, value))
            }
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => Err(self.error(format!("no answer within {TIMEOUT:?}"))),
        }
    }

    fn unexpected(&self, request: &str, reply: &Reply) -> SharedError {
        let verb = request.split(' ').next().unwrap_or_default();
        self.error(format!("unexpected reply {} to {verb}", reply.code))
    }
}

impl SharedStore for Memcached {
    fn get<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, SharedError>> {
        Box::pin(async move {
            let request = format!("mg {} v", key(Kind::Variable, module, name)?);
            match self.call(&request, None).await? {
                (reply, value) if reply.code == "VA" => Ok(value),
                (reply, _) if reply.code == "EN" => Ok(None),
                (reply, _) => Err(self.unexpected(&request, &reply)),
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
            if value.len() > MAX_VALUE {
                return Err(SharedError::Value {
                    name: name.to_owned(),
                    message: format!("{} bytes is more than memcached's 1 MiB", value.len()),
                });
            }
            let request = format!("ms {} {}", key(Kind::Variable, module, name)?, value.len());
            match self.call(&request, Some(value)).await? {
                (reply, _) if reply.code == "HD" => Ok(()),
                (reply, _) => Err(self.unexpected(&request, &reply)),
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
            // memcached counts TTLs in whole seconds; a lease is never shorter than asked.
            let ttl = lease.as_secs() + u64::from(lease.subsec_nanos() > 0);
            let request = format!(
                "ms {} {} T{} ME",
                key(Kind::Lock, module, name)?,
                token.len(),
                ttl.max(1)
            );
            match self.call(&request, Some(token.as_bytes())).await? {
                (reply, _) if reply.code == "HD" => Ok(true),
                (reply, _) if reply.code == "NS" => Ok(false),
                (reply, _) => Err(self.unexpected(&request, &reply)),
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
            let key = key(Kind::Lock, module, name)?;
            let request = format!("mg {key} v c");
            let cas = match self.call(&request, None).await? {
                (reply, Some(value)) if reply.code == "VA" => {
                    if value != token.as_bytes() {
                        return Ok(false);
                    }
                    reply
                        .tokens
                        .iter()
                        .find_map(|t| t.strip_prefix('c'))
                        .map(str::to_owned)
                        .ok_or_else(|| self.unexpected(&request, &reply))?
                }
                (reply, _) if reply.code == "EN" => return Ok(false),
                (reply, _) => return Err(self.unexpected(&request, &reply)),
            };
            // Deleted only if nobody took the lock since the token was read.
            let request = format!("md {key} C{cas}");
            match self.call(&request, None).await? {
                (reply, _) if reply.code == "HD" => Ok(true),
                (reply, _) if reply.code == "EX" || reply.code == "NF" => Ok(false),
                (reply, _) => Err(self.unexpected(&request, &reply)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A caller that gives up while its reply is still on the way leaves nothing on the
    /// connection for the next caller to read. The server here answers `mg` with the
    /// key's name as its value, the first one late.
    #[tokio::test]
    async fn a_reply_nobody_waits_for_is_never_read_as_the_next_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let key = line.split(' ').nth(1).unwrap_or_default().to_owned();
                    line.clear();
                    if std::mem::take(&mut first) {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let reply = format!("VA {}\r\n{key}\r\n", key.len());
                    if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
        });
        let store = Memcached::new(&addr);
        let late = tokio::time::timeout(Duration::from_millis(50), store.get("m", "a")).await;
        assert!(late.is_err(), "the first reply came early");
        let value = store.get("m", "b").await.unwrap().unwrap();
        assert_eq!(String::from_utf8(value).unwrap(), "udl.v.m.b");
    }
}
