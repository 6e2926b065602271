//! The notifier's wire protocol, spoken to a server over real TCP on loopback, with a
//! transaction log that a test appends to (standing in for the accesslog follower).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use listener_core::Command;
use listener_runtime::testing::{LogTransaction as Transaction, Translog};
use listener_runtime::testing::{Published, ServerConfig, serve_notifier as serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;

struct Notifier {
    addr: std::net::SocketAddr,
    log: Arc<RwLock<Translog>>,
    last_id: watch::Sender<u64>,
    _schema_id: watch::Sender<u64>,
    _dir: tempfile::TempDir,
}

impl Notifier {
    async fn start(config: ServerConfig) -> Notifier {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(RwLock::new(Translog::open(dir.path()).unwrap()));
        let (last_id, last_rx) = watch::channel(0);
        let (schema_id, schema_rx) = watch::channel(7);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let published = Published {
            last_id: last_rx,
            schema_id: schema_rx,
            log: log.clone(),
            clients: Default::default(),
        };
        tokio::spawn(serve(listener, published, config, std::future::pending()));
        Notifier {
            addr,
            log,
            last_id,
            _schema_id: schema_id,
            _dir: dir,
        }
    }

    /// Appends transactions up to `last` and publishes them, as the follower does.
    fn write_up_to(&self, last: u64) {
        let mut log = self.log.write().unwrap();
        let from = log.last_id() + 1;
        let batch: Vec<Transaction> = (from..=last)
            .map(|id| Transaction {
                id,
                dn: format!("cn=object {id},dc=example,dc=com"),
                command: Command::Modify,
                entry_uuid: String::new(),
                csn: String::new(),
                time_us: 0,
            })
            .collect();
        log.append(&batch, Some(b"cookie")).unwrap();
        self.last_id.send_replace(last);
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    async fn client(&self, version: u32) -> TcpStream {
        let mut s = self.connect().await;
        s.write_all(format!("Version: {version}\nCapabilities: \n\n").as_bytes())
            .await
            .unwrap();
        let hello = read_message(&mut s).await;
        assert_eq!(hello, format!("Version: {version}\nCapabilities: \n\n"));
        s
    }
}

/// Reads up to and including the next empty line.
async fn read_message(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\n\n") {
        let n = timeout(Duration::from_secs(5), s.read(&mut byte))
            .await
            .expect("reply within 5 s")
            .unwrap();
        assert_eq!(
            n,
            1,
            "connection closed; got so far {:?}",
            String::from_utf8_lossy(&out)
        );
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap()
}

async fn assert_closed(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    let n = timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed within 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0, "expected the server to close, got {:?}", &buf[..n]);
}

async fn nothing_within(s: &mut TcpStream, ms: u64) {
    let mut buf = [0u8; 64];
    assert!(
        timeout(Duration::from_millis(ms), s.read(&mut buf))
            .await
            .is_err(),
        "no reply expected yet"
    );
}

#[tokio::test]
async fn get_notifier_id_exchange_as_ucs_does_it() {
    let n = Notifier::start(ServerConfig::default()).await;
    n.write_up_to(42);
    // UCS's get_notifier_id: handshake, read up to 100 bytes, GET_ID, line 2 of the reply.
    let mut s = n.connect().await;
    s.write_all(b"Version: 3\nCapabilities: \n\n")
        .await
        .unwrap();
    let mut buf = [0u8; 100];
    let len = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..len], b"Version: 3\nCapabilities: \n\n");
    s.write_all(b"MSGID: 1\nGET_ID\n\n").await.unwrap();
    let reply = read_message(&mut s).await;
    assert_eq!(reply.lines().nth(1), Some("42"));
    assert_eq!(reply, "MSGID: 1\n42\n\n");
}

#[tokio::test]
async fn versions_are_negotiated_and_old_ones_refused() {
    let n = Notifier::start(ServerConfig {
        min_version: 3,
        ..ServerConfig::default()
    })
    .await;
    let mut s = n.connect().await;
    s.write_all(b"Version: 9\nCapabilities: \n\n")
        .await
        .unwrap();
    assert_eq!(read_message(&mut s).await, "Version: 3\nCapabilities: \n\n");

    let mut old = n.connect().await;
    old.write_all(b"Version: 2\nCapabilities: \n\n")
        .await
        .unwrap();
    assert_closed(&mut old).await;
}

