//! Runtime changes, runtime accounts and upstream cooldowns in the fleet
//! store, shared by every instance (SPEC section 10). Runtime state is
//! kept in two hashes (account id to JSON, as the embedded store keeps
//! them) and a version, all under one hash tag so that each write is one
//! atomic transaction, even on a Cluster. Every
//! write bumps the version and publishes the account's id; instances
//! follow with pub/sub and, as the fallback, by polling the version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::{Fleet, FleetError};
use crate::state::changes::AccountChanges;
use crate::state::runtime::RuntimeAccount;
use crate::state::store::Stored;

/// How often an instance reconnects a broken subscription.
const RESUBSCRIBE_EVERY: Duration = Duration::from_secs(1);

/// The keys of the runtime state.
struct Keys {
    changes: String,
    accounts: String,
    version: String,
    channel: String,
}

impl Keys {
    fn of(fleet: &Fleet) -> Keys {
        let prefix = &fleet.config.key_prefix;
        Keys {
            changes: format!("{prefix}{{runtime}}:changes"),
            accounts: format!("{prefix}{{runtime}}:accounts"),
            version: format!("{prefix}{{runtime}}:version"),
            channel: format!("{prefix}runtime"),
        }
    }
}

impl Fleet {
    /// Replaces `account`'s runtime changes, for every instance.
    pub async fn save_changes(
        &self,
        account: &str,
        changes: &AccountChanges,
    ) -> Result<(), FleetError> {
        let json = to_json(changes)?;
        let keys = Keys::of(self);
        let mut pipe = redis::pipe();
        pipe.atomic().hset(&keys.changes, account, json).ignore();
        self.commit(pipe, &keys, account).await
    }

    /// Creates or replaces a runtime account (its runtime changes go with
    /// it), for every instance.
    pub async fn put_account(&self, id: &str, account: &RuntimeAccount) -> Result<(), FleetError> {
        let json = to_json(account)?;
        let keys = Keys::of(self);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&keys.accounts, id, json)
            .ignore()
            .hdel(&keys.changes, id)
            .ignore();
        self.commit(pipe, &keys, id).await
    }

    /// Deletes a runtime account and its runtime changes, for every
    /// instance.
    pub async fn delete_account(&self, id: &str) -> Result<(), FleetError> {
        let keys = Keys::of(self);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(&keys.accounts, id)
            .ignore()
            .hdel(&keys.changes, id)
            .ignore();
        self.commit(pipe, &keys, id).await
    }

    /// Runs a write with the version bumped, then tells the other
    /// instances.
    async fn commit(
        &self,
        mut pipe: redis::Pipeline,
        keys: &Keys,
        id: &str,
    ) -> Result<(), FleetError> {
        pipe.incr(&keys.version, 1).ignore();
        self.pipeline::<()>(&pipe).await?;
        let publish = redis::cmd("PUBLISH").arg(&keys.channel).arg(id).clone();
        // A lost message costs one poll interval, never the change.
        let _ = self.query::<i64>(&publish).await;
        Ok(())
    }

    /// The version of the runtime state (0 before the first write).
    pub async fn runtime_version(&self) -> Result<u64, FleetError> {
        let keys = Keys::of(self);
        let version: Option<u64> = self.query(redis::cmd("GET").arg(&keys.version)).await?;
        Ok(version.unwrap_or(0))
    }

    /// Every runtime change and runtime account, with their version, read
    /// at once.
    pub async fn load_runtime(&self) -> Result<(u64, Stored), FleetError> {
        let keys = Keys::of(self);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .get(&keys.version)
            .hgetall(&keys.changes)
            .hgetall(&keys.accounts);
        let (version, changes, accounts): (
            Option<u64>,
            HashMap<String, String>,
            HashMap<String, String>,
        ) = self.pipeline(&pipe).await?;
        let stored = Stored {
            changes: from_json(changes),
            accounts: from_json(accounts).into_iter().collect(),
        };
        Ok((version.unwrap_or(0), stored))
    }

    /// Shares this instance's running upstream cooldowns (identity, time
    /// left) and answers every instance's, on Redis's clock.
    pub async fn share_cooldowns(
        &self,
        running: &[(u64, Duration)],
    ) -> Result<Vec<(u64, Duration)>, FleetError> {
        let key = format!("{}{{fleet}}:cooldowns", self.config.key_prefix);
        let mut invocation = self.scripts.cooldowns.key(key);
        for (identity, left) in running {
            invocation
                .arg(identity.to_string())
                .arg(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
        }
        let answer: Vec<String> = self.invoke(invocation).await?;
        Ok(answer
            .chunks(2)
            .filter_map(|pair| match pair {
                [identity, left] => Some((
                    identity.parse().ok()?,
                    Duration::from_millis(left.parse().ok()?),
                )),
                _ => None,
            })
            .collect())
    }

    /// Subscribes to the runtime channel on a connection of its own and
    /// wakes `changed` on every message, resubscribing after a fault. A
    /// Cluster is followed by polling only.
    pub fn follow_runtime(self: &Arc<Self>, changed: Arc<Notify>) {
        if self.config.cluster {
            return;
        }
        let fleet = self.clone();
        tokio::spawn(async move {
            let channel = Keys::of(&fleet).channel;
            loop {
                if let Err(err) = fleet.listen(&channel, &changed).await {
                    tracing::debug!(%err, "runtime subscription lost; polling meanwhile");
                }
                tokio::time::sleep(RESUBSCRIBE_EVERY).await;
            }
        });
    }

    async fn listen(&self, channel: &str, changed: &Notify) -> redis::RedisResult<()> {
        use futures_util::StreamExt as _;
        let url = self
            .config
            .nodes
            .first()
            .map(|n| n.expose())
            .unwrap_or_default();
        let client = match &self.roots {
            Some(roots) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(roots.clone()),
                },
            )?,
            None => redis::Client::open(url)?,
        };
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        // Whatever changed while not subscribed is looked at now.
        changed.notify_one();
        let mut messages = pubsub.on_message();
        while messages.next().await.is_some() {
            changed.notify_one();
        }
        Ok(())
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, FleetError> {
    serde_json::to_string(value).map_err(|err| FleetError::Encode(err.to_string()))
}

/// Records that decode; any other is skipped with a warning (as the
/// embedded store does).
fn from_json<T: serde::de::DeserializeOwned>(
    records: HashMap<String, String>,
) -> HashMap<String, T> {
    records
        .into_iter()
        .filter_map(|(id, json)| match serde_json::from_str(&json) {
            Ok(record) => Some((id, record)),
            Err(err) => {
                tracing::warn!(account = %id, %err, "unreadable runtime record in the fleet store skipped");
                None
            }
        })
        .collect()
}
