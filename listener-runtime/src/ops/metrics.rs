//! The Prometheus metrics endpoint: `GET /metrics` (and `HEAD`) answers the Prometheus
//! text format (version 0.0.4, encoded by `prometheus-client`) of a [`Registry`]; another
//! path 404; another method on `/metrics` 405; what is not HTTP 400 (hyper's answer).
//!
//! The daemons keep no registry of metrics objects: the listener (`listener::metrics`)
//! and the notifier each register one [`Collector`] that reads the atomics they already
//! maintain when a scrape comes in.
//!
//! HTTP/1 through hyper, one request per connection, a bounded request head (431 above
//! it), a time limit on reading the head and on the whole connection, and a bounded
//! number of connections, so a stuck or hostile client costs a few kilobytes and one task
//! at most.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE as CONTENT_TYPE_HEADER, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// The `Content-Type` of the format.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The limits on one client.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// The longest request head read; a scrape's is a few hundred bytes.
    max_head: usize,
    /// How long a client may take to send its request head.
    head_timeout: Duration,
    /// How long a connection may last in all (sending the request, taking the answer).
    connection_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    max_connections: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        // hyper's smallest buffer; also the limit on the head.
        max_head: 8 * 1024,
        head_timeout: Duration::from_secs(10),
        connection_timeout: Duration::from_secs(20),
        max_connections: 32,
    };
}

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
    /// Where it listens (the log says so too; tests connect to it).
    #[cfg(test)]
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

/// A registry holding just `collector`.
pub(crate) fn registry(collector: impl Collector) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    registry
}

/// The text of `registry` now.
pub(crate) fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String fails only if a collector fails, and ours do not.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "metrics: cannot encode");
    }
    text
}

/// One gauge family with one series without labels.
pub(crate) fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> std::fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One counter family with one series without labels; `name` without `_total`, which
/// the encoder appends (to the family and to the series).
pub(crate) fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, u64, u64>(&value, None)
}

/// Binds `addr` now (so a bad address is a start-up error) and serves `registry` on
/// `/metrics` from a task on the current tokio runtime until the result is dropped.
pub(crate) fn serve(addr: SocketAddr, registry: Registry) -> Result<MetricsServer, MetricsError> {
    serve_with(addr, Arc::new(registry), Limits::DEFAULT)
}

fn serve_with(
    addr: SocketAddr,
    registry: Arc<Registry>,
    limits: Limits,
) -> Result<MetricsServer, MetricsError> {
    let bind_error = |source| MetricsError::Bind { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    std_listener.set_nonblocking(true).map_err(bind_error)?;
    let listener = TcpListener::from_std(std_listener).map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    tracing::info!(addr = %local, "serving metrics on /metrics");
    let task = tokio::spawn(accept_loop(listener, registry, limits));
    Ok(MetricsServer {
        #[cfg(test)]
        addr: local,
        task,
    })
}

async fn accept_loop(listener: TcpListener, registry: Arc<Registry>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "metrics: cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, registry, limits).await {
                tracing::debug!(%peer, error = %e, "metrics: connection failed");
            }
            drop(permit);
        });
    }
}

/// Serves one connection: one request, then close.
async fn connection<S>(stream: S, registry: Arc<Registry>, limits: Limits) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let answer = respond(&request, &registry);
        async move { Ok::<_, Infallible>(answer) }
    });
    let serving = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head.max(8 * 1024))
        .max_header_size(limits.max_head)
        .keep_alive(false)
        // A client may shut down its side after the request and still wait for the answer.
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(limits.connection_timeout, serving).await {
        Ok(served) => served.map_err(|e| e.to_string()),
        Err(_) => Err("took too long".to_owned()),
    }
}

/// The answer to `request` (routed by method and path alone).
fn respond(request: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return status(StatusCode::NOT_FOUND);
    }
    match *request.method() {
        // hyper leaves out the body of the answer to a HEAD.
        Method::GET | Method::HEAD => {
            let mut answer = Response::new(Full::new(Bytes::from(render(registry))));
            answer
                .headers_mut()
                .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
            answer
        }
        _ => {
            let mut answer = status(StatusCode::METHOD_NOT_ALLOWED);
            answer
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            answer
        }
    }
}

