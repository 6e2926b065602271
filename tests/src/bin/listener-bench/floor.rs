//! The catch-up's floor: the same fetches a sequential client makes, one after the other
//! over one connection, by each client this machine has. The fastest is the baseline, so
//! that no slow client flatters the listener.

use std::time::{Duration, Instant};

use tests::Slapd;

use super::Result;
use super::directory;

/// One sequential client's time for the fetches.
pub struct Client {
    /// What it is, for the table and the JSON.
    pub name: &'static str,
    pub time: Duration,
}

/// Each client's time for base-scope fetches (`*`, `+`) of `dns` on `slapd`, one at a
/// time: ldap3 on a multi-thread runtime and on a current-thread one, and libldap
/// (`ldapsearch -f`, one search per DN over one connection).
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    slapd: &Slapd,
    dns: &[String],
) -> Result<Vec<Client>> {
    let mut clients = Vec::new();
    let mut ldap = runtime.block_on(connect(slapd))?;
    let time = runtime.block_on(directory::sequential_fetches(&mut ldap, dns))?;
    clients.push(Client {
        name: "ldap3, multi-thread runtime",
        time,
    });
    clients.push(Client {
        name: "ldap3, current-thread runtime",
        time: current_thread(slapd, dns)?,
    });
    clients.push(Client {
        name: "libldap (ldapsearch -f)",
        time: ldapsearch(slapd, dns)?,
    });
    Ok(clients)
}

async fn connect(slapd: &Slapd) -> Result<ldap3::Ldap> {
    directory::connect(slapd.url(), &slapd.root_dn(), slapd.root_password()).await
}

/// ldap3 on a runtime of one thread, where the connection's task and the client share
/// the thread (no hand-over between threads).
fn current_thread(slapd: &Slapd, dns: &[String]) -> Result<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a current-thread runtime: {e}"))?;
    runtime.block_on(async {
        let mut ldap = connect(slapd).await?;
        directory::sequential_fetches(&mut ldap, dns).await
    })
}

/// `ldapsearch -f`: one search per DN (`(entryDN=…)` under the base, which slapd answers
/// from its DN index), sequentially over one connection, the entries written to
/// /dev/null.
fn ldapsearch(slapd: &Slapd, dns: &[String]) -> Result<Duration> {
    let file =
        tempfile::NamedTempFile::new().map_err(|e| format!("cannot write the DN list: {e}"))?;
    let list: String = dns
        .iter()
        .map(|dn| format!("{}\n", filter_value(dn)))
        .collect();
    std::fs::write(file.path(), list).map_err(|e| format!("cannot write the DN list: {e}"))?;
    let started = Instant::now();
    let out = std::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            slapd.url(),
            "-D",
            &slapd.root_dn(),
            "-y",
        ])
        .arg(slapd.password_file())
        .args(["-b", slapd.base(), "-s", "sub", "-f"])
        .arg(file.path())
        .args(["(entryDN=%s)", "*", "+"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run ldapsearch: {e}"))?;
    let time = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "ldapsearch -f failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(time)
}

/// `dn` as the value of an equality filter (RFC 4515 escapes).
fn filter_value(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for c in dn.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}
