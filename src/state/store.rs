//! The embedded store: usage counters, the admin API's runtime changes
//! and the accounts it created, which survive a restart, in one redb file
//! (`[state] path`).
//!
//! redb is pure Rust, ACID (a copy-on-write B-tree whose commits are
//! atomic and fsynced), recovers by itself after a crash, and needs no C
//! toolchain. `path = "memory"` uses redb's in-memory backend, so the same
//! code runs and nothing is kept.
//!
//! Values are JSON, so the file can be inspected with any redb tool.
//!
//! The file holds upstream passwords and runtime changes: pacer creates it
//! readable by its owner only (0600), and the folders it creates for it
//! 0700; an existing file with wider permissions is narrowed to 0600.
//!
//! A file deleted (or replaced) under a running pacer would silently lose
//! everything at the next restart, since pacer keeps writing into the
//! open, unlinked file. [`Store::keep_on_disk`] (called by the usage
//! flusher every second) compares the path's device and inode with the
//! file pacer opened, and when they differ writes a fresh file there with
//! everything the store holds. Every write's outcome is kept:
//! [`Store::failure`] is the last error while writes fail (`/healthz`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use self::disk::{file_id, open_file, FileId};
use crate::config::StateConfig;
use crate::policy::limit::record::UsageRecord;
use crate::state::changes::AccountChanges;
use crate::state::runtime::{RuntimeAccount, RuntimeAccounts};

mod disk;

type Table = TableDefinition<'static, &'static str, &'static [u8]>;

const USAGE: Table = TableDefinition::new("usage");
const CHANGES: Table = TableDefinition::new("account_changes");
const ACCOUNTS: Table = TableDefinition::new("runtime_accounts");
/// Every table, created at open and copied into a fresh file.
const TABLES: [Table; 3] = [USAGE, CHANGES, ACCOUNTS];

/// A store failure: the file could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(String);

fn failed(err: impl std::fmt::Display) -> StoreError {
    StoreError(err.to_string())
}

/// What the admin API stored: runtime changes and runtime accounts.
#[derive(Debug, Default)]
pub struct Stored {
    /// Runtime changes, by account id.
    pub changes: HashMap<String, AccountChanges>,
    /// Accounts created at runtime.
    pub accounts: RuntimeAccounts,
}

/// The open store.
pub struct Store {
    db: RwLock<Database>,
    /// The file and its identity, for a store on disk.
    file: Option<Mutex<OnDisk>>,
    /// The last write's error, while writes fail.
    failing: Mutex<Option<String>>,
}

