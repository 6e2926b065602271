//! The lock that keeps a second daemon off a data directory (the notifier's log, the
//! listener's cache): an advisory `flock` on `<dir>/lock`, released when the process ends,
//! however it ends.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Why a directory could not be locked.
#[derive(Debug)]
pub(crate) enum LockError {
    /// Another process holds it.
    Held,
    /// The directory or the lock file cannot be used.
    Io(PathBuf, io::Error),
}

/// Creates `dir` if needed and locks it; the lock lasts as long as the returned file.
pub(crate) fn lock(dir: &Path) -> Result<File, LockError> {
    std::fs::create_dir_all(dir).map_err(|e| LockError::Io(dir.to_owned(), e))?;
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LockError::Io(path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held),
        Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io(path, e)),
    }
}
