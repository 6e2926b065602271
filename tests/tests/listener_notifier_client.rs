//! The listener's notifier client against the in-process notifier on a real slapd
//! (batched `GET_DNS` and protocol-2 `GET_DN`, blocking until the next write, keepalives,
//! a notifier restart), and against a scripted fake server for what a real one never
//! sends (wrong IDs, malformed replies) and for the exact keepalive exchange.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, Mod};
use listener_runtime::Command;
use listener_runtime::testing::Framer;
use listener_runtime::testing::{Backoff, LdapSettings};
use listener_runtime::testing::{
    ClientError, ClientOptions, NotifierClient, TransactionRef, connect_with_backoff,
};
use tests::Slapd;
use tests::in_process::InProcessNotifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PATIENCE: Duration = Duration::from_secs(20);

/// The in-process notifier.
struct Running(InProcessNotifier);

impl Running {
    async fn start(slapd: &Slapd, data_dir: &std::path::Path, listen: SocketAddr) -> Running {
        Running(InProcessNotifier::start(slapd, data_dir, listen).await)
    }

    fn addr(&self) -> String {
        self.0.addr().to_string()
    }

    async fn stop(self) {
        self.0.stop().await
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn admin(slapd: &Slapd) -> Ldap {
    let (conn, mut ldap) = LdapConnAsync::new(slapd.url()).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(&slapd.root_dn(), slapd.root_password())
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap
}

async fn add_role(ldap: &mut Ldap, dn: &str) {
    let cn = dn.split([',', '=']).nth(1).unwrap();
    ldap.add(
        dn,
        vec![
            ("objectClass", ["organizationalRole"].into()),
            ("cn", [cn].into()),
        ],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
}

/// Transactions `from..=to`, asking for `batch` at a time; checks each reply starts at
/// the ID asked for.
async fn collect(client: &mut NotifierClient, from: u64, to: u64, batch: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = from;
    while next <= to {
        let got = tokio::time::timeout(PATIENCE, client.next_transactions(next, batch))
            .await
            .expect("transactions within 20 s")
            .unwrap();
        assert!(!got.is_empty() && got.len() <= batch, "{got:?}");
        assert_eq!(got[0].id, next);
        for t in got {
            out.push(format!("{} {} {}", t.id, t.dn, t.command));
            next += 1;
        }
    }
    out
}

/// Five writes: add, add, modify, rename (r/a), delete.
async fn five_writes(ldap: &mut Ldap, base: &str) -> Vec<String> {
    add_role(ldap, &format!("cn=a,{base}")).await;
    add_role(ldap, &format!("cn=b,{base}")).await;
    ldap.modify(
        &format!("cn=b,{base}"),
        vec![Mod::Replace("description", ["x y"].into())],
    )
    .await
    .unwrap()
    .success()
    .unwrap();
    ldap.modifydn(&format!("cn=b,{base}"), "cn=c", true, None)
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap.delete(&format!("cn=a,{base}"))
        .await
        .unwrap()
        .success()
        .unwrap();
    vec![
        format!("1 cn=a,{base} a"),
        format!("2 cn=b,{base} a"),
        format!("3 cn=b,{base} m"),
        format!("4 cn=b,{base} r"),
        format!("5 cn=c,{base} a"),
        format!("6 cn=a,{base} d"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_dns_batches_come_in_order() {
    let slapd = Slapd::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path(), any_port()).await;
    let mut client = NotifierClient::connect(&notifier.addr(), ClientOptions::default())
        .await
        .unwrap();
    assert!(client.batched());
    assert_eq!(client.version(), 3);
    assert_eq!(client.current_id().await.unwrap(), 0);
    client.schema_id().await.unwrap();

    let expected = five_writes(&mut admin(&slapd).await, slapd.base()).await;
    assert_eq!(collect(&mut client, 1, 6, 100).await, expected);
    // Small batches too, from the middle.
    assert_eq!(collect(&mut client, 2, 6, 2).await, expected[1..]);
    assert_eq!(client.current_id().await.unwrap(), 6);
    let first = client.next_transactions(4, 1).await.unwrap();
    assert_eq!(
        first,
        [TransactionRef {
            id: 4,
            dn: format!("cn=b,{}", slapd.base()),
            command: Command::Rename
        }]
    );
    drop(client);
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_2_get_dn_one_at_a_time() {
    let slapd = Slapd::start().unwrap();
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path(), any_port()).await;
    let expected = five_writes(&mut admin(&slapd).await, slapd.base()).await;

    // Configured: protocol 2.
    let options = ClientOptions {
        version: 2,
        ..ClientOptions::default()
    };
    let mut client = NotifierClient::connect(&notifier.addr(), options)
        .await
        .unwrap();
    assert_eq!((client.version(), client.batched()), (2, false));
    assert_eq!(collect(&mut client, 1, 6, 100).await, expected);
    assert_eq!(client.next_transactions(3, 100).await.unwrap().len(), 1);

    // Needed: no GET_DNS asked for, so protocol 3 serves no DNs; the client asks again
    // with protocol 2.
    let options = ClientOptions {
        batch: false,
        ..ClientOptions::default()
    };
    let mut client = NotifierClient::connect(&notifier.addr(), options)
        .await
        .unwrap();
    assert_eq!((client.version(), client.batched()), (2, false));
    assert_eq!(collect(&mut client, 1, 6, 100).await, expected);
    drop(client);
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_until_the_next_write() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path(), any_port()).await;
    let mut ldap = admin(&slapd).await;
    for batch in [true, false] {
        let options = ClientOptions {
            batch,
            ..ClientOptions::default()
        };
        let mut client = NotifierClient::connect(&notifier.addr(), options)
            .await
            .unwrap();
        let next = client.current_id().await.unwrap() + 1;
        let waiting = tokio::spawn(async move { client.next_transactions(next, 10).await });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "answered before the write");
        let dn = format!("cn=w{next},{base}");
        add_role(&mut ldap, &dn).await;
        let got = tokio::time::timeout(PATIENCE, waiting)
            .await
            .expect("answered after the write")
            .unwrap()
            .unwrap();
        assert_eq!(
            got,
            [TransactionRef {
                id: next,
                dn,
                command: Command::Add
            }]
        );
    }
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalives_while_waiting_keep_the_request_alive() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path(), any_port()).await;
    let mut ldap = admin(&slapd).await;
    for batch in [true, false] {
        let options = ClientOptions {
            batch,
            // Short, but long enough for a loaded CI machine to answer an ALIVE.
            keepalive: Duration::from_millis(250),
            ..ClientOptions::default()
        };
        let mut client = NotifierClient::connect(&notifier.addr(), options)
            .await
            .unwrap();
        let next = client.current_id().await.unwrap() + 1;
        let waiting = tokio::spawn(async move {
            let got = client.next_transactions(next, 10).await;
            (client, got)
        });
        // About six keepalive rounds, each re-sending the request.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let dn = format!("cn=k{next},{base}");
        add_role(&mut ldap, &dn).await;
        let (mut client, got) = tokio::time::timeout(PATIENCE, waiting)
            .await
            .expect("answered after the write")
            .unwrap();
        assert_eq!(got.unwrap()[0].dn, dn);
        // The connection is still in step: late duplicate replies are dropped.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(client.current_id().await.unwrap(), next);
        add_role(&mut ldap, &format!("cn=k{}b,{base}", next)).await;
        let got = client.next_transactions(next + 1, 10).await.unwrap();
        assert_eq!(got[0].id, next + 1);
    }
    notifier.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifier_restart_is_a_clear_error_and_the_caller_reconnects() {
    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path(), any_port()).await;
    let addr = notifier.0.addr();
    let mut ldap = admin(&slapd).await;
    add_role(&mut ldap, &format!("cn=one,{base}")).await;
    let mut client = NotifierClient::connect(&addr.to_string(), ClientOptions::default())
        .await
        .unwrap();
    assert_eq!(collect(&mut client, 1, 1, 10).await.len(), 1);

    let waiting = tokio::spawn(async move { client.next_transactions(2, 10).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    notifier.stop().await;
    let err = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the client notices")
        .unwrap()
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    // Reconnecting with backoff while the notifier is still down, then it comes back on
    // the same address.
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        max_attempts: None,
    };
    let target = addr.to_string();
    let reconnecting = tokio::spawn(async move {
        connect_with_backoff(&target, &ClientOptions::default(), &backoff).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!reconnecting.is_finished());
    let notifier = Running::start(&slapd, data.path(), addr).await;
    let mut client = tokio::time::timeout(PATIENCE, reconnecting)
        .await
        .expect("reconnected")
        .unwrap()
        .unwrap();
    add_role(&mut ldap, &format!("cn=two,{base}")).await;
    assert_eq!(
        collect(&mut client, 2, 2, 10).await,
        [format!("2 cn=two,{base} a")]
    );

    // Bounded attempts end with the last error.
    drop(client);
    notifier.stop().await;
    let once = Backoff {
        max_attempts: Some(2),
        ..Backoff::default()
    };
    let err = connect_with_backoff(&addr.to_string(), &ClientOptions::default(), &once)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
}

// ---- a scripted fake notifier ----

struct FakeConn {
    stream: TcpStream,
    framer: Framer,
}

impl FakeConn {
    async fn read(&mut self) -> Vec<String> {
        let mut buf = [0u8; 1024];
        loop {
            if let Some(m) = self.framer.next_message().unwrap() {
                return m;
            }
            let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut buf))
                .await
                .expect("the client sends")
                .unwrap();
            assert!(n > 0, "client closed");
            self.framer.push(&buf[..n]);
        }
    }

    async fn write(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).await.unwrap();
    }

    /// Reads the handshake and grants GET_DNS.
    async fn accept_handshake(&mut self) {
        let hello = self.read().await;
        assert_eq!(hello, ["Version: 3", "Capabilities: GET_DNS LOG_ID"]);
        self.write("Version: 3\nCapabilities: GET_DNS\n\n").await;
    }
}

/// A server on a random port running `script` on its first connection.
async fn fake<F, Fut>(script: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: FnOnce(FakeConn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(FakeConn {
            stream,
            framer: Framer::default(),
        })
        .await;
    });
    (addr, task)
}

