//! The running proxy: [`App`] is the request path ([`Engine`]), the
//! proxy listeners' shared state ([`Ingress`]) and the control plane
//! ([`Control`]), built once from a validated config; [`Server`] binds the
//! configured listeners and runs them until a stop signal, then drains
//! within the grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Notify;

use crate::config::{Config, FleetConfig, ListenerProtocol, StateConfig};
use crate::control::{admin, Control};
use crate::egress::deny::Deny;
use crate::egress::tls::TlsClient;
use crate::egress::upstream::EgressSettings;
use crate::fleet::admission::FleetLimiter;
use crate::fleet::Fleet;
use crate::ingress::limit::ConnectionLimit;
use crate::ingress::threads::{self, IngressThreads};
use crate::ingress::{self, BoundListener, Ingress};
use crate::intercept::Interceptor;
use crate::pipeline::Engine;
use crate::policy::limit::clock::Clock;
use crate::policy::limit::Limiter;
use crate::state::persist;
use crate::state::snapshot::Snapshot;
use crate::state::store::{Store, Stored};
use crate::telemetry::metrics::Metrics;

/// The running proxy, built once from a validated config.
pub struct App {
    /// What the request path reads.
    pub engine: Arc<Engine>,
    /// What every proxy listener shares.
    pub ingress: Arc<Ingress>,
    /// What only the control plane touches.
    pub control: Arc<Control>,
}

impl App {
    /// Compiles `config` into runtime objects; fails when the store or a
    /// `[tls] extra_roots` file cannot be read. `pools` is the number of
    /// ingress threads, each with its own pooled origin connections; `own`
    /// are the addresses pacer listens on (never dialled).
    pub fn new(
        config: &Config,
        clock: Clock,
        pools: usize,
        own: Vec<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let settings = config.server.clone();
        let deny = Deny::new(&config.server.deny_destinations, own).map_err(anyhow::Error::msg)?;
        let egress = Arc::new(EgressSettings {
            connect_timeout: settings.connect_timeout,
            idle_timeout: settings.idle_timeout,
            tls: TlsClient::new(&config.tls)?,
            pools,
        });
        let store = Store::open(&config.state)?;
        // A fleet's runtime changes live in Redis: they are applied as soon
        // as it answers (`Control::follow_fleet`).
        let stored = match config.fleet {
            Some(_) => Stored::default(),
            None => store.load_stored()?,
        };
        let journal = match config.state {
            StateConfig::Memory => None,
            StateConfig::Path(_) => Some(Arc::new(Notify::new())),
        };
        let snapshot = Snapshot::build(config, &stored, None, journal.clone(), &egress)?;
        let mut metrics = Metrics::new(config.admin.account_metrics);
        let fleet = match &config.fleet {
            Some(fleet) => Some(start_fleet(fleet, config, &mut metrics)?),
            None => None,
        };
        let interceptor = if config.mitm.enabled {
            Some(Interceptor::new(&config.mitm).context("cannot start interception")?)
        } else {
            None
        };
        let mut engine = Engine::new(
            settings,
            snapshot,
            egress,
            clock,
            metrics,
            interceptor,
            Arc::new(deny),
        );
        if let Some(fleet) = &fleet {
            engine.limiter = Limiter::Shared(Arc::new(FleetLimiter(fleet.clone())));
        }
        let engine = Arc::new(engine);
        let ingress = Arc::new(Ingress {
            engine: engine.clone(),
            connections: ConnectionLimit::new(config.server.max_connections),
        });
        let control = Arc::new(Control {
            engine: engine.clone(),
            store,
            admin: config.admin.clone(),
            writes: tokio::sync::Mutex::new(()),
            config_path: OnceLock::new(),
            journal,
            boot_config: config.clone(),
            in_force: arc_swap::ArcSwap::from_pointee(config.clone()),
            fleet,
        });
        Ok(App {
            engine,
            ingress,
            control,
        })
    }
}

