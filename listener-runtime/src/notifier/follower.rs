//! The accesslog follower: an RFC 4533 refreshAndPersist search on `cn=accesslog` whose
//! entries become transactions, appended with the cookie that covers them.

use std::sync::{Arc, RwLock};

use futures_util::FutureExt;
use ldap3::controls::{RawControl, RefreshMode, SyncRequest};
use ldap3::{Ldap, ResultEntry, Scope, SearchEntry};
use tokio::sync::watch;

use super::NotifierError;
use super::accesslog::{ATTRIBUTES, Write};
use super::syncrepl::{EntryState, SYNC_DONE_OID, SYNC_STATE_OID, SyncDone, SyncInfo, SyncState};
use super::translog::{Transaction, Translog};

const ACCESSLOG: &str = "cn=accesslog";
const WRITES: &str = "(&(objectClass=auditWriteObject)(reqResult=0))";
/// `e-syncRefreshRequired` (RFC 4533 §3.4): the server cannot resume from our cookie.
const REFRESH_REQUIRED: u32 = 4096;
/// `cn=accesslog` itself exists only once slapd has logged a first write.
const NO_SUCH_OBJECT: u32 = 32;
/// The sync request is sent critical: without syncprov this is the answer.
const UNAVAILABLE_CRITICAL_EXTENSION: u32 = 12;

/// What the follower needs besides the connection.
pub(crate) struct Follower {
    /// The transaction log, shared with the server.
    pub log: Arc<RwLock<Translog>>,
    /// Where durable IDs are published.
    pub last_id: watch::Sender<u64>,
    /// Most writes committed in one group.
    pub max_group: usize,
}

impl Follower {
    /// Follows the accesslog on one connection until it fails; the caller reconnects
    /// (after [`Follower::check_no_gap`]).
    pub(crate) async fn follow(&self, ldap: &mut Ldap) -> Result<(), NotifierError> {
        let cookie = self.log()?.cookie().map(<[u8]>::to_vec);
        let request = SyncRequest {
            mode: RefreshMode::RefreshAndPersist,
            cookie: cookie.clone(),
            reload_hint: false,
        };
        let mut control: RawControl = request.into();
        control.crit = true;
        let mut stream = ldap
            .with_controls(control)
            .streaming_search(ACCESSLOG, Scope::Subtree, WRITES, ATTRIBUTES.to_vec())
            .await
            .map_err(|e| NotifierError::Ldap(format!("cannot follow {ACCESSLOG}: {e}")))?;
        let mut cookie = cookie;
        let mut seen = self.recent_writes()?;
        loop {
            let Some(first) = stream
                .next()
                .await
                .map_err(|e| NotifierError::Ldap(format!("following {ACCESSLOG}: {e}")))?
            else {
                let result = stream.finish().await;
                if result.rc == REFRESH_REQUIRED {
                    return Err(NotifierError::RefreshRequired);
                }
                if result.rc == UNAVAILABLE_CRITICAL_EXTENSION {
                    return Err(NotifierError::NoSyncprov);
                }
                return Err(NotifierError::Ldap(format!(
                    "the server ended the {ACCESSLOG} search: {result}"
                )));
            };
            // Group whatever else has already arrived into the same commit.
            let mut batch = vec![first];
            while batch.len() < self.max_group {
                match stream.next().now_or_never() {
                    Some(Ok(Some(entry))) => batch.push(entry),
                    _ => break,
                }
            }
            let mut transactions = Vec::new();
            let mut next_id = self.log()?.last_id() + 1;
            for message in batch {
                match classify(message)? {
                    Message::Info(info) => {
                        if let Some(c) = info.cookie() {
                            cookie = Some(c.to_vec());
                        }
                    }
                    Message::Write(write, entry_cookie) => {
                        if let Some(c) = entry_cookie {
                            cookie = Some(c);
                        }
                        let time_us = write.time_us();
                        if !seen.insert((time_us, write.csn.clone())) {
                            // syncprov may send an entry written during the refresh both
                            // in the refresh and in the persist phase.
                            tracing::debug!(req_start = %write.req_start, "skipping an accesslog entry sent twice");
                            continue;
                        }
                        for (dn, command) in write.transactions()? {
                            transactions.push(Transaction {
                                id: next_id,
                                dn,
                                command,
                                entry_uuid: write.entry_uuid.clone(),
                                csn: write.csn.clone(),
                                time_us,
                            });
                            next_id += 1;
                        }
                    }
                    Message::Other(cookie_update) => {
                        if let Some(c) = cookie_update {
                            cookie = Some(c);
                        }
                    }
                }
            }
            let last = tokio::task::block_in_place(|| {
                let mut log = self.log.write().map_err(|_| NotifierError::Poisoned)?;
                log.append(&transactions, cookie.as_deref())?;
                Ok::<_, NotifierError>(log.last_id())
            })?;
            if !transactions.is_empty() {
                tracing::debug!(first = transactions[0].id, last, "transactions committed");
                // Published only now: no ID is served before it is durable.
                self.last_id.send_replace(last);
            }
        }
    }