fn strs(lines: &[String]) -> Vec<&str> {
    lines.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn keepalive_sends_alive_and_resends_with_the_same_msgid() {
    let (addr, server) = fake(|mut c| async move {
        c.accept_handshake().await;
        assert_eq!(strs(&c.read().await), ["MSGID: 1", "GET_DNS 7 10"]);
        // Say nothing until the client's keepalive and re-send.
        assert_eq!(strs(&c.read().await), ["MSGID: 2", "ALIVE"]);
        assert_eq!(strs(&c.read().await), ["MSGID: 1", "GET_DNS 7 10"]);
        c.write("MSGID: 2\nOKAY\n\n").await;
        c.write("MSGID: 1\n7 cn=x,dc=y a\n8 cn=z,dc=y d\n\n").await;
        // The copy that crossed the reply is answered again, as our notifier would.
        c.write("MSGID: 1\n7 cn=x,dc=y a\n\n").await;
        assert_eq!(strs(&c.read().await), ["MSGID: 3", "GET_ID"]);
        c.write("MSGID: 3\n8\n\n").await;
    })
    .await;
    let options = ClientOptions {
        keepalive: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let mut client = NotifierClient::connect(&addr, options).await.unwrap();
    let got = client.next_transactions(7, 10).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].command, Command::Delete);
    assert_eq!(client.current_id().await.unwrap(), 8);
    server.await.unwrap();
}

