//! The private channel between the listener and one worker process: a socketpair (the
//! worker's stdin), carrying length-prefixed postcard frames. The worker's LDAP
//! credentials travel only here, in [`Hello`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ldap::LdapSettings;
use crate::listener::call::RetryPolicy;
use crate::shared::SharedError;

/// Largest frame either side accepts (a job carries two states of one object).
const MAX_FRAME: usize = 64 << 20;

/// The first frame to a worker: which module it runs and how it reaches LDAP.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The module's name (`#[listener_module(name = …)]`).
    pub module: String,
    /// How to reach and bind to LDAP: the password reaches the worker through this
    /// channel only (`LdapSettings`' `Debug` leaves it out).
    pub ldap: LdapSettings,
    /// The settings `ctx.settings()` gives the module.
    pub base: String,
    pub notifier: String,
    pub cache_dir: PathBuf,
    /// How a failing call is retried.
    pub retry: RetryPolicy,
}

/// What the listener sends a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// Always the first frame.
    Hello(Hello),
    /// Run one call (an encoded [`super::job::Job`]); answered by [`FromWorker::Done`].
    Call { id: u64, job: Vec<u8> },
    /// Run a lifecycle method; answered by [`FromWorker::Done`].
    Lifecycle { id: u64, step: Lifecycle },
    /// The answer to the worker's [`FromWorker::Shared`] `id`.
    Shared { id: u64, answer: SharedAnswer },
}

/// The module methods other than the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Lifecycle {
    Initialize,
    Clean,
    PostRun,
}

/// What a worker sends the listener.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// Connected to LDAP, the module loaded: ready for calls.
    Ready { pid: u32 },
    /// Call or lifecycle method `id` ended.
    Done { id: u64, outcome: Outcome },
    /// A shared-state request of the module; the listener answers with the same `id`.
    Shared { id: u64, request: SharedRequest },
}

/// How a call ended in the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    /// `None`: success. Else the last error, after the worker's own retries.
    pub error: Option<String>,
    /// How many times it was tried.
    pub attempts: u32,
    /// How long the last attempt took, in microseconds.
    pub micros: u64,
}

/// A shared-state operation of the worker's module (the listener knows which module).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SharedRequest {
    Get {
        name: String,
    },
    Set {
        name: String,
        value: Vec<u8>,
    },
    TryLock {
        name: String,
        token: String,
        lease_ms: u64,
    },
    Unlock {
        name: String,
        token: String,
    },
}

/// The answer to a [`SharedRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SharedAnswer {
    Value(Option<Vec<u8>>),
    Stored,
    Taken(bool),
    /// The store failed: its backend and message.
    Failed {
        backend: String,
        message: String,
    },
}

impl SharedAnswer {
    /// The answer to a request that failed with `error`.
    pub(crate) fn failed(error: SharedError) -> SharedAnswer {
        match error {
            SharedError::Backend { backend, message } => SharedAnswer::Failed { backend, message },
            other => SharedAnswer::Failed {
                backend: "the listener".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

/// The channel failed or carried something unreadable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("the worker channel failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the worker channel carried a frame of {0} bytes, more than the 64 MiB allowed")]
    TooLarge(usize),
    #[error("the worker channel carried an unreadable frame: {0}")]
    Decode(String),
}

/// Writes one frame.
pub(crate) async fn write_frame<W, T>(w: &mut W, message: &T) -> Result<(), WireError>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let body = postcard::to_stdvec(message).map_err(|e| WireError::Decode(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(WireError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame).await?;
    Ok(())
}

/// Reads one frame; `None` when the other side closed the channel between frames.
pub(crate) async fn read_frame<R, T>(r: &mut R) -> Result<Option<T>, WireError>
where
    R: AsyncRead + Unpin,
    T: for<'de> Deserialize<'de>,
{
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    postcard::from_bytes(&body)
        .map(Some)
        .map_err(|e| WireError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_eof_between_frames_is_none() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let sent = FromWorker::Done {
            id: 7,
            outcome: Outcome {
                error: Some("boom".into()),
                attempts: 3,
                micros: 12,
            },
        };
        write_frame(&mut a, &sent).await.unwrap();
        drop(a);
        let got: Option<FromWorker> = read_frame(&mut b).await.unwrap();
        assert!(matches!(got, Some(FromWorker::Done { id: 7, outcome }) if outcome.attempts == 3));
        let end: Option<FromWorker> = read_frame(&mut b).await.unwrap();
        assert!(end.is_none());
    }

    #[tokio::test]
    async fn oversized_and_garbled_frames_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let err = read_frame::<_, FromWorker>(&mut b).await.unwrap_err();
        assert!(matches!(err, WireError::TooLarge(_)), "{err}");

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0, 0, 0, 2, 0xff, 0xff]).await.unwrap();
        let err = read_frame::<_, FromWorker>(&mut b).await.unwrap_err();
        assert!(matches!(err, WireError::Decode(_)), "{err}");
    }
}
