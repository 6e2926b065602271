//! Our notifier run in-process (a tokio task) against a test slapd, and what the
//! accesslog says the notifier should have numbered.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ldap3::{LdapConnAsync, Scope, SearchEntry};
use listener_runtime::testing::{ATTRIBUTES, Write};
use listener_runtime::testing::{LdapSettings, NotifierConfig, NotifierError, run_notifier};

use crate::Slapd;

/// A notifier running as a task of the test's runtime.
pub struct InProcessNotifier {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), NotifierError>>,
}

impl InProcessNotifier {
    /// Starts a notifier for `slapd` with its log in `data_dir`, listening on `listen`
    /// (port 0: any); returns once it listens.
    pub async fn start(slapd: &Slapd, data_dir: &Path, listen: SocketAddr) -> InProcessNotifier {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("debug")
            .try_init();
        let mut config = NotifierConfig::new(root_settings(slapd), data_dir.to_owned());
        config.listen = listen;
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_notifier(
            config,
            move |addr| {
                let _ = addr_tx.send(addr);
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let Ok(addr) = addr_rx.await else {
            panic!("notifier did not start: {:?}", task.await);
        };
        InProcessNotifier {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it stopped by itself (then [`InProcessNotifier::stop`] returns why).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it and waits until it released its data directory; panics if it failed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .expect("notifier task")
            .expect("notifier ran without error");
    }
}

/// Settings binding as the test slapd's rootDN.
pub fn root_settings(slapd: &Slapd) -> LdapSettings {
    LdapSettings {
        uri: slapd.url().to_owned(),
        bind_dn: slapd.root_dn(),
        bind_password: slapd.root_password().to_owned(),
        starttls: false,
        timeout: Duration::from_secs(5),
    }
}

/// The transactions the accesslog's writes make, as `<id> <dn> <cmd>` lines numbered
/// from 1, in the accesslog's order — computed independently of the notifier.
pub async fn expected_transactions(slapd: &Slapd) -> Vec<String> {
    let (conn, mut ldap) = LdapConnAsync::new(slapd.url()).await.expect("connect");
    ldap3::drive!(conn);
    ldap.simple_bind(&slapd.root_dn(), slapd.root_password())
        .await
        .and_then(|r| r.success())
        .expect("bind");
    let (entries, _) = ldap
        .search(
            "cn=accesslog",
            Scope::OneLevel,
            "(&(objectClass=auditWriteObject)(reqResult=0))",
            ATTRIBUTES.to_vec(),
        )
        .await
        .and_then(|r| r.success())
        .expect("search cn=accesslog");
    let mut logged: Vec<Write> = entries
        .into_iter()
        .map(SearchEntry::construct)
        .map(|e| Write::from_attrs(&e.dn, &e.attrs).expect("an accesslog write"))
        .collect();
    logged.sort_by(|a, b| a.req_start.cmp(&b.req_start));
    logged
        .iter()
        .flat_map(|w| w.transactions().expect("transactions"))
        .enumerate()
        .map(|(n, (dn, command))| format!("{} {dn} {command}", n + 1))
        .collect()
}
