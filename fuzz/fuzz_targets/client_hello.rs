//! ClientHello sniffing on a deferred tunnel's first bytes
//! (`intercept::sniff`), and, for a ClientHello, the interceptor's TLS
//! accept on the same bytes (rustls reads the hello, a leaf is minted for
//! its SNI, or for the tunnel's host). Flag byte: bits 0-5 the read size.
#![no_main]

use std::sync::OnceLock;

use harness::{block_on, stream};
use libfuzzer_sys::fuzz_target;
use pacer::config::MitmConfig;
use pacer::intercept::{ca, sniff, Interceptor};

/// An interceptor with a CA made for this process.
fn interceptor() -> &'static Interceptor {
    static INTERCEPTOR: OnceLock<Interceptor> = OnceLock::new();
    INTERCEPTOR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pacer-fuzz-ca-{}", std::process::id()));
        let written = ca::init(&dir, true).expect("a CA");
        let config = MitmConfig {
            enabled: true,
            ca_cert: written.cert,
            ca_key: written.key,
            hosts: vec!["*".into()],
            leaf_cache: 64,
        };
        let interceptor = Interceptor::new(&config).expect("the interceptor");
        let _ = std::fs::remove_dir_all(&dir);
        interceptor
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, first)) = data.split_first() else {
        return;
    };
    let sniffed = &first[..first.len().min(sniff::NEEDED)];
    if !sniff::is_client_hello(sniffed) {
        return;
    }
    let client = stream::from_flags(flags & 0x3f, first);
    let _ = block_on(interceptor().accept(client, "tunnel.example"));
});
