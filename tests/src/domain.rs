//! A whole domain for end-to-end tests: a throwaway slapd, our notifier and our listener
//! (with the example modules) as separate processes. The example `printer` module writes
//! every call it gets, `dn⇥old entryUUID⇥new entryUUID⇥command`, to a file the test reads;
//! [`readable`] turns those lines into semantics §10's notation and [`assert_in_order`]
//! compares them with a row of its table.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::daemon::{Daemon, wait_for_notifier};
use crate::{HarnessError, Slapd, SlapdBuilder};

/// slapd, the notifier and (when started) the listener.
pub struct Domain {
    // Dropped in this order: the listener, the notifier, then slapd.
    listener: Option<Daemon>,
    notifier: Daemon,
    notifier_port: u16,
    binary: PathBuf,
    dir: TempDir,
    barriers: u32,
    /// The directory server.
    pub slapd: Slapd,
}

impl Domain {
    /// Starts slapd (configured by `builder`) and the notifier; the listener waits for
    /// [`Domain::start_listener`].
    pub fn start(binary: &Path, builder: SlapdBuilder) -> Result<Domain, HarnessError> {
        Domain::start_with_notifier_args(binary, builder, &[])
    }

    /// [`Domain::start`] with more `notifier` arguments.
    pub fn start_with_notifier_args(
        binary: &Path,
        builder: SlapdBuilder,
        extra: &[String],
    ) -> Result<Domain, HarnessError> {
        let slapd = builder.start()?;
        let dir = tempfile::Builder::new()
            .prefix("domain-")
            .tempdir()
            .map_err(HarnessError::io("cannot create a temporary directory"))?;
        let notifier_port = crate::process::free_port()?;
        let args = vec![
            "notifier".to_owned(),
            "--ldap-uri".to_owned(),
            slapd.url().to_owned(),
            "--bind-dn".to_owned(),
            slapd.root_dn(),
            "--bind-password-file".to_owned(),
            slapd.password_file().to_string_lossy().into_owned(),
            "--data-dir".to_owned(),
            dir.path().join("notifier").to_string_lossy().into_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{notifier_port}"),
        ];
        let args = [args.as_slice(), extra].concat();
        let notifier = Daemon::start(binary, &args)?;
        wait_for_notifier(notifier_port, Duration::from_secs(30))?;
        Ok(Domain {
            slapd,
            notifier,
            notifier_port,
            listener: None,
            binary: binary.to_owned(),
            dir,
            barriers: 0,
        })
    }

    /// The file the printer module writes its calls to.
    pub fn calls_file(&self) -> PathBuf {
        self.dir.path().join("calls.txt")
    }

    /// The notifier's data directory (its transaction log, for
    /// `Translog::open_read_only`).
    pub fn notifier_dir(&self) -> PathBuf {
        self.dir.path().join("notifier")
    }

    /// The listener's cache directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The arguments of `run` for this domain, binding as `bind_dn` with `password_file`.
    pub fn run_args(&self, bind_dn: &str, password_file: &Path) -> Vec<String> {
        vec![
            "run".to_owned(),
            "--ldap-uri".to_owned(),
            self.slapd.url().to_owned(),
            "--base".to_owned(),
            self.slapd.base().to_owned(),
            "--bind-dn".to_owned(),
            bind_dn.to_owned(),
            "--bind-password-file".to_owned(),
            password_file.to_string_lossy().into_owned(),
            "--notifier".to_owned(),
            format!("127.0.0.1:{}", self.notifier_port),
            "--cache-dir".to_owned(),
            self.cache_dir().to_string_lossy().into_owned(),
            "--idle".to_owned(),
            "1".to_owned(),
        ]
    }

    /// Starts the listener, bound as the rootDN.
    pub fn start_listener(&mut self) -> Result<(), HarnessError> {
        let args = self.run_args(&self.slapd.root_dn(), self.slapd.password_file());
        self.start_listener_with(&args)
    }

    /// Starts the listener with explicit `run` arguments.
    pub fn start_listener_with(&mut self, args: &[String]) -> Result<(), HarnessError> {
        self.listener = Some(Daemon::start_with_stdout(
            &self.binary,
            args,
            &self.calls_file(),
        )?);
        Ok(())
    }

    /// Starts the listener (as the rootDN) logging what `log_filter` selects to stderr.
    pub fn start_listener_logging(&mut self, log_filter: &str) -> Result<(), HarnessError> {
        let args = self.run_args(&self.slapd.root_dn(), self.slapd.password_file());
        self.listener = Some(Daemon::start_logging(
            &self.binary,
            &args,
            &self.calls_file(),
            log_filter,
        )?);
        Ok(())
    }

