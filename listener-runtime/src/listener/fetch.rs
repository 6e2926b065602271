//! The fetch stage (semantics §4 step 2): the current state of a changed object from LDAP.
//!
//! Fetching is separate from applying. The processing loop applies transactions in
//! strict ID order (cache, modules, commit), but the LDAP reads they need do not depend
//! on each other, so they run ahead, many at once over one multiplexed connection
//! ([`Fetcher`] is cheap to clone and every call uses its own clone of the `Ldap` handle;
//! the listener's fetch-ahead window, `super::window::Window`, keeps many in flight). A
//! fetch result is a snapshot taken at or after its transaction, which is all UDL's
//! sequential fetch guarantees too; the apply stage still decides with the cache as of
//! the previous transaction (and may fetch again, e.g. by entryUUID, when its decision
//! needs a different lookup than the one made ahead).
//!
//! Values are kept as bytes exactly as the server sent them (`jpegPhoto`,
//! `userCertificate;binary`): the entry is decoded from the raw protocol message, not
//! through ldap3's `SearchEntry`, which sorts values into text and binary maps, reorders
//! mixed ones and panics on malformed input.

use std::time::Duration;

use futures_util::stream::{Stream, StreamExt};
use ldap3::asn1::{PL, StructureTag, TagClass};
use ldap3::{Ldap, LdapError, ResultEntry, Scope};
use listener_core::{Dn, DnError, Entry};
use tokio_util::task::AbortOnDropHandle;

use super::lifecycle::order::ParentsFirst;
use crate::ldap::LdapSettings;

/// `noSuchObject`: the DN (or the search base) does not exist.
const NO_SUCH_OBJECT: u32 = 32;
/// The protocol op tag of a SearchResultEntry (RFC 4511 §4.5.2).
const SEARCH_RESULT_ENTRY: u64 = 4;
const OCTET_STRING: u64 = 4;
const SEQUENCE: u64 = 16;
const SET: u64 = 17;
/// Objects an initialization's search decodes ahead of the module calls: enough to keep
/// both busy, few enough to bound the memory.
const INIT_CHANNEL: usize = 1000;

/// Why an object could not be fetched. "Not found" and "hidden by ACLs" are not errors
/// but `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The connection to slapd cannot be opened or bound.
    #[error("{0}")]
    Connect(String),
    /// The connection failed or timed out; reconnecting may help.
    #[error("cannot fetch {what} from LDAP: {source}")]
    Ldap {
        /// The DN or entryUUID looked for.
        what: String,
        /// Why (boxed: ldap3's error is large).
        #[source]
        source: Box<LdapError>,
    },
    /// The server refused the search.
    #[error("LDAP search for {what} failed: {text} (result code {rc})")]
    Search {
        /// The DN or entryUUID looked for.
        what: String,
        /// The LDAP result code.
        rc: u32,
        /// The server's diagnostic text.
        text: String,
    },
    /// The server returned a DN our parser rejects.
    #[error(
        "the LDAP server returned an entry for {what} with a DN that cannot be parsed: {source}"
    )]
    BadDn {
        /// The DN or entryUUID looked for.
        what: String,
        /// Why.
        #[source]
        source: DnError,
    },
    /// The server's reply does not decode as an entry.
    #[error("the LDAP server returned a malformed entry for {what}: {reason}")]
    Malformed {
        /// The DN or entryUUID looked for.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A fetch task (of the window or an initialization) panicked or was cancelled.
    #[error("fetching {what} failed: {reason}")]
    Task {
        /// The DN looked for.
        what: String,
        /// The panic or cancellation.
        reason: String,
    },
    /// More than one entry for one entryUUID.
    #[error("{count} entries under {base} have entryUUID {uuid}; an entryUUID must be unique")]
    Ambiguous {
        /// The entryUUID.
        uuid: String,
        /// The search base.
        base: String,
        /// How many were found.
        count: usize,
    },
}

impl FetchError {
    /// Whether a new connection may help (the server went away or timed out).
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Ldap { .. } | FetchError::Connect(_))
            // busy, unavailable, unwilling to perform (e.g. shutting down)
            || matches!(self, FetchError::Search { rc: 51..=53, .. })
    }
}

