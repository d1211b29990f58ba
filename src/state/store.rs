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

use std::collections::HashMap;
use std::path::Path;

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::StateConfig;
use crate::policy::limit::record::UsageRecord;
use crate::state::changes::AccountChanges;
use crate::state::runtime::{RuntimeAccount, RuntimeAccounts};

const USAGE: TableDefinition<&str, &[u8]> = TableDefinition::new("usage");
const CHANGES: TableDefinition<&str, &[u8]> = TableDefinition::new("account_changes");
const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("runtime_accounts");

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
    db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating it and its folder if needed) the configured store.
    pub fn open(config: &StateConfig) -> Result<Store, StoreError> {
        let db = match config {
            StateConfig::Memory => Database::builder()
                .create_with_backend(InMemoryBackend::new())
                .map_err(failed)?,
            StateConfig::Path(path) => open_file(path)?,
        };
        let store = Store { db };
        store.ensure_tables()?;
        Ok(store)
    }

    fn ensure_tables(&self) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(failed)?;
        write.open_table(USAGE).map_err(failed)?;
        write.open_table(CHANGES).map_err(failed)?;
        write.open_table(ACCOUNTS).map_err(failed)?;
        write.commit().map_err(failed)
    }

    /// Creates or replaces a runtime account, durably; a replaced
    /// account's runtime changes go with it (the new record says what it
    /// is).
    pub fn put_account(&self, id: &str, account: &RuntimeAccount) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(account).map_err(failed)?;
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut accounts = write.open_table(ACCOUNTS).map_err(failed)?;
            accounts.insert(id, bytes.as_slice()).map_err(failed)?;
            let mut changes = write.open_table(CHANGES).map_err(failed)?;
            changes.remove(id).map_err(failed)?;
        }
        write.commit().map_err(failed)
    }

    /// Deletes a runtime account and its runtime changes, durably. Its
    /// usage stays, so an account created again the same day cannot
    /// exceed its caps.
    pub fn delete_account(&self, id: &str) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut accounts = write.open_table(ACCOUNTS).map_err(failed)?;
            accounts.remove(id).map_err(failed)?;
            let mut changes = write.open_table(CHANGES).map_err(failed)?;
            changes.remove(id).map_err(failed)?;
        }
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

    fn load<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<HashMap<String, T>, StoreError> {
        let read = self.db.begin_read().map_err(failed)?;
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
        table: TableDefinition<&str, &[u8]>,
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), StoreError> {
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut table = write.open_table(table).map_err(failed)?;
            for (account, record) in records {
                let bytes = serde_json::to_vec(record).map_err(failed)?;
                table.insert(account, bytes.as_slice()).map_err(failed)?;
            }
        }
        write.commit().map_err(failed)
    }
}

fn open_file(path: &Path) -> Result<Database, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError(format!("cannot create {}: {e}", parent.display())))?;
    }
    Database::create(path).map_err(|e| StoreError(format!("{}: {e}", path.display())))
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
