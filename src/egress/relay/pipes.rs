//! Pipes for `splice(2)` (Linux), from a bounded pool per thread: a tunnel
//! direction leases one only while bytes are in flight (spliced in from
//! one socket, not yet spliced out to the other), so an idle tunnel holds
//! none. A thread holds at most its limit of pipes, leased or kept for
//! reuse (two file descriptors each); when all are leased, [`lease`]
//! answers `None` and the caller copies through a buffer instead.
//!
//! A pipe given back empty is kept for the next lease; one dropped with
//! bytes still in it (its tunnel failed or idled out mid-transfer) is
//! closed.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};

/// Bytes a pipe takes at once: the default pipe capacity (16 pages).
pub const PIPE_BYTES: usize = 64 * 1024;

/// One pipe: its read end and its write end.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// The pipes of one thread.
struct Pool {
    /// Empty pipes kept for the next lease.
    idle: Vec<Pipe>,
    /// Pipes leased out and not yet back.
    leased: usize,
    /// At most this many pipes, leased and idle together.
    limit: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { idle: Vec::new(), leased: 0, limit: 0 })
    };
}

/// A pipe of the calling thread's pool, and how many bytes are in it;
/// back to the pool when dropped.
pub struct Lease {
    pipe: Option<Pipe>,
    pending: usize,
}

/// A pipe from the calling thread's pool, which holds at most `limit`
/// pipes; `None` when all of them are leased (or none can be made).
pub fn lease(limit: usize) -> Option<Lease> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.limit = limit;
        let keep = limit.saturating_sub(pool.leased);
        pool.idle.truncate(keep);
        let pipe = match pool.idle.pop() {
            Some(pipe) => pipe,
            None if pool.leased < limit => new_pipe()?,
            None => return None,
        };
        pool.leased += 1;
        Some(Lease {
            pipe: Some(pipe),
            pending: 0,
        })
    })
}

fn new_pipe() -> Option<Pipe> {
    match pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK) {
        Ok((read, write)) => Some(Pipe { read, write }),
        Err(err) => {
            tracing::debug!(%err, "cannot make a pipe; relaying through a buffer");
            None
        }
    }
}

impl Lease {
    /// Bytes spliced in and not yet out.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Splices from `socket` into the pipe, as much as it has room for;
    /// 0 is the socket's end of file.
    pub fn fill_from(&mut self, socket: impl AsFd) -> io::Result<usize> {
        let room = PIPE_BYTES - self.pending;
        let n = splice(socket, None, &self.pipe()?.write, None, room, flags())?;
        self.pending += n;
        Ok(n)
    }

    /// Splices what the pipe holds out to `socket`; the bytes moved.
    pub fn drain_to(&mut self, socket: impl AsFd) -> io::Result<usize> {
        let n = splice(
            &self.pipe()?.read,
            None,
            socket,
            None,
            self.pending,
            flags(),
        )?;
        self.pending -= n;
        Ok(n)
    }

    fn pipe(&self) -> io::Result<&Pipe> {
        self.pipe
            .as_ref()
            .ok_or_else(|| io::Error::other("the pipe was given back"))
    }
}

fn flags() -> SpliceFlags {
    SpliceFlags::MOVE | SpliceFlags::NONBLOCK
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(pipe) = self.pipe.take() else {
            return;
        };
        let empty = self.pending == 0;
        // The pool is gone only while its thread exits: the pipe closes.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            pool.leased = pool.leased.saturating_sub(1);
            if empty && pool.leased + pool.idle.len() < pool.limit {
                pool.idle.push(pipe);
            }
        });
    }
}

/// The calling thread's pipes: (leased, kept idle).
#[cfg(test)]
pub fn held() -> (usize, usize) {
    POOL.with(|pool| {
        let pool = pool.borrow();
        (pool.leased, pool.idle.len())
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn the_pool_is_bounded_and_keeps_empty_pipes() {
        let first = lease(2).expect("a pipe");
        let second = lease(2).expect("a second pipe");
        assert!(lease(2).is_none(), "two pipes at most");
        assert_eq!(held(), (2, 0));
        drop(first);
        assert_eq!(held(), (1, 1), "an empty pipe is kept");
        let again = lease(2).expect("the kept pipe");
        assert_eq!(held(), (2, 0));
        drop((again, second));
        assert_eq!(held(), (0, 2));
        assert!(lease(0).is_none(), "a limit of 0: no splicing");
        assert_eq!(held(), (0, 0), "a lower limit closes kept pipes");
    }

    #[test]
    fn bytes_go_through_and_a_pipe_dropped_full_is_closed() {
        let (mut a, mut b) = UnixStream::pair().expect("socket pair");
        a.write_all(b"in flight").expect("write");
        let mut pipe = lease(4).expect("a pipe");
        assert_eq!(pipe.fill_from(&b).expect("splice in"), 9);
        assert_eq!(pipe.pending(), 9);
        drop(pipe);
        assert_eq!(held(), (0, 0), "a pipe with bytes in it is not kept");
        let mut pipe = lease(4).expect("a pipe");
        a.write_all(b"whole").expect("write");
        assert_eq!(pipe.fill_from(&b).expect("splice in"), 5);
        assert_eq!(pipe.drain_to(&a).expect("splice out"), 5);
        let mut back = [0u8; 5];
        b.read_exact(&mut back).expect("read");
        assert_eq!(&back, b"whole");
        drop(pipe);
        assert_eq!(held(), (0, 1), "an emptied pipe is kept");
    }
}