/// Reads objects as the listener sees them: every user and operational attribute (`*`
/// and `+`), as far as the bind DN's ACLs allow.
///
/// ```no_run
/// # async fn demo(ldap: ldap3::Ldap) -> Result<(), Box<dyn std::error::Error>> {
/// use listener_runtime::testing::Fetcher;
/// use listener_runtime::Dn;
///
/// let fetcher = Fetcher::new(ldap, Dn::parse("dc=example,dc=com")?);
/// let dn = Dn::parse("uid=alice,cn=users,dc=example,dc=com")?;
/// match fetcher.fetch(&dn, None).await? {
///     Some(entry) => println!("{} has entryUUID {:?}", entry.dn(), entry.first_str("entryUUID")),
///     None => println!("{dn} is gone (or hidden from us)"),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Fetcher {
    ldap: Ldap,
    base: Dn,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher on a bound connection, searching by entryUUID under `base`. Operations
    /// time out after 60 s (see [`Fetcher::with_timeout`]).
    pub fn new(ldap: Ldap, base: Dn) -> Fetcher {
        Fetcher {
            ldap,
            base,
            timeout: Some(Duration::from_secs(60)),
        }
    }

    /// Connects and binds with `settings` (the notifier's connect, so the errors name
    /// the URI and bind DN) and returns a fetcher on that connection.
    pub async fn connect(settings: &LdapSettings, base: Dn) -> Result<Fetcher, FetchError> {
        let ldap = crate::ldap::connect(settings)
            .await
            .map_err(|e| FetchError::Connect(e.to_string()))?;
        Ok(Fetcher::new(ldap, base))
    }

    /// Sets the per-search timeout (`None`: wait forever).
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Fetcher {
        self.timeout = timeout;
        self
    }

    /// The base of entryUUID searches.
    pub fn base(&self) -> &Dn {
        &self.base
    }

    /// The current state of an object: by its cached entryUUID if given (a subtree
    /// search under the base, so a move since is followed), else by DN (a base search).
    /// `Ok(None)` when it does not exist or the bind DN may not see it — the listener
    /// treats both as deleted.
    ///
    /// Safe to call from many tasks at once: each call searches on its own clone of the
    /// connection handle, and ldap3 multiplexes them.
    pub async fn fetch(
        &self,
        dn: &Dn,
        cached_uuid: Option<&str>,
    ) -> Result<Option<Entry>, FetchError> {
        match cached_uuid {
            Some(uuid) => {
                self.by_uuid(uuid, &format!("{dn} (entryUUID {uuid})"))
                    .await
            }
            None => self.fetch_by_dn(dn).await,
        }
    }

    /// The object at `dn`, if it exists and is visible.
    pub async fn fetch_by_dn(&self, dn: &Dn) -> Result<Option<Entry>, FetchError> {
        let what = dn.as_str();
        let entries = self
            .search(what, Scope::Base, "(objectClass=*)", what)
            .await?;
        // A base search yields at most one entry; anything else is the server's problem.
        match entries.into_iter().next() {
            Some(raw) => decode_entry(raw, what).map(Some),
            None => Ok(None),
        }
    }

    /// The object with entryUUID `uuid` anywhere under the base, if it exists and is
    /// visible.
    pub async fn fetch_by_uuid(&self, uuid: &str) -> Result<Option<Entry>, FetchError> {
        self.by_uuid(uuid, &format!("entryUUID {uuid}")).await
    }

    /// The connection handle (a clone; ldap3 multiplexes clones).
    pub fn handle(&self) -> Ldap {
        self.ldap.clone()
    }

    /// A search with `*` and `+` whose entries come back as [`Entry`]s (for modules, via
    /// [`crate::Context::search`]); noSuchObject is an empty result.
    pub async fn search_entries(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
    ) -> Result<Vec<Entry>, FetchError> {
        let what = format!("{filter} under {base}");
        self.search(base, scope, filter, &what)
            .await?
            .into_iter()
            .map(|raw| decode_entry(raw, &what))
            .collect()
    }

    /// Every visible object under the base matching `filter` (a module's initialization),
    /// in pages of 1,000 so no server size limit cuts the result short, collected.
    pub async fn search_all(&self, filter: &str) -> Result<Vec<Entry>, FetchError> {
        let mut stream = self.initialization_stream(filter);
        let mut entries = Vec::new();
        while let Some(entry) = stream.next().await {
            entries.push(entry?);
        }
        Ok(entries)
    }

    /// Every visible object under the base matching `filter`, parents before children
    /// (see `lifecycle/order.rs`), as a stream: a module's initialization delivers and
    /// commits while the search still runs, and never holds the whole directory.
    ///
    /// The search runs in a task of its own (so decoding overlaps with the consumer's
    /// work) a bounded channel ahead of the consumer; dropping the stream stops it. A
    /// failed search ends the stream with its error, a panicked one with
    /// [`FetchError::Task`]: a stream that simply ends is complete.
    pub fn initialization_stream(
        &self,
        filter: &str,
    ) -> impl Stream<Item = Result<Entry, FetchError>> + Send + Unpin + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel(INIT_CHANNEL);
        let fetcher = self.clone();
        let filter = filter.to_owned();
        let what = format!("{filter} under {}", self.base);
        let task = AbortOnDropHandle::new(tokio::spawn(async move {
            if let Err(e) = fetcher.search_ordered(&filter, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        }));
        Box::pin(futures_util::stream::unfold(
            (rx, Some(task), what),
            |(mut rx, task, what)| async move {
                if let Some(item) = rx.recv().await {
                    return Some((item, (rx, task, what)));
                }
                // The sender is gone: the search ended, or its task panicked.
                let task = task?;
                match task.await {
                    Ok(()) => None,
                    Err(e) => Some((
                        Err(FetchError::Task {
                            what: what.clone(),
                            reason: e.to_string(),
                        }),
                        (rx, None, what),
                    )),
                }
            },
        ))
    }

    /// The search of [`Fetcher::initialization_stream`], sending each object as soon as
    /// its parent (if delivered at all) went before it. Stops quietly when the receiver
    /// is gone.
    async fn search_ordered(
        &self,
        filter: &str,
        tx: &tokio::sync::mpsc::Sender<Result<Entry, FetchError>>,
    ) -> Result<(), FetchError> {
        use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
        let what = format!("{filter} under {}", self.base);
        let mut ldap = self.ldap.clone();
        if let Some(timeout) = self.timeout {
            ldap.with_timeout(timeout);
        }
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(1000)),
        ];
        let ldap_error = |source| FetchError::Ldap {
            what: what.clone(),
            source: Box::new(source),
        };
        let mut stream = ldap
            .streaming_search_with(
                adapters,
                self.base.as_str(),
                Scope::Subtree,
                filter,
                vec!["*", "+"],
            )
            .await
            .map_err(ldap_error)?;
        let mut order = ParentsFirst::new(&self.base);
        let mut ready = Vec::new();
        while let Some(raw) = stream.next().await.map_err(ldap_error)? {
            let entry = decode_entry(raw, &what)?;
            if let Some(asked) = order.offer(entry, &mut ready) {
                let matches = self.matches(&asked.parent, filter).await?;
                order.answer(asked, matches, &mut ready);
            }
            for entry in ready.drain(..) {
                if tx.send(Ok(entry)).await.is_err() {
                    return Ok(());
                }
            }
        }
        let result = stream.finish().await;
        match result.rc {
            0 | NO_SUCH_OBJECT => {}
            rc => {
                return Err(FetchError::Search {
                    what,
                    rc,
                    text: result.text,
                });
            }
        }
        order.finish(&mut ready);
        for entry in ready {
            if tx.send(Ok(entry)).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Whether the object at `dn` exists, is visible and matches `filter`.
    async fn matches(&self, dn: &Dn, filter: &str) -> Result<bool, FetchError> {
        let mut ldap = self.ldap.clone();
        if let Some(timeout) = self.timeout {
            ldap.with_timeout(timeout);
        }
        let ldap3::SearchResult(entries, result) = ldap
            .search(dn.as_str(), Scope::Base, filter, vec!["1.1"])
            .await
            .map_err(|source| FetchError::Ldap {
                what: dn.to_string(),
                source: Box::new(source),
            })?;
        match result.rc {
            0 | NO_SUCH_OBJECT => Ok(!entries.is_empty()),
            rc => Err(FetchError::Search {
                what: dn.to_string(),
                rc,
                text: result.text,
            }),
        }
    }

    /// `what` names the object in errors.
    async fn by_uuid(&self, uuid: &str, what: &str) -> Result<Option<Entry>, FetchError> {
        let filter = format!("(entryUUID={})", ldap3::ldap_escape(uuid));
        let mut entries = self
            .search(self.base.as_str(), Scope::Subtree, &filter, what)
            .await?;
        match entries.len() {
            0 => Ok(None),
            1 => decode_entry(entries.remove(0), what).map(Some),
            count => Err(FetchError::Ambiguous {
                uuid: uuid.to_owned(),
                base: self.base.to_string(),
                count,
            }),
        }
    }

    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        what: &str,
    ) -> Result<Vec<ResultEntry>, FetchError> {
        // A clone per call: ldap3 multiplexes clones over one connection, so concurrent
        // fetches do not wait for each other.
        let mut ldap = self.ldap.clone();
        if let Some(timeout) = self.timeout {
            ldap.with_timeout(timeout);
        }
        let ldap3::SearchResult(entries, result) = ldap
            .search(base, scope, filter, vec!["*", "+"])
            .await
            .map_err(|source| FetchError::Ldap {
                what: what.to_owned(),
                source: Box::new(source),
            })?;
        match result.rc {
            0 => Ok(entries),
            // The object (or, for an entryUUID search, the base) is not there. An object
            // hidden by ACLs looks the same (slapd answers noSuchObject or no entry), and
            // the listener treats both as deleted.
            NO_SUCH_OBJECT => Ok(Vec::new()),
            rc => Err(FetchError::Search {
                what: what.to_owned(),
                rc,
                text: result.text,
            }),
        }
    }
}

