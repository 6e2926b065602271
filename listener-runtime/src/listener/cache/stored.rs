//! The on-disk form of the cache's values: serde structs encoded with `postcard`.
//!
//! listener-core stays free of serde, so entries are converted to records: the DN and
//! attribute descriptions as spelled (normalized forms are recomputed on load) and values
//! as raw bytes. The records borrow from what they encode and from the bytes they are
//! decoded from, so neither direction copies attribute values more than once.
//!
//! A value of the `entries` table is an [`EntryHead`] (entryUUID and registered modules)
//! followed by an [`EntryBody`] (DN and attributes), so the indexes can be kept in step
//! with a record by decoding its head only, and the registrations rewritten by re-encoding
//! the head in front of the unchanged body bytes. Failed events and pending creates keep
//! the older [`EntryRecord`] form.
//!
//! Changing a record's layout changes the file format: bump [`super::tables::FORMAT_VERSION`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use listener_core::{Command, Dn, Entry};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::records::{FailedEvent, ModulePhase, ModuleState, PendingCreate};

/// An attribute value, written as a postcard byte string (length + bytes) rather than a
/// sequence of `u8` elements, which serde would otherwise make of a `[u8]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Value<'a>(pub &'a [u8]);

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a [u8]>::deserialize(d).map(Value)
    }
}

/// An entry inside a failed event or a pending create: the DN and attributes as spelled,
/// values as raw bytes.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EntryRecord<'a> {
    pub dn: &'a str,
    /// The entryUUID, lower-cased (unused in these records: always `None`).
    pub uuid: Option<&'a str>,
    #[serde(borrow)]
    pub attrs: Vec<(&'a str, Vec<Value<'a>>)>,
}

impl<'a> EntryRecord<'a> {
    pub(super) fn new(entry: &'a Entry) -> EntryRecord<'a> {
        EntryRecord {
            dn: entry.dn().as_str(),
            uuid: None,
            attrs: attrs_of(entry),
        }
    }

    pub(super) fn to_entry(&self) -> Result<Entry, String> {
        to_entry(self.dn, &self.attrs)
    }
}

/// What a value of the `entries` table starts with: everything the indexes derive from
/// the entry. The writer decodes just this from the value it replaces or removes to bring
/// the uuid index and the registration counts up to date, and the fetch-ahead window
/// reads the uuid from it, without decoding the attributes. An [`EntryBody`] follows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct EntryHead<'a> {
    /// The entryUUID, lower-cased: what the uuid index holds for this entry.
    pub uuid: Option<&'a str>,
    /// The modules registered on the entry, sorted and without duplicates: what
    /// `registered_counts` counts.
    #[serde(borrow)]
    pub modules: Vec<&'a str>,
}

impl<'a> EntryHead<'a> {
    /// A head registering `modules` (in any order, repeats allowed).
    pub(super) fn new(
        uuid: Option<&'a str>,
        modules: impl IntoIterator<Item = &'a str>,
    ) -> EntryHead<'a> {
        let mut modules: Vec<&str> = modules.into_iter().collect();
        modules.sort_unstable();
        modules.dedup();
        EntryHead { uuid, modules }
    }
}

/// The rest of a value of the `entries` table, after its [`EntryHead`].
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct EntryBody<'a> {
    pub dn: &'a str,
    #[serde(borrow)]
    pub attrs: Vec<(&'a str, Vec<Value<'a>>)>,
}

impl EntryBody<'_> {
    pub(super) fn to_entry(&self) -> Result<Entry, String> {
        to_entry(self.dn, &self.attrs)
    }
}

/// An entry encoded as an [`EntryBody`] straight from the entry, without building the
/// body's vectors first: the same bytes (a test holds them equal).
struct BodyOf<'a>(&'a Entry);

impl Serialize for BodyOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut body = s.serialize_struct("EntryBody", 2)?;
        body.serialize_field("dn", self.0.dn().as_str())?;
        body.serialize_field("attrs", &AttrsOf(self.0))?;
        body.end()
    }
}

struct AttrsOf<'a>(&'a Entry);

