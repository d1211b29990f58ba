//! The relay between two plain TCP sockets (Linux): each burst of bytes
//! goes socket to pipe to socket with `splice(2)`, never through user
//! space, in a pipe leased from the thread's pool for as long as the burst
//! is in flight ([`super::pipes`]). A burst that finds the pool empty is
//! copied through a 64 KiB buffer, also held only while it is in flight.
//!
//! Readiness stays with tokio's reactor: a direction waits for its reader
//! to be readable holding nothing, then splices or reads through
//! `TcpStream::try_io`, which clears the readiness when the socket has no
//! more to give; writes wait for writability the same way.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncWrite, Interest};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::pipes::{self, Lease};
use super::{both, Activity, Copied, BUFFER_BYTES};

/// Two sockets relayed both ways, each with the bytes it had already
/// read ahead (sent on before anything else).
pub struct Sockets {
    client: TcpStream,
    destination: TcpStream,
    up: Pump,
    down: Pump,
}

impl Sockets {
    /// `client` and `destination`, each with its unread bytes.
    pub fn new(client: (Bytes, TcpStream), destination: (Bytes, TcpStream)) -> Self {
        Sockets {
            up: Pump::new(client.0),
            down: Pump::new(destination.0),
            client: client.1,
            destination: destination.1,
        }
    }

    /// Copies both ways until both sides have closed or one fails, with at
    /// most `pipes` pipes per thread.
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        pipes: usize,
        activity: &Activity,
    ) -> Poll<io::Result<()>> {
        let (client_read, mut client_write) = self.client.split();
        let (destination_read, mut destination_write) = self.destination.split();
        let upward = self
            .up
            .poll(cx, &client_read, &mut destination_write, pipes, activity);
        let downward = self
            .down
            .poll(cx, &destination_read, &mut client_write, pipes, activity);
        both(upward, downward)
    }

    /// What moved so far.
    pub fn copied(&self) -> Copied {
        Copied {
            up: self.up.moved,
            down: self.down.moved,
            spliced: self.up.spliced + self.down.spliced,
        }
    }
}

/// What one direction has in flight: read from its reader, not yet all
/// written to its writer.
enum InFlight {
    Nothing,
    Pipe(Lease),
    Buffer { bytes: Vec<u8>, start: usize },
}

/// One direction between two sockets.
struct Pump {
    in_flight: InFlight,
    read_done: bool,
    finished: bool,
    moved: u64,
    spliced: u64,
}

impl Pump {
    /// A direction that first sends on `unread`.
    fn new(unread: Bytes) -> Self {
        let moved = unread.len() as u64;
        let in_flight = if unread.is_empty() {
            InFlight::Nothing
        } else {
            InFlight::Buffer {
                bytes: unread.to_vec(),
                start: 0,
            }
        };
        Pump {
            in_flight,
            read_done: false,
            finished: false,
            moved,
            spliced: 0,
        }
    }

    /// Moves what `reader` has to `writer`; ready once the reader's end of
    /// file has been passed on as a shutdown of the writer.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        reader: &ReadHalf<'_>,
        writer: &mut WriteHalf<'_>,
        pipes: usize,
        activity: &Activity,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_drain(cx, writer.as_ref(), activity))?;
            if self.read_done {
                ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                self.finished = true;
                continue;
            }
            let socket = reader.as_ref();
            ready!(socket.poll_read_ready(cx))?;
            match self.read(socket, pipes) {
                Ok(0) => self.read_done = true,
                Ok(n) => {
                    self.moved += n as u64;
                    activity.touch();
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
    }

    /// Reads a burst from `socket` into a leased pipe, or a buffer when
    /// the pool is empty. What was leased goes back at once if the read
    /// gave nothing.
    fn read(&mut self, socket: &TcpStream, pipes: usize) -> io::Result<usize> {
        if let Some(mut pipe) = pipes::lease(pipes) {
            let n = socket.try_io(Interest::READABLE, || pipe.fill_from(socket))?;
            self.spliced += n as u64;
            if n > 0 {
                self.in_flight = InFlight::Pipe(pipe);
            }
            return Ok(n);
        }
        let mut bytes = Vec::with_capacity(BUFFER_BYTES);
        let n = socket.try_read_buf(&mut bytes)?;
        if n > 0 {
            self.in_flight = InFlight::Buffer { bytes, start: 0 };
        }
        Ok(n)
    }

    /// Writes what is in flight to `socket`; ready once nothing is.
    fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        socket: &TcpStream,
        activity: &Activity,
    ) -> Poll<io::Result<()>> {
        loop {
            let written = match &mut self.in_flight {
                InFlight::Nothing => return Poll::Ready(Ok(())),
                InFlight::Pipe(pipe) if pipe.pending() == 0 => None,
                InFlight::Buffer { bytes, start } if *start == bytes.len() => None,
                InFlight::Pipe(pipe) => {
                    ready!(socket.poll_write_ready(cx))?;
                    Some(socket.try_io(Interest::WRITABLE, || pipe.drain_to(socket)))
                }
                InFlight::Buffer { bytes, start } => {
                    ready!(socket.poll_write_ready(cx))?;
                    let written = socket.try_write(&bytes[*start..]);
                    if let Ok(n) = written {
                        *start += n;
                    }
                    Some(written)
                }
            };
            match written {
                // Emptied: the pipe goes back to the pool, the buffer is freed.
                None => self.in_flight = InFlight::Nothing,
                Some(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Some(Ok(_)) => activity.touch(),
                Some(Err(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
                Some(Err(err)) => return Poll::Ready(Err(err)),
            }
        }
    }
}
