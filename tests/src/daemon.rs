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
    stderr: Option<PathBuf>,
    log_filter: String,
}

impl Daemon {
    /// Starts `<binary> <args…>` (see [`listener_binary!`]); its log (warnings and
    /// errors) goes to the test's stderr, its standard output nowhere.
    pub fn start(binary: &Path, args: &[String]) -> Result<Daemon, HarnessError> {
        Daemon::spawn(binary, args, None, None, "warn")
    }

    /// Like [`Daemon::start`], appending its standard output to `stdout` (a module such
    /// as the example `printer` writes its calls there).
    pub fn start_with_stdout(
        binary: &Path,
        args: &[String],
        stdout: &Path,
    ) -> Result<Daemon, HarnessError> {
        Daemon::spawn(binary, args, Some(stdout.to_owned()), None, "warn")
    }

    /// Like [`Daemon::start_with_stdout`], logging what `log_filter` (a `RUST_LOG`
    /// value) selects to stderr.
    pub fn start_logging(
        binary: &Path,
        args: &[String],
        stdout: &Path,
        log_filter: &str,
    ) -> Result<Daemon, HarnessError> {
        Daemon::spawn(binary, args, Some(stdout.to_owned()), None, log_filter)
    }

    /// Like [`Daemon::start_logging`], appending the log to the file `stderr` instead (a
    /// test reads it, e.g. the lines modules log through `ctx.logger()`).
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
            Some(stderr.to_owned()),
            log_filter,
        )
    }

    fn spawn(
        binary: &Path,
        args: &[String],
        stdout: Option<PathBuf>,
        stderr: Option<PathBuf>,
        log_filter: &str,
    ) -> Result<Daemon, HarnessError> {
        let append = |path: &Path| -> Result<Stdio, HarnessError> {
            Ok(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(HarnessError::io(format!("cannot open {}", path.display())))?,
            ))
        };
        let out = match &stdout {
            Some(path) => append(path)?,
            None => Stdio::null(),
        };
        let err = match &stderr {
            Some(path) => append(path)?,
            None => Stdio::inherit(),
        };
        let child = Guard::spawn_with(
            Command::new(binary).args(args).env("RUST_LOG", log_filter),
            "listener-under-test",
            out,
            err,
        )?;
        Ok(Daemon {
            child,
            binary: binary.to_owned(),
            args: args.to_vec(),
            stdout,
            stderr,
            log_filter: log_filter.to_owned(),
        })
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
            self.stderr.clone(),
            &self.log_filter.clone(),
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

/// Asks the notifier on `port` for its current ID (as UCS's `get_notifier_id` does).
pub fn notifier_id(port: u16) -> std::io::Result<u64> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"Version: 3\nCapabilities: \n\nMSGID: 1\nGET_ID\n\n")?;
    let mut lines = BufReader::new(stream).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line?;
        if line.starts_with("MSGID: 1") {
            let id = lines.next().transpose()?.unwrap_or_default();
            return id
                .trim()
                .parse()
                .map_err(|_| std::io::Error::other(format!("bad ID {id:?}")));
        }
        seen.push(line);
    }
    Err(std::io::Error::other(format!("no reply; got {seen:?}")))
}
