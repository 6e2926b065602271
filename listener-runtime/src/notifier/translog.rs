//! The notifier's transaction log: an append-only file of checksummed records with an ID
//! index beside it, in the notifier's data directory.
//!
//! * `translog.dat` holds transaction records and, after each group of them, a commit
//!   record carrying the accesslog cookie that covers them: one append and one `fdatasync`
//!   commit both, so a restart (also after `kill -9`) resumes from the cookie with no gap
//!   and no duplicate. Records after the last commit record belong to an append that
//!   never finished and are cut on open.
//! * `translog.idx` maps an ID to its record's offset (O(1) lookup). It is derived data,
//!   so an append does not wait for it: it is synced once every [`INDEX_SYNC_EVERY`]
//!   entries, after which its header counts the entries known to be on disk. On open only
//!   those are trusted (and checked against the log); the log is read from there and
//!   the rest of the index written again.
//! * A torn tail (a crash in the middle of an append) fails its length or checksum and is
//!   cut on open; it was never acknowledged, because IDs are served only after the sync.
//! * A lock on `lock` keeps a second notifier off the directory.
//! * `log-id` holds a random identity made when the log is created: the name of this ID
//!   space, so a listener can tell a notifier whose IDs are not the ones it followed.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use listener_core::Command;

const DATA_FILE: &str = "translog.dat";
const INDEX_FILE: &str = "translog.idx";
const IDENTITY_FILE: &str = "log-id";
/// Magic, first ID, entries synced.
const INDEX_MAGIC: &[u8; 8] = b"LSTNIDX2";
const INDEX_HEADER: u64 = 24;
/// Index entries written between two syncs of the index: after a crash, at most this
/// many records of the log are read again on open.
pub(crate) const INDEX_SYNC_EVERY: u64 = 4096;
const RECORD_HEADER: usize = 8;
/// Larger records are taken as garbage (a DN is at most a few KiB in practice).
const MAX_RECORD: u32 = 1 << 20;
const KIND_TRANSACTION: u8 = 1;
const KIND_COMMIT: u8 = 2;

/// One transaction: a write in the directory as listeners see it (semantics §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// The transaction ID (consecutive from 1).
    pub id: u64,
    /// The DN as the client spelled it.
    pub dn: String,
    /// `a`, `m`, `d` or `r`.
    pub command: Command,
    /// The object's entryUUID (empty when the accesslog did not record one).
    pub entry_uuid: String,
    /// The change's CSN.
    pub csn: String,
    /// When the write happened, in microseconds since the Unix epoch.
    pub time_us: i64,
}

impl Transaction {
    /// UDN's text form, `<id> <dn> <cmd>`.
    pub fn to_line(&self) -> String {
        format!("{} {} {}", self.id, self.dn, self.command)
    }
}

/// What can go wrong with the transaction log.
#[derive(Debug, thiserror::Error)]
pub enum TranslogError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Another notifier holds the directory.
    #[error(
        "{path} is in use by another notifier (its lock is held); stop that notifier or \
         choose another --data-dir"
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// An append that does not continue the IDs.
    #[error("transaction {got} cannot follow {last}: IDs must be consecutive")]
    NotConsecutive {
        /// The log's last ID.
        last: u64,
        /// The ID offered.
        got: u64,
    },
    /// A change to a log opened read-only.
    #[error("{path}: the transaction log was opened read-only")]
    ReadOnly {
        /// The data directory.
        path: PathBuf,
    },
    /// A damaged record with valid data after it (not a torn tail).
    #[error("{path}: record at byte {offset} is damaged ({reason}) and is followed by valid data")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

type Result<T> = std::result::Result<T, TranslogError>;

/// An open transaction log (holding the directory's lock).
pub struct Translog {
    dir: PathBuf,
    data: File,
    index: File,
    data_len: u64,
    /// ID of the first record in the log (0 while it is empty).
    first_id: u64,
    last_id: u64,
    cookie: Option<Vec<u8>>,
    /// The ID space's name (see the module docs); empty in a read-only view of a log
    /// made before identities existed.
    identity: String,
    /// Index entries on disk that are in use (IDs `first_id..first_id + indexed`).
    indexed: u64,
    /// How many of those are known to be on disk (synced), as the header records.
    index_synced: u64,
    /// Offsets of the IDs after those, kept in memory by a read-only log (a writable one
    /// writes them to the index on open).
    unindexed: Vec<u64>,
    /// `None` for a read-only view, which never changes the files.
    lock: Option<File>,
}

