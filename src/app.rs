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
use tokio::net::{TcpListener, TcpSocket};
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
use crate::threads::{self, IngressThreads};
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
    /// `pools` is the number of ingress threads, each with its own pooled
    /// origin connections.
    pub fn new(config: &Config, clock: Clock, pools: usize) -> anyhow::Result<Self> {
        let settings = config.server.clone();
        let dialer = Dialer::new(settings.connect_timeout);
        let egress = Arc::new(EgressSettings {
            connect_timeout: settings.connect_timeout,
            idle_timeout: settings.idle_timeout,
            tls: TlsClient::new(&config.tls)?,
            pools,
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
            forwarder: Forwarder::direct(dialer.clone(), &egress),
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

/// Backlog of every proxy listener (the kernel caps it at `somaxconn`):
/// bursts of new tunnels must not overflow the accept queue.
const LISTEN_BACKLOG: u32 = 4096;

/// The proxy with its listeners bound, ready to run.
pub struct Server {
    app: Arc<App>,
    /// One set of listeners per ingress thread, or the one set served on
    /// the caller's runtime.
    ingress: Vec<Vec<BoundListener>>,
    threaded: bool,
    admin: TcpListener,
}

impl Server {
    /// Binds every configured listener (port 0 picks a free port); the
    /// proxy will serve on the caller's runtime.
    pub async fn bind(config: &Config) -> anyhow::Result<Server> {
        Self::bind_with_clock(config, Clock::system()).await
    }

    /// [`Server::bind`] with the limiters on `clock` (tests).
    pub async fn bind_with_clock(config: &Config, clock: Clock) -> anyhow::Result<Server> {
        Self::bind_inner(config, clock, 1, false).await
    }

    /// Binds every listener once per core: connections are served by
    /// [`crate::threads`], one single-threaded runtime per core.
    pub async fn bind_per_core(config: &Config) -> anyhow::Result<Server> {
        Self::bind_inner(config, Clock::system(), threads::per_core(), true).await
    }

    async fn bind_inner(
        config: &Config,
        clock: Clock,
        copies: usize,
        threaded: bool,
    ) -> anyhow::Result<Server> {
        let app = Arc::new(App::new(config, clock, copies)?);
        persist::restore(&app)?;
        let mut ingress: Vec<Vec<BoundListener>> = (0..copies).map(|_| Vec::new()).collect();
        for l in &config.listeners {
            let sockets = listen_copies(l.addr, copies)
                .with_context(|| format!("cannot listen on {}", l.addr))?;
            for (set, tcp) in ingress.iter_mut().zip(sockets) {
                set.push(BoundListener {
                    protocol: l.protocol,
                    tcp,
                    account: l.account.as_deref().map(Arc::from),
                });
            }
        }
        let admin = TcpListener::bind(config.admin.addr)
            .await
            .with_context(|| format!("cannot listen on {} (admin)", config.admin.addr))?;
        Ok(Server {
            app,
            ingress,
            threaded,
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
        let first = self.ingress.first().map(Vec::as_slice).unwrap_or_default();
        first
            .iter()
            .filter_map(|l| Some((l.protocol, l.tcp.local_addr().ok()?)))
            .collect()
    }

    /// Serves until `stop` resolves, then shuts down: listeners close at
    /// once, in-flight work gets `shutdown_grace`. Returns whether every
    /// connection and tunnel ended within the grace period, or an error
    /// when the ingress threads could not start (nothing was served).
    pub async fn run(self, stop: impl Future<Output = ()>) -> anyhow::Result<bool> {
        let Server {
            app,
            ingress,
            threaded,
            admin,
        } = self;
        let threads = start_ingress(&app, ingress, threaded)?;
        tokio::spawn(admin::serve(app.clone(), admin));
        let compactor = tokio::spawn(app.clone().compact_limiters());
        let flusher = tokio::spawn(persist::run(app.clone()));
        stop.await;
        compactor.abort();
        tracing::info!("shutting down");
        app.shutdown.begin();
        let drained = app.shutdown.drain(app.settings.shutdown_grace).await;
        if !drained {
            tracing::warn!("grace period over; closing remaining connections");
        }
        if let Some(threads) = threads {
            let _ = tokio::task::spawn_blocking(move || threads.stop()).await;
        }
        flusher.abort();
        let closing = app.clone();
        match tokio::task::spawn_blocking(move || persist::close(&closing)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(%err, "last usage snapshot not written"),
            Err(err) => tracing::error!(%err, "last usage snapshot failed"),
        }
        Ok(drained)
    }
}

/// Starts serving the listeners: on ingress threads when `threaded`, else
/// on the caller's runtime.
fn start_ingress(
    app: &Arc<App>,
    ingress: Vec<Vec<BoundListener>>,
    threaded: bool,
) -> anyhow::Result<Option<IngressThreads>> {
    if threaded {
        let threads =
            IngressThreads::start(app, ingress).context("cannot start the ingress threads")?;
        return Ok(Some(threads));
    }
    for bound in ingress.into_iter().flatten() {
        tokio::spawn(listener::accept_loop(app.clone(), bound));
    }
    Ok(None)
}

/// `copies` listening sockets on `addr` (with `SO_REUSEPORT` when more
/// than one); port 0 picks one free port for all of them.
fn listen_copies(addr: SocketAddr, copies: usize) -> std::io::Result<Vec<TcpListener>> {
    let mut addr = addr;
    if copies > 1 {
        // SO_REUSEPORT would let a second pacer started on the same port
        // share it silently: a plain bind first fails if anyone listens.
        let probe = std::net::TcpListener::bind(addr)?;
        addr = probe.local_addr()?;
    }
    let mut sockets = Vec::with_capacity(copies);
    for _ in 0..copies {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        if copies > 1 {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        addr = socket.local_addr()?;
        sockets.push(socket.listen(LISTEN_BACKLOG)?);
    }
    Ok(sockets)
}
