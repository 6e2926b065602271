//! A throwaway memcached on a random loopback port.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::HarnessError;
use crate::process::{Guard, free_port, is_root};

const START_ATTEMPTS: usize = 5;
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running memcached; killed on drop.
pub struct Memcached {
    child: Guard,
    port: u16,
}

impl Memcached {
    /// Starts memcached on a free loopback port (TCP only, no UDP, `-M`: nothing is
    /// evicted, as for a store of locks) and waits until it answers `version`.
    pub fn start() -> Result<Memcached, HarnessError> {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            match spawn_on(port)? {
                Ok(child) => {
                    return Ok(Memcached { child, port });
                }
                Err(reason) => last_error = reason,
            }
        }
        Err(HarnessError::Failed {
            program: "memcached",
            message: format!("could not start after {START_ATTEMPTS} attempts: {last_error}"),
        })
    }

    /// Kills this memcached (its items are gone) and starts a new one on the same port.
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match spawn_on(self.port)? {
                Ok(child) => {
                    self.child = child;
                    return Ok(());
                }
                // The port may linger for a moment after the kill.
                Err(reason) => last_error = reason,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(HarnessError::Failed {
            program: "memcached",
            message: format!("could not restart on port {}: {last_error}", self.port),
        })
    }

    /// Kills this memcached; [`Memcached::restart`] brings it back.
    pub fn stop(&mut self) {
        self.child.kill_with(libc::SIGKILL);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts memcached on `port` and waits until it answers; `Err` with why it exited.
fn spawn_on(port: u16) -> Result<Result<Guard, String>, HarnessError> {
    let mut cmd = Command::new("memcached");
    cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0", "-M"]);
    // As root memcached refuses to start without being told which user to be.
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let mut child = Guard::spawn(&mut cmd, "memcached")?;
    let started = Instant::now();
    loop {
        if let Some(reason) = child.exited() {
            return Ok(Err(reason));
        }
        if answers_version(port) {
            return Ok(Ok(child));
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(HarnessError::Failed {
                program: "memcached",
                message: format!("not ready after {READY_TIMEOUT:?} on port {port}"),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn answers_version(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"version\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("VERSION")
}