impl Serialize for AttrsOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .attributes()
                .map(|a| (a.desc.as_str(), ValuesOf(&a.values))),
        )
    }
}

struct ValuesOf<'a>(&'a [Vec<u8>]);

impl Serialize for ValuesOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|v| Value(v)))
    }
}

/// Encodes a value of the `entries` table: `head`, then `entry` as an [`EntryBody`], one
/// postcard encoding after the other.
pub(super) fn encode_stored(head: &EntryHead<'_>, entry: &Entry) -> Result<Vec<u8>, String> {
    let bytes = encode(head)?;
    postcard::to_extend(&BodyOf(entry), bytes).map_err(|e| e.to_string())
}

/// Whether `body`, the encoded [`EntryBody`] of a stored value, is `entry` as it stands:
/// the DN as spelled, and the attributes and their values in the same order, byte for
/// byte. Comparing encodings spares decoding the stored attributes.
pub(super) fn body_is(body: &[u8], entry: &Entry) -> bool {
    postcard::to_extend(&BodyOf(entry), Vec::with_capacity(body.len()))
        .is_ok_and(|encoded| encoded == body)
}

/// A value of the `entries` table with a new head in front of `body`, an encoded
/// [`EntryBody`] taken from the value it replaces.
pub(super) fn reencode_stored(head: &EntryHead<'_>, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut bytes = encode(head)?;
    bytes.extend_from_slice(body);
    Ok(bytes)
}

/// The entryUUID in a value of the `entries` table, decoding nothing after it.
pub(super) fn stored_uuid(bytes: &[u8]) -> Result<Option<&str>, String> {
    decode_prefix::<Option<&str>>(bytes)
}

/// Splits a value of the `entries` table into its decoded head and the encoded body.
pub(super) fn split_stored(bytes: &[u8]) -> Result<(EntryHead<'_>, &[u8]), String> {
    postcard::take_from_bytes(bytes).map_err(|e| e.to_string())
}

/// Decodes a whole value of the `entries` table.
pub(super) fn decode_stored(bytes: &[u8]) -> Result<(EntryHead<'_>, EntryBody<'_>), String> {
    let (head, body) = split_stored(bytes)?;
    Ok((head, decode(body)?))
}

fn attrs_of(entry: &Entry) -> Vec<(&str, Vec<Value<'_>>)> {
    entry
        .attributes()
        .map(|a| (a.desc.as_str(), a.values.iter().map(|v| Value(v)).collect()))
        .collect()
}

