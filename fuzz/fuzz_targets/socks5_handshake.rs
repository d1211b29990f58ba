//! The SOCKS5 listener's handshake (RFC 1928 greeting, RFC 1929
//! credentials, the request) as a client's bytes: the real
//! `ingress::socks5::serve_connection`, on the fuzz proxy. Flag byte: bits
//! 0-5 the read size, bit 6 silence instead of end of file, bit 7 a bound
//! listener (no authentication).
#![no_main]

use std::sync::Arc;

use harness::{block_on, proxy, stream};
use libfuzzer_sys::fuzz_target;
use pacer::ingress::limit::ConnectionLimit;
use pacer::ingress::socks5::serve_connection;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, script)) = data.split_first() else {
        return;
    };
    let app = proxy::app();
    let bound = (flags & 0x80 != 0).then(|| Arc::<str>::from("acct-1"));
    let Some(admission) = ConnectionLimit::new(1).admit() else {
        return;
    };
    let client = stream::from_flags(flags, script);
    block_on(serve_connection(
        app.engine.clone(),
        client,
        proxy::peer(),
        bound,
        admission,
    ));
});
