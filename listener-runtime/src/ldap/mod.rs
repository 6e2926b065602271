//! Reaching slapd: the connection settings both daemons and the CLI take, the one
//! connect (with StartTLS or `ldaps://`, and a bind whose errors name the URI and the bind
//! DN), and the [`Backoff`] every retry loop uses.

mod backoff;

use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};

pub use backoff::Backoff;
pub(crate) use backoff::Retry;

/// How to reach and bind to slapd. Serializable for one channel only: a worker process
/// gets its settings, the password included, over its private channel to the listener.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct LdapSettings {
    /// `ldap://`, `ldaps://` or `ldapi://` URI.
    pub uri: String,
    /// The DN to bind as.
    pub bind_dn: String,
    /// Never logged or shown.
    pub bind_password: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub starttls: bool,
    /// Connect timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapSettings")
            .field("uri", &self.uri)
            .field("bind_dn", &self.bind_dn)
            .field("starttls", &self.starttls)
            .finish_non_exhaustive()
    }
}

/// A connection or bind that failed; the message names the URI (and the bind DN).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(String);

/// Opens and binds a connection.
pub(crate) async fn connect(settings: &LdapSettings) -> Result<Ldap, ConnectError> {
    let conn_settings = LdapConnSettings::new()
        .set_conn_timeout(settings.timeout)
        .set_starttls(settings.starttls);
    let (conn, mut ldap) = LdapConnAsync::with_settings(conn_settings, &settings.uri)
        .await
        .map_err(|e| ConnectError(format!("cannot connect to {}: {e}", settings.uri)))?;
    ldap3::drive!(conn);
    ldap.simple_bind(&settings.bind_dn, &settings.bind_password)
        .await
        .and_then(|r| r.success())
        .map_err(|e| {
            ConnectError(format!(
                "cannot bind to {} as {}: {e}",
                settings.uri, settings.bind_dn
            ))
        })?;
    Ok(ldap)
}
