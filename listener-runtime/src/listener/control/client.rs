//! The tools' side of the control socket: blocking, one request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SOCKET;
use super::protocol::{Answer, Query};

/// A connection to the listener running on a cache directory.
#[derive(Debug)]
pub(crate) struct Client {
    path: PathBuf,
    /// The connection made by [`Client::connect`], used by the first request.
    first: Option<UnixStream>,
}

impl Client {
    /// Connects to the listener running on `cache_dir`; `None` when none listens there
    /// (no socket, or a stale one left by a killed listener).
    pub(crate) fn connect(cache_dir: &Path) -> Option<Client> {
        let path = cache_dir.join(SOCKET);
        let stream = UnixStream::connect(&path).ok()?;
        Some(Client {
            path,
            first: Some(stream),
        })
    }

    fn send(&mut self, query: &Query) -> Result<BufReader<UnixStream>, String> {
        let mut stream = match self.first.take() {
            Some(stream) => stream,
            None => UnixStream::connect(&self.path).map_err(|e| {
                format!(
                    "the listener's control socket {} stopped answering: {e}",
                    self.path.display()
                )
            })?,
        };
        let mut line = serde_json::to_string(query).map_err(|e| e.to_string())?;
        line.push('\n');
        stream
            .write_all(line.as_bytes())
            .map_err(|e| format!("cannot send to the listener: {e}"))?;
        Ok(BufReader::new(stream))
    }

    fn answer(reader: &mut BufReader<UnixStream>) -> Result<Answer, String> {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("no answer from the listener: {e}"))?;
        if line.is_empty() {
            return Err("the listener closed the connection without an answer".into());
        }
        serde_json::from_str(&line).map_err(|e| format!("unreadable answer from the listener: {e}"))
    }

    /// Sends `query`; its answer.
    pub(crate) fn request(&mut self, query: &Query) -> Result<Answer, String> {
        let mut reader = self.send(query)?;
        Client::answer(&mut reader)
    }

    /// Sends `query` and decodes the result (or returns the listener's error).
    pub(crate) fn call<T: for<'de> Deserialize<'de>>(
        &mut self,
        query: &Query,
    ) -> Result<T, String> {
        self.request(query)?.into_result()
    }

    /// The whole cache as LDIF, copied to `out` as it arrives.
    pub(crate) fn dump(&mut self, out: &mut impl Write) -> Result<(), String> {
        let mut reader = self.send(&Query::Dump)?;
        let answer = Client::answer(&mut reader)?;
        if !answer.ok || !answer.stream {
            return answer.into_result::<serde_json::Value>().map(|_| ());
        }
        let mut tail = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| format!("the dump broke off: {e}"))?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).map_err(|e| e.to_string())?;
            // Kept to see the server's error trailer, should there be one.
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(4096);
            tail.drain(..keep);
        }
        let tail = String::from_utf8_lossy(&tail);
        match tail.rfind(super::DUMP_FAILED) {
            Some(at) => Err(tail[at..].trim().to_owned()),
            None => Ok(()),
        }
    }
}