/// Decodes a SearchResultEntry (RFC 4511 §4.5.2) into an [`Entry`], values as bytes,
/// attribute descriptions as sent (options such as `;binary` included). Never panics on
/// what the server sent.
fn decode_entry(raw: ResultEntry, what: &str) -> Result<Entry, FetchError> {
    let malformed = |reason: &str| FetchError::Malformed {
        what: what.to_owned(),
        reason: reason.to_owned(),
    };
    let tag = raw.0;
    if tag.class != TagClass::Application || tag.id != SEARCH_RESULT_ENTRY {
        return Err(malformed("not a SearchResultEntry"));
    }
    let PL::C(parts) = tag.payload else {
        return Err(malformed("entry is not a sequence"));
    };
    let mut parts = parts.into_iter();
    let dn_bytes = octets(parts.next()).ok_or_else(|| malformed("no DN"))?;
    let dn_text = String::from_utf8(dn_bytes).map_err(|_| malformed("DN is not UTF-8"))?;
    let dn = Dn::parse(&dn_text).map_err(|source| FetchError::BadDn {
        what: what.to_owned(),
        source,
    })?;
    let attributes = constructed(parts.next(), SEQUENCE)
        .ok_or_else(|| malformed("attribute list is not a sequence"))?;
    let mut entry = Entry::new(dn);
    for attribute in attributes {
        let mut pair = constructed(Some(attribute), SEQUENCE)
            .ok_or_else(|| malformed("attribute is not a sequence"))?
            .into_iter();
        let name = octets(pair.next())
            .and_then(|n| String::from_utf8(n).ok())
            .ok_or_else(|| malformed("attribute without a UTF-8 name"))?;
        let values = constructed(pair.next(), SET)
            .ok_or_else(|| malformed(&format!("values of {name} are not a set")))?;
        for value in values {
            let value = octets(Some(value))
                .ok_or_else(|| malformed(&format!("a value of {name} is not an octet string")))?;
            entry
                .push_value(&name, value)
                .map_err(|e| FetchError::Malformed {
                    what: what.to_owned(),
                    reason: format!("attribute {name:?}: {e}"),
                })?;
        }
    }
    Ok(entry)
}

