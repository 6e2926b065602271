//! A native OpenLDAP syncrepl consumer (`olcSyncrepl` refreshAndPersist) beside our
//! listener, for the benchmarks' baselines: started, and timed until it holds what the
//! primary holds (its contextCSN is the primary's).

use std::time::{Duration, Instant};

use ldap3::Scope;

use crate::Slapd;

/// A no-sync syncrepl consumer of `primary`, empty when it starts.
pub fn start_consumer(primary: &Slapd) -> Result<Slapd, String> {
    Slapd::builder()
        .no_sync(true)
        .syncrepl_of(primary.url(), &primary.root_dn(), primary.root_password())
        .start()
        .map_err(|e| e.to_string())
}

/// The contextCSN values of `slapd`'s base entry, sorted.
pub async fn contextcsn(slapd: &Slapd) -> Result<Vec<String>, String> {
    let mut ldap = slapd.bind(&slapd.root_dn(), slapd.root_password()).await;
    let (entries, _) = ldap
        .search(
            slapd.base(),
            Scope::Base,
            "(objectClass=*)",
            vec!["contextCSN"],
        )
        .await
        .and_then(|r| r.success())
        .map_err(|e| e.to_string())?;
    let mut csns: Vec<String> = entries
        .into_iter()
        .flat_map(|e| ldap3::SearchEntry::construct(e).attrs.remove("contextCSN"))
        .flatten()
        .collect();
    csns.sort();
    let _ = ldap.unbind().await;
    Ok(csns)
}

/// Waits (until `timeout` after `started`) for `consumer`'s contextCSN to be `primary`
/// (the primary's, read before); the seconds since `started`.
pub async fn converged(
    consumer: &Slapd,
    primary: &[String],
    started: Instant,
    timeout: Duration,
) -> Result<f64, String> {
    // An empty consumer has none either: it would count as converged at once.
    if primary.is_empty() {
        return Err("the primary has no contextCSN".into());
    }
    let deadline = started + timeout;
    while contextcsn(consumer).await.ok().as_deref() != Some(primary) {
        if Instant::now() > deadline {
            return Err("the syncrepl consumer did not converge".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(started.elapsed().as_secs_f64())
}
