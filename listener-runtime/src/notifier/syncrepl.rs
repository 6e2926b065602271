//! RFC 4533 messages the accesslog follower receives, decoded defensively: a malformed
//! message from the server is an error naming what is wrong.
//!
//! The decoding is our own, on ldap3's BER primitives, on purpose: ldap3's parsers of
//! the sync controls and the Sync Info message unwrap and index into what the server
//! sent, so a malformed message would panic inside the follower and stop the notifier.

use ldap3::asn1::{PL, StructureTag, TagClass, parse_tag};

/// The Sync State control's OID.
pub(crate) const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
/// The Sync Done control's OID.
pub(crate) const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
const SYNC_INFO_OID: &[u8] = b"1.3.6.1.4.1.4203.1.9.1.4";
const ENUMERATED: u64 = 10;
const OCTET_STRING: u64 = 4;
const BOOLEAN: u64 = 1;

/// What is wrong with a sync message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed RFC 4533 message from the server: {0}")]
pub struct DecodeError(pub String);

fn bad(what: &str) -> DecodeError {
    DecodeError(what.to_owned())
}

/// The Sync State control's state of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryState {
    /// Unchanged since the cookie.
    Present,
    /// New since the cookie.
    Add,
    /// Changed since the cookie.
    Modify,
    /// Gone since the cookie.
    Delete,
}

/// The Sync State control sent with each entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncState {
    /// What happened to the entry.
    pub state: EntryState,
    /// The entry's entryUUID, 16 bytes.
    pub entry_uuid: Vec<u8>,
    /// The cookie, if sent.
    pub cookie: Option<Vec<u8>>,
}

impl SyncState {
    /// Decodes the control's value: `SEQUENCE { state ENUMERATED, entryUUID OCTET STRING,
    /// cookie OCTET STRING OPTIONAL }`.
    pub(crate) fn decode(value: &[u8]) -> Result<SyncState, DecodeError> {
        let items = sequence(value)?;
        let mut items = items.into_iter();
        let state = match universal_uint(items.next(), ENUMERATED)? {
            0 => EntryState::Present,
            1 => EntryState::Add,
            2 => EntryState::Modify,
            3 => EntryState::Delete,
            other => return Err(DecodeError(format!("unknown sync state {other}"))),
        };
        let entry_uuid = universal_bytes(items.next(), OCTET_STRING)?;
        let cookie = items
            .next()
            .map(|t| universal_bytes(Some(t), OCTET_STRING))
            .transpose()?;
        Ok(SyncState {
            state,
            entry_uuid,
            cookie,
        })
    }
}

/// The Sync Done control of a refreshOnly search's final result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncDone {
    /// The cookie, if sent.
    pub cookie: Option<Vec<u8>>,
    /// Whether the refresh used delete (not present) semantics.
    pub refresh_deletes: bool,
}

impl SyncDone {
    /// Decodes `SEQUENCE { cookie OCTET STRING OPTIONAL, refreshDeletes BOOLEAN DEFAULT
    /// FALSE }`.
    pub(crate) fn decode(value: &[u8]) -> Result<SyncDone, DecodeError> {
        let mut done = SyncDone {
            cookie: None,
            refresh_deletes: false,
        };
        for item in sequence(value)? {
            match (item.class, item.id, item.payload) {
                (TagClass::Universal, OCTET_STRING, PL::P(c)) => done.cookie = Some(c),
                (TagClass::Universal, BOOLEAN, PL::P(b)) => {
                    done.refresh_deletes = b.first().is_some_and(|&v| v != 0);
                }
                _ => return Err(bad("unexpected element in Sync Done")),
            }
        }
        Ok(done)
    }
}