#[tokio::test]
async fn schema_id_and_alive() {
    let n = Notifier::start(ServerConfig::default()).await;
    let mut s = n.client(3).await;
    s.write_all(b"MSGID: 5\nGET_SCHEMA_ID\n\nMSGID: 6\nALIVE\n\n")
        .await
        .unwrap();
    assert_eq!(read_message(&mut s).await, "MSGID: 5\n7\n\n");
    assert_eq!(read_message(&mut s).await, "MSGID: 6\nOKAY\n\n");
}

#[tokio::test]
async fn get_dn_blocks_until_the_id_exists() {
    let n = Notifier::start(ServerConfig::default()).await;
    n.write_up_to(2);
    let mut s = n.client(2).await;
    s.write_all(b"MSGID: 1\nGET_DN 2\n\n").await.unwrap();
    assert_eq!(
        read_message(&mut s).await,
        "MSGID: 1\n2 cn=object 2,dc=example,dc=com m\n\n"
    );
    s.write_all(b"MSGID: 2\nGET_DN 3\n\n").await.unwrap();
    nothing_within(&mut s, 200).await;
    n.write_up_to(3);
    assert_eq!(
        read_message(&mut s).await,
        "MSGID: 2\n3 cn=object 3,dc=example,dc=com m\n\n"
    );
}

#[tokio::test]
async fn wait_id_answers_on_greater_or_equal() {
    let n = Notifier::start(ServerConfig::default()).await;
    let mut s = n.client(3).await;
    s.write_all(b"MSGID: 1\nWAIT_ID 5\n\n").await.unwrap();
    nothing_within(&mut s, 200).await;
    // Jumping past the awaited ID still answers (UDN answers only on an exact match).
    n.write_up_to(8);
    assert_eq!(read_message(&mut s).await, "MSGID: 1\n8\n\n");
}

#[tokio::test]
async fn several_pending_requests_are_all_answered_in_order() {
    let n = Notifier::start(ServerConfig::default()).await;
    let mut s = n.client(3).await;
    s.write_all(b"MSGID: 1\nWAIT_ID 3\n\nMSGID: 2\nWAIT_ID 2\n\nMSGID: 3\nWAIT_ID 9\n\n")
        .await
        .unwrap();
    // Re-sending a pending request with its MSGID replaces it: one reply only.
    s.write_all(b"MSGID: 1\nWAIT_ID 3\n\n").await.unwrap();
    nothing_within(&mut s, 200).await;
    n.write_up_to(3);
    assert_eq!(read_message(&mut s).await, "MSGID: 2\n3\n\n");
    assert_eq!(read_message(&mut s).await, "MSGID: 1\n3\n\n");
    nothing_within(&mut s, 200).await;
    n.write_up_to(9);
    assert_eq!(read_message(&mut s).await, "MSGID: 3\n9\n\n");
}