    /// Starts the listener (as the rootDN) appending what `log_filter` selects to
    /// [`Domain::log_file`], for a test that reads what the listener or a module logged.
    pub fn start_listener_with_log(&mut self, log_filter: &str) -> Result<(), HarnessError> {
        self.start_listener_with_log_and(log_filter, &[])
    }

    /// [`Domain::start_listener_with_log`] with more `run` arguments.
    pub fn start_listener_with_log_and(
        &mut self,
        log_filter: &str,
        extra: &[String],
    ) -> Result<(), HarnessError> {
        let mut args = self.run_args(&self.slapd.root_dn(), self.slapd.password_file());
        args.extend_from_slice(extra);
        self.listener = Some(Daemon::start_logging_to(
            &self.binary,
            &args,
            &self.calls_file(),
            log_filter,
            &self.log_file(),
        )?);
        Ok(())
    }

    /// The file [`Domain::start_listener_with_log`] logs to.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("listener.log")
    }

    /// The lines of [`Domain::log_file`] so far, without terminal colour codes.
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_file())
            .unwrap_or_default()
            .lines()
            .map(without_colours)
            .collect()
    }

    /// Makes a change to `cn=barrier,<base>` and waits until the printer got it. The
    /// listener processes transactions in order, so everything written before has been
    /// processed too: what a module has not been called for by then, it never is.
    ///
    /// The first barrier also waits until the listener has initialized its modules: until
    /// then the printer may get the barrier (as part of its own initialization) while
    /// modules after it are still being initialized.
    pub fn barrier(&mut self) {
        if self.barriers == 0 {
            self.wait_initialized(Duration::from_secs(60));
        }
        let dn = format!("cn=barrier,{}", self.slapd.base());
        let ldif = if self.barriers == 0 {
            format!("dn: {dn}\nobjectClass: organizationalRole\ncn: barrier\n")
        } else {
            format!(
                "dn: {dn}\nchangetype: modify\nreplace: description\ndescription: {}\n",
                self.barriers
            )
        };
        self.barriers += 1;
        self.slapd.ldapmodify(&ldif).expect("change the barrier");
        let seen = self.barriers as usize;
        let prefix = format!("{dn}\t");
        self.wait_for(Duration::from_secs(30), |calls| {
            calls.iter().filter(|l| l.starts_with(&prefix)).count() >= seen
        });
    }

    /// Waits until `done` holds for the [`readable`] calls under `scope`, and returns them.
    pub fn wait_for_scope(&mut self, scope: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let calls = self.wait_for(Duration::from_secs(30), |calls| {
            done(&readable(calls, scope))
        });
        readable(&calls, scope)
    }

    /// Waits up to `timeout` until the running listener reports no module NEW or
    /// INITIALIZING; whether it got there.
    pub fn wait_initialized(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let status = self.status();
            let initialized = status["running"] == true
                && status["modules"].as_array().is_some_and(|modules| {
                    modules.iter().all(|m| {
                        let state = m["state"].as_str().unwrap_or("NEW");
                        !state.starts_with("NEW") && !state.starts_with("INITIALIZING")
                    })
                });
            if initialized {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running listener's `status --json`.
    pub fn status(&self) -> serde_json::Value {
        let out = std::process::Command::new(&self.binary)
            .args(["status", "--json", "--cache-dir"])
            .arg(self.cache_dir())
            .env("RUST_LOG", "warn")
            .env_remove("LISTENER_LOG")
            .output()
            .expect("run status");
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// Waits up to `timeout` until the running listener has processed every transaction
    /// the notifier has (without a barrier: for binaries without the printer module).
    pub fn wait_caught_up(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let target = self.notifier_id();
        loop {
            let status = self.status();
            if status["running"] == true && status["last_id"].as_u64() >= Some(target) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `timeout` until the running listener reports no call queued for any
    /// asynchronous module; whether it got there.
    pub fn wait_for_queues(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let status = self.status();
            let queued: u64 = status["modules"]
                .as_array()
                .map(|modules| {
                    modules
                        .iter()
                        .filter_map(|m| m["queue"]["depth"].as_u64())
                        .sum()
                })
                .unwrap_or(u64::MAX);
            if status["running"] == true && queued == 0 {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the listener (SIGTERM) and says whether it exited cleanly.
    pub fn stop_listener(&mut self) -> bool {
        self.listener
            .take()
            .and_then(|mut l| l.terminate())
            .is_some_and(|s| s.success())
    }

    /// The listener process, while it runs.
    pub fn listener(&mut self) -> Option<&mut Daemon> {
        self.listener.as_mut()
    }

    /// The notifier's current transaction ID.
    pub fn notifier_id(&self) -> u64 {
        crate::daemon::notifier_id(self.notifier_port).unwrap_or(0)
    }

    /// The notifier process.
    pub fn notifier(&mut self) -> &mut Daemon {
        &mut self.notifier
    }

    /// The printer's calls so far, one `dn⇥old⇥new⇥command` line each.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.calls_file())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until `done(calls)` holds, or panics after `timeout` showing the calls.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let started = Instant::now();
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            if let Some(why) = self.listener.as_mut().and_then(|l| l.exited()) {
                panic!(
                    "the listener exited: {why}\ncalls so far:\n{}",
                    calls.join("\n")
                );
            }
            assert!(
                started.elapsed() < timeout,
                "timed out after {timeout:?}; calls so far:\n{}",
                calls.join("\n")
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// `line` without ANSI escape sequences (`ESC [ … m`).
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// Turns the printer's `dn⇥old⇥new⇥cmd` lines into semantics §10's `rdn(old,new,cmd)`,
/// keeping only the objects under `scope` (not `scope` itself) and writing their DNs
/// relative to it (`cn=test`, `cn=test,cn=visible`). entryUUIDs are named a, b, c… in
/// order of appearance, `-` is none.
///
/// ```
/// let calls = ["cn=test,ou=s,dc=x\tu1\t-\tr".to_owned(), "ou=s,dc=x\t-\tu0\tm".to_owned()];
/// assert_eq!(tests::domain::readable(&calls, "ou=s,dc=x"), ["cn=test(a,-,r)"]);
/// ```
pub fn readable(calls: &[String], scope: &str) -> Vec<String> {
    let mut names: HashMap<String, char> = HashMap::new();
    let mut name = |uuid: &str| -> String {
        if uuid == "-" {
            return "-".into();
        }
        let next = (b'a' + names.len() as u8) as char;
        names.entry(uuid.to_owned()).or_insert(next).to_string()
    };
    calls
        .iter()
        .filter_map(|line| {
            let mut parts = line.split('\t');
            let (dn, old, new, cmd) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let relative = relative_dn(dn, scope)?;
            Some(format!("{relative}({},{},{cmd})", name(old), name(new)))
        })
        .collect()
}

/// `dn` without `,<scope>`, if it is below `scope` (the scope is ASCII; case ignored).
///
/// ```
/// assert_eq!(tests::domain::relative_dn("cn=a,CN=s,dc=x", "cn=s,dc=x"), Some("cn=a"));
/// assert_eq!(tests::domain::relative_dn("cn=s,dc=x", "cn=s,dc=x"), None);
/// ```
pub fn relative_dn<'d>(dn: &'d str, scope: &str) -> Option<&'d str> {
    let cut = dn.len().checked_sub(scope.len() + 1)?;
    let (relative, tail) = (dn.get(..cut)?, dn.get(cut..)?);
    (tail.starts_with(',') && tail[1..].eq_ignore_ascii_case(scope)).then_some(relative)
}

/// Asserts that `expected` appears in `calls` in this order, other calls allowed between
/// (semantics §10: "calls that must appear, in this order").
///
/// ```
/// let calls = ["t(-,a,a)", "t(a,a,m)", "t(a,-,d)"].map(String::from);
/// tests::domain::assert_in_order(&calls, &["t(-,a,a)", "t(a,-,d)"]);
/// ```
#[track_caller]
pub fn assert_in_order(calls: &[String], expected: &[&str]) {
    let mut rest = calls.iter();
    for (i, want) in expected.iter().enumerate() {
        assert!(
            rest.any(|c| c == want),
            "expected {want} (#{} of {expected:?}) in order in\n{calls:#?}",
            i + 1
        );
    }
}

/// The durable ID a listener started with `--metrics 127.0.0.1:PORT` reports
/// (`listener_durable_id`); `None` while it does not answer. Read over a plain socket: a
/// benchmark polls it often, and a `status` process each time would take CPU from what
/// it measures.
pub fn metrics_durable_id(port: u16) -> Option<u64> {
    metrics_durable_id_in(&metrics_text(port)?)
}

/// The durable ID in a scrape's `text` (`listener_durable_id`), if it holds one.
pub fn metrics_durable_id_in(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("listener_durable_id "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The text of the metrics endpoint on `port` of this host, if it answers.
pub fn metrics_text(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// The seconds the listener's processing loop spent per stage since it started
/// (`listener_stage_seconds_total`), in the order the endpoint lists them.
pub fn metrics_stages(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("listener_stage_seconds_total{stage=\"")?;
            let (stage, value) = rest.split_once("\"} ")?;
            Some((stage.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}
