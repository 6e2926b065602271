//! The replica's side: one bound connection (as its updatedn), on which the change
//! records of [`listener_core::replica`] are sent. Every write is safe to repeat, so
//! that a transaction replayed after a crash is harmless: a delete of what is gone and a
//! state not newer than the replica's (by entryCSN) are no-ops, and an add of what
//! exists becomes a modify.

use std::collections::HashSet;

use ldap3::{LdapError, Mod, Scope};
use listener_core::ldif::{Change, ChangeRecord, ModOp};
use listener_core::{Dn, Entry, replica as decide};

use super::{ReplicationConfig, schema};
use crate::api::error::{HandlerError, HandlerResult};
use crate::listener::fetch::Fetcher;

/// LDAP result codes the writes answer themselves ([`ANSWERED`]).
const NO_SUCH_OBJECT: u32 = 32;
const NOT_ALLOWED_ON_NONLEAF: u32 = 66;
const ALREADY_EXISTS: u32 = 68;
const ANSWERED: [u32; 3] = [NO_SUCH_OBJECT, NOT_ALLOWED_ON_NONLEAF, ALREADY_EXISTS];

/// Ancestors fetched from the primary for one write, at most (a deeper tree than this
/// is missing from the replica only if something else is wrong).
const MAX_MISSING_ANCESTORS: usize = 64;

/// A connection to the replica.
pub(super) struct Replica {
    /// Reads (by entryUUID under the base, by DN), on the same connection as writes.
    reads: Fetcher,
    /// The DN the module binds as (the updatedn).
    bind_dn: Dn,
    /// The last change the replica refused, for `failed.ldif`.
    refused: Option<Rejected>,
    /// `--replica-config-uri`: where the replica's schema is written.
    config_uri: Option<String>,
}

impl Replica {
    /// Connects and binds to the replica.
    pub(super) async fn connect(config: &ReplicationConfig) -> Result<Replica, HandlerError> {
        let reads = Fetcher::connect(&config.replica, config.base.clone())
            .await
            .map_err(|e| HandlerError::msg(format!("replica {}: {e}", config.replica.uri)))?;
        let bind_dn = Dn::parse(&config.replica.bind_dn)
            .map_err(|e| HandlerError::msg(format!("the replica's bind DN: {e}")))?;
        Ok(Replica {
            reads,
            bind_dn,
            refused: None,
            config_uri: config.config_uri.clone(),
        })
    }

    /// Makes the replica hold `new`: the object it has under `new`'s entryUUID (else at
    /// `before`, where the primary had it, else at `new`'s DN) is moved to `new`'s DN
    /// and modified into `new`; an object it does not have is added, missing ancestors
    /// first (read from `primary`). `cached` is the state the listener had before, which
    /// the replica's copy usually is: see [`Replica::write_cached`]. `fresh`: the object
    /// is new to the listener in a transaction whose writes cannot be on the replica
    /// yet ([`super::Mark`]), so it is added without looking for it by entryUUID first.
    pub(super) async fn write(
        &mut self,
        primary: &Fetcher,
        before: Option<&Dn>,
        new: &Entry,
        cached: Option<&Entry>,
        fresh: bool,
    ) -> HandlerResult {
        self.refused = None;
        if let Some(cached) = cached
            && self.write_cached(cached, new).await
        {
            return Ok(());
        }
        let mut schema_followed = false;
        let mut pending = vec![new.clone()];
        while let Some(entry) = pending.last() {
            let (before, fresh) = match pending.len() {
                1 => (before, fresh),
                // A missing ancestor, read from the primary.
                _ => (None, false),
            };
            let put = match self.put(primary, before, entry, fresh).await {
                Ok(put) => put,
                Err(e) => {
                    // Refused for want of schema: follow the primary's, then once more.
                    if !schema_followed && self.needs_schema() {
                        schema_followed = true;
                        if self.follow_schema(primary).await? {
                            continue;
                        }
                    }
                    return Err(e);
                }
            };
            match put {
                Put::Done => {
                    pending.pop();
                }
                Put::NoParent => {
                    if pending.len() > MAX_MISSING_ANCESTORS {
                        return Err(HandlerError::msg(format!(
                            "{}: more than {MAX_MISSING_ANCESTORS} ancestors are missing on the replica",
                            new.dn()
                        )));
                    }
                    let parent = parent_from_primary(primary, entry.dn()).await?;
                    pending.push(parent);
                }
            }
        }
        Ok(())
    }

