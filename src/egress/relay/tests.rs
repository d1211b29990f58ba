use std::future::pending;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpListener;

use super::*;

impl IntoSocket for DuplexStream {
    fn into_socket(self) -> Result<(Bytes, TcpStream), Self> {
        Err(self)
    }
}

const MINUTE: Duration = Duration::from_secs(60);

fn settings(splice_pipes: usize) -> RelaySettings {
    RelaySettings {
        idle_timeout: MINUTE,
        splice_pipes,
    }
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| ((i + seed) % 251) as u8).collect()
}

#[tokio::test]
async fn copies_both_ways_with_half_close_and_counts() {
    let (mut client, client_side) = tokio::io::duplex(64);
    let (dest_side, mut destination) = tokio::io::duplex(64);
    let relay = tokio::spawn(relay(client_side, dest_side, settings(8), pending()));
    client.write_all(b"hello").await.expect("write");
    client.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    destination.read_to_end(&mut got).await.expect("read");
    assert_eq!(got, b"hello");
    destination.write_all(b"world!").await.expect("write back");
    destination.shutdown().await.expect("close");
    let mut back = Vec::new();
    client.read_to_end(&mut back).await.expect("read back");
    assert_eq!(back, b"world!");
    let outcome = relay.await.expect("relay task");
    assert!(matches!(outcome.end, RelayEnd::Closed), "{outcome:?}");
    assert_eq!((outcome.up, outcome.down, outcome.spliced), (5, 6, 0));
}

#[tokio::test]
async fn a_megabyte_arrives_whole_and_in_order() {
    let (mut client, client_side) = tokio::io::duplex(4096);
    let (dest_side, mut destination) = tokio::io::duplex(4096);
    let relay = tokio::spawn(relay(client_side, dest_side, settings(8), pending()));
    let sent = pattern(1 << 20, 0);
    let to_send = sent.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&to_send).await.expect("write");
        client.shutdown().await.expect("half-close");
        client
    });
    let mut got = Vec::new();
    destination.read_to_end(&mut got).await.expect("read");
    assert!(got == sent, "the bytes arrived changed");
    destination.shutdown().await.expect("close");
    drop(writer.await.expect("writer"));
    let outcome = relay.await.expect("relay task");
    assert_eq!((outcome.up, outcome.down), (1 << 20, 0));
}

#[tokio::test(start_paused = true)]
async fn an_idle_tunnel_is_cut_after_idle_timeout() {
    let (_client, client_side) = tokio::io::duplex(64);
    let (dest_side, _destination) = tokio::io::duplex(64);
    let start = Instant::now();
    let idle = RelaySettings {
        idle_timeout: Duration::from_secs(90),
        splice_pipes: 8,
    };
    let outcome = relay(client_side, dest_side, idle, pending()).await;
    assert!(matches!(outcome.end, RelayEnd::Idle));
    assert_eq!(start.elapsed(), Duration::from_secs(90));
}

#[tokio::test]
async fn a_stream_without_a_socket_keeps_its_read_ahead_bytes() {
    let (_far, near) = tokio::io::duplex(64);
    let prefixed = Prefixed::new(Bytes::from_static(b"ab"), near);
    let mut kept = prefixed.into_socket().expect_err("no socket inside");
    let mut got = [0u8; 2];
    kept.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"ab");
}

/// Two connected loopback sockets.
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (connected, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (connected.expect("connect"), accepted.expect("accept").0)
}

/// A relay between two socket pairs on the test's thread (so it shares
/// the thread's pipe pool): the far ends, and the relay's task.
#[cfg(target_os = "linux")]
async fn socket_tunnel(
    client_unread: &'static [u8],
    destination_unread: &'static [u8],
    settings: RelaySettings,
) -> (TcpStream, TcpStream, tokio::task::JoinHandle<RelayOutcome>) {
    let (client, client_side) = tcp_pair().await;
    let (destination_side, destination) = tcp_pair().await;
    let client_side = Prefixed::new(Bytes::from_static(client_unread), client_side);
    let destination_side = Prefixed::new(Bytes::from_static(destination_unread), destination_side);
    let relay = tokio::spawn(relay(client_side, destination_side, settings, pending()));
    (client, destination, relay)
}

/// Sends `up` from the client and `down` from the destination at once,
/// each followed by a half-close; what each far end received.
#[cfg(target_os = "linux")]
async fn exchange(
    client: TcpStream,
    destination: TcpStream,
    up: Vec<u8>,
    down: Vec<u8>,
) -> (Vec<u8>, Vec<u8>) {
    async fn send_and_receive(mut socket: TcpStream, bytes: Vec<u8>) -> Vec<u8> {
        let (mut read, mut write) = socket.split();
        let send = async {
            write.write_all(&bytes).await.expect("send");
            write.shutdown().await.expect("half-close");
        };
        let mut got = Vec::new();
        let receive = read.read_to_end(&mut got);
        let ((), received) = tokio::join!(send, receive);
        received.expect("receive");
        got
    }
    tokio::join!(
        send_and_receive(destination, down),
        send_and_receive(client, up)
    )
}