fn octets(tag: Option<StructureTag>) -> Option<Vec<u8>> {
    match tag? {
        StructureTag {
            class: TagClass::Universal,
            id: OCTET_STRING,
            payload: PL::P(bytes),
        } => Some(bytes),
        _ => None,
    }
}

fn constructed(tag: Option<StructureTag>, id: u64) -> Option<Vec<StructureTag>> {
    match tag? {
        StructureTag {
            class: TagClass::Universal,
            id: got,
            payload: PL::C(items),
        } if got == id => Some(items),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn octet(bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: OCTET_STRING,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn seq(id: u64, items: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::C(items),
        }
    }

    fn entry(parts: Vec<StructureTag>) -> ResultEntry {
        ResultEntry::new(StructureTag {
            class: TagClass::Application,
            id: SEARCH_RESULT_ENTRY,
            payload: PL::C(parts),
        })
    }

    #[test]
    fn decodes_values_as_bytes_in_order() {
        let photo = [0xff, 0xd8, 0x00, 0x80, b'a'];
        let raw = entry(vec![
            octet(b"cn=x,dc=example"),
            seq(
                SEQUENCE,
                vec![
                    seq(SEQUENCE, vec![octet(b"cn"), seq(SET, vec![octet(b"x")])]),
                    seq(
                        SEQUENCE,
                        vec![
                            octet(b"jpegPhoto"),
                            seq(SET, vec![octet(b"text"), octet(&photo)]),
                        ],
                    ),
                    seq(
                        SEQUENCE,
                        vec![
                            octet(b"userCertificate;binary"),
                            seq(SET, vec![octet(&[0])]),
                        ],
                    ),
                ],
            ),
        ]);
        let e = decode_entry(raw, "test").unwrap();
        assert_eq!(e.dn().as_str(), "cn=x,dc=example");
        assert_eq!(
            e.get("jpegPhoto").unwrap(),
            [b"text".to_vec(), photo.to_vec()]
        );
        assert_eq!(e.get("userCertificate;binary").unwrap(), [vec![0u8]]);
        assert_eq!(e.first_str("CN"), Some("x"));
    }

    #[test]
    fn malformed_entries_are_errors_not_panics() {
        let attrs = || seq(SEQUENCE, vec![]);
        for raw in [
            entry(vec![]),
            entry(vec![octet(b"cn=x")]),
            entry(vec![octet(&[0xff]), attrs()]),
            entry(vec![seq(SEQUENCE, vec![]), attrs()]),
            entry(vec![octet(b"cn=x"), octet(b"attrs")]),
            entry(vec![octet(b"cn=x"), seq(SEQUENCE, vec![octet(b"cn")])]),
            entry(vec![
                octet(b"cn=x"),
                seq(SEQUENCE, vec![seq(SEQUENCE, vec![octet(b"cn")])]),
            ]),
            entry(vec![
                octet(b"cn=x"),
                seq(
                    SEQUENCE,
                    vec![seq(SEQUENCE, vec![octet(b"cn"), seq(SET, vec![attrs()])])],
                ),
            ]),
            entry(vec![
                octet(b"cn=x"),
                seq(
                    SEQUENCE,
                    vec![seq(
                        SEQUENCE,
                        vec![octet(b"bad name!"), seq(SET, vec![octet(b"v")])],
                    )],
                ),
            ]),
            ResultEntry::new(octet(b"cn=x")),
        ] {
            assert!(
                matches!(
                    decode_entry(raw.clone(), "t"),
                    Err(FetchError::Malformed { .. })
                ),
                "{raw:?}"
            );
        }
        let bad_dn = entry(vec![octet(b"not a dn"), attrs()]);
        let err = decode_entry(bad_dn, "t").unwrap_err();
        assert!(matches!(err, FetchError::BadDn { .. }));
        assert!(err.to_string().contains("not a dn"), "{err}");
    }
}