/// Where the store lives on disk, and which file pacer has open there.
struct OnDisk {
    path: PathBuf,
    identity: FileId,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating it and its folder if needed) the configured store.
    pub fn open(config: &StateConfig) -> Result<Store, StoreError> {
        let (db, file) = match config {
            StateConfig::Memory => {
                let db = Database::builder()
                    .create_with_backend(InMemoryBackend::new())
                    .map_err(failed)?;
                (db, None)
            }
            StateConfig::Path(path) => {
                let (db, identity) = open_file(path)?;
                let path = path.clone();
                (db, Some(Mutex::new(OnDisk { path, identity })))
            }
        };
        let store = Store {
            db: RwLock::new(db),
            file,
            failing: Mutex::new(None),
        };
        store.ensure_tables()?;
        Ok(store)
    }

    fn ensure_tables(&self) -> Result<(), StoreError> {
        let db = self.db();
        let write = db.begin_write().map_err(failed)?;
        for table in TABLES {
            write.open_table(table).map_err(failed)?;
        }
        write.commit().map_err(failed)
    }

    fn db(&self) -> RwLockReadGuard<'_, Database> {
        self.db.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last write's error, while writes fail (none once one succeeds).
    pub fn failure(&self) -> Option<String> {
        self.failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps `result`, the outcome of a write, for [`Store::failure`].
    fn noted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let mut failing = self.failing.lock().unwrap_or_else(PoisonError::into_inner);
        *failing = result.as_ref().err().map(ToString::to_string);
        result
    }

    /// Checks that the store's path still names the file pacer writes. When
    /// it was deleted or replaced, writes a fresh file there holding
    /// everything the store holds, and answers true. While writes fail,
    /// also tries an empty write, so that [`Store::failure`] clears once
    /// the store takes writes again. A store in memory is always in place.
    pub fn keep_on_disk(&self) -> Result<bool, StoreError> {
        let Some(file) = &self.file else {
            return Ok(false);
        };
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        if file_id(&file.path).is_some_and(|on_disk| on_disk == file.identity) {
            if self.failure().is_some() {
                self.noted(self.ensure_tables())?;
            }
            return Ok(false);
        }
        let replaced = self.replace_file(&mut file);
        self.noted(replaced).map(|()| true)
    }

    /// Writes everything into a fresh file beside `file`, renames it over
    /// the path and continues with it.
    fn replace_file(&self, file: &mut OnDisk) -> Result<(), StoreError> {
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        let mut name = file.path.file_name().unwrap_or_default().to_os_string();
        name.push(".new");
        let fresh_path = file.path.with_file_name(name);
        let _ = std::fs::remove_file(&fresh_path);
        let (fresh, _) = open_file(&fresh_path)?;
        copy_tables(&db, &fresh)?;
        let at = |e: std::io::Error| StoreError(format!("{}: {e}", file.path.display()));
        std::fs::rename(&fresh_path, &file.path).map_err(at)?;
        if let Some(parent) = file.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(at)?;
        }
        file.identity = file_id(&file.path)
            .ok_or_else(|| StoreError(format!("{} vanished", file.path.display())))?;
        *db = fresh;
        Ok(())
    }

    /// Creates or replaces a runtime account, durably; a replaced
    /// account's runtime changes go with it (the new record says what it
    /// is).
    pub fn put_account(&self, id: &str, account: &RuntimeAccount) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(account).map_err(failed)?;
        let put = self.in_one_write(|write| {
            let mut accounts = write.open_table(ACCOUNTS).map_err(failed)?;
            accounts.insert(id, bytes.as_slice()).map_err(failed)?;
            let mut changes = write.open_table(CHANGES).map_err(failed)?;
            changes.remove(id).map_err(failed)?;
            Ok(())
        });
        self.noted(put)
    }

    /// Deletes a runtime account and its runtime changes, durably. Its
    /// usage stays, so an account created again the same day cannot
    /// exceed its caps.
    pub fn delete_account(&self, id: &str) -> Result<(), StoreError> {
        let deleted = self.in_one_write(|write| {
            let mut accounts = write.open_table(ACCOUNTS).map_err(failed)?;
            accounts.remove(id).map_err(failed)?;
            let mut changes = write.open_table(CHANGES).map_err(failed)?;
            changes.remove(id).map_err(failed)?;
            Ok(())
        });
        self.noted(deleted)
    }

    /// Runs `body` in one durable write transaction.
    fn in_one_write(
        &self,
        body: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let db = self.db();
        let write = db.begin_write().map_err(failed)?;
        body(&write)?;
        write.commit().map_err(failed)
    }

    /// Every runtime change and runtime account.
    pub fn load_stored(&self) -> Result<Stored, StoreError> {
        Ok(Stored {
            changes: self.load(CHANGES)?,
            accounts: self.load::<RuntimeAccount>(ACCOUNTS)?.into_iter().collect(),
        })
    }

    /// Replaces one account's runtime changes, durably.
    pub fn save_changes(&self, account: &str, changes: &AccountChanges) -> Result<(), StoreError> {
        self.save(CHANGES, [(account, changes)])
    }

    /// Every account's persisted usage.
    pub fn load_usage(&self) -> Result<HashMap<String, UsageRecord>, StoreError> {
        self.load(USAGE)
    }

    /// Writes these accounts' usage in one durable transaction.
    pub fn save_usage<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a str, &'a UsageRecord)>,
    ) -> Result<(), StoreError> {
        self.save(USAGE, records)
    }

    fn load<T: DeserializeOwned>(&self, table: Table) -> Result<HashMap<String, T>, StoreError> {
        let db = self.db();
        let read = db.begin_read().map_err(failed)?;
        let table = read.open_table(table).map_err(failed)?;
        let mut records = HashMap::new();
        for entry in table.iter().map_err(failed)? {
            let (key, value) = entry.map_err(failed)?;
            match serde_json::from_slice::<T>(value.value()) {
                Ok(record) => {
                    records.insert(key.value().to_owned(), record);
                }
                Err(err) => {
                    tracing::warn!(account = key.value(), %err, "unreadable record skipped")
                }
            }
        }
        Ok(records)
    }

    fn save<'a, T: Serialize + 'a>(
        &self,
        table: Table,
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError> {
        let saved = self.write(table, records);
        self.noted(saved)
    }

    fn write<'a, T: Serialize + 'a>(
        &self,
        table: Table,
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError> {
        self.in_one_write(|write| {
            let mut table = write.open_table(table).map_err(failed)?;
            for (account, record) in records {
                let bytes = serde_json::to_vec(record).map_err(failed)?;
                table.insert(account, bytes.as_slice()).map_err(failed)?;
            }
            Ok(())
        })
    }
}

/// Copies every table of `from` into `to`, in one durable transaction.
fn copy_tables(from: &Database, to: &Database) -> Result<(), StoreError> {
    let read = from.begin_read().map_err(failed)?;
    let write = to.begin_write().map_err(failed)?;
    for definition in TABLES {
        let source = read.open_table(definition).map_err(failed)?;
        let mut target = write.open_table(definition).map_err(failed)?;
        for entry in source.iter().map_err(failed)? {
            let (key, value) = entry.map_err(failed)?;
            target.insert(key.value(), value.value()).map_err(failed)?;
        }
    }
    write.commit().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(all: u64) -> UsageRecord {
        UsageRecord {
            day_start: 1_795_305_600,
            all,
            actions: vec![("send".into(), all / 2)],
            batch_current: 3,
            batch_paused_until_ms: None,
            batch_last_at_ms: Some(1),
            headroom: 8,
            pauses: vec![crate::policy::limit::backoff::Pause {
                action: "send".into(),
                since_ms: 1,
                until_ms: 2,
                status: 429,
            }],
        }
    }

    #[test]
    fn usage_survives_reopening_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StateConfig::Path(dir.path().join("nested/pacer.db"));
        {
            let store = Store::open(&config).expect("open");
            store.save_usage([("acct-1", &record(10))]).expect("save");
            store
                .save_usage([("acct-1", &record(12)), ("acct-2", &record(1))])
                .expect("save");
        }
        let store = Store::open(&config).expect("reopen");
        let loaded = store.load_usage().expect("load");
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["acct-1"], record(12));
    }

    #[test]
    fn memory_keeps_nothing_across_opens() {
        let store = Store::open(&StateConfig::Memory).expect("open");
        store.save_usage([("a", &record(1))]).expect("save");
        assert_eq!(store.load_usage().expect("load").len(), 1);
        let fresh = Store::open(&StateConfig::Memory).expect("open");
        assert!(fresh.load_usage().expect("load").is_empty());
    }
}