/// A decoded record.
enum Record {
    Transaction(Transaction),
    /// The end of an append, with the cookie known then.
    Commit(Option<Vec<u8>>),
}

impl Translog {
    /// Opens (or creates) the log in `dir`, takes the lock, cuts a torn tail and brings
    /// the index in line with the log.
    pub fn open(dir: &Path) -> Result<Translog> {
        let lock = crate::dir_lock::lock(dir).map_err(|e| match e {
            crate::dir_lock::LockError::Held => TranslogError::Locked {
                path: dir.to_owned(),
            },
            crate::dir_lock::LockError::Io(path, source) => TranslogError::Io { path, source },
        })?;
        let data = open_rw(&dir.join(DATA_FILE))?;
        let index = open_rw(&dir.join(INDEX_FILE))?;
        Translog::recovered(dir, data, index, Some(lock))
    }

    /// Opens the log for reading only, beside a running notifier: no lock, no change to
    /// the files; it sees what was committed when it was opened.
    pub fn open_read_only(dir: &Path) -> Result<Translog> {
        let data_path = dir.join(DATA_FILE);
        let data = File::open(&data_path).map_err(io_at(&data_path))?;
        let index_path = dir.join(INDEX_FILE);
        // A missing index is rebuilt in memory.
        let index = match File::open(&index_path) {
            Ok(index) => index,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                File::open("/dev/null").map_err(io_at(Path::new("/dev/null")))?
            }
            Err(e) => return Err(io_at(&index_path)(e)),
        };
        Translog::recovered(dir, data, index, None)
    }

    fn recovered(dir: &Path, data: File, index: File, lock: Option<File>) -> Result<Translog> {
        let mut log = Translog {
            dir: dir.to_owned(),
            data,
            index,
            data_len: 0,
            first_id: 0,
            last_id: 0,
            cookie: None,
            identity: String::new(),
            indexed: 0,
            index_synced: 0,
            unindexed: Vec::new(),
            lock,
        };
        log.recover()?;
        log.identity = log.load_identity()?;
        Ok(log)
    }

    /// Reads `log-id`, creating it (in a writable log) if it is missing.
    fn load_identity(&self) -> Result<String> {
        let path = self.dir.join(IDENTITY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok(text.trim().to_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
        if self.lock.is_none() {
            return Ok(String::new());
        }
        let mut random = [0u8; 16];
        File::open("/dev/urandom")
            .and_then(|f| f.read_exact_at(&mut random, 0))
            .map_err(io_at(Path::new("/dev/urandom")))?;
        let identity: String = random.iter().map(|b| format!("{b:02x}")).collect();
        replace_file(&path, format!("{identity}\n").as_bytes())?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&self.dir))?;
        Ok(identity)
    }

    /// The random name of this log's ID space, made when the log was created.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn writable(&self) -> Result<()> {
        match self.lock {
            Some(_) => Ok(()),
            None => Err(TranslogError::ReadOnly {
                path: self.dir.clone(),
            }),
        }
    }

    /// The highest ID in the log (0 when empty).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// The lowest ID still in the log (after pruning), or `None` when empty.
    pub fn first_id(&self) -> Option<u64> {
        (self.first_id != 0).then_some(self.first_id)
    }

    /// The accesslog cookie committed with the last group of transactions.
    pub fn cookie(&self) -> Option<&[u8]> {
        self.cookie.as_deref()
    }

    /// Appends transactions (IDs must continue the log) and the cookie that covers them,
    /// durably: when this returns, a crash cannot lose them.
    pub fn append(&mut self, transactions: &[Transaction], cookie: Option<&[u8]>) -> Result<()> {
        self.writable()?;
        let mut expected = self.last_id + 1;
        let mut buf = Vec::new();
        let mut offsets = Vec::with_capacity(transactions.len() * 8);
        for t in transactions {
            if t.id != expected {
                return Err(TranslogError::NotConsecutive {
                    last: expected - 1,
                    got: t.id,
                });
            }
            expected += 1;
            offsets.extend_from_slice(&(self.data_len + buf.len() as u64).to_le_bytes());
            encode_transaction(t, &mut buf);
        }
        let cookie = cookie.or(self.cookie.as_deref()).map(<[u8]>::to_vec);
        if transactions.is_empty() && cookie == self.cookie {
            return Ok(());
        }
        encode_commit(cookie.as_deref(), &mut buf);
        let data_path = self.dir.join(DATA_FILE);
        let written = self
            .data
            .write_all_at(&buf, self.data_len)
            .and_then(|()| self.data.sync_data());
        if let Err(e) = written {
            // Leave no half-written record behind for the next append to follow.
            let _ = self.data.set_len(self.data_len);
            return Err(io_at(&data_path)(e));
        }
        if self.first_id == 0
            && let Some(first) = transactions.first()
        {
            self.first_id = first.id;
            self.write_index_header()?;
        }
        // The index is not synced here: the data's sync made the append durable, and
        // an index entry not yet synced is not trusted after a crash.
        let index_path = self.dir.join(INDEX_FILE);
        let index_end = self.index_offset(self.last_id + 1);
        self.index
            .write_all_at(&offsets, index_end)
            .map_err(io_at(&index_path))?;
        self.data_len += buf.len() as u64;
        self.indexed += transactions.len() as u64;
        self.last_id = expected - 1;
        self.cookie = cookie;
        if self.indexed - self.index_synced >= INDEX_SYNC_EVERY {
            self.sync_index()?;
        }
        Ok(())
    }

    /// Syncs the index, then records in its header that every entry is on disk. The
    /// header itself is not synced: until it is on disk, fewer entries are trusted.
    fn sync_index(&mut self) -> Result<()> {
        self.index
            .sync_data()
            .map_err(io_at(&self.dir.join(INDEX_FILE)))?;
        self.index_synced = self.indexed;
        self.write_index_header()
    }

    /// Looks a transaction up by ID.
    pub fn get(&self, id: u64) -> Result<Option<Transaction>> {
        if self.first_id == 0 || id < self.first_id || id > self.last_id {
            return Ok(None);
        }
        let k = id - self.first_id;
        let offset = match k.checked_sub(self.indexed) {
            Some(i) => self.unindexed.get(i as usize).copied().unwrap_or(u64::MAX),
            None => {
                let mut raw = [0u8; 8];
                let index_path = self.dir.join(INDEX_FILE);
                self.index
                    .read_exact_at(&mut raw, self.index_offset(id))
                    .map_err(io_at(&index_path))?;
                u64::from_le_bytes(raw)
            }
        };
        match read_record(&self.data, offset, self.data_len) {
            Ok((Record::Transaction(t), _)) if t.id == id => Ok(Some(t)),
            Ok(_) => Err(self.corrupt(offset, format!("index entry for {id} points elsewhere"))),
            Err(reason) => Err(self.corrupt(offset, reason)),
        }
    }

    /// Transactions from `from` (inclusive) up to at most `max` of them.
    pub fn range(&self, from: u64, max: usize) -> Result<Vec<Transaction>> {
        let mut out = Vec::new();
        let mut id = from.max(self.first_id);
        while out.len() < max {
            match self.get(id)? {
                Some(t) => out.push(t),
                None => break,
            }
            id += 1;
        }
        Ok(out)
    }

    /// Writes UDN's text form, one `<id> <dn> <cmd>` line per transaction.
    pub fn export(&self, out: &mut impl Write) -> Result<()> {
        let mut offset = 0;
        while offset < self.data_len {
            match read_record(&self.data, offset, self.data_len) {
                Ok((record, next)) => {
                    if let Record::Transaction(t) = record {
                        writeln!(out, "{}", t.to_line()).map_err(io_at(Path::new("<output>")))?;
                    }
                    offset = next;
                }
                Err(reason) => return Err(self.corrupt(offset, reason)),
            }
        }
        Ok(())
    }

    /// Removes every transaction with an ID below `id` (but never the newest one), keeping
    /// the cookie; returns how many were removed. The rewrite goes to new files renamed
    /// into place, so a crash leaves either log whole.
    pub fn prune_before(&mut self, id: u64) -> Result<u64> {
        self.writable()?;
        if self.first_id == 0 || id <= self.first_id {
            return Ok(0);
        }
        // The newest transaction always stays, so a reopened log continues its sequence.
        let keep_from = id.min(self.last_id);
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for t in self.range(keep_from, usize::MAX)? {
            offsets.extend_from_slice(&(buf.len() as u64).to_le_bytes());
            encode_transaction(&t, &mut buf);
        }
        encode_commit(self.cookie.as_deref(), &mut buf);
        let new_first = keep_from;
        let entries = offsets.len() as u64 / 8;
        let mut index = Vec::with_capacity(INDEX_HEADER as usize + offsets.len());
        index.extend_from_slice(INDEX_MAGIC);
        index.extend_from_slice(&new_first.to_le_bytes());
        // `replace_file` syncs the whole file: every entry is on disk.
        index.extend_from_slice(&entries.to_le_bytes());
        index.extend_from_slice(&offsets);
        let data_path = self.dir.join(DATA_FILE);
        let index_path = self.dir.join(INDEX_FILE);
        replace_file(&data_path, &buf)?;
        replace_file(&index_path, &index)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&self.dir))?;
        let removed = keep_from - self.first_id;
        self.data = open_rw(&data_path)?;
        self.index = open_rw(&index_path)?;
        self.data_len = buf.len() as u64;
        self.first_id = new_first;
        self.indexed = entries;
        self.index_synced = entries;
        Ok(removed)
    }

    /// Keeps only the last `keep` transactions.
    pub fn prune_keep_last(&mut self, keep: u64) -> Result<u64> {
        self.prune_before(self.last_id.saturating_sub(keep) + 1)
    }

    fn index_offset(&self, id: u64) -> u64 {
        INDEX_HEADER + (id - self.first_id) * 8
    }

    fn write_index_header(&mut self) -> Result<()> {
        let mut header = Vec::with_capacity(INDEX_HEADER as usize);
        header.extend_from_slice(INDEX_MAGIC);
        header.extend_from_slice(&self.first_id.to_le_bytes());
        header.extend_from_slice(&self.index_synced.to_le_bytes());
        self.index
            .write_all_at(&header, 0)
            .map_err(io_at(&self.dir.join(INDEX_FILE)))
    }

    fn corrupt(&self, offset: u64, reason: String) -> TranslogError {
        TranslogError::Corrupt {
            path: self.dir.join(DATA_FILE),
            offset,
            reason,
        }
    }

    /// Brings the in-memory state, the data file and the index in line after open.
    fn recover(&mut self) -> Result<()> {
        let data_path = self.dir.join(DATA_FILE);
        let index_path = self.dir.join(INDEX_FILE);
        let file_len = self.data.metadata().map_err(io_at(&data_path))?.len();
        self.data_len = file_len;
        let (start, trusted) = self.trusted_index_prefix(file_len)?;
        // Scan what the index does not cover (or all of it when the index is unusable),
        // remembering the state as of the last commit record.
        let mut offset = start;
        let mut offsets = Vec::new();
        let mut first_id = if trusted == 0 { 0 } else { self.first_id };
        let mut last_id = if trusted == 0 {
            0
        } else {
            first_id + trusted - 1
        };
        let mut committed = (start, last_id, 0, None);
        while offset < file_len {
            match read_record(&self.data, offset, file_len) {
                Ok((Record::Transaction(t), next)) => {
                    if first_id == 0 {
                        first_id = t.id;
                    } else if t.id != last_id + 1 {
                        return Err(self.corrupt(offset, format!("ID {} follows {last_id}", t.id)));
                    }
                    offsets.extend_from_slice(&offset.to_le_bytes());
                    last_id = t.id;
                    offset = next;
                }
                Ok((Record::Commit(cookie), next)) => {
                    offset = next;
                    committed = (offset, last_id, offsets.len(), Some(cookie));
                }
                Err(_) => break,
            }
        }
        let (end, last_id, indexed, cookie) = committed;
        offsets.truncate(indexed);
        if last_id == 0 {
            first_id = 0;
        }
        self.first_id = first_id;
        self.last_id = last_id;
        // A trusted index ends at a commit record, which the scan reads first.
        self.cookie = cookie.flatten();
        if self.lock.is_none() {
            self.data_len = end;
            self.indexed = if first_id == 0 { 0 } else { trusted };
            self.unindexed = offsets
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect();
            return Ok(());
        }
        if end < file_len {
            // A torn tail, or whole records of an append that crashed before its commit
            // record: never acknowledged, so cut them; the accesslog replays them.
            tracing::warn!(
                path = %data_path.display(),
                kept = end,
                cut = file_len - end,
                "cutting an unfinished append from the transaction log"
            );
            self.data.set_len(end).map_err(io_at(&data_path))?;
            self.data.sync_data().map_err(io_at(&data_path))?;
            self.data_len = end;
        }
        let index_len = INDEX_HEADER + if first_id == 0 { 0 } else { trusted * 8 };
        self.index.set_len(index_len).map_err(io_at(&index_path))?;
        self.write_index_header()?;
        self.index
            .write_all_at(&offsets, index_len)
            .map_err(io_at(&index_path))?;
        self.indexed = (index_len - INDEX_HEADER) / 8 + offsets.len() as u64 / 8;
        self.sync_index()
    }

    /// How much of the index can be trusted: returns the data offset to scan from and the
    /// number of index entries kept. Only the entries its header counts as synced are
    /// candidates (the others may never have reached the disk), and they are trusted when
    /// the header matches the log's first record and the last of them points at the
    /// record with the right ID, followed by a commit record.
    fn trusted_index_prefix(&mut self, data_len: u64) -> Result<(u64, u64)> {
        let index_path = self.dir.join(INDEX_FILE);
        let index_len = self.index.metadata().map_err(io_at(&index_path))?.len();
        if index_len < INDEX_HEADER || data_len == 0 {
            return Ok((0, 0));
        }
        let mut header = [0u8; INDEX_HEADER as usize];
        self.index
            .read_exact_at(&mut header, 0)
            .map_err(io_at(&index_path))?;
        let first_id = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        let synced = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
        if &header[..8] != INDEX_MAGIC || first_id == 0 {
            return Ok((0, 0));
        }
        match read_record(&self.data, 0, data_len) {
            Ok((Record::Transaction(t), _)) if t.id == first_id => {}
            _ => return Ok((0, 0)),
        }
        let entries = ((index_len - INDEX_HEADER) / 8).min(synced);
        if entries == 0 {
            return Ok((0, 0));
        }
        let mut raw = [0u8; 8];
        self.index
            .read_exact_at(&mut raw, INDEX_HEADER + (entries - 1) * 8)
            .map_err(io_at(&index_path))?;
        let offset = u64::from_le_bytes(raw);
        let Ok((Record::Transaction(t), next)) = read_record(&self.data, offset, data_len) else {
            return Ok((0, 0));
        };
        // The last indexed transaction ends a finished append, so its commit follows.
        match read_record(&self.data, next, data_len) {
            Ok((Record::Commit(_), _)) if t.id == first_id + entries - 1 => {
                self.first_id = first_id;
                self.index_synced = entries;
                Ok((next, entries))
            }
            _ => Ok((0, 0)),
        }
    }
}