    /// The shortcut of a modify or a move: when the replica's copy is `cached` (the
    /// same object at the listener's DN, asserted by its entryUUID and entryCSN with the
    /// assertion control of RFC 4528), the change into `new` is computed against
    /// `cached`, without reading the replica first: a modify, or for a move a modrdn
    /// and then a modify of what the modrdn made (asserting the entryUUID). Whether the
    /// change was made; if not (the copy is another state, elsewhere, missing, or the
    /// replica refused), the usual path follows and reads the copy. After a modrdn whose
    /// modify failed, that path finds the object at its new DN, stamped by the replica
    /// ([`Replica::stamped_here`]), and modifies what it reads.
    async fn write_cached(&mut self, cached: &Entry, new: &Entry) -> bool {
        let (Some(uuid), Some(csn)) = (cached.first_str("entryUUID"), cached.first_str("entryCSN"))
        else {
            return false;
        };
        if new.first_str("entryUUID") != Some(uuid)
            || !decide::is_newer(new.first_str("entryCSN"), Some(csn))
        {
            return false;
        }
        let mut assertion = format!(
            "(&(entryUUID={})(entryCSN={}))",
            ldap3::ldap_escape(uuid),
            ldap3::ldap_escape(csn)
        );
        let moved;
        let local = match decide::rename(cached.dn(), new) {
            None => cached,
            Some(rename) => {
                let Some(renamed) = decide::renamed(cached, &rename) else {
                    return false;
                };
                if !self.send_asserted(&rename, &assertion).await {
                    return false;
                }
                // The modrdn stamped the entry: only its entryUUID is known now.
                assertion = format!("(entryUUID={})", ldap3::ldap_escape(uuid));
                moved = renamed;
                &moved
            }
        };
        // Never empty after a move: the entryCSN differs, so the stamps are sent.
        let Some(modify) = decide::modify(local, new) else {
            return false;
        };
        self.send_asserted(&modify, &assertion).await
    }

    /// One object: moved, modified or added.
    async fn put(
        &mut self,
        primary: &Fetcher,
        before: Option<&Dn>,
        new: &Entry,
        fresh: bool,
    ) -> Result<Put, HandlerError> {
        let found = match fresh && before.is_none() {
            true => None,
            false => self.local(before, new).await?,
        };
        let local = match found {
            Some(local) => local,
            None => return self.add(new).await,
        };
        // A state of the same object (by entryUUID) is written only when it is newer
        // than the replica's, as syncrepl does. Overwritten regardless: an object of
        // another entryUUID at the DN (one the replica was set up with, or one whose
        // delete it missed), and one the replica stamped itself (modifiersName is the
        // updatedn: a move whose modify a crash cut off).
        let same = local.first_str("entryUUID") == new.first_str("entryUUID");
        let newer = !same
            || self.stamped_here(&local)
            || decide::is_newer(new.first_str("entryCSN"), local.first_str("entryCSN"));
        // A move is made whatever the CSN: the state of a move whose object has moved on
        // is the cached one (no newer CSN), and the object must still follow (its
        // parent's move, say, comes later and takes it along).
        let Some(rename) = decide::rename(local.dn(), new) else {
            if newer && let Some(modify) = decide::modify(&local, new) {
                self.send(&modify).await?;
            }
            return Ok(Put::Done);
        };
        self.send(&rename).await?;
        let Some(moved) = self.reads.fetch_by_dn(new.dn()).await.map_err(read_error)? else {
            return Err(HandlerError::msg(format!(
                "{}: gone after its move",
                new.dn()
            )));
        };
        // The modrdn stamped the entry: the modify sends the primary's stamps back (the
        // new state's, or the replica's own from before the move when that is newer).
        let target = match newer {
            true => new.clone(),
            false => self
                .moved_on(primary, new, &local)
                .await?
                .unwrap_or_else(|| restamped(&moved, &local)),
        };
        if let Some(modify) = decide::modify(&moved, &target) {
            self.send(&modify).await?;
        }
        Ok(Put::Done)
    }

