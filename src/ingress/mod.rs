//! Ingress: the proxy listeners. [`accept`] takes connections (backing off
//! on errors), [`limit`] admits them against `max_connections`, [`threads`]
//! runs one single-threaded runtime per core, [`http`] checks an HTTP
//! client's first head and watches its connection, [`socks5`] runs the
//! SOCKS5 handshake. Each hands the client to the pipeline; nothing here
//! decides anything about accounts, limits or routes.

pub mod accept;
pub mod http;
pub mod limit;
pub mod socks5;
pub mod threads;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt as _;

use tokio::net::{TcpListener, TcpStream};

use self::limit::{Admission, ConnectionLimit};
use crate::config::ListenerProtocol;
use crate::pipeline::Engine;
use crate::telemetry::context::ListenerKind;

/// A listening socket and what its clients are.
pub struct BoundListener {
    /// HTTP or SOCKS5.
    pub protocol: ListenerProtocol,
    /// The listening socket.
    pub tcp: TcpListener,
    /// For a bound listener, the id of the account every client is.
    pub account: Option<Arc<str>>,
}

/// What every proxy listener shares.
pub struct Ingress {
    /// The request path.
    pub engine: Arc<Engine>,
    /// Admission of client connections (`max_connections`).
    pub connections: ConnectionLimit,
}

/// Accepts connections until shutdown begins, then drops the listener.
/// Connection tasks never hold the listening socket, so it closes at once.
pub async fn accept_loop(ingress: Arc<Ingress>, bound: BoundListener) {
    loop {
        let (stream, peer) = tokio::select! {
            () = ingress.engine.shutdown.begun() => break,
            accepted = accept::next(&bound.tcp) => accepted,
        };
        let Some(admission) = ingress.connections.admit() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        serve(&ingress.engine, &bound, stream, peer, admission);
    }
}

/// Spawns the connection's task. Each protocol's task is spawned on its
/// own, so that a task's memory is sized for its protocol's future only.
fn serve(
    engine: &Arc<Engine>,
    bound: &BoundListener,
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
) {
    let account = bound.account.clone();
    let kind = match bound.protocol {
        ListenerProtocol::Http => ListenerKind::Http,
        ListenerProtocol::Socks5 => ListenerKind::Socks5,
    };
    let open = engine.metrics.connection(kind);
    let owned = engine.clone();
    match bound.protocol {
        ListenerProtocol::Http => {
            let task = http::serve_connection(owned, stream, peer, account, admission);
            engine.shutdown.spawn(holding(open, task));
        }
        ListenerProtocol::Socks5 => {
            let task = socks5::serve_connection(owned, stream, peer, account, admission);
            engine.shutdown.spawn(holding(open, task));
        }
    }
}

/// Runs `task`, keeping `guard` until it ends. Not an `async fn`: one
/// awaiting a future it was given holds that future twice (the argument
/// and the awaited copy), doubling the connection's task.
fn holding<G: Send + 'static, F: Future<Output = ()>>(
    guard: G,
    task: F,
) -> impl Future<Output = ()> {
    task.map(move |()| drop(guard))
}
