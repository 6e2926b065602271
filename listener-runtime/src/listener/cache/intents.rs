//! The intents file: [`PendingCreate`]s under group commit. With `--durability each`
//! every pending create is a durable (fsynced) cache commit before the module calls. With
//! group commit that would cost an fsync per create (4 ms on this machine, a fifth of the
//! catch-up budget), so the record is appended to `<cache-dir>/intents` instead: written
//! through to the operating system before the calls (a killed listener loses nothing),
//! made durable with the group's sync, and emptied once the cache commit covering it is
//! durable. After a crash of the operating system itself, creates of the last group whose
//! objects are gone by the restart are not undone; `--durability each` closes that gap.
//!
//! A record is `[len: u32 LE][crc32: u32 LE][postcard PendingRecord]`; reading stops at
//! the first torn or damaged record (the tail of an interrupted append).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::PendingCreate;
use super::error::{CacheError, Result};
use super::stored::{PendingRecord, decode, encode};

/// The file's name in the cache directory.
pub(crate) const INTENTS_FILE: &str = "intents";

/// The append-only file of pending creates.
#[derive(Debug)]
pub(crate) struct Intents {
    file: File,
    path: PathBuf,
}

impl Intents {
    /// Opens (or creates) the file in `dir` and returns the pending creates it holds.
    pub(crate) fn open(dir: &Path) -> Result<(Intents, Vec<PendingCreate>)> {
        let path = dir.join(INTENTS_FILE);
        let io = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let pending = parse(&bytes);
        Ok((Intents { file, path }, pending))
    }

    /// Appends `pending` with one write: in the operating system's hands when this returns.
    pub(crate) fn append(&mut self, pending: &PendingCreate) -> Result<()> {
        let body = encode(&PendingRecord::new(pending)).map_err(|reason| CacheError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(reason),
        })?;
        let len = u32::try_from(body.len()).map_err(|_| CacheError::Io {
            path: self.path.clone(),
            source: std::io::Error::other("a pending create larger than 4 GiB"),
        })?;
        let mut record = Vec::with_capacity(body.len() + 8);
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        record.extend_from_slice(&body);
        self.file
            .write_all(&record)
            .map_err(|source| CacheError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Empties the file (the cache commits covering its records are durable), keeping
    /// `still_pending` (recovered records the replay has not reached yet).
    pub(crate) fn reset(&mut self, still_pending: &[PendingCreate]) -> Result<()> {
        self.file.set_len(0).map_err(|source| CacheError::Io {
            path: self.path.clone(),
            source,
        })?;
        for pending in still_pending {
            self.append(pending)?;
        }
        Ok(())
    }
}

/// The records of `bytes` up to the first torn or damaged one.
fn parse(mut bytes: &[u8]) -> Vec<PendingCreate> {
    let mut out = Vec::new();
    while bytes.len() >= 8 {
        let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let Some(body) = bytes.get(8..8 + len) else {
            break;
        };
        if crc32fast::hash(body) != crc {
            break;
        }
        match decode::<PendingRecord<'_>>(body).and_then(|r| r.to_pending()) {
            Ok(pending) => out.push(pending),
            Err(reason) => {
                tracing::warn!(%reason, "a damaged record in the intents file; ignoring it and what follows");
                break;
            }
        }
        bytes = &bytes[8 + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use listener_core::{Dn, Entry};

    fn pending(id: u64) -> PendingCreate {
        let mut entry = Entry::new(Dn::parse(&format!("cn=o{id},dc=test")).unwrap());
        entry
            .push_value("cn", format!("o{id}").into_bytes())
            .unwrap();
        PendingCreate {
            transaction_id: id,
            entry,
            modules: ["printer".to_owned()].into(),
        }
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut intents, found) = Intents::open(dir.path()).unwrap();
        assert!(found.is_empty());
        intents.append(&pending(1)).unwrap();
        intents.append(&pending(2)).unwrap();
        drop(intents);
        let (_, found) = Intents::open(dir.path()).unwrap();
        assert_eq!(found, vec![pending(1), pending(2)]);

        // An append interrupted halfway.
        let path = dir.path().join(INTENTS_FILE);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 3]).unwrap();
        let (_, found) = Intents::open(dir.path()).unwrap();
        assert_eq!(found, vec![pending(1)]);

        // A flipped bit.
        let mut bad = full.clone();
        bad[10] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let (_, found) = Intents::open(dir.path()).unwrap();
        assert!(found.is_empty());
    }

    #[test]
    fn reset_keeps_only_what_is_still_pending() {
        let dir = tempfile::tempdir().unwrap();
        let (mut intents, _) = Intents::open(dir.path()).unwrap();
        intents.append(&pending(1)).unwrap();
        intents.append(&pending(2)).unwrap();
        intents.reset(&[pending(7)]).unwrap();
        intents.append(&pending(8)).unwrap();
        let (_, found) = Intents::open(dir.path()).unwrap();
        assert_eq!(found, vec![pending(7), pending(8)]);
    }
}