/// The Sync Info intermediate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyncInfo {
    /// Just a new cookie.
    NewCookie(Vec<u8>),
    /// The refresh's delete phase (or its end).
    RefreshDelete {
        /// The cookie, if sent.
        cookie: Option<Vec<u8>>,
        /// Whether the refresh phase is over.
        refresh_done: bool,
    },
    /// The refresh's present phase (or its end).
    RefreshPresent {
        /// The cookie, if sent.
        cookie: Option<Vec<u8>>,
        /// Whether the refresh phase is over.
        refresh_done: bool,
    },
    /// A set of entryUUIDs (present or deleted).
    SyncIdSet {
        /// The cookie, if sent.
        cookie: Option<Vec<u8>>,
        /// Whether the UUIDs are deletes.
        refresh_deletes: bool,
    },
}

impl SyncInfo {
    /// The cookie the message carries, if any.
    pub(crate) fn cookie(&self) -> Option<&[u8]> {
        match self {
            SyncInfo::NewCookie(c) => Some(c),
            SyncInfo::RefreshDelete { cookie, .. }
            | SyncInfo::RefreshPresent { cookie, .. }
            | SyncInfo::SyncIdSet { cookie, .. } => cookie.as_deref(),
        }
    }

    /// Decodes an IntermediateResponse (`[APPLICATION 25] SEQUENCE { [0] oid, [1] value }`).
    pub(crate) fn decode(message: &StructureTag) -> Result<SyncInfo, DecodeError> {
        if message.class != TagClass::Application || message.id != 25 {
            return Err(bad("not an intermediate response"));
        }
        let PL::C(parts) = &message.payload else {
            return Err(bad("intermediate response is not constructed"));
        };
        let mut oid = None;
        let mut value = None;
        for part in parts {
            match (part.class, part.id, &part.payload) {
                (TagClass::Context, 0, PL::P(bytes)) => oid = Some(bytes.as_slice()),
                (TagClass::Context, 1, PL::P(bytes)) => value = Some(bytes.as_slice()),
                _ => return Err(bad("unexpected element in intermediate response")),
            }
        }
        if oid != Some(SYNC_INFO_OID) {
            return Err(DecodeError(format!(
                "intermediate response with OID {:?}, expected Sync Info",
                oid.map(String::from_utf8_lossy)
            )));
        }
        let value = value.ok_or_else(|| bad("Sync Info without a value"))?;
        let tag = parse(value)?;
        if tag.class != TagClass::Context {
            return Err(bad("Sync Info value is not context-tagged"));
        }
        match (tag.id, tag.payload) {
            (0, PL::P(cookie)) => Ok(SyncInfo::NewCookie(cookie)),
            (id @ 1..=3, PL::C(items)) => {
                let mut cookie = None;
                let mut flag = id != 3; // refreshDone defaults TRUE, refreshDeletes FALSE
                for item in items {
                    match (item.class, item.id, item.payload) {
                        (TagClass::Universal, OCTET_STRING, PL::P(c)) => cookie = Some(c),
                        (TagClass::Universal, BOOLEAN, PL::P(b)) => {
                            flag = b.first().is_some_and(|&v| v != 0);
                        }
                        // syncUUIDs SET OF: the accesslog never sends deletes we act on.
                        (TagClass::Universal, 17, PL::C(_)) if id == 3 => {}
                        _ => return Err(bad("unexpected element in Sync Info")),
                    }
                }
                Ok(match id {
                    1 => SyncInfo::RefreshDelete {
                        cookie,
                        refresh_done: flag,
                    },
                    2 => SyncInfo::RefreshPresent {
                        cookie,
                        refresh_done: flag,
                    },
                    _ => SyncInfo::SyncIdSet {
                        cookie,
                        refresh_deletes: flag,
                    },
                })
            }
            (id, _) => Err(DecodeError(format!("unknown Sync Info choice {id}"))),
        }
    }
}

fn parse(bytes: &[u8]) -> Result<StructureTag, DecodeError> {
    match parse_tag(bytes) {
        Ok(([], tag)) => Ok(tag),
        Ok(_) => Err(bad("trailing bytes after the BER value")),
        Err(_) => Err(bad("not a BER value")),
    }
}

fn sequence(bytes: &[u8]) -> Result<Vec<StructureTag>, DecodeError> {
    let tag = parse(bytes)?;
    match (tag.class, tag.id, tag.payload) {
        (TagClass::Universal, 16, PL::C(items)) => Ok(items),
        _ => Err(bad("expected a SEQUENCE")),
    }
}