#[tokio::test]
async fn split_and_coalesced_requests() {
    let n = Notifier::start(ServerConfig::default()).await;
    n.write_up_to(1);
    let mut s = n.connect().await;
    for piece in ["Vers", "ion: 3\nCapabil", "ities: \n", "\n"] {
        s.write_all(piece.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(read_message(&mut s).await, "Version: 3\nCapabilities: \n\n");
    for piece in ["MSG", "ID: 1\nGET", "_ID\n", "\n"] {
        s.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(read_message(&mut s).await, "MSGID: 1\n1\n\n");
    s.write_all(b"MSGID: 2\nGET_ID\n\nMSGID: 3\nALIVE\n\nMSGID: 4\nGET_DN 1\n\n")
        .await
        .unwrap();
    assert_eq!(read_message(&mut s).await, "MSGID: 2\n1\n\n");
    assert_eq!(read_message(&mut s).await, "MSGID: 3\nOKAY\n\n");
    assert_eq!(
        read_message(&mut s).await,
        "MSGID: 4\n1 cn=object 1,dc=example,dc=com m\n\n"
    );
}

#[tokio::test]
async fn oversize_lines_and_garbage_close_the_connection() {
    let n = Notifier::start(ServerConfig::default()).await;
    let mut s = n.client(3).await;
    s.write_all(&vec![b'A'; 9000]).await.unwrap();
    assert_closed(&mut s).await;

    for garbage in [
        &b"MSGID: 1\nGET_DN banana\n\n"[..],
        b"MSGID: x\nGET_ID\n\n",
        b"hello\n\n",
        b"MSGID: 1\nGET_ID\n\xff\xfe\n\n",
    ] {
        let mut s = n.client(3).await;
        s.write_all(garbage).await.unwrap();
        assert_closed(&mut s).await;
    }
    // Garbage before the handshake closes too, and the server keeps serving others.
    let mut s = n.connect().await;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    assert_closed(&mut s).await;
    let mut ok = n.client(3).await;
    ok.write_all(b"MSGID: 1\nALIVE\n\n").await.unwrap();
    assert_eq!(read_message(&mut ok).await, "MSGID: 1\nOKAY\n\n");
}

#[tokio::test]
async fn batch_capability_only_when_asked() {
    let n = Notifier::start(ServerConfig::default()).await;
    n.write_up_to(3);
    let mut plain = n.client(3).await;
    plain
        .write_all(b"MSGID: 1\nGET_DNS 1 10\n\n")
        .await
        .unwrap();
    assert_closed(&mut plain).await;

    let mut s = n.connect().await;
    s.write_all(b"Version: 3\nCapabilities: GET_DNS\n\n")
        .await
        .unwrap();
    assert_eq!(
        read_message(&mut s).await,
        "Version: 3\nCapabilities: GET_DNS\n\n"
    );
    s.write_all(b"MSGID: 1\nGET_DNS 2 10\n\n").await.unwrap();
    assert_eq!(
        read_message(&mut s).await,
        "MSGID: 1\n2 cn=object 2,dc=example,dc=com m\n3 cn=object 3,dc=example,dc=com m\n\n"
    );
    s.write_all(b"MSGID: 2\nGET_DNS 4 10\n\n").await.unwrap();
    nothing_within(&mut s, 200).await;
    n.write_up_to(4);
    assert_eq!(
        read_message(&mut s).await,
        "MSGID: 2\n4 cn=object 4,dc=example,dc=com m\n\n"
    );
}

#[tokio::test]
async fn two_hundred_waiting_clients_are_all_answered() {
    let n = Notifier::start(ServerConfig::default()).await;
    n.write_up_to(10);
    let mut clients = Vec::new();
    for msgid in 0..200u64 {
        let mut s = n.client(3).await;
        s.write_all(format!("MSGID: {msgid}\nWAIT_ID 11\n\n").as_bytes())
            .await
            .unwrap();
        clients.push((msgid, s));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    n.write_up_to(11);
    let answers = clients.into_iter().map(|(msgid, mut s)| async move {
        assert_eq!(
            read_message(&mut s).await,
            format!("MSGID: {msgid}\n11\n\n")
        );
    });
    futures_join_all(answers).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_stall_others() {
    let n = Notifier::start(ServerConfig {
        write_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await;
    n.write_up_to(1);
    // Floods requests and never reads a reply.
    let mut greedy = n.client(3).await;
    let flood = tokio::spawn(async move {
        let request = b"MSGID: 1\nGET_DN 1\n\n".repeat(1000);
        for _ in 0..1000 {
            if greedy.write_all(&request).await.is_err() {
                return;
            }
        }
    });
    let mut polite = n.client(3).await;
    for msgid in 0..20 {
        polite
            .write_all(format!("MSGID: {msgid}\nGET_ID\n\n").as_bytes())
            .await
            .unwrap();
        assert_eq!(
            read_message(&mut polite).await,
            format!("MSGID: {msgid}\n1\n\n")
        );
    }
    flood.abort();
}

async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let n = Notifier::start(ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    })
    .await;
    let mut first = n.client(3).await;
    let _second = n.client(3).await;
    let mut third = n.connect().await;
    third
        .write_all(b"Version: 3\nCapabilities: \n\n")
        .await
        .unwrap();
    assert_closed(&mut third).await;
    // The first two are still served; when one goes, a new client gets its slot.
    first.write_all(b"MSGID: 1\nALIVE\n\n").await.unwrap();
    assert_eq!(read_message(&mut first).await, "MSGID: 1\nOKAY\n\n");
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = n.client(3).await;
    fourth.write_all(b"MSGID: 1\nALIVE\n\n").await.unwrap();
    assert_eq!(read_message(&mut fourth).await, "MSGID: 1\nOKAY\n\n");
}

#[tokio::test]
async fn the_log_identity_is_told_to_clients_that_ask() {
    let n = Notifier::start(ServerConfig::default()).await;
    let identity = n.log.read().unwrap().identity().to_owned();
    let mut s = n.connect().await;
    s.write_all(b"Version: 3\nCapabilities: GET_DNS LOG_ID\n\n")
        .await
        .unwrap();
    assert_eq!(
        read_message(&mut s).await,
        format!("Version: 3\nCapabilities: GET_DNS LOG_ID={identity}\n\n")
    );
}
