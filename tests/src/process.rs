//! Child processes that die with the test: killed on drop, and by the kernel when the
//! test process itself dies (so a crashed test run leaves no server behind).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::HarnessError;

/// A running child process, killed and reaped on drop.
pub(crate) struct Guard {
    child: Child,
}

impl Guard {
    /// Spawns `cmd` with stdout/stderr captured and a parent-death signal.
    pub(crate) fn spawn(cmd: &mut Command, program: &'static str) -> Result<Guard, HarnessError> {
        Guard::spawn_with(cmd, program, Stdio::piped(), Stdio::piped())
    }

    /// Like [`Guard::spawn`], with stdout and stderr going where they say.
    pub(crate) fn spawn_with(
        cmd: &mut Command,
        program: &'static str,
        stdout: Stdio,
        stderr: Stdio,
    ) -> Result<Guard, HarnessError> {
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => HarnessError::Missing { program },
            _ => HarnessError::Io {
                what: format!("cannot start {program}"),
                source: e,
            },
        })?;
        Ok(Guard { child })
    }

    /// The process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// If the child has exited, its stderr output (the reason, usually).
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut stderr) = self.child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                Some(format!("{status}: {}", err.trim()))
            }
            Err(e) => Some(e.to_string()),
        }
    }

    /// Sends `signal` and waits for the child to exit; its exit status.
    pub(crate) fn signal_and_wait(&mut self, signal: i32) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        // SAFETY: plain kill(2) on our own child's pid, which is not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
        self.child.wait().ok()
    }

    /// Kills the child with `signal` and reaps it.
    pub(crate) fn kill_with(&mut self, signal: i32) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: plain kill(2) on our own child's pid, which is not yet reaped.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, signal);
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill_with(libc::SIGKILL);
    }
}

/// A loopback port that was free a moment ago (the caller retries if it is taken since).
pub(crate) fn free_port() -> Result<u16, HarnessError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(HarnessError::io("cannot find a free port"))?;
    let port = listener
        .local_addr()
        .map_err(HarnessError::io("cannot find a free port"))?
        .port();
    Ok(port)
}

/// Whether something accepts TCP connections on the loopback port.
pub(crate) fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Whether the effective user is root (servers then need to be told which user to be).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
