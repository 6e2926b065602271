//! Our own daemons (`notifier`, `run`) as child processes that a test can kill -9 and
//! restart, and that die with the test.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::process::Guard;

/// The path of `listener-under-test` (the runtime's command line with the example
/// modules), for integration tests: cargo tells it only to them.
#[macro_export]
macro_rules! listener_binary {
    () => {
        ::std::path::Path::new(env!("CARGO_BIN_EXE_listener-under-test"))
    };
}

/// A running daemon.
pub struct Daemon {
    child: Guard,
    binary: PathBuf,
    args: Vec<String>,
    stdout: Option<PathBuf>,
    log_filter: String,
    stderr: Option<PathBuf>,
}

impl Daemon {
    /// Starts `<binary> <args…>` (see [`listener_binary!`]); its log (warnings and
    /// errors) goes to the test's stderr, its standard output nowhere.
    pub fn start(binary: &Path, args: &[String]) -> Result<Daemon, HarnessError> {
        Daemon::spawn(binary, args, None, "warn", None)
    }

    /// Like [`Daemon::start`], appending its standard output to `stdout` (a module such
    /// as the example `printer` writes its calls there).
    pub fn start_with_stdout(
        binary: &Path,
        args: &[String],
        stdout: &Path,
    ) -> Result<Daemon, HarnessError> {
        Daemon::spawn(binary, args, Some(stdout.to_owned()), "warn", None)
    }

    /// Like [`Daemon::start_with_stdout`], logging what `log_filter` (a `RUST_LOG`
    /// value) selects to stderr.
    pub fn start_logging(
        binary: &Path,
        args: &[String],
        stdout: &Path,
        log_filter: &str,
    ) -> Result<Daemon, HarnessError> {
        Daemon::spawn(binary, args, Some(stdout.to_owned()), log_filter, None)
    }

    /// Like [`Daemon::start_logging`], appending the log to the file `stderr` (without
    /// colours) instead, for a test that reads what a module logged.
    pub fn start_logging_to(
        binary: &Path,
        args: &[String],
        stdout: &Path,
        log_filter: &str,
        stderr: &Path,
    ) -> Result<Daemon, HarnessError> {
        Daemon::spawn(
            binary,
            args,
            Some(stdout.to_owned()),
            log_filter,
            Some(stderr.to_owned()),
        )
    }

    fn spawn(
        binary: &Path,
        args: &[String],
        stdout: Option<PathBuf>,
        log_filter: &str,
        stderr: Option<PathBuf>,
    ) -> Result<Daemon, HarnessError> {
        let append = |path: &Path| -> Result<Stdio, HarnessError> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(HarnessError::io(format!("cannot open {}", path.display())))?;
            Ok(Stdio::from(file))
        };
        let out = match &stdout {
            Some(path) => append(path)?,
            None => Stdio::null(),
        };
        let err = match &stderr {
            Some(path) => append(path)?,
            None => Stdio::inherit(),
        };
        let mut command = Command::new(binary);
        command.args(args).env("RUST_LOG", log_filter);
        if stderr.is_some() {
            command.env("NO_COLOR", "1");
        }
        let child = Guard::spawn_with(&mut command, "listener-under-test", out, err)?;
        Ok(Daemon {
            child,
            binary: binary.to_owned(),
            args: args.to_vec(),
            stdout,
            log_filter: log_filter.to_owned(),
            stderr,
        })
    }

    /// Its process ID (e.g. to read its memory use from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Kills it hard, as a crash would.
    pub fn kill9(&mut self) {
        self.child.kill_with(libc::SIGKILL);
    }

    /// Asks it to stop (SIGTERM) and returns how it exited.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.child.signal_and_wait(libc::SIGTERM)
    }

    /// Starts it again with the same arguments.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.kill9();
        *self = Daemon::spawn(
            &self.binary,
            &self.args,
            self.stdout.clone(),
            &self.log_filter.clone(),
            self.stderr.clone(),
        )?;
        Ok(())
    }

    /// If it has exited: why.
    pub fn exited(&mut self) -> Option<String> {
        self.child.exited()
    }
}

/// Waits until a notifier answers `GET_ID` on `port`; returns the ID.
pub fn wait_for_notifier(port: u16, timeout: Duration) -> Result<u64, HarnessError> {
    let started = Instant::now();
    loop {
        match notifier_id(port) {
            Ok(id) => return Ok(id),
            Err(e) if started.elapsed() > timeout => {
                return Err(HarnessError::Failed {
                    program: "notifier",
                    message: format!("no answer on port {port} within {timeout:?}: {e}"),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Asks the notifier on `port` for its current ID (as UCS's `get_notifier_id` does),
/// through the runtime's notifier client, on a thread of its own so that async tests
/// may call it too.
pub fn notifier_id(port: u16) -> std::io::Result<u64> {
    use listener_runtime::testing::{ClientOptions, NotifierClient};
    let ask = move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let options = ClientOptions {
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(5),
                ..ClientOptions::default()
            };
            let mut client = NotifierClient::connect(&format!("127.0.0.1:{port}"), options)
                .await
                .map_err(std::io::Error::other)?;
            client.current_id().await.map_err(std::io::Error::other)
        })
    };
    std::thread::spawn(ask)
        .join()
        .map_err(|_| std::io::Error::other("the notifier query panicked"))?
}