/// A full consistency check of a log directory (without taking its lock).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The first ID found.
    pub first_id: u64,
    /// The last ID found.
    pub last_id: u64,
    /// Transaction records read.
    pub transactions: u64,
    /// Commit records read.
    pub commits: u64,
    /// Problems found, each with its byte offset; empty when the log is sound.
    pub problems: Vec<String>,
}

/// Reads every record of the log in `dir` and reports holes, repeats and damage.
pub fn check(dir: &Path) -> Result<CheckReport> {
    let path = dir.join(DATA_FILE);
    let data = File::open(&path).map_err(io_at(&path))?;
    let len = data.metadata().map_err(io_at(&path))?.len();
    let mut report = CheckReport::default();
    let mut offset = 0;
    let mut uncommitted = 0;
    while offset < len {
        match read_record(&data, offset, len) {
            Ok((Record::Transaction(t), next)) => {
                uncommitted += 1;
                if report.transactions == 0 {
                    report.first_id = t.id;
                } else if t.id != report.last_id + 1 {
                    report.problems.push(format!(
                        "byte {offset}: ID {} follows {} (hole or repeat)",
                        t.id, report.last_id
                    ));
                }
                report.last_id = t.id;
                report.transactions += 1;
                offset = next;
            }
            Ok((Record::Commit(_), next)) => {
                report.commits += 1;
                uncommitted = 0;
                offset = next;
            }
            Err(reason) => {
                report.problems.push(format!(
                    "byte {offset}: {reason} ({} bytes not readable)",
                    len - offset
                ));
                break;
            }
        }
    }
    if uncommitted > 0 {
        report.problems.push(format!(
            "{uncommitted} transactions after the last commit record (an unfinished append; \
             opening the log cuts them)"
        ));
    }
    Ok(report)
}

