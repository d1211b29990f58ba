//! What the fuzz targets share: an in-memory client stream that hands the
//! fuzzer's bytes to pacer in chunks ([`stream`]), one tokio runtime on a
//! paused clock (every timeout pacer sets fires as soon as nothing else
//! can run, so a client that goes quiet costs no wall time), the running
//! proxy built once from a config whose every way out is a closed port on
//! loopback ([`proxy`]), and the invariants every accepted destination
//! keeps ([`destination`]).

pub mod destination;
pub mod proxy;
pub mod stream;

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// Runs `future` to its end on the fuzz runtime (current thread, paused
/// clock).
pub fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a tokio runtime")
    });
    runtime.block_on(future)
}
