//! Ingress threads: one single-threaded tokio runtime per core, each
//! accepting on its own `SO_REUSEPORT` copy of every listener, so that a
//! connection, its requests, its pooled origin connections and its tunnels
//! all run on the thread that accepted it. The kernel spreads new
//! connections over the copies; no task ever hops between threads, which on
//! a busy machine saves a cross-thread wake-up at every step of a request.
//!
//! The main thread keeps its own runtime for everything else (admin API,
//! usage flusher, signals, shutdown). Each ingress thread picks its own
//! pool of every [`crate::egress::forward::Forwarder`] by its index.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{accept_loop, BoundListener, Ingress};
use crate::config::ListenerProtocol;
use crate::egress::forward;

/// How long an ingress thread waits for its leftover tasks once told to
/// stop (the grace period has already been spent by then).
const LEFTOVER_WAIT: Duration = Duration::from_millis(100);

/// The number of ingress threads to run: one per available core (one
/// where `SO_REUSEPORT` is not available).
pub fn per_core() -> usize {
    if cfg!(unix) {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        1
    }
}

/// The running ingress threads.
pub struct IngressThreads {
    threads: Vec<JoinHandle<()>>,
    stop: CancellationToken,
}

impl IngressThreads {
    /// Starts one thread per element of `sets`, each serving its listeners
    /// (registered with the caller's runtime; they move to the thread's).
    /// On an error the threads already started are stopped again.
    pub fn start(ingress: &Arc<Ingress>, sets: Vec<Vec<BoundListener>>) -> io::Result<Self> {
        let mut running = IngressThreads {
            threads: Vec::with_capacity(sets.len()),
            stop: CancellationToken::new(),
        };
        for (index, set) in sets.into_iter().enumerate() {
            if let Err(err) = running.start_one(index, ingress, set) {
                running.stop();
                return Err(err);
            }
        }
        Ok(running)
    }

    fn start_one(
        &mut self,
        index: usize,
        ingress: &Arc<Ingress>,
        set: Vec<BoundListener>,
    ) -> io::Result<()> {
        let portable = set
            .into_iter()
            .map(PortableListener::new)
            .collect::<io::Result<Vec<_>>>()?;
        let (ingress, stop) = (ingress.clone(), self.stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("pacer-ingress-{index}"))
            .spawn(move || run_thread(index, &ingress, portable, &stop))?;
        self.threads.push(thread);
        Ok(())
    }

    /// Stops every thread, dropping whatever tasks are left, and waits for
    /// them to exit.
    pub fn stop(self) {
        self.stop.cancel();
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("an ingress thread panicked");
            }
        }
    }
}

/// A listener detached from any runtime, on its way to an ingress thread.
struct PortableListener {
    protocol: ListenerProtocol,
    std: std::net::TcpListener,
    account: Option<Arc<str>>,
}

impl PortableListener {
    /// Detaches `bound` from the runtime it was registered with.
    fn new(bound: BoundListener) -> io::Result<Self> {
        Ok(PortableListener {
            protocol: bound.protocol,
            std: bound.tcp.into_std()?,
            account: bound.account,
        })
    }

    /// Registers it with the calling thread's runtime.
    fn register(self) -> io::Result<BoundListener> {
        Ok(BoundListener {
            protocol: self.protocol,
            tcp: tokio::net::TcpListener::from_std(self.std)?,
            account: self.account,
        })
    }
}

fn run_thread(
    index: usize,
    ingress: &Arc<Ingress>,
    listeners: Vec<PortableListener>,
    stop: &CancellationToken,
) {
    forward::use_pool(index);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, index, "cannot start an ingress runtime");
            return;
        }
    };
    runtime.block_on(async {
        for listener in listeners {
            match listener.register() {
                Ok(bound) => {
                    tokio::spawn(accept_loop(ingress.clone(), bound));
                }
                Err(err) => tracing::error!(%err, index, "cannot register a listener"),
            }
        }
        stop.cancelled().await;
    });
    runtime.shutdown_timeout(LEFTOVER_WAIT);
}