fn encode_transaction(t: &Transaction, buf: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(32 + t.dn.len() + t.entry_uuid.len() + t.csn.len());
    payload.extend_from_slice(&t.id.to_le_bytes());
    payload.push(t.command.letter() as u8);
    payload.extend_from_slice(&t.time_us.to_le_bytes());
    for field in [&t.dn, &t.entry_uuid, &t.csn] {
        payload.extend_from_slice(&(field.len() as u32).to_le_bytes());
        payload.extend_from_slice(field.as_bytes());
    }
    encode_record(KIND_TRANSACTION, &payload, buf);
}

fn encode_commit(cookie: Option<&[u8]>, buf: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(1 + cookie.map_or(0, <[u8]>::len));
    payload.push(u8::from(cookie.is_some()));
    payload.extend_from_slice(cookie.unwrap_or_default());
    encode_record(KIND_COMMIT, &payload, buf);
}

fn encode_record(kind: u8, payload: &[u8], buf: &mut Vec<u8>) {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(payload);
    buf.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    buf.extend_from_slice(&hasher.finalize().to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
}

/// Reads the record at `offset`; the error says why it is not a valid record.
fn read_record(data: &File, offset: u64, end: u64) -> std::result::Result<(Record, u64), String> {
    if end.saturating_sub(offset) < RECORD_HEADER as u64 {
        return Err("record header cut short".into());
    }
    let mut header = [0u8; RECORD_HEADER];
    data.read_exact_at(&mut header, offset)
        .map_err(|e| e.to_string())?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_RECORD {
        return Err(format!("impossible record length {len}"));
    }
    let next = offset + RECORD_HEADER as u64 + u64::from(len);
    if next > end {
        return Err("record cut short".into());
    }
    let mut body = vec![0u8; len as usize];
    data.read_exact_at(&mut body, offset + RECORD_HEADER as u64)
        .map_err(|e| e.to_string())?;
    if crc32fast::hash(&body) != crc {
        return Err("checksum mismatch".into());
    }
    let (kind, payload) = body.split_first().ok_or("empty record")?;
    let record = match *kind {
        KIND_TRANSACTION => Record::Transaction(decode_transaction(payload)?),
        KIND_COMMIT => match payload.split_first() {
            Some((0, [])) => Record::Commit(None),
            Some((1, cookie)) => Record::Commit(Some(cookie.to_vec())),
            _ => return Err("malformed commit record".into()),
        },
        other => return Err(format!("unknown record kind {other}")),
    };
    Ok((record, next))
}

fn decode_transaction(payload: &[u8]) -> std::result::Result<Transaction, String> {
    let mut r = Reader(payload);
    let id = u64::from_le_bytes(r.array()?);
    let [letter] = r.array()?;
    let command = Command::from_letter(letter as char)
        .ok_or_else(|| format!("unknown command {:?}", letter as char))?;
    let time_us = i64::from_le_bytes(r.array()?);
    let dn = r.string()?;
    let entry_uuid = r.string()?;
    let csn = r.string()?;
    Ok(Transaction {
        id,
        dn,
        command,
        entry_uuid,
        csn,
        time_us,
    })
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or("transaction record cut short")?;
        self.0 = rest;
        Ok(*head)
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        if len > self.0.len() {
            return Err("transaction field longer than its record".into());
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(text.to_vec()).map_err(|_| "transaction field is not UTF-8".into())
    }
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_at(path))
}

/// Writes `content` to `<path>.new`, syncs it and renames it over `path`.
fn replace_file(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension("new");
    let mut file = File::create(&tmp).map_err(io_at(&tmp))?;
    file.write_all(content)
        .and_then(|()| file.sync_all())
        .map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_at(path))
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> TranslogError + '_ {
    move |source| TranslogError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests;