fn to_entry(dn: &str, attrs: &[(&str, Vec<Value<'_>>)]) -> Result<Entry, String> {
    let dn_parsed = Dn::parse(dn).map_err(|e| format!("its DN {dn:?}: {e}"))?;
    let mut entry = Entry::new(dn_parsed);
    for (name, values) in attrs {
        entry
            .insert(name, values.iter().map(|v| v.0.to_vec()))
            .map_err(|e| format!("attribute {name:?}: {e}"))?;
    }
    Ok(entry)
}

/// The lower-cased entryUUID of an entry, the uuid index's key.
pub(super) fn entry_uuid(entry: &Entry) -> Option<String> {
    entry.first_str("entryUUID").map(str::to_ascii_lowercase)
}

#[derive(Debug, Serialize, Deserialize)]
enum PhaseRecord<'a> {
    Initializing { progress: Option<&'a str> },
    Ready,
    Failed { error: &'a str },
}

/// A module's state as stored in the `module_states` table.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ModuleStateRecord<'a> {
    #[serde(borrow)]
    phase: PhaseRecord<'a>,
    filter: &'a str,
    #[serde(borrow)]
    attributes: Vec<&'a str>,
    changed_us: u64,
}

impl<'a> ModuleStateRecord<'a> {
    pub(super) fn new(state: &'a ModuleState) -> ModuleStateRecord<'a> {
        ModuleStateRecord {
            phase: match &state.phase {
                ModulePhase::Initializing { progress } => PhaseRecord::Initializing {
                    progress: progress.as_deref(),
                },
                ModulePhase::Ready => PhaseRecord::Ready,
                ModulePhase::Failed { error } => PhaseRecord::Failed { error },
            },
            filter: &state.filter,
            attributes: state.attributes.iter().map(String::as_str).collect(),
            changed_us: to_micros(state.changed),
        }
    }

    pub(super) fn to_state(&self) -> ModuleState {
        ModuleState {
            phase: match self.phase {
                PhaseRecord::Initializing { progress } => ModulePhase::Initializing {
                    progress: progress.map(str::to_owned),
                },
                PhaseRecord::Ready => ModulePhase::Ready,
                PhaseRecord::Failed { error } => ModulePhase::Failed {
                    error: error.to_owned(),
                },
            },
            filter: self.filter.to_owned(),
            attributes: self.attributes.iter().map(|&a| a.to_owned()).collect(),
            changed: from_micros(self.changed_us),
        }
    }
}

/// A failed event as stored in the `failed_events` table.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct FailedRecord<'a> {
    transaction_id: u64,
    dn: &'a str,
    entry_uuid: &'a str,
    command: char,
    #[serde(borrow)]
    old: Option<EntryRecord<'a>>,
    #[serde(borrow)]
    new: Option<EntryRecord<'a>>,
    error: &'a str,
    attempts: u32,
    time_us: u64,
}

impl<'a> FailedRecord<'a> {
    pub(super) fn new(event: &'a FailedEvent) -> FailedRecord<'a> {
        let record = |e: &'a Entry| EntryRecord::new(e);
        FailedRecord {
            transaction_id: event.transaction_id,
            dn: event.dn.as_str(),
            entry_uuid: &event.entry_uuid,
            command: event.command.letter(),
            old: event.old.as_ref().map(record),
            new: event.new.as_ref().map(record),
            error: &event.error,
            attempts: event.attempts,
            time_us: to_micros(event.time),
        }
    }

    pub(super) fn to_event(&self) -> Result<FailedEvent, String> {
        let entry = |r: &Option<EntryRecord<'_>>| r.as_ref().map(EntryRecord::to_entry).transpose();
        Ok(FailedEvent {
            transaction_id: self.transaction_id,
            dn: Dn::parse(self.dn).map_err(|e| format!("its DN {:?}: {e}", self.dn))?,
            entry_uuid: self.entry_uuid.to_owned(),
            command: Command::from_letter(self.command)
                .ok_or_else(|| format!("unknown command letter {:?}", self.command))?,
            old: entry(&self.old).map_err(|e| format!("old entry: {e}"))?,
            new: entry(&self.new).map_err(|e| format!("new entry: {e}"))?,
            error: self.error.to_owned(),
            attempts: self.attempts,
            time: from_micros(self.time_us),
        })
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| e.to_string())
}

/// Decodes a whole record; trailing bytes mean the record is not what we think it is.
pub(super) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("{} unexpected trailing bytes", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

/// Decodes the leading fields of a record, ignoring the rest.
pub(super) fn decode_prefix<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::take_from_bytes(bytes)
        .map(|(value, _)| value)
        .map_err(|e| e.to_string())
}

fn to_micros(time: SystemTime) -> u64 {
    // Times before 1970 do not occur here; clamp rather than fail.
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn from_micros(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

/// A [`PendingCreate`] as stored in `meta`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PendingRecord<'a> {
    transaction_id: u64,
    #[serde(borrow)]
    entry: EntryRecord<'a>,
    #[serde(borrow)]
    modules: Vec<&'a str>,
}

impl<'a> PendingRecord<'a> {
    pub(super) fn new(pending: &'a PendingCreate) -> PendingRecord<'a> {
        PendingRecord {
            transaction_id: pending.transaction_id,
            entry: EntryRecord::new(&pending.entry),
            modules: pending.modules.iter().map(String::as_str).collect(),
        }
    }

    pub(super) fn to_pending(&self) -> Result<PendingCreate, String> {
        Ok(PendingCreate {
            transaction_id: self.transaction_id,
            entry: self.entry.to_entry()?,
            modules: self.modules.iter().map(|m| (*m).to_owned()).collect(),
        })
    }
}
