//! What the subcommands share: the LDAP bind options, the shutdown signal, asking the
//! notifier for its IDs, and how a command fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::ldap::LdapSettings;
use crate::protocol::client::{ClientOptions, NotifierClient};

/// Where the bind password comes from: a file, or the environment — never the command
/// line, where every user of the machine can read it.
#[derive(Debug, Args)]
pub(super) struct Bind {
    /// slapd's URI: `ldap://host:389`, `ldaps://…` or `ldapi://…`.
    #[arg(long, env = "LISTENER_LDAP_URI")]
    ldap_uri: String,
    /// The DN to bind as.
    #[arg(long, env = "LISTENER_BIND_DN")]
    bind_dn: String,
    /// A file holding the bind password (one line). Without it the password is read from
    /// the environment variable LISTENER_BIND_PASSWORD.
    #[arg(long, env = "LISTENER_BIND_PASSWORD_FILE")]
    bind_password_file: Option<PathBuf>,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[arg(long)]
    starttls: bool,
}

impl Bind {
    pub(super) fn settings(&self) -> Result<LdapSettings, String> {
        let bind_password = password(
            self.bind_password_file.as_deref(),
            "no bind password: give --bind-password-file FILE or set LISTENER_BIND_PASSWORD",
            "LISTENER_BIND_PASSWORD",
        )?;
        Ok(LdapSettings {
            uri: self.ldap_uri.clone(),
            bind_dn: self.bind_dn.clone(),
            bind_password,
            starttls: self.starttls,
            timeout: Duration::from_secs(30),
        })
    }
}

/// How to bind to a replica (`run --replicate-to`, `verify --replica`).
#[derive(Debug, Args)]
pub(super) struct ReplicaBind {
    /// The replica's updatedn, whose writes keep the operational attributes they carry
    /// (default `cn=update,<base>`, as on UCS).
    #[arg(long, env = "LISTENER_REPLICA_BIND_DN", value_name = "DN")]
    replica_bind_dn: Option<String>,
    /// A file holding the updatedn's password (one line). Without it the password is
    /// read from the environment variable LISTENER_REPLICA_BIND_PASSWORD.
    #[arg(long, env = "LISTENER_REPLICA_BIND_PASSWORD_FILE", value_name = "FILE")]
    replica_bind_password_file: Option<PathBuf>,
}

impl ReplicaBind {
    /// The connection to the replica at `uri` under `base`.
    pub(super) fn settings(
        &self,
        uri: &str,
        base: &listener_core::Dn,
        starttls: bool,
    ) -> Result<LdapSettings, String> {
        let bind_password = password(
            self.replica_bind_password_file.as_deref(),
            "no password for the replica: give --replica-bind-password-file FILE or set \
             LISTENER_REPLICA_BIND_PASSWORD",
            "LISTENER_REPLICA_BIND_PASSWORD",
        )?;
        let bind_dn = match &self.replica_bind_dn {
            Some(dn) => {
                listener_core::Dn::parse(dn).map_err(|e| format!("--replica-bind-dn: {e}"))?
            }
            None => listener_core::Dn::parse(&format!("cn=update,{base}"))
                .map_err(|e| format!("the default updatedn: {e}"))?,
        };
        Ok(LdapSettings {
            uri: uri.to_owned(),
            bind_dn: bind_dn.to_string(),
            bind_password,
            starttls,
            timeout: Duration::from_secs(30),
        })
    }
}

/// A password from `file`, else from the environment variable `var` (`missing` when
/// neither has one): never from the command line.
fn password(file: Option<&Path>, missing: &str, var: &str) -> Result<String, String> {
    match file {
        Some(path) => read_password(path),
        None => std::env::var(var).map_err(|_| missing.to_owned()),
    }
}

fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the bind password from {}: {e}", path.display()))?;
    // Files written with `echo` end in a newline that is not part of the password.
    Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
}

/// Completes on SIGTERM or SIGINT. The handlers are installed at once (call it inside the
/// runtime, before the work starts), so a signal that comes early is not lost to the
/// default action.
pub(super) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        match handlers {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                // Without signal handlers, run until killed.
                tracing::warn!("cannot install signal handlers");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The notifier's current transaction ID (or schema ID), asked over the one notifier
/// client the listener uses too; the error names the address.
pub(super) fn ask_notifier(address: &str, schema: bool) -> Result<u64, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))?;
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    runtime
        .block_on(async {
            let mut client = NotifierClient::connect(address, options).await?;
            match schema {
                true => client.schema_id().await,
                false => client.current_id().await,
            }
        })
        .map_err(|e| e.to_string())
}

pub(super) fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_loses_its_final_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret \n").unwrap();
        assert_eq!(read_password(&path).unwrap(), "s3cret ");
        let e = read_password(&dir.path().join("missing")).unwrap_err();
        assert!(e.contains("cannot read the bind password"), "{e}");
    }
}