/// Megabytes both ways at once over a socket tunnel with `pipes` pipes;
/// the bytes must arrive whole and the relay end closed.
#[cfg(target_os = "linux")]
async fn bulk_both_ways(pipes: usize, up: usize, down: usize) -> RelayOutcome {
    let (client, destination, relay) = socket_tunnel(b"", b"", settings(pipes)).await;
    let (up, down) = (pattern(up, 0), pattern(down, 7));
    let (at_destination, at_client) = exchange(client, destination, up.clone(), down.clone()).await;
    assert!(
        at_destination == up && at_client == down,
        "the bytes changed"
    );
    let outcome = relay.await.expect("relay task");
    assert!(matches!(outcome.end, RelayEnd::Closed), "{outcome:?}");
    assert_eq!(
        (outcome.up, outcome.down),
        (up.len() as u64, down.len() as u64)
    );
    outcome
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn plain_sockets_are_spliced_both_ways_with_half_close() {
    let outcome = bulk_both_ways(8, 3 << 20, 1 << 20).await;
    assert_eq!(outcome.spliced, 4 << 20, "every byte spliced");
    assert_eq!(pipes::held().0, 0, "every pipe back in the pool");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn read_ahead_bytes_go_first_then_the_sockets_are_spliced() {
    let (client, destination, relay) = socket_tunnel(b"GET / ", b"HTTP/1.1 ", settings(8)).await;
    let (at_destination, at_client) = exchange(
        client,
        destination,
        b"HTTP/1.1".to_vec(),
        b"200 OK".to_vec(),
    )
    .await;
    assert_eq!(at_destination, b"GET / HTTP/1.1");
    assert_eq!(at_client, b"HTTP/1.1 200 OK");
    let outcome = relay.await.expect("relay task");
    assert_eq!((outcome.up, outcome.down, outcome.spliced), (14, 15, 14));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn with_the_pool_empty_bursts_go_through_buffers() {
    let outcome = bulk_both_ways(0, 1 << 20, 2 << 20).await;
    assert_eq!(outcome.spliced, 0);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_burst_splices_again_once_a_pipe_is_free() {
    let only = pipes::lease(1).expect("the thread's one pipe");
    let (mut client, mut destination, relay) = socket_tunnel(b"", b"", settings(1)).await;
    let mut got = [0u8; 5];
    client.write_all(b"first").await.expect("write");
    destination.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"first", "copied through a buffer");
    drop(only);
    client.write_all(b"again").await.expect("write");
    destination.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"again", "spliced");
    drop((client, destination));
    let outcome = relay.await.expect("relay task");
    assert_eq!((outcome.up, outcome.spliced), (10, 5));
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn idle_tunnels_hold_no_pipe() {
    let mut tunnels = Vec::new();
    for _ in 0..20 {
        let (mut client, mut destination, relay) = socket_tunnel(b"", b"", settings(4)).await;
        client.write_all(b"ping").await.expect("write");
        let mut got = [0u8; 4];
        destination.read_exact(&mut got).await.expect("read");
        destination.write_all(b"pong").await.expect("write back");
        client.read_exact(&mut got).await.expect("read back");
        tunnels.push((client, destination, relay));
    }
    let (leased, kept) = pipes::held();
    assert_eq!(leased, 0, "20 open idle tunnels lease no pipe");
    assert!(kept <= 4, "the pool keeps at most its limit: {kept}");
    for (client, destination, relay) in tunnels {
        drop((client, destination));
        let outcome = relay.await.expect("relay task");
        assert_eq!(outcome.spliced, 8);
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(start_paused = true)]
async fn an_idle_socket_tunnel_is_cut_after_idle_timeout() {
    let (_client, _destination, relay) = socket_tunnel(b"", b"", settings(4)).await;
    let start = Instant::now();
    let outcome = relay.await.expect("relay task");
    assert!(matches!(outcome.end, RelayEnd::Idle), "{outcome:?}");
    assert_eq!(start.elapsed(), MINUTE);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_reset_ends_the_relay_as_failed() {
    let (client, _destination, relay) = socket_tunnel(b"", b"", settings(4)).await;
    client
        .set_zero_linger()
        .expect("linger 0: a reset on close");
    drop(client);
    let outcome = relay.await.expect("relay task");
    assert!(matches!(outcome.end, RelayEnd::Failed(_)), "{outcome:?}");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_stop_signal_ends_a_socket_tunnel_with_its_counts() {
    let (mut client, client_side) = tcp_pair().await;
    let (destination_side, mut destination) = tcp_pair().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let relay = tokio::spawn(relay(client_side, destination_side, settings(4), stopped));
    client.write_all(b"bytes").await.expect("write");
    let mut got = [0u8; 5];
    destination.read_exact(&mut got).await.expect("read");
    let _ = stop.send(());
    let outcome = relay.await.expect("relay task");
    assert!(matches!(outcome.end, RelayEnd::Stopped), "{outcome:?}");
    assert_eq!((outcome.up, outcome.spliced), (5, 5));
}
