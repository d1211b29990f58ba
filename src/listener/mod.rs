//! Ingress: the accept loop shared by every proxy listener, and admission of
//! client connections against `max_connections`.
//!
//! A connection over the limit is not dropped blindly: while a small
//! overflow allowance lasts it is read far enough to be answered (HTTP 503
//! `errors/service_unavailable`, SOCKS5 reply 0x01); beyond that allowance
//! it is closed at once.

pub mod conn;
pub mod head;
pub mod http;
pub mod socks5;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::config::ListenerProtocol;
use crate::context::ListenerKind;

/// Connections answered with a refusal at once, beyond `max_connections`.
const OVERFLOW_ALLOWANCE: usize = 64;
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A listening socket and what its clients are.
pub struct BoundListener {
    /// HTTP or SOCKS5.
    pub protocol: ListenerProtocol,
    /// The listening socket.
    pub tcp: TcpListener,
    /// For a bound listener, the id of the account every client is.
    pub account: Option<Arc<str>>,
}

/// Permits for client connections across all proxy listeners.
#[derive(Debug)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    overflow: Arc<Semaphore>,
}

/// What a newly accepted connection may do.
#[derive(Debug)]
pub enum Admission {
    /// Served; the permit is held for the connection's life.
    Served(OwnedSemaphorePermit),
    /// Over the limit: answered with a refusal, then closed.
    Refused(OwnedSemaphorePermit),
}

impl ConnectionLimit {
    /// At most `max` connections served at once.
    pub fn new(max: usize) -> Self {
        ConnectionLimit {
            permits: Arc::new(Semaphore::new(max)),
            overflow: Arc::new(Semaphore::new(OVERFLOW_ALLOWANCE)),
        }
    }

    /// Admission for a new connection; `None` means close it unanswered.
    pub fn admit(&self) -> Option<Admission> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(Admission::Served(permit));
        }
        let permit = self.overflow.clone().try_acquire_owned().ok()?;
        Some(Admission::Refused(permit))
    }
}

/// Accepts connections until shutdown begins, then drops the listener.
/// Connection tasks never hold the listening socket, so it closes at once.
pub async fn accept_loop(app: Arc<App>, bound: BoundListener) {
    loop {
        let accepted = tokio::select! {
            () = app.shutdown.begun() => break,
            accepted = bound.tcp.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                accept_failed(&err).await;
                continue;
            }
        };
        let Some(admission) = app.connections.admit() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        serve(&app, &bound, stream, peer, admission);
    }
}

/// Spawns the connection's task. Each protocol's task is spawned on its
/// own, so that a task's memory is sized for its protocol's future only.
fn serve(
    app: &Arc<App>,
    bound: &BoundListener,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    admission: Admission,
) {
    let account = match &bound.account {
        None => None,
        Some(id) => match app.runtime.load().accounts.get(id) {
            Some(account) => Some(account),
            None => {
                tracing::warn!(account = %id, "bound account no longer configured; connection closed");
                return;
            }
        },
    };
    let kind = match bound.protocol {
        ListenerProtocol::Http => ListenerKind::Http,
        ListenerProtocol::Socks5 => ListenerKind::Socks5,
    };
    let open = app.metrics.connection(kind);
    let owned = app.clone();
    match bound.protocol {
        ListenerProtocol::Http => {
            let task = http::serve_connection(owned, stream, peer, account, admission);
            app.shutdown.spawn(holding(open, task));
        }
        ListenerProtocol::Socks5 => {
            let task = socks5::serve_connection(owned, stream, peer, account, admission);
            app.shutdown.spawn(holding(open, task));
        }
    }
}

/// Runs `task`, keeping `guard` until it ends.
async fn holding<G, F: Future<Output = ()>>(guard: G, task: F) {
    task.await;
    drop(guard);
}

async fn accept_failed(err: &io::Error) {
    tracing::warn!(%err, "accept failed");
    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
}