/// An answer that is only a status (and its reason as the body).
fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let reason = code.canonical_reason().unwrap_or_default();
    let mut answer = Response::new(Full::new(Bytes::from(format!("{reason}\n"))));
    *answer.status_mut() = code;
    answer.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    answer
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// One gauge `x` at 1.
    #[derive(Debug)]
    struct One;

    impl Collector for One {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
            gauge(&mut encoder, "x", "An x.", 1u64)?;
            counter(&mut encoder, "y", "Ys seen.", 2)
        }
    }

    const TEXT: &str = "# HELP x An x.\n# TYPE x gauge\nx 1\n\
                        # HELP y_total Ys seen.\n# TYPE y_total counter\ny_total 2\n";

    fn limits() -> Limits {
        Limits {
            head_timeout: Duration::from_millis(300),
            connection_timeout: Duration::from_secs(5),
            max_connections: 4,
            ..Limits::DEFAULT
        }
    }

    /// What the server answers to `request` written at once, as text.
    async fn exchange(request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let serving = tokio::spawn(connection(server, Arc::new(registry(One)), limits()));
        client.write_all(request).await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        let _ = serving.await.unwrap();
        String::from_utf8(answer).unwrap()
    }

    /// The status line.
    fn status_line(answer: &str) -> &str {
        answer.lines().next().unwrap_or_default()
    }

    /// The value of header `name` (case-insensitive) in `answer`.
    fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
        let head = answer
            .split_once("\r\n\r\n")
            .map_or(answer, |(head, _)| head);
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn body(answer: &str) -> &str {
        answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
    }

    /// A server on a free loopback port with test limits.
    fn server() -> MetricsServer {
        serve_with(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(registry(One)),
            limits(),
        )
        .unwrap()
    }

    /// A scrape over TCP: the whole answer.
    async fn scrape(addr: SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
            .await
            .expect("answered in time")
            .unwrap();
        answer
    }

    /// A good client after a hostile one still gets the metrics.
    async fn still_serves(addr: SocketAddr) {
        let answer = scrape(addr).await;
        assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
        assert_eq!(body(&answer), TEXT);
    }

    #[test]
    fn counters_get_total_on_family_and_series() {
        assert_eq!(render(&registry(One)), TEXT);
    }

    #[tokio::test]
    async fn get_metrics_answers_the_rendered_text() {
        let answer = exchange(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
        assert_eq!(
            header(&answer, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert_eq!(
            header(&answer, "content-length"),
            Some(TEXT.len().to_string().as_str())
        );
        assert_eq!(header(&answer, "connection"), Some("close"), "{answer}");
        assert_eq!(body(&answer), TEXT);
        // A query string and HTTP/1.0 change nothing.
        let answer = exchange(b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n").await;
        assert_eq!(body(&answer), TEXT, "{answer}");
    }

    #[tokio::test]
    async fn head_answers_without_a_body() {
        let answer = exchange(b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
        assert_eq!(
            header(&answer, "content-length"),
            Some(TEXT.len().to_string().as_str())
        );
        assert!(answer.ends_with("\r\n\r\n"), "{answer}");
    }

    #[tokio::test]
    async fn other_paths_methods_and_garbage_get_their_status() {
        for (request, expected) in [
            (
                &b"GET /favicon.ico HTTP/1.1\r\n\r\n"[..],
                "HTTP/1.1 404 Not Found",
            ),
            (b"GET /metrics/ HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
            (b"POST /other HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
            (
                b"DELETE /metrics HTTP/1.1\r\n\r\n",
                "HTTP/1.1 405 Method Not Allowed",
            ),
            // A TLS client hello.
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n",
                "HTTP/1.1 400 Bad Request",
            ),
            (b"hello\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (b"GET /metrics SPDY/3\r\n\r\n", "HTTP/1.1 400 Bad Request"),
            (b"GET /m\xff HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ] {
            let answer = exchange(request).await;
            assert_eq!(status_line(&answer), expected, "{request:?}: {answer}");
        }
        let post = exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").await;
        assert_eq!(status_line(&post), "HTTP/1.1 405 Method Not Allowed");
        assert_eq!(header(&post, "allow"), Some("GET, HEAD"), "{post}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever arrives, the connection ends (no panic, no hang on network input).
        #[test]
        fn any_bytes_end_the_connection(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let (mut client, server) = tokio::io::duplex(64 * 1024);
                    let serving = tokio::spawn(connection(server, Arc::new(registry(One)), limits()));
                    client.write_all(&bytes).await.unwrap();
                    client.shutdown().await.unwrap();
                    let mut answer = Vec::new();
                    client.read_to_end(&mut answer).await.unwrap();
                    let _ = serving.await.unwrap();
                });
        }
    }

    #[tokio::test]
    async fn an_endless_head_is_cut_off_and_the_next_client_served() {
        let server = server();
        let mut stream = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let mut request = b"GET /metrics HTTP/1.1\r\nX-Long: ".to_vec();
        request.extend(std::iter::repeat_n(b'a', Limits::DEFAULT.max_head + 10));
        // The server may close before taking it all.
        let _ = stream.write_all(&request).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty()
                || answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer}"
        );
        still_serves(server.local_addr()).await;

        let mut request = b"GET /metrics HTTP/1.1\r\n".to_vec();
        request.extend(std::iter::repeat_n(b'a', Limits::DEFAULT.max_head + 10));
        let answer = exchange(&request).await;
        assert!(
            answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn garbage_closes_the_connection_and_the_next_client_is_served() {
        let server = server();
        let mut stream = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        stream
            .write_all(b"\x00\x01\x02 garbage\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert_eq!(status_line(&answer), "HTTP/1.1 400 Bad Request", "{answer}");
        still_serves(server.local_addr()).await;
    }

    #[tokio::test]
    async fn a_client_that_leaves_early_gets_nothing() {
        assert_eq!(exchange(b"GET /metr").await, "");
        assert_eq!(exchange(b"").await, "");
    }

    #[tokio::test]
    async fn a_slow_client_is_cut_off_and_the_next_client_served() {
        let server = server();
        let addr = server.local_addr();
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        // Slowloris: a byte now and then, never the end of the head.
        let dripping = async {
            slow.write_all(b"GET /metrics HTTP/1.1\r\n").await?;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                slow.write_all(b"X-A: b\r\n").await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        };
        let cut = tokio::time::timeout(Duration::from_secs(5), dripping).await;
        assert!(
            matches!(cut, Ok(Err(_))),
            "the server stops taking the head: {cut:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        still_serves(addr).await;

        // Silent: connects and sends nothing.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut answer))
            .await
            .expect("the server closes a silent connection")
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408 "),
            "{answer}"
        );
        still_serves(addr).await;
    }

    #[tokio::test]
    async fn many_idle_connections_do_not_stop_the_endpoint() {
        let server = server();
        let addr = server.local_addr();
        // More than the connections served at once, all silent.
        let mut idle = Vec::new();
        for _ in 0..limits().max_connections * 3 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // Served once the head timeout frees the slots.
        tokio::time::timeout(Duration::from_secs(10), still_serves(addr))
            .await
            .expect("served while idle connections are open");
        drop(idle);
    }

    #[tokio::test]
    async fn serves_over_tcp_and_reports_a_taken_address() {
        let server = serve("127.0.0.1:0".parse().unwrap(), registry(One)).unwrap();
        let addr = server.local_addr();
        still_serves(addr).await;

        let taken = serve(addr, registry(One)).unwrap_err();
        let message = taken.to_string();
        assert!(
            message.starts_with(&format!("cannot serve metrics on {addr}: ")),
            "{message}"
        );
    }
}