    /// Gives a new log the accesslog's current position as its starting cookie, so the
    /// first transaction is the first write after this call (not a replay of the
    /// accesslog's history). A refreshOnly search that matches nothing returns the cookie.
    pub(crate) async fn position_at_end(&self, ldap: &mut Ldap) -> Result<(), NotifierError> {
        let request = SyncRequest {
            mode: RefreshMode::RefreshOnly,
            cookie: None,
            reload_hint: false,
        };
        let mut control: RawControl = request.into();
        control.crit = true;
        let ldap3::SearchResult(_, result) = ldap
            .with_controls(control)
            .search(ACCESSLOG, Scope::Base, "(!(objectClass=*))", vec!["1.1"])
            .await
            .map_err(|e| {
                NotifierError::Ldap(format!("cannot read the position of {ACCESSLOG}: {e}"))
            })?;
        if result.rc == UNAVAILABLE_CRITICAL_EXTENSION {
            return Err(NotifierError::NoSyncprov);
        }
        if result.rc == NO_SUCH_OBJECT {
            // No write logged yet: following from the beginning is following from now.
            return Ok(());
        }
        if result.rc != 0 {
            return Err(NotifierError::Ldap(format!(
                "cannot read the position of {ACCESSLOG}: {result}"
            )));
        }
        let done = result
            .ctrls
            .iter()
            .find(|c| c.1.ctype == SYNC_DONE_OID)
            .map(|c| SyncDone::decode(c.1.val.as_deref().unwrap_or_default()))
            .transpose()?;
        let Some(cookie) = done.and_then(|d| d.cookie) else {
            // syncprov has no contextCSN to give before the first logged write.
            return Ok(());
        };
        tokio::task::block_in_place(|| {
            let mut log = self.log.write().map_err(|_| NotifierError::Poisoned)?;
            log.append(&[], Some(cookie.as_slice()))?;
            Ok(())
        })
    }

    /// The writes of the log's newest transactions, to recognize them if the server
    /// sends them again.
    fn recent_writes(&self) -> Result<RecentWrites, NotifierError> {
        let mut seen = RecentWrites::default();
        let log = self.log()?;
        let last = log.last_id();
        let from = last.saturating_sub(RECENT as u64 - 1).max(1);
        for t in log.range(from, RECENT)? {
            seen.insert((t.time_us, t.csn));
        }
        Ok(seen)
    }

    fn log(&self) -> Result<std::sync::RwLockReadGuard<'_, Translog>, NotifierError> {
        self.log.read().map_err(|_| NotifierError::Poisoned)
    }

    /// Refuses to resume when the accesslog was purged past our position while we were
    /// away: syncprov on the accesslog would silently continue after the gap.
    ///
    /// Our position is the newer of the last transaction's CSN and the cookie's (the
    /// cookie also moves with purges seen while following). No gap is certain when the
    /// accesslog still holds an entry at or before the position (purge removes the oldest
    /// first), or when nothing was written after it. Otherwise writes may have been purged
    /// unseen, and we stop: a false alarm needs a write racing a start after the
    /// directory was idle for longer than the purge age.
    pub(crate) async fn check_no_gap(&self, ldap: &mut Ldap) -> Result<(), NotifierError> {
        let (last_id, position) = {
            let log = self.log()?;
            let last_csn = match log.last_id() {
                0 => None,
                id => log.get(id)?.map(|t| t.csn).filter(|c| !c.is_empty()),
            };
            let position = last_csn
                .into_iter()
                .chain(log.cookie().and_then(cookie_csn))
                .max();
            (log.last_id(), position)
        };
        let Some(csn) = position else {
            return Ok(());
        };
        let filter = format!("(entryCSN<={})", ldap3::ldap_escape(&csn));
        let found = ldap
            .with_search_options(ldap3::SearchOptions::new().sizelimit(1))
            .search(ACCESSLOG, Scope::OneLevel, &filter, vec!["1.1"])
            .await
            .map_err(|e| NotifierError::Ldap(format!("cannot search {ACCESSLOG}: {e}")))?;
        // rc 4: size limit exceeded, i.e. found one; 32: no accesslog at all yet.
        match found.1.rc {
            0 | 4 if !found.0.is_empty() => return Ok(()),
            0 | 4 | 32 => {}
            _ => {
                return Err(NotifierError::Ldap(format!(
                    "cannot search {ACCESSLOG}: {}",
                    found.1
                )));
            }
        }
        let newest = newest_context_csn(ldap).await?;
        if newest
            .as_deref()
            .is_none_or(|newest| newest <= csn.as_str())
        {
            return Ok(());
        }
        Err(NotifierError::Purged {
            last_id,
            csn,
            newest: newest.unwrap_or_default(),
        })
    }
}