/// The fleet of `fleet` (SPEC section 10), connecting in the background;
/// `rediss://` trusts the PEM files of `[tls] extra_roots` when there are
/// any, else the bundled Mozilla roots.
fn start_fleet(
    fleet: &FleetConfig,
    config: &Config,
    metrics: &mut Metrics,
) -> anyhow::Result<Arc<Fleet>> {
    // The Redis client builds its TLS config on the process-wide provider:
    // ring, as everywhere in pacer (none is installed yet on first call).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = Vec::new();
    for path in &config.tls.extra_roots {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read [tls] extra_roots file {}", path.display()))?;
        roots.extend(pem);
        roots.push(b'\n');
    }
    let roots = (!roots.is_empty()).then_some(roots);
    let fleet = Fleet::new(fleet.clone(), roots, metrics.fleet_gauges());
    fleet.connect();
    Ok(fleet)
}

/// Backlog of every proxy listener (the kernel caps it at `somaxconn`):
/// bursts of new tunnels must not overflow the accept queue.
const LISTEN_BACKLOG: u32 = 4096;

/// The proxy with its listeners bound, ready to run.
pub struct Server {
    app: App,
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
    /// [`crate::ingress::threads`], one single-threaded runtime per core.
    pub async fn bind_per_core(config: &Config) -> anyhow::Result<Server> {
        Self::bind_inner(config, Clock::system(), threads::per_core(), true).await
    }

    async fn bind_inner(
        config: &Config,
        clock: Clock,
        copies: usize,
        threaded: bool,
    ) -> anyhow::Result<Server> {
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
        let mut own: Vec<SocketAddr> = ingress
            .first()
            .into_iter()
            .flatten()
            .filter_map(|l| l.tcp.local_addr().ok())
            .collect();
        own.extend(admin.local_addr().ok());
        let app = App::new(config, clock, copies, own)?;
        let control = &app.control;
        persist::restore(
            &control.store,
            &app.engine.snapshot.load(),
            &app.engine.clock,
        )?;
        Ok(Server {
            app,
            ingress,
            threaded,
            admin,
        })
    }

    /// Reloads (SIGHUP, `POST /v1/reload`) will read `path`.
    pub fn reload_from(self, path: PathBuf) -> Self {
        let _ = self.app.control.config_path.set(path);
        self
    }

    /// The control plane (for signal handlers).
    pub fn control(&self) -> Arc<Control> {
        self.app.control.clone()
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
        let App {
            engine,
            ingress: shared,
            control,
        } = app;
        let threads = start_ingress(&shared, ingress, threaded)?;
        tokio::spawn(admin::serve(control.clone(), admin));
        let roots = engine.clone();
        tokio::spawn(async move { roots.egress.tls.preload().await });
        let sweeper = tokio::spawn(control.clone().free_idle());
        let flusher = tokio::spawn(control.clone().flush_usage());
        let follower = tokio::spawn(control.clone().follow_fleet());
        stop.await;
        sweeper.abort();
        follower.abort();
        tracing::info!("shutting down");
        engine.shutdown.begin();
        let drained = engine.shutdown.drain(engine.settings.shutdown_grace).await;
        if !drained {
            tracing::warn!("grace period over; closing remaining connections");
        }
        if let Some(threads) = threads {
            let _ = tokio::task::spawn_blocking(move || threads.stop()).await;
        }
        flusher.abort();
        let closing = control.clone();
        let close = move || persist::close(&closing.store, &closing.engine.snapshot.load());
        match tokio::task::spawn_blocking(close).await {
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
    shared: &Arc<Ingress>,
    ingress: Vec<Vec<BoundListener>>,
    threaded: bool,
) -> anyhow::Result<Option<IngressThreads>> {
    if threaded {
        let threads =
            IngressThreads::start(shared, ingress).context("cannot start the ingress threads")?;
        return Ok(Some(threads));
    }
    for bound in ingress.into_iter().flatten() {
        tokio::spawn(ingress::accept_loop(shared.clone(), bound));
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
