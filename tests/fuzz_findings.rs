//! Black-box regression tests, through the real binary, for defects that
//! the fuzz targets (`fuzz/`) and the soak run (`bench/soak.sh`) found,
//! one section per defect (RELIABILITY.md lists them):
//!
//! 1. a request head larger than `max_header_bytes` but complete within
//!    two of the first-head reader's reads was accepted (a read could take
//!    the buffer past the limit): it gets 431, one under the limit is served;
//! 2. a destination name ending in more than one dot (`example.com..`) was
//!    taken for a host name: it is refused like any bad name, on CONNECT
//!    and SOCKS5.
//!
//! Every wait is bounded; every socket is on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

/// The bound on every wait for something that must happen.
const WITHIN: Duration = Duration::from_secs(10);

/// The real binary on `base_config(server_extra)`: its HTTP and SOCKS5
/// listeners. The temporary directory holds the config while it runs.
async fn pacer(
    server_extra: &str,
) -> (
    tokio::process::Child,
    SocketAddr,
    SocketAddr,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("pacer.toml");
    std::fs::write(&path, base_config(server_extra)).expect("config");
    let (child, addrs) = spawn_pacer(&path, 2).await;
    let addr = |i: usize| -> SocketAddr { addrs[i].parse().expect("listener address") };
    (child, addr(0), addr(1), dir)
}

/// A GET through the HTTP proxy whose head is `size` bytes, padded by one
/// header.
fn head_of(size: usize, origin: &Origin) -> Vec<u8> {
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {}\r\nConnection: close\r\nX-Pad: ",
        origin.url("/"),
        basic_auth()
    )
    .into_bytes();
    head.resize(size - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

// ---------------------------------------------------------------------------
// 1. The head limit holds whatever the reads
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_head_past_max_header_bytes_gets_431_even_when_read_in_two_reads() {
    let origin = Origin::start().await;
    let (_pacer, http, _, _dir) = pacer("max_header_bytes = 6000").await;
    // 6,400 bytes: more than one 4 KiB read, less than two.
    let raw = raw_exchange(http, &head_of(6_400, &origin), WITHIN).await;
    assert_envelope(&raw, 431, "errors/headers_too_large");
    let served = raw_exchange(http, &head_of(5_900, &origin), WITHIN).await;
    assert!(
        served.starts_with(b"HTTP/1.1 200"),
        "a head under the limit is served: {}",
        String::from_utf8_lossy(&served)
    );
    assert_eq!(origin.hits(), 1, "only the head under the limit went out");
}

// ---------------------------------------------------------------------------
// 2. At most one trailing dot
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_name_with_two_trailing_dots_is_refused_on_connect_and_socks5() {
    let (_pacer, http, socks, _dir) = pacer("").await;
    let connect = format!(
        "CONNECT example.com..:443 HTTP/1.1\r\nHost: example.com..:443\r\nProxy-Authorization: {}\r\n\r\n",
        basic_auth()
    );
    let raw = raw_exchange(http, connect.as_bytes(), WITHIN).await;
    assert_envelope(&raw, 400, "errors/invalid_request");

    assert_eq!(
        socks_domain(socks, b"example.com..").await,
        0x01,
        "general failure for a bad name"
    );
}
