//! A keep-alive loopback origin for the benches that logs when each
//! request head carrying `X-Account` and `X-Seq` arrived, and answers
//! every request `200 ok`.
//!
//! The arrival time is the kernel's receive timestamp of the head's first
//! bytes (`SO_TIMESTAMPNS`, read with `recvmsg`), not the moment the
//! origin's task got to read them: a new connection waits in the accept
//! queue and its task waits for a core, a pooled one does not, and that
//! difference is the origin's, not pacer's.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};

/// Arrivals at the origin: (account, sequence, kernel receive time since
/// the Unix epoch).
pub type Log = Arc<Mutex<Vec<(usize, usize, Duration)>>>;

/// Its listen backlog: room for every connection a burst of paced
/// requests opens at once (a full backlog drops SYNs, which delays a
/// connection by a second).
const BACKLOG: u32 = 4096;

/// Starts the origin on 127.0.0.1; returns its address.
pub async fn start(log: Log) -> SocketAddr {
    let socket = TcpSocket::new_v4().expect("origin socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("origin bind");
    stamp_arrivals(socket.as_raw_fd()).expect("SO_TIMESTAMPNS");
    let listener = socket.listen(BACKLOG).expect("origin listen");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, log.clone()));
        }
    });
    addr
}

/// Answers every head on `stream`, logging the marked ones.
async fn serve(mut stream: TcpStream, log: Log) {
    if stamp_arrivals(stream.as_raw_fd()).is_err() {
        return;
    }
    let mut pending = Vec::new();
    let mut head_arrived = Duration::ZERO;
    let mut chunk = [0u8; 4096];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        let fd = stream.as_raw_fd();
        let read = stream.try_io(Interest::READABLE, || recv_stamped(fd, &mut chunk));
        let (n, stamp) = match read {
            Ok((0, _)) => return,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return,
        };
        if pending.is_empty() {
            head_arrived = stamp.unwrap_or_else(since_epoch);
        }
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            if let Some((account, seq)) = marks(&head) {
                log.lock().expect("log").push((account, seq, head_arrived));
            }
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            if stream.write_all(ok).await.is_err() {
                return;
            }
        }
    }
}

/// The `X-Account` and `X-Seq` values of a head.
fn marks(head: &[u8]) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(head).ok()?;
    let value = |name: &str| {
        text.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name)
                .then(|| v.trim().parse().ok())?
        })
    };
    Some((value("x-account")?, value("x-seq")?))
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Asks the kernel to stamp every packet the socket receives (accepted
/// sockets inherit it from the listener).
fn stamp_arrivals(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and an int option of the right size.
    let done = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of_val(&on) as libc::socklen_t,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One non-blocking `recvmsg` into `buf`: the bytes read and the kernel's
/// receive timestamp of the first of them.
fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `msg` describes live buffers of the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n, stamp))
}
