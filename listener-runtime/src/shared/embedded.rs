//! The embedded store, the default: variables in `shared.redb` in the cache directory
//! (durable across listener restarts, each `set` one durable commit), leases in the
//! listener's memory (a restart ends every lease, as it ends every call that held one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, TableDefinition};

use super::{Kind, SharedError, SharedStore, key};
use crate::api::handler::BoxFuture;

const FILE: &str = "shared.redb";
const VARIABLES: TableDefinition<&str, &[u8]> = TableDefinition::new("variables");

/// Lock key → (token, when the lease ends).
type Leases = HashMap<String, (String, Instant)>;

/// Variables in a redb file, leases in memory.
#[derive(Debug)]
pub(crate) struct Embedded {
    path: PathBuf,
    db: std::sync::Arc<redb::Database>,
    leases: Mutex<Leases>,
}

impl Embedded {
    /// Opens (or creates) the store in `dir`.
    pub(crate) fn open(dir: &Path) -> Result<Embedded, SharedError> {
        let path = dir.join(FILE);
        let db = redb::Database::create(&path).map_err(|e| failed(&path, &e))?;
        Ok(Embedded {
            path,
            db: std::sync::Arc::new(db),
            leases: Mutex::new(HashMap::new()),
        })
    }

    fn read(&self, key: &str) -> Result<Option<Vec<u8>>, SharedError> {
        let failed = |e: &dyn std::fmt::Display| failed(&self.path, e);
        let r = self.db.begin_read().map_err(|e| failed(&e))?;
        let table = match r.open_table(VARIABLES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(failed(&e)),
        };
        let value = table.get(key).map_err(|e| failed(&e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// One durable commit, on a blocking thread: the fsync must not stall the listener.
    async fn write(&self, key: String, value: Vec<u8>) -> Result<(), SharedError> {
        let (db, path) = (self.db.clone(), self.path.clone());
        let commit = move || {
            let failed = |e: &dyn std::fmt::Display| failed(&path, e);
            let w = db.begin_write().map_err(|e| failed(&e))?;
            {
                let mut table = w.open_table(VARIABLES).map_err(|e| failed(&e))?;
                table
                    .insert(key.as_str(), value.as_slice())
                    .map_err(|e| failed(&e))?;
            }
            w.commit().map_err(|e| failed(&e))
        };
        tokio::task::spawn_blocking(commit)
            .await
            .map_err(|e| failed(&self.path, &e))?
    }

    fn leases(&self) -> Result<std::sync::MutexGuard<'_, Leases>, SharedError> {
        self.leases
            .lock()
            .map_err(|_| failed(&self.path, &"a lock holder panicked"))
    }
}

fn failed(path: &Path, e: &dyn std::fmt::Display) -> SharedError {
    SharedError::Backend {
        backend: format!("the embedded store {}", path.display()),
        message: e.to_string(),
    }
}

impl SharedStore for Embedded {
    fn get<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, SharedError>> {
        Box::pin(async move { self.read(&key(Kind::Variable, module, name)?) })
    }

    fn set<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        value: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SharedError>> {
        Box::pin(async move {
            let key = key(Kind::Variable, module, name)?;
            self.write(key, value.to_vec()).await
        })
    }

    fn try_lock<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        token: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, SharedError>> {
        Box::pin(async move {
            let key = key(Kind::Lock, module, name)?;
            let now = Instant::now();
            let mut leases = self.leases()?;
            if leases.get(&key).is_some_and(|(_, until)| *until > now) {
                return Ok(false);
            }
            leases.insert(key, (token.to_owned(), now + lease));
            Ok(true)
        })
    }

    fn unlock<'a>(
        &'a self,
        module: &'a str,
        name: &'a str,
        token: &'a str,
    ) -> BoxFuture<'a, Result<bool, SharedError>> {
        Box::pin(async move {
            let key = key(Kind::Lock, module, name)?;
            let mut leases = self.leases()?;
            let held = leases
                .get(&key)
                .is_some_and(|(holder, until)| holder == token && *until > Instant::now());
            if held {
                leases.remove(&key);
            }
            Ok(held)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn variables_survive_a_reopen_and_modules_are_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(dir.path()).unwrap();
        assert_eq!(store.get("a", "n").await.unwrap(), None);
        store.set("a", "n", b"1").await.unwrap();
        store.set("b", "n", b"2").await.unwrap();
        drop(store);
        let store = Embedded::open(dir.path()).unwrap();
        assert_eq!(
            store.get("a", "n").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_eq!(
            store.get("b", "n").await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
    }

    #[tokio::test]
    async fn a_lease_excludes_others_until_released_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Embedded::open(dir.path()).unwrap();
        let lease = Duration::from_millis(200);
        assert!(store.try_lock("m", "l", "t1", lease).await.unwrap());
        assert!(!store.try_lock("m", "l", "t2", lease).await.unwrap());
        // Another module's lock of the same name is another lock.
        assert!(store.try_lock("other", "l", "t2", lease).await.unwrap());
        // Only the holder releases.
        assert!(!store.unlock("m", "l", "t2").await.unwrap());
        assert!(store.unlock("m", "l", "t1").await.unwrap());
        assert!(store.try_lock("m", "l", "t2", lease).await.unwrap());
        // An expired lease is free, and its old holder cannot release the new one.
        tokio::time::sleep(lease + Duration::from_millis(50)).await;
        assert!(store.try_lock("m", "l", "t3", lease).await.unwrap());
        assert!(!store.unlock("m", "l", "t2").await.unwrap());
        assert!(store.unlock("m", "l", "t3").await.unwrap());
    }
}
