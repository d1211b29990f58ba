//! One connection to the fleet store, single node or Redis Cluster: both
//! multiplexed and reconnecting by themselves once made.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, IntoConnectionInfo, RedisResult, ScriptInvocation, TlsCertificates};

use crate::config::FleetConfig;

/// A live connection.
#[derive(Clone)]
pub enum Conn {
    /// One Redis (or Valkey) node.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

/// How to reach the store.
pub struct Dial<'a> {
    /// The `[fleet]` section.
    pub config: &'a FleetConfig,
    /// PEM roots for `rediss://` (`[tls] extra_roots`), when any.
    pub roots: Option<Vec<u8>>,
}

impl Conn {
    /// Connects to the store.
    pub async fn open(dial: Dial<'_>) -> RedisResult<Conn> {
        let timeout = dial.config.timeout.max(Duration::from_millis(50));
        let certificates = TlsCertificates {
            client_tls: None,
            root_cert: dial.roots.clone(),
        };
        if dial.config.cluster {
            let nodes: Vec<_> = dial.config.nodes.iter().map(|n| n.expose()).collect();
            let mut builder = ClusterClientBuilder::new(nodes)
                .connection_timeout(timeout.max(Duration::from_secs(1)))
                .response_timeout(timeout);
            if dial.roots.is_some() {
                builder = builder.certs(certificates);
            }
            let client = builder.build()?;
            return Ok(Conn::Cluster(client.get_async_connection().await?));
        }
        let url = dial
            .config
            .nodes
            .first()
            .map(|n| n.expose())
            .unwrap_or_default();
        let info = url.into_connection_info()?;
        let client = if dial.roots.is_some() {
            redis::Client::build_with_tls(info, certificates)?
        } else {
            redis::Client::open(info)?
        };
        let settings = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))));
        Ok(Conn::Single(
            ConnectionManager::new_with_config(client, settings).await?,
        ))
    }

    /// Runs a script.
    pub async fn invoke<T: FromRedisValue>(&self, script: ScriptInvocation<'_>) -> RedisResult<T> {
        match self.clone() {
            Conn::Single(mut c) => script.invoke_async(&mut c).await,
            Conn::Cluster(mut c) => script.invoke_async(&mut c).await,
        }
    }

    /// Runs a command.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self.clone() {
            Conn::Single(mut c) => cmd.query_async(&mut c).await,
            Conn::Cluster(mut c) => cmd.query_async(&mut c).await,
        }
    }

    /// Runs a pipeline (a transaction when it is atomic).
    pub async fn pipeline<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> RedisResult<T> {
        match self.clone() {
            Conn::Single(mut c) => pipe.query_async(&mut c).await,
            Conn::Cluster(mut c) => pipe.query_async(&mut c).await,
        }
    }
}
