//! The running proxy: [`App`] is the one handle every stage reads (server
//! settings, the reloadable [`Runtime`] with accounts and routes, egress,
//! store, metrics, shutdown);
//! [`Server`] binds the configured listeners and runs them until a stop
//! signal, then drains within the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use smallvec::SmallVec;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use arc_swap::ArcSwap;

use crate::access_log;
use crate::admin;
use crate::config::StateConfig;
use crate::config::{AdminConfig, Config, ListenerProtocol, ServerConfig};
use crate::context::RequestContext;
use crate::dial::Dialer;
use crate::forward::Forwarder;
use crate::limit::clock::Clock;
use crate::listener::{self, BoundListener, ConnectionLimit};
use crate::metrics::Metrics;
use crate::persist;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::upstream::{EgressSettings, TlsClient};

/// How often idle accounts' rolling windows are freed.
const COMPACT_EVERY: Duration = Duration::from_secs(60);

/// Shared state of the running proxy, built once from a validated config.
pub struct App {
    /// `[server]` settings.
    pub settings: ServerConfig,
    /// Actions, policies and accounts; swapped whole by a reload.
    pub runtime: ArcSwap<Runtime>,
    /// The limiters' clock.
    pub clock: Clock,
    /// Direct egress.
    pub dialer: Dialer,
    /// Pooled plain-HTTP forwarding, direct.
    pub forwarder: Forwarder,
    /// Timeouts and TLS for dialing through upstream proxies.
    pub egress: Arc<EgressSettings>,
    /// Admission of client connections (`max_connections`).
    pub connections: ConnectionLimit,
    /// The stop signal and task tracker.
    pub shutdown: Shutdown,
    /// The embedded store.
    pub store: Store,
    /// Wakes the usage flusher early.
    pub flush: Arc<Notify>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// `[admin]` as started.
    pub admin: AdminConfig,
    /// Serializes admin changes (read, modify, store, swap).
    pub admin_writes: tokio::sync::Mutex<()>,
    /// The file a reload reads, when started from one.
    pub config_path: OnceLock<PathBuf>,
    /// The flusher's wake-up, when usage is persisted.
    pub journal: Option<Arc<Notify>>,
    /// The config pacer started with (restart-only sections are compared
    /// against it on reload).
    pub boot_config: Config,
}

impl App {
    /// Compiles `config` into runtime objects; fails when the store or a
    /// `[tls] extra_roots` file cannot be read.
    pub fn new(config: &Config, clock: Clock) -> anyhow::Result<Self> {
        let settings = config.server.clone();
        let dialer = Dialer::new(settings.connect_timeout);
        let egress = Arc::new(EgressSettings {
            connect_timeout: settings.connect_timeout,
            idle_timeout: settings.idle_timeout,
            tls: TlsClient::new(&config.tls)?,
        });
        let store = Store::open(&config.state)?;
        let flush = Arc::new(Notify::new());
        let changes = store.load_changes()?;
        let journal = journal(config, &flush);
        let runtime = Runtime::build(config, &changes, None, journal.clone(), &egress)?;
        Ok(App {
            metrics: Metrics::new(config.admin.account_metrics),
            admin: config.admin.clone(),
            admin_writes: tokio::sync::Mutex::new(()),
            config_path: OnceLock::new(),
            journal,
            boot_config: config.clone(),
            runtime: ArcSwap::from_pointee(runtime),
            store,
            flush,
            clock,
            forwarder: Forwarder::direct(dialer.clone(), settings.idle_timeout),
            egress,
            dialer,
            connections: ConnectionLimit::new(settings.max_connections),
            shutdown: Shutdown::new(),
            settings,
        })
    }

    /// Closes out a finished request or tunnel: its access line and its
    /// metrics.
    pub fn finish(&self, ctx: &RequestContext) {
        let runtime = self.runtime.load();
        let names: SmallVec<[&str; 4]> = ctx
            .actions
            .iter()
            .map(|id| runtime.classifier.name(*id))
            .collect();
        access_log::record(ctx, &names);
        self.metrics.observe(ctx, &names);
    }

    /// Frees idle accounts' limiter memory, forever (a background task).
    async fn compact_limiters(self: Arc<Self>) {
        let mut every = tokio::time::interval(COMPACT_EVERY);
        loop {
            every.tick().await;
            for account in self.runtime.load().accounts.iter() {
                account.limiter.compact(&self.clock);
            }
        }
    }
}

/// The flusher's wake-up when `config` keeps usage on disk.
pub fn journal(config: &Config, flush: &Arc<Notify>) -> Option<Arc<Notify>> {
    match config.state {
        StateConfig::Memory => None,
        StateConfig::Path(_) => Some(flush.clone()),
    }
}

/// The proxy with its listeners bound, ready to run.
pub struct Server {
    app: Arc<App>,
    listeners: Vec<BoundListener>,
    admin: TcpListener,
}

impl Server {
    /// Binds every configured listener (port 0 picks a free port).
    pub async fn bind(config: &Config) -> anyhow::Result<Server> {
        Self::bind_with_clock(config, Clock::system()).await
    }

    /// [`Server::bind`] with the limiters on `clock` (tests).
    pub async fn bind_with_clock(config: &Config, clock: Clock) -> anyhow::Result<Server> {
        let app = Arc::new(App::new(config, clock)?);
        persist::restore(&app)?;
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            let tcp = TcpListener::bind(l.addr)
                .await
                .with_context(|| format!("cannot listen on {}", l.addr))?;
            listeners.push(BoundListener {
                protocol: l.protocol,
                tcp,
                account: l.account.as_deref().map(Arc::from),
            });
        }
        let admin = TcpListener::bind(config.admin.addr)
            .await
            .with_context(|| format!("cannot listen on {} (admin)", config.admin.addr))?;
        Ok(Server {
            app,
            listeners,
            admin,
        })
    }

    /// Reloads (SIGHUP, `POST /v1/reload`) will read `path`.
    pub fn reload_from(self, path: PathBuf) -> Self {
        let _ = self.app.config_path.set(path);
        self
    }

    /// The running proxy's handle (for signal handlers).
    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// The admin API's bound address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.local_addr().ok()
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
        tokio::spawn(admin::serve(self.app.clone(), self.admin));
        let compactor = tokio::spawn(self.app.clone().compact_limiters());
        let flusher = tokio::spawn(persist::run(self.app.clone()));
        stop.await;
        compactor.abort();
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
        flusher.abort();
        let app = self.app.clone();
        match tokio::task::spawn_blocking(move || persist::close(&app)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(%err, "last usage snapshot not written"),
            Err(err) => tracing::error!(%err, "last usage snapshot failed"),
        }
        drained
    }
}