#[tokio::test]
async fn an_unanswered_keepalive_is_a_timeout() {
    let (addr, server) = fake(|mut c| async move {
        c.accept_handshake().await;
        // Read everything, answer nothing, until the client gives up.
        let mut buf = [0u8; 256];
        while c.stream.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    let options = ClientOptions {
        keepalive: Duration::from_millis(100),
        ..ClientOptions::default()
    };
    let mut client = NotifierClient::connect(&addr, options).await.unwrap();
    let err = client.next_transactions(1, 10).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr), "{err}");
    drop(client);
    server.await.unwrap();
}

/// Connects to a fake that answers the first request with `reply`; returns the error.
async fn error_for(request_batch: usize, reply: &'static str) -> ClientError {
    let (addr, server) = fake(move |mut c| async move {
        c.accept_handshake().await;
        c.read().await;
        c.write(reply).await;
        // Keep the connection open until the client is done.
        let mut buf = [0u8; 64];
        let _ = c.stream.read(&mut buf).await;
    })
    .await;
    let mut client = NotifierClient::connect(&addr, ClientOptions::default())
        .await
        .unwrap();
    let err = client
        .next_transactions(5, request_batch)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&addr), "{err}");
    drop(client);
    server.await.unwrap();
    err
}

#[tokio::test]
async fn unexpected_ids_are_errors_never_skipped() {
    let err = error_for(10, "MSGID: 1\n6 cn=x,dc=y a\n\n").await;
    assert!(
        matches!(
            err,
            ClientError::UnexpectedId {
                expected: 5,
                got: 6,
                ..
            }
        ),
        "{err:?}"
    );
    let err = error_for(10, "MSGID: 1\n5 cn=x,dc=y a\n7 cn=x,dc=y a\n\n").await;
    assert!(
        matches!(
            err,
            ClientError::UnexpectedId {
                expected: 6,
                got: 7,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn malformed_replies_are_errors() {
    for reply in [
        "MSGID: 1\n5 cn=x,dc=y q\n\n",
        "MSGID: 1\nfive cn=x,dc=y a\n\n",
        "MSGID: 1\n\n",
        "MSGID: 9\n5 cn=x,dc=y a\n\n",
        "hello\n5 cn=x,dc=y a\n\n",
        "MSGID: 1\n5 cn=x,dc=y a\n6 cn=x,dc=y a\n\n",
    ] {
        let err = error_for(1, reply).await;
        assert!(
            matches!(err, ClientError::Malformed { .. }),
            "{reply:?}: {err:?}"
        );
    }
    let err = error_for(
        10,
        "MSGID: 1\nERROR transaction 5 is not in the log any more\n\n",
    )
    .await;
    assert!(matches!(err, ClientError::Server { .. }), "{err:?}");
    assert!(err.to_string().contains("not in the log"), "{err}");
}

#[tokio::test]
async fn a_bad_handshake_is_an_error() {
    for answer in [
        "Version: x\n\n",
        "Capabilities: GET_DNS\n\n",
        "Version: 4\n\n",
    ] {
        let (addr, server) = fake(move |mut c| async move {
            c.read().await;
            c.write(answer).await;
        })
        .await;
        let err = NotifierClient::connect(&addr, ClientOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Handshake { .. }),
            "{answer:?}: {err:?}"
        );
        assert!(err.to_string().contains(&addr), "{err}");
        server.await.unwrap();
    }
    // A server that hangs up at once (e.g. refuses our version).
    let (addr, server) = fake(|c| async move { drop(c) }).await;
    let err = NotifierClient::connect(&addr, ClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Closed { .. } | ClientError::Io { .. }),
        "{err:?}"
    );
    server.await.unwrap();
}

/// The pipeline the listener builds from these pieces: batches from the notifier, the
/// objects fetched ahead, results in transaction order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_fetched_ahead_arrive_in_transaction_order() {
    use listener_runtime::Dn;
    use listener_runtime::testing::{Cache, FetchBy, Fetcher, Window};

    let slapd = Slapd::start().unwrap();
    let base = slapd.base().to_owned();
    let data = tempfile::tempdir().unwrap();
    let notifier = Running::start(&slapd, data.path(), any_port()).await;
    let mut ldap = admin(&slapd).await;
    five_writes(&mut ldap, &base).await;
    for i in 0..50 {
        add_role(&mut ldap, &format!("cn=p{i},{base}")).await;
    }
    let mut client = NotifierClient::connect(&notifier.addr(), ClientOptions::default())
        .await
        .unwrap();
    let mut transactions = Vec::new();
    while transactions.len() < 56 {
        let from = transactions.len() as u64 + 1;
        transactions.extend(client.next_transactions(from, 20).await.unwrap());
    }
    let settings = LdapSettings {
        uri: slapd.url().to_owned(),
        bind_dn: slapd.root_dn(),
        bind_password: slapd.root_password().to_owned(),
        starttls: false,
        timeout: Duration::from_secs(5),
    };
    let fetcher = Fetcher::connect(&settings, Dn::parse(&base).unwrap())
        .await
        .unwrap();
    let pool = vec![fetcher.clone(), fetcher.clone()];
    let mut window = Window::new(fetcher, pool, 8);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let mut queue = transactions.into_iter();
    let mut found: Vec<(u64, bool)> = Vec::new();
    loop {
        while window.has_room() {
            let Some(t) = queue.next() else { break };
            window.push(t, &cache).unwrap();
        }
        window.flush();
        let Some(front) = window.front() else { break };
        let txn = front.unwrap().clone();
        let entry = window.fetch_front(&FetchBy::Dn(txn.dn.clone()), None).await;
        found.push((txn.id, entry.unwrap().is_some()));
        window.pop();
    }
    let mut expected = vec![
        (1, false), // cn=a, deleted since
        (2, false), // cn=b, renamed since
        (3, false),
        (4, false),
        (5, true), // cn=c
        (6, false),
    ];
    expected.extend((7..=56).map(|id| (id, true)));
    assert_eq!(found, expected);
    notifier.stop().await;
}

/// A server answering like UDN: protocol 3 without capabilities to the first connection,
/// then `second` on the next one.
async fn udn_like<F, Fut>(second: F) -> (String, tokio::task::JoinHandle<()>)
where
    F: FnOnce(FakeConn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut first = FakeConn {
            stream,
            framer: Framer::default(),
        };
        assert_eq!(
            strs(&first.read().await),
            ["Version: 3", "Capabilities: GET_DNS LOG_ID"]
        );
        first.write("Version: 3\nCapabilities: \n\n").await;
        let (stream, _) = listener.accept().await.unwrap();
        second(FakeConn {
            stream,
            framer: Framer::default(),
        })
        .await;
    });
    (addr, task)
}

#[tokio::test]
async fn without_get_dns_the_client_falls_back_to_protocol_2() {
    let (addr, server) = udn_like(|mut c| async move {
        assert_eq!(strs(&c.read().await), ["Version: 2", "Capabilities: "]);
        c.write("Version: 2\nCapabilities: \n\n").await;
        assert_eq!(strs(&c.read().await), ["MSGID: 1", "GET_DN 3"]);
        c.write("MSGID: 1\n3 cn=with space,dc=y m\n\n").await;
    })
    .await;
    let mut client = NotifierClient::connect(&addr, ClientOptions::default())
        .await
        .unwrap();
    assert_eq!((client.version(), client.batched()), (2, false));
    let got = client.next_transactions(3, 100).await.unwrap();
    assert_eq!(
        got,
        [TransactionRef {
            id: 3,
            dn: "cn=with space,dc=y".to_owned(),
            command: Command::Modify
        }]
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_server_refusing_protocol_2_without_get_dns_is_a_handshake_error() {
    let (addr, server) = udn_like(|mut c| async move {
        c.read().await;
        drop(c); // below its minimum version: closed
    })
    .await;
    let err = NotifierClient::connect(&addr, ClientOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Handshake { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("protocol 2"), "{err}");
    server.await.unwrap();
}
