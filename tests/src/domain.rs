//! A whole domain for end-to-end tests: a throwaway slapd, our notifier and our listener
//! (with the example modules) as separate processes. The example `printer` module writes
//! every call it gets, `dn⇥old entryUUID⇥new entryUUID⇥command`, to a file the test reads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::daemon::{Daemon, wait_for_notifier};
use crate::{HarnessError, Slapd, SlapdBuilder};

const NOTIFIER_DIR: &str = "notifier";

/// slapd, the notifier and (when started) the listener.
pub struct Domain {
    // Dropped in this order: the listener, the notifier, then slapd.
    listener: Option<Daemon>,
    notifier: Daemon,
    notifier_port: u16,
    binary: PathBuf,
    dir: TempDir,
    /// The directory server.
    pub slapd: Slapd,
}

impl Domain {
    /// Starts slapd (configured by `builder`) and the notifier; the listener waits for
    /// [`Domain::start_listener`].
    pub fn start(binary: &Path, builder: SlapdBuilder) -> Result<Domain, HarnessError> {
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
            dir.path().join(NOTIFIER_DIR).to_string_lossy().into_owned(),
            "--listen".to_owned(),
            format!("127.0.0.1:{notifier_port}"),
        ];
        let notifier = Daemon::start(binary, &args)?;
        wait_for_notifier(notifier_port, Duration::from_secs(30))?;
        Ok(Domain {
            slapd,
            notifier,
            notifier_port,
            listener: None,
            binary: binary.to_owned(),
            dir,
        })
    }

    /// The file the printer module writes its calls to.
    pub fn calls_file(&self) -> PathBuf {
        self.dir.path().join("calls.txt")
    }

    /// The notifier's data directory (its transaction log, for
    /// `Translog::open_read_only`).
    pub fn notifier_dir(&self) -> PathBuf {
        self.dir.path().join(NOTIFIER_DIR)
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

    /// The file [`Domain::start_listener_logging_to_file`] sends the listener's log to.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("listener.log")
    }

    /// Starts the listener (as the rootDN) logging what `log_filter` selects to
    /// [`Domain::log_file`] (appended across restarts).
    pub fn start_listener_logging_to_file(&mut self, log_filter: &str) -> Result<(), HarnessError> {
        let args = self.run_args(&self.slapd.root_dn(), self.slapd.password_file());
        self.listener = Some(Daemon::start_logging_to(
            &self.binary,
            &args,
            &self.calls_file(),
            log_filter,
            &self.log_file(),
        )?);
        Ok(())
    }

    /// The listener's log so far (see [`Domain::start_listener_logging_to_file`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
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