    /// For a move whose state is not newer than the replica's (the listener had only
    /// its cached state: the object had moved on, with its parent say): the primary's
    /// current state of the object, at `new`'s DN, if it is newer than `local`. Its
    /// stamps are those of the move itself, which no later transaction brings.
    async fn moved_on(
        &self,
        primary: &Fetcher,
        new: &Entry,
        local: &Entry,
    ) -> Result<Option<Entry>, HandlerError> {
        let Some(uuid) = new.first_str("entryUUID") else {
            return Ok(None);
        };
        let Some(mut current) = primary
            .fetch_by_uuid(uuid)
            .await
            .map_err(|e| HandlerError::msg(format!("cannot read the primary: {e}")))?
        else {
            return Ok(None);
        };
        if !decide::is_newer(current.first_str("entryCSN"), local.first_str("entryCSN")) {
            return Ok(None);
        }
        current.set_dn(new.dn().clone());
        Ok(Some(current))
    }

    /// The replica's copy of the object `new` is a state of: by entryUUID, else at the
    /// DN it had before, else at its DN. An object with an entryUUID and no DN before
    /// (new to the listener) is not looked for at its DN: its add finds an entry there
    /// ("already exists") and modifies it instead ([`Replica::add`]).
    async fn local(&self, before: Option<&Dn>, new: &Entry) -> Result<Option<Entry>, HandlerError> {
        let uuid = new.first_str("entryUUID");
        if let Some(uuid) = uuid
            && let Some(found) = self.reads.fetch_by_uuid(uuid).await.map_err(read_error)?
        {
            return Ok(Some(found));
        }
        let dns: Vec<&Dn> = match before {
            Some(before) if before.normalized() == new.dn().normalized() => vec![before],
            Some(before) => vec![before, new.dn()],
            None if uuid.is_some() => Vec::new(),
            None => vec![new.dn()],
        };
        for dn in dns {
            if let Some(found) = self.reads.fetch_by_dn(dn).await.map_err(read_error)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Whether the last refusal was for want of an attribute type or object class, and
    /// the module may write the replica's schema.
    fn needs_schema(&self) -> bool {
        self.config_uri.is_some()
            && self
                .refused
                .as_ref()
                .is_some_and(|r| schema::NEEDS_SCHEMA.contains(&r.code))
    }

    /// Adds the primary's definitions the replica lacks; whether there were any.
    async fn follow_schema(&mut self, primary: &Fetcher) -> Result<bool, HandlerError> {
        let Some(uri) = self.config_uri.clone() else {
            return Ok(false);
        };
        schema::follow(primary, &self.reads, &uri).await
    }

    /// Whether the replica's slapd stamped `local` itself (its modifiersName is the DN
    /// the module binds as): every write of the module but a modrdn carries the
    /// primary's stamps.
    fn stamped_here(&self, local: &Entry) -> bool {
        local
            .first_str("modifiersName")
            .and_then(|m| Dn::parse(m).ok())
            .is_some_and(|m| m.normalized() == self.bind_dn.normalized())
    }

    /// Adds `new`; one that exists by now is modified instead.
    async fn add(&mut self, new: &Entry) -> Result<Put, HandlerError> {
        match self.send(&decide::add(new)).await {
            Ok(()) => Ok(Put::Done),
            Err(Rejected {
                code: NO_SUCH_OBJECT,
                ..
            }) => Ok(Put::NoParent),
            Err(Rejected {
                code: ALREADY_EXISTS,
                ..
            }) => {
                let Some(local) = self.reads.fetch_by_dn(new.dn()).await.map_err(read_error)?
                else {
                    return Err(HandlerError::msg(format!(
                        "{}: exists and cannot be read",
                        new.dn()
                    )));
                };
                if let Some(modify) = decide::modify(&local, new) {
                    self.send(&modify).await?;
                }
                Ok(Put::Done)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the replica's copy of `old` (found by entryUUID, else at `old`'s DN), and
    /// what is left below it, bottom-up; what is gone already is fine.
    pub(super) async fn delete(&mut self, old: &Entry) -> HandlerResult {
        // The shortcut: the copy is where the listener had it (asserted by entryUUID).
        if let Some(uuid) = old.first_str("entryUUID") {
            let assertion = format!("(entryUUID={})", ldap3::ldap_escape(uuid));
            if self.send_asserted(&delete(old.dn()), &assertion).await {
                return Ok(());
            }
        }
        let dn = match old.first_str("entryUUID") {
            Some(uuid) => self.reads.fetch_by_uuid(uuid).await.map_err(read_error)?,
            None => None,
        }
        .map_or_else(|| old.dn().clone(), |local| local.dn().clone());
        match self.send(&delete(&dn)).await {
            Ok(())
            | Err(Rejected {
                code: NO_SUCH_OBJECT,
                ..
            }) => Ok(()),
            Err(Rejected {
                code: NOT_ALLOWED_ON_NONLEAF,
                ..
            }) => self.delete_subtree(&dn).await,
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes `dn` and everything below it, deepest first.
    async fn delete_subtree(&mut self, dn: &Dn) -> HandlerResult {
        let mut below = self
            .reads
            .search_entries(dn.as_str(), Scope::Subtree, "(objectClass=*)")
            .await
            .map_err(read_error)?;
        below.sort_by_key(|e| std::cmp::Reverse(e.dn().rdns().len()));
        for entry in below {
            match self.send(&delete(entry.dn())).await {
                Ok(())
                | Err(Rejected {
                    code: NO_SUCH_OBJECT,
                    ..
                }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The last change the replica refused (with a result code other than those the
    /// writes answer themselves), taken.
    pub(super) fn take_refused(&mut self) -> Option<Rejected> {
        self.refused.take()
    }

    /// Sends one change record; a refusal the writes do not answer themselves is kept
    /// for [`Replica::take_refused`].
    async fn send(&mut self, record: &ChangeRecord) -> Result<(), Rejected> {
        let result = send_record(&mut self.reads.handle(), record, None).await;
        if let Err(rejected) = &result
            && !ANSWERED.contains(&rejected.code)
        {
            self.refused = Some(rejected.clone());
        }
        result
    }

    /// A shortcut: sends `record` to be made only if its target matches `assertion`;
    /// whether it was made. Any other answer (the assertion failed, no such object, a
    /// refusal) leaves the write to the usual path, which records what it must.
    async fn send_asserted(&self, record: &ChangeRecord, assertion: &str) -> bool {
        send_record(&mut self.reads.handle(), record, Some(assertion))
            .await
            .is_ok()
    }
}

/// Sends `record` on `ldap`, made only if the target entry matches the filter
/// `assertion` (RFC 4528, critical), if there is one; the replica's refusal with the
/// record as LDIF.
pub(super) async fn send_record(
    ldap: &mut ldap3::Ldap,
    record: &ChangeRecord,
    assertion: Option<&str>,
) -> Result<(), Rejected> {
    let dn = record.dn.as_str();
    if let Some(filter) = assertion {
        let control = ldap3::controls::Assertion::new(filter);
        ldap.with_controls(ldap3::controls::RawControl {
            crit: true,
            ..control
        });
    }
    let result = match &record.change {
        Change::Add(entry) => {
            let attrs = entry
                .attributes()
                .map(|a| (a.desc.as_str().as_bytes().to_vec(), value_set(&a.values)))
                .collect();
            ldap.add(dn, attrs).await
        }
        Change::Modify(changes) => {
            let mods = changes
                .iter()
                .map(|m| {
                    let attr = m.attr.as_str().as_bytes().to_vec();
                    let values = value_set(&m.values);
                    match m.op {
                        ModOp::Add => Mod::Add(attr, values),
                        ModOp::Delete => Mod::Delete(attr, values),
                        // The decisions make no increments.
                        ModOp::Replace | ModOp::Increment => Mod::Replace(attr, values),
                    }
                })
                .collect();
            ldap.modify(dn, mods).await
        }
        Change::ModRdn {
            new_rdn,
            delete_old_rdn,
            new_superior,
        } => {
            let rdn = new_rdn.to_string();
            let superior = new_superior.as_ref().map(Dn::as_str);
            ldap.modifydn(dn, &rdn, *delete_old_rdn, superior).await
        }
        Change::Delete => ldap.delete(dn).await,
    };
    match result.and_then(ldap3::LdapResult::success) {
        Ok(_) => Ok(()),
        Err(LdapError::LdapResult { result }) => Err(Rejected {
            code: result.rc,
            message: format!("{} ({})", result.text, result.rc),
            record: listener_core::ldif::change_to_string(record),
        }),
        Err(e) => Err(Rejected {
            code: 0,
            message: e.to_string(),
            record: listener_core::ldif::change_to_string(record),
        }),
    }
}

/// What writing one object came to.
enum Put {
    Done,
    /// Its parent is missing on the replica.
    NoParent,
}

/// A change the replica refused, with the record as LDIF (for `status`, the log and
/// `failed.ldif`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the replica refused the change: {message}\n{record}")]
pub(super) struct Rejected {
    /// The LDAP result code (0: no answer).
    pub(super) code: u32,
    /// The replica's answer.
    pub(super) message: String,
    /// The change record, as LDIF.
    pub(super) record: String,
}

/// `moved` with the stamps (`entryCSN`, `modifyTimestamp`, `modifiersName`) of
/// `before`.
fn restamped(moved: &Entry, before: &Entry) -> Entry {
    let mut entry = moved.clone();
    for stamp in decide::STAMPS {
        if let Some(values) = before.get(stamp) {
            // The names come from an entry: they parse.
            let _ = entry.insert(stamp, values.iter().cloned());
        }
    }
    entry
}

fn delete(dn: &Dn) -> ChangeRecord {
    ChangeRecord {
        dn: dn.clone(),
        controls: Vec::new(),
        change: Change::Delete,
    }
}

fn value_set(values: &[Vec<u8>]) -> HashSet<Vec<u8>> {
    values.iter().cloned().collect()
}

fn read_error(e: crate::listener::fetch::FetchError) -> HandlerError {
    HandlerError::msg(format!("cannot read the replica: {e}"))
}

/// The parent of `dn` as the primary has it.
async fn parent_from_primary(primary: &Fetcher, dn: &Dn) -> Result<Entry, HandlerError> {
    let Some(parent) = dn.parent() else {
        return Err(HandlerError::msg(format!(
            "{dn} has no parent to add first"
        )));
    };
    match primary.fetch_by_dn(&parent).await {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) => Err(HandlerError::msg(format!(
            "{dn}: its parent {parent} is missing on the replica and on the primary"
        ))),
        Err(e) => Err(HandlerError::msg(format!(
            "cannot read {parent} from the primary: {e}"
        ))),
    }
}
