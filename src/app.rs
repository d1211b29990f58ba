//! The running proxy: [`App`] is the one handle every stage reads (settings,
//! accounts, routes and egress, shutdown); [`Server`] binds the configured listeners
//! and runs them until a stop signal, then drains within the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::auth::Accounts;
use crate::config::{Config, ListenerProtocol, ServerConfig};
use crate::dial::Dialer;
use crate::forward::Forwarder;
use crate::listener::{self, BoundListener, ConnectionLimit};
use crate::route::Router;
use crate::shutdown::Shutdown;
use crate::upstream::{EgressSettings, TlsClient};

/// Shared state of the running proxy, built once from a validated config.
pub struct App {
    /// `[server]` settings.
    pub settings: ServerConfig,
    /// The configured accounts.
    pub accounts: Accounts,
    /// Which way each account's requests leave, and the upstream pools.
    pub router: Router,
    /// Direct egress.
    pub dialer: Dialer,
    /// Pooled plain-HTTP forwarding, direct.
    pub forwarder: Forwarder,
    /// Admission of client connections (`max_connections`).
    pub connections: ConnectionLimit,
    /// The stop signal and task tracker.
    pub shutdown: Shutdown,
}

impl App {
    /// Compiles `config` into runtime objects; fails when a `[tls]
    /// extra_roots` file cannot be read.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let settings = config.server.clone();
        let dialer = Dialer::new(settings.connect_timeout);
        let egress = Arc::new(EgressSettings {
            connect_timeout: settings.connect_timeout,
            idle_timeout: settings.idle_timeout,
            tls: TlsClient::new(&config.tls)?,
        });
        Ok(App {
            accounts: Accounts::new(&config.accounts),
            router: Router::new(config, egress),
            forwarder: Forwarder::direct(dialer.clone(), settings.idle_timeout),
            dialer,
            connections: ConnectionLimit::new(settings.max_connections),
            shutdown: Shutdown::new(),
            settings,
        })
    }
}

/// The proxy with its listeners bound, ready to run.
pub struct Server {
    app: Arc<App>,
    listeners: Vec<BoundListener>,
}

impl Server {
    /// Binds every configured listener (port 0 picks a free port).
    pub async fn bind(config: &Config) -> anyhow::Result<Server> {
        let app = Arc::new(App::new(config)?);
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let tcp = TcpListener::bind(l.addr)
                .await
                .with_context(|| format!("cannot listen on {}", l.addr))?;
            let account = match &l.account {
                Some(id) => Some(app.accounts.get(id).with_context(|| {
                    format!("listener {} is bound to unknown account {id}", l.addr)
                })?),
                None => None,
            };
            listeners.push(BoundListener {
                protocol: l.protocol,
                tcp,
                account,
            });
        }
        Ok(Server { app, listeners })
    }

    /// The bound address of each listener, in config order.
    pub fn local_addrs(&self) -> Vec<(ListenerProtocol, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|l| Some((l.protocol, l.tcp.local_addr().ok()?)))
            .collect()
    }

    /// Serves until `stop` resolves, then shuts down: listeners close at
    /// once, in-flight work gets `shutdown_grace`. Returns whether every
    /// connection and tunnel ended within the grace period.
    pub async fn run(self, stop: impl Future<Output = ()>) -> bool {
        for bound in self.listeners {
            tokio::spawn(listener::accept_loop(self.app.clone(), bound));
        }
        stop.await;
        tracing::info!("shutting down");
        self.app.shutdown.begin();
        let drained = self
            .app
            .shutdown
            .drain(self.app.settings.shutdown_grace)
            .await;
        if !drained {
            tracing::warn!("grace period over; closing remaining connections");
        }
        drained
    }
}