/// How many recent writes are remembered to recognize a repeat.
const RECENT: usize = 65_536;

/// The most recent writes by (reqStart time, CSN), which name an accesslog entry
/// uniquely: bounded, oldest forgotten first.
#[derive(Default)]
struct RecentWrites {
    set: std::collections::HashSet<(i64, String)>,
    order: std::collections::VecDeque<(i64, String)>,
}

impl RecentWrites {
    /// Remembers `key`; `false` if it was already there.
    fn insert(&mut self, key: (i64, String)) -> bool {
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > RECENT
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

enum Message {
    Info(SyncInfo),
    Write(Write, Option<Vec<u8>>),
    /// An entry state we do not number (a purge's delete): only its cookie counts.
    Other(Option<Vec<u8>>),
}

fn classify(message: ResultEntry) -> Result<Message, NotifierError> {
    if message.is_intermediate() {
        return Ok(Message::Info(SyncInfo::decode(&message.0)?));
    }
    let state = message
        .1
        .iter()
        .find(|c| c.1.ctype == SYNC_STATE_OID)
        .map(|c| SyncState::decode(c.1.val.as_deref().unwrap_or_default()))
        .transpose()?;
    let entry = SearchEntry::construct(message);
    match state {
        Some(SyncState {
            state: EntryState::Add | EntryState::Modify,
            cookie,
            ..
        }) => Ok(Message::Write(
            Write::from_attrs(&entry.dn, &entry.attrs)?,
            cookie,
        )),
        Some(SyncState { cookie, .. }) => Ok(Message::Other(cookie)),
        None => Err(NotifierError::Decode(super::syncrepl::DecodeError(
            format!("entry {} came without a Sync State control", entry.dn),
        ))),
    }
}

/// The CSN inside a syncprov cookie (`rid=000,csn=…`); the newest if there are several.
fn cookie_csn(cookie: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(cookie).ok()?;
    let csns = text.split(',').find_map(|part| part.strip_prefix("csn="))?;
    csns.split(';').max().map(str::to_owned)
}

/// The newest `contextCSN` of the server's naming contexts other than the accesslog.
async fn newest_context_csn(ldap: &mut Ldap) -> Result<Option<String>, NotifierError> {
    let search_err = |e: ldap3::LdapError| NotifierError::Ldap(format!("reading contextCSN: {e}"));
    let (root, _) = ldap
        .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
        .await
        .and_then(|r| r.success())
        .map_err(search_err)?;
    let contexts: Vec<String> = root
        .into_iter()
        .flat_map(|e| {
            SearchEntry::construct(e)
                .attrs
                .remove("namingContexts")
                .unwrap_or_default()
        })
        .filter(|nc| !nc.eq_ignore_ascii_case(ACCESSLOG))
        .collect();
    if contexts.is_empty() {
        // Without it a purged gap would go unnoticed: refuse rather than guess.
        return Err(NotifierError::Ldap(
            "cannot read namingContexts from the root DSE to check for changes purged from \
             cn=accesslog; allow the notifier's bind DN to read the root DSE"
                .into(),
        ));
    }
    let mut newest: Option<String> = None;
    for nc in contexts {
        let (entries, _) = ldap
            .search(&nc, Scope::Base, "(objectClass=*)", vec!["contextCSN"])
            .await
            .and_then(|r| r.success())
            .map_err(search_err)?;
        for entry in entries {
            for csn in SearchEntry::construct(entry)
                .attrs
                .remove("contextCSN")
                .unwrap_or_default()
            {
                if newest.as_ref().is_none_or(|n| &csn > n) {
                    newest = Some(csn);
                }
            }
        }
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_csn_of_a_cookie() {
        assert_eq!(
            cookie_csn(b"rid=000,csn=20261128071643.587497Z#000000#000#000000").as_deref(),
            Some("20261128071643.587497Z#000000#000#000000")
        );
        assert_eq!(
            cookie_csn(b"rid=000,csn=1#a;3#b;2#c").as_deref(),
            Some("3#b")
        );
        assert_eq!(cookie_csn(b"rid=000"), None);
        assert_eq!(cookie_csn(&[0xff]), None);
    }
}