fn universal_bytes(tag: Option<StructureTag>, id: u64) -> Result<Vec<u8>, DecodeError> {
    match tag {
        Some(StructureTag {
            class: TagClass::Universal,
            id: got,
            payload: PL::P(bytes),
        }) if got == id => Ok(bytes),
        _ => Err(DecodeError(format!("expected universal tag {id}"))),
    }
}

fn universal_uint(tag: Option<StructureTag>, id: u64) -> Result<u64, DecodeError> {
    let bytes = universal_bytes(tag, id)?;
    if bytes.is_empty() || bytes.len() > 8 {
        return Err(bad("integer of impossible length"));
    }
    Ok(bytes.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_sync_state_as_slapd_sends_it() {
        // SEQUENCE { ENUMERATED 1 (add), OCTET STRING uuid(16), OCTET STRING cookie }
        let mut value = vec![0x30, 0x1a, 0x0a, 0x01, 0x01, 0x04, 0x10];
        value.extend_from_slice(&[0xab; 16]);
        value.extend_from_slice(&[0x04, 0x03, b'r', b'i', b'd']);
        let s = SyncState::decode(&value).unwrap();
        assert_eq!(s.state, EntryState::Add);
        assert_eq!(s.entry_uuid, vec![0xab; 16]);
        assert_eq!(s.cookie.as_deref(), Some(&b"rid"[..]));
    }

    #[test]
    fn malformed_sync_states_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x03, 0x0a, 0x01, 0x09],
            &[0x30, 0x03, 0x0a, 0x01],
            &[0x04, 0x00],
            &[0x30, 0x05, 0x0a, 0x01, 0x01, 0x01, 0x01],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(SyncState::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decodes_sync_done() {
        let done = SyncDone::decode(&[0x30, 0x05, 0x04, 0x03, b'a', b'b', b'c']).unwrap();
        assert_eq!(done.cookie.as_deref(), Some(&b"abc"[..]));
        assert!(!done.refresh_deletes);
        assert_eq!(SyncDone::decode(&[0x30, 0x00]).unwrap().cookie, None);
        assert!(SyncDone::decode(&[0x30, 0x02, 0x02, 0x00]).is_err());
        assert!(SyncDone::decode(&[0x31, 0x00]).is_err());
    }

    fn intermediate(value: Vec<u8>) -> StructureTag {
        StructureTag {
            class: TagClass::Application,
            id: 25,
            payload: PL::C(vec![
                StructureTag {
                    class: TagClass::Context,
                    id: 0,
                    payload: PL::P(SYNC_INFO_OID.to_vec()),
                },
                StructureTag {
                    class: TagClass::Context,
                    id: 1,
                    payload: PL::P(value),
                },
            ]),
        }
    }

    #[test]
    fn decodes_sync_infos() {
        let refresh_delete = intermediate(vec![0xa1, 0x05, 0x04, 0x03, b'a', b'b', b'c']);
        assert_eq!(
            SyncInfo::decode(&refresh_delete).unwrap(),
            SyncInfo::RefreshDelete {
                cookie: Some(b"abc".to_vec()),
                refresh_done: true
            }
        );
        let new_cookie = intermediate(vec![0x80, 0x02, b'x', b'y']);
        assert_eq!(
            SyncInfo::decode(&new_cookie).unwrap().cookie(),
            Some(&b"xy"[..])
        );
        let not_done = intermediate(vec![0xa2, 0x03, 0x01, 0x01, 0x00]);
        assert_eq!(
            SyncInfo::decode(&not_done).unwrap(),
            SyncInfo::RefreshPresent {
                cookie: None,
                refresh_done: false
            }
        );
        for bad in [
            vec![],
            vec![0xa1],
            vec![0x85, 0x00],
            vec![0xa1, 0x02, 0x02, 0x00],
        ] {
            assert!(SyncInfo::decode(&intermediate(bad)).is_err());
        }
    }
}
