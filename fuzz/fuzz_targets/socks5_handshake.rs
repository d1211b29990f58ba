//! The SOCKS5 listener's handshake (RFC 1928 greeting, RFC 1929
//! credentials, the request) as a client's bytes: the real
//! `ingress::socks5::serve_connection`, on the fuzz proxy, over a loopback
//! socket pair (the listener peeks at its socket to see a client hang up
//! while its CONNECT is paced, so it takes a real TCP socket). Flag byte:
//! bits 0-5 the write size, bit 6 silence instead of closing, bit 7 a
//! bound listener (no authentication).
#![no_main]

use std::sync::Arc;

use harness::{block_on, proxy};
use libfuzzer_sys::fuzz_target;
use pacer::ingress::limit::ConnectionLimit;
use pacer::ingress::socks5::serve_connection;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, script)) = data.split_first() else {
        return;
    };
    let app = proxy::app();
    let bound = (flags & 0x80 != 0).then(|| Arc::<str>::from("acct-1"));
    let Some(admission) = ConnectionLimit::new(1).admit() else {
        return;
    };
    let chunk = match usize::from(flags & 0x3f) {
        0 => script.len().max(1),
        n => n,
    };
    let silent = flags & 0x40 != 0;
    let script = script.to_vec();
    block_on(async move {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
            return;
        };
        let Ok(addr) = listener.local_addr() else {
            return;
        };
        let client = tokio::spawn(async move {
            let Ok(mut client) = TcpStream::connect(addr).await else {
                return;
            };
            for piece in script.chunks(chunk) {
                if client.write_all(piece).await.is_err() {
                    return;
                }
            }
            if silent {
                // Stays connected, says nothing more: one of pacer's
                // timeouts ends it (the paused clock runs them at once).
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut Vec::new()).await;
            } else {
                let _ = client.shutdown().await;
            }
        });
        let Ok((server, _)) = listener.accept().await else {
            return;
        };
        serve_connection(app.engine.clone(), server, proxy::peer(), bound, admission).await;
        client.abort();
    });
});
