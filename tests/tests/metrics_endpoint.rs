//! `run --metrics` and `notifier --metrics`: a Prometheus scrape of `/metrics` shows the
//! listener's progress (processed transactions, durable and notifier IDs, no lag), each
//! module's calls and call latency, and the notifier's last ID and connected clients; an
//! address that cannot be bound stops the start with a message naming it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tests::Slapd;
use tests::domain::Domain;

/// `GET path` on `port`: the status line and the body.
fn get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no head in {answer:?}")))?;
    let status = head.lines().next().unwrap_or_default().to_owned();
    assert!(
        !status.starts_with("HTTP/1.1 200") || head.contains("version=0.0.4"),
        "{head}"
    );
    Ok((status, body.to_owned()))
}

/// The metrics text on `port`, waiting for the endpoint to come up.
fn scrape(port: u16) -> String {
    let started = Instant::now();
    loop {
        match get(port, "/metrics") {
            Ok((status, body)) => {
                assert_eq!(status, "HTTP/1.1 200 OK");
                return body;
            }
            Err(e) if started.elapsed() > Duration::from_secs(30) => {
                panic!("no metrics on port {port}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The value of `series` (name and labels exactly as exposed).
#[track_caller]
fn value(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line[prefix.len()..]
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

#[test]
fn a_scrape_shows_progress_module_calls_and_latency() {
    let notifier_metrics = tests::free_port().unwrap();
    let mut domain = Domain::start_with_notifier_args(
        tests::listener_binary!(),
        Slapd::builder(),
        &[
            "--metrics".to_owned(),
            format!("127.0.0.1:{notifier_metrics}"),
        ],
    )
    .unwrap();
    let port = tests::free_port().unwrap();
    let mut args = domain.run_args(&domain.slapd.root_dn(), domain.slapd.password_file());
    args.extend(["--metrics".to_owned(), format!("127.0.0.1:{port}")]);
    domain.start_listener_with(&args).unwrap();
    // Past the modules' initialization: what follows are transactions.
    domain.barrier();
    let before = scrape(port);
    for family in [
        "# TYPE listener_transactions_processed_total counter",
        "# TYPE listener_lag_ids gauge",
        "# TYPE listener_module_call_duration_seconds histogram",
        "# HELP listener_module_calls_total ",
    ] {
        assert!(before.contains(family), "{family} missing in\n{before}");
    }

    for _ in 0..3 {
        domain.barrier();
    }
    let newest = domain.notifier_id() as f64;
    // The printer saw the last change; its commit becomes durable right after.
    let started = Instant::now();
    let after = loop {
        let text = scrape(port);
        if value(&text, "listener_durable_id") == newest {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the durable ID never reached {newest}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert!(
        moved("listener_transactions_processed_total") >= 3.0,
        "{after}"
    );
    assert_eq!(value(&after, "listener_notifier_id"), newest);
    assert_eq!(value(&after, "listener_lag_ids"), 0.0);
    assert_eq!(value(&after, "listener_halted{module=\"printer\"}"), 0.0);
    let calls = "listener_module_calls_total{module=\"printer\"}";
    assert!(moved(calls) >= 3.0, "{after}");
    let count = "listener_module_call_duration_seconds_count{module=\"printer\"}";
    assert!(moved(count) >= 3.0, "{after}");
    assert_eq!(
        value(&after, count),
        value(&after, calls),
        "one observation per call"
    );
    let inf = "listener_module_call_duration_seconds_bucket{module=\"printer\",le=\"+Inf\"}";
    assert_eq!(value(&after, inf), value(&after, count));
    assert!(
        value(
            &after,
            "listener_module_call_duration_seconds_sum{module=\"printer\"}"
        ) > 0.0
    );
    assert_eq!(
        value(&after, "listener_module_errors_total{module=\"printer\"}"),
        0.0
    );
    // The template's filter matches none of the barrier changes.
    assert_eq!(
        value(
            &after,
            "listener_module_calls_total{module=\"unique_name\"}"
        ),
        0.0
    );
    assert!(value(&after, "listener_uptime_seconds") > 0.0);
    // The transactions took time in the loop's stages: they fetched, called the printer
    // and wrote the cache; the stages together never exceed the time since start.
    for stage in ["fetch", "modules", "cache"] {
        let series = format!("listener_stage_seconds_total{{stage=\"{stage}\"}}");
        assert!(moved(&series) > 0.0, "{series} did not move:\n{after}");
    }
    let stages = tests::domain::metrics_stages(&after);
    assert_eq!(stages.len(), 6, "{after}");
    let busy: f64 = stages.iter().map(|(_, s)| s).sum();
    assert!(busy < value(&after, "listener_uptime_seconds"), "{after}");

    let (status, _) = get(port, "/").unwrap();
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    let notifier = scrape(notifier_metrics);
    assert_eq!(value(&notifier, "notifier_last_id"), newest);
    assert!(
        value(&notifier, "notifier_connected_clients") >= 1.0,
        "the listener is connected:\n{notifier}"
    );
    assert!(domain.stop_listener());
}

#[test]
fn a_metrics_address_in_use_stops_the_start_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "secret\n").unwrap();
    // The endpoint is bound before anything is connected: no slapd or notifier needed.
    let output = std::process::Command::new(tests::listener_binary!())
        .args([
            "run",
            "--ldap-uri",
            "ldap://127.0.0.1:1",
            "--base",
            "dc=example,dc=com",
        ])
        .args([
            "--bind-dn",
            "cn=admin,dc=example,dc=com",
            "--notifier",
            "127.0.0.1:1",
        ])
        .arg("--bind-password-file")
        .arg(&password)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["--metrics", &addr.to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot serve metrics on {addr}: ")),
        "{stderr}"
    );
}
