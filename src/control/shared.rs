//! Where the admin API's runtime changes and runtime accounts are kept:
//! the embedded store when pacer runs alone, the fleet store (Redis) in
//! fleet mode, where every instance follows them ([`Control::follow_fleet`])
//! and applies another instance's change within a second.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Control;
use crate::fleet::digest::digest;
use crate::fleet::{Fleet, FleetError};
use crate::state::changes::AccountChanges;
use crate::state::runtime::RuntimeAccount;
use crate::state::snapshot::Snapshot;
use crate::state::store::{StoreError, Stored};

/// How often the fleet's runtime version is looked at besides pub/sub.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Why a runtime change could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The fleet store failed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The blocking task failed.
    #[error("the store task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl Control {
    /// Keeps `account`'s runtime changes durably.
    pub async fn keep_changes(
        self: &Arc<Self>,
        account: &str,
        changes: AccountChanges,
    ) -> Result<(), KeepError> {
        if let Some(fleet) = &self.fleet {
            return Ok(fleet.save_changes(account, &changes).await?);
        }
        let (writer, id) = (self.clone(), account.to_owned());
        tokio::task::spawn_blocking(move || writer.store.save_changes(&id, &changes)).await??;
        Ok(())
    }

    /// Keeps a runtime account durably; alone, the usage of a new id is
    /// restored from the store into `snapshot` (its usage of today, from
    /// before a deletion or a restart). A fleet keeps usage in Redis.
    pub async fn keep_account(
        self: &Arc<Self>,
        id: &str,
        record: RuntimeAccount,
        previous: Arc<Snapshot>,
        snapshot: Arc<Snapshot>,
    ) -> Result<(), KeepError> {
        if let Some(fleet) = &self.fleet {
            return Ok(fleet.put_account(id, &record).await?);
        }
        let (writer, key) = (self.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || {
            writer.store.put_account(&key, &record)?;
            crate::state::persist::restore_new(
                &writer.store,
                &previous,
                &snapshot,
                &writer.engine.clock,
            )
        })
        .await??;
        Ok(())
    }

    /// Forgets a runtime account durably.
    pub async fn forget_account(self: &Arc<Self>, id: &str) -> Result<(), KeepError> {
        if let Some(fleet) = &self.fleet {
            return Ok(fleet.delete_account(id).await?);
        }
        let (writer, key) = (self.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || writer.store.delete_account(&key)).await??;
        Ok(())
    }

    /// Every runtime change and runtime account, from where they are kept
    /// (blocking: for reloads, which run on the blocking pool).
    pub fn load_kept(&self) -> Result<Stored, KeepError> {
        match &self.fleet {
            Some(fleet) => {
                let handle = tokio::runtime::Handle::current();
                Ok(handle.block_on(fleet.load_runtime())?.1)
            }
            None => Ok(self.store.load_stored()?),
        }
    }

    /// In fleet mode, applies the runtime state of the fleet store
    /// whenever its version moves (told by pub/sub, or seen by polling),
    /// and shares upstream cooldowns and compares config digests every
    /// half second, until the task is aborted.
    pub async fn follow_fleet(self: Arc<Self>) {
        let Some(fleet) = self.fleet.clone() else {
            return;
        };
        let changed = Arc::new(Notify::new());
        fleet.follow_runtime(changed.clone());
        let mut every = tokio::time::interval(POLL_EVERY);
        let mut applied = None;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = changed.notified() => {}
            }
            self.share_cooldowns(&fleet).await;
            let _ = fleet.compare_digest(&digest(&self.in_force.load())).await;
            match fleet.runtime_version().await {
                Ok(version) if Some(version) == applied => continue,
                Ok(_) => {}
                Err(_) => continue,
            }
            match self.apply_fleet_runtime(&fleet).await {
                Ok(version) => applied = Some(version),
                Err(err) => tracing::error!(%err, "runtime changes of the fleet not applied"),
            }
        }
    }

    /// Publishes this instance's upstream cooldowns and takes every other
    /// instance's: an upstream that failed anywhere sits out everywhere.
    async fn share_cooldowns(&self, fleet: &Fleet) {
        let router = self.engine.snapshot.load().router.clone();
        if let Ok(running) = fleet.share_cooldowns(&router.cooling()).await {
            for (identity, left) in running {
                router.cool(identity, left);
            }
        }
    }

    /// Rebuilds the snapshot with the fleet's runtime state; accounts that
    /// are gone end their tunnels. Returns the version applied.
    async fn apply_fleet_runtime(&self, fleet: &Fleet) -> anyhow::Result<u64> {
        let (version, stored) = fleet.load_runtime().await?;
        let _writing = self.writes.lock().await;
        let engine = &self.engine;
        let previous = engine.snapshot.load_full();
        let config = self.in_force.load();
        let snapshot = Snapshot::build(
            &config,
            &stored,
            Some(&previous),
            self.journal.clone(),
            &engine.egress,
        )?;
        let kept: HashSet<&str> = snapshot.accounts.iter().map(|a| &*a.id).collect();
        let gone: Vec<_> = previous
            .accounts
            .iter()
            .filter(|a| !kept.contains(&*a.id))
            .cloned()
            .collect();
        drop(kept);
        engine.snapshot.store(Arc::new(snapshot));
        for account in gone {
            account.delete();
        }
        Ok(version)
    }
}
