//! The metrics endpoint: just enough HTTP/1.x for a Prometheus scrape. `GET /metrics`
//! (and `HEAD`) answers 200 with the rendered text; another path 404; another method on
//! `/metrics` 405; anything that is not a request line 400. One request per connection
//! (`Connection: close`), a bounded request head, a read timeout and a bounded number of
//! connections, so a stuck or hostile client costs a few kilobytes and one task at most.
//!
//! A full HTTP stack (hyper, axum) would bring far more than one fixed route needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::text::CONTENT_TYPE;

/// The longest request head read; a scrape's is a few hundred bytes.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 32;

/// Renders the current metrics (called once per scrape).
pub(crate) type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The metrics endpoint cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Binding the address failed (in use, not a local address, no permission).
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The address asked for (`--metrics`).
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The running endpoint; dropping it stops serving.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    #[cfg_attr(not(test), expect(dead_code))]
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// The address it listens on (the real port when asked for port 0).
    #[cfg(test)]
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` now (so a bad address is a start-up error) and serves `render`'s text on
/// `/metrics` from a task on the current tokio runtime until the result is dropped.
pub(crate) fn serve(addr: SocketAddr, render: Render) -> Result<MetricsServer, MetricsError> {
    let bind_error = |source| MetricsError::Bind { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    std_listener.set_nonblocking(true).map_err(bind_error)?;
    let listener = TcpListener::from_std(std_listener).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    tracing::info!(addr = %local, "serving metrics on /metrics");
    let task = tokio::spawn(accept_loop(listener, render));
    Ok(MetricsServer { addr: local, task })
}

async fn accept_loop(listener: TcpListener, render: Render) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "metrics: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            if let Err(e) = respond(&mut stream, &render).await {
                tracing::debug!(%peer, error = %e, "metrics: connection failed");
            }
            drop(permit);
        });
    }
}

/// Reads one request from `stream` and answers it.
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    render: &Render,
) -> std::io::Result<()> {
    let answer = match tokio::time::timeout(IO_TIMEOUT, read_head(stream)).await {
        Err(_) => Answer::status(408, "Request Timeout"),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(Head::Closed)) => return Ok(()),
        Ok(Ok(Head::TooLarge)) => Answer::status(431, "Request Header Fields Too Large"),
        Ok(Ok(Head::Complete(head))) => match route(&head) {
            Route::Metrics { head_only } => Answer::metrics(render(), head_only),
            Route::NotFound => Answer::status(404, "Not Found"),
            Route::MethodNotAllowed => Answer::status(405, "Method Not Allowed"),
            Route::BadRequest => Answer::status(400, "Bad Request"),
        },
    };
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&answer.bytes()).await?;
        stream.shutdown().await?;
        // Take what the client still sends (a request body) before closing: closing a
        // socket with unread data resets the connection and may lose our answer.
        let mut sink = [0u8; 1024];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await
    .unwrap_or(Ok(()))
}

/// What reading a request head gave.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The bytes up to the blank line.
    Complete(Vec<u8>),
    /// More than [`MAX_HEAD`] without a blank line.
    TooLarge,
    /// The client went away before the blank line.
    Closed,
}

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Head> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(Head::Complete(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(Head::TooLarge);
        }
    }
}

/// Where the head ends: at the first blank line (`\r\n\r\n`, or `\n\n` from lenient
/// clients).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Decides from the request line alone (`METHOD SP target SP HTTP/1.x`); the headers do
/// not change the answer.
fn route(head: &[u8]) -> Route {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    if !token(method) || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if path != "/metrics" {
        return Route::NotFound;
    }
    match method {
        "GET" => Route::Metrics { head_only: false },
        "HEAD" => Route::Metrics { head_only: true },
        _ => Route::MethodNotAllowed,
    }
}

/// A response.
struct Answer {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Answer {
    fn metrics(body: String, head_only: bool) -> Answer {
        Answer {
            status: 200,
            reason: "OK",
            content_type: CONTENT_TYPE,
            body,
            head_only,
        }
    }

    fn status(status: u16, reason: &'static str) -> Answer {
        Answer {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: format!("{reason}\n"),
            head_only: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let allow = if self.status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render() -> Render {
        Arc::new(|| "# TYPE x gauge\nx 1\n".to_owned())
    }

    /// What the responder answers to `request` written at once, as text.
    async fn exchange(request: &[u8]) -> String {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(async move { respond(&mut server, &render()).await });
        client.write_all(request).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        serving.await.unwrap().unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[test]
    fn routes_by_request_line() {
        let get = |line: &str| route(line.as_bytes());
        assert_eq!(
            get("GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            get("GET /metrics?name[]=x HTTP/1.0"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            get("HEAD /metrics HTTP/1.1"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(get("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(get("GET /metrics/ HTTP/1.1"), Route::NotFound);
        assert_eq!(get("POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(get("DELETE /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(get("POST /other HTTP/1.1"), Route::NotFound);
        for garbage in [
            "",
            "GET",
            "GET /metrics",
            "GET /metrics HTTP/1.1 extra",
            "GET  /metrics HTTP/1.1",
            "GET metrics HTTP/1.1",
            "GET /metrics SPDY/3",
            "G\u{e9}T /metrics HTTP/1.1",
            "\u{0}\u{1}\u{2}",
        ] {
            assert_eq!(get(garbage), Route::BadRequest, "{garbage:?}");
        }
        assert_eq!(route(b"GET /m\xff HTTP/1.1"), Route::BadRequest);
    }

    proptest::proptest! {
        /// Whatever arrives, routing answers (no panic on network input).
        #[test]
        fn any_bytes_get_a_route(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = head_end(&bytes);
            let _ = route(&bytes);
        }
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(20));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    #[tokio::test]
    async fn get_metrics_answers_the_rendered_text() {
        let answer = exchange(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert_eq!(
            answer,
            "HTTP/1.1 200 OK\r\n\
             Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 19\r\n\
             Connection: close\r\n\r\n\
             # TYPE x gauge\nx 1\n"
        );
    }

    #[tokio::test]
    async fn head_answers_without_a_body() {
        let answer = exchange(b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("Content-Length: 19\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n"), "{answer}");
    }

    #[tokio::test]
    async fn other_paths_methods_and_garbage_get_their_status() {
        let status = |answer: String| answer.lines().next().unwrap_or_default().to_owned();
        assert_eq!(
            status(exchange(b"GET /favicon.ico HTTP/1.1\r\n\r\n").await),
            "HTTP/1.1 404 Not Found"
        );
        let post = exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").await;
        assert_eq!(status(post.clone()), "HTTP/1.1 405 Method Not Allowed");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
        assert_eq!(
            status(exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n").await),
            "HTTP/1.1 400 Bad Request"
        );
        assert_eq!(
            status(exchange(b"hello\r\n\r\n").await),
            "HTTP/1.1 400 Bad Request"
        );
    }

    #[tokio::test]
    async fn an_endless_head_is_cut_off() {
        let mut request = b"GET /metrics HTTP/1.1\r\n".to_vec();
        request.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let answer = exchange(&request).await;
        assert!(
            answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn a_client_that_leaves_early_gets_nothing() {
        assert_eq!(exchange(b"GET /metr").await, "");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_times_out() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let serving = tokio::spawn(async move { respond(&mut server, &render()).await });
        client
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        // The paused clock jumps ahead to the read timeout.
        client.read_to_end(&mut answer).await.unwrap();
        serving.await.unwrap().unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    }

    #[tokio::test]
    async fn serves_over_tcp_and_reports_a_taken_address() {
        let server = serve("127.0.0.1:0".parse().unwrap(), render()).unwrap();
        let addr = server.local_addr();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.ends_with("\r\n\r\n# TYPE x gauge\nx 1\n"),
            "{answer}"
        );

        let taken = serve(addr, render()).unwrap_err();
        let message = taken.to_string();
        assert!(
            message.starts_with(&format!("cannot serve metrics on {addr}: ")),
            "{message}"
        );
    }
}
