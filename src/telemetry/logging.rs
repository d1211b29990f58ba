//! The log output: `tracing` events (access lines and the rest) are
//! formatted on the thread that emits them, queued in a bounded queue of
//! [`QUEUE_LINES`] lines, and written to stderr by one writer thread
//! (tracing-appender's non-blocking writer) in batches: everything queued
//! is taken at once and written through a 64 KiB buffer, flushed when the
//! queue is empty; after each flush the writer rests [`BATCH_PAUSE`], so
//! that under load lines gather in the queue instead of waking the writer
//! one by one (a wake-up per line cost about 8 µs of CPU per request at
//! 20k requests/s). A request never waits for stderr: when the queue is
//! full the line is dropped and counted ([`dropped_lines`], exported as
//! `pacer_access_log_dropped_total`). [`LogGuard`] writes out what is
//! queued when dropped, at exit.
//!
//! `RUST_LOG` filters (default `info`); the `fast_socks5` target is capped
//! at INFO whatever it says, since fast-socks5 logs SOCKS5 credentials at
//! DEBUG.

use std::io::{BufWriter, IsTerminal as _, Write};
use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines the queue holds before new ones are dropped (a few MB at most).
pub const QUEUE_LINES: usize = 16_384;

/// Bytes the writer gathers before a write.
const BATCH_BYTES: usize = 64 * 1024;

/// How long the writer rests after writing out a batch: the most a line
/// waits in the queue before it is written, when the writer was busy.
pub const BATCH_PAUSE: Duration = Duration::from_millis(5);

static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the writer thread; dropping it writes out what is queued (for at
/// most a second) and stops the thread.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Sends this process's `tracing` events to stderr through the queue.
pub fn init() -> LogGuard {
    let rest = Box::new(|| std::thread::sleep(BATCH_PAUSE));
    let (writer, guard) = queued(std::io::stderr(), QUEUE_LINES, rest);
    let _ = DROPPED.set(writer.error_counter());
    tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .init();
    LogGuard(guard)
}

/// Lines dropped because the queue was full, since start.
pub fn dropped_lines() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}

fn filter() -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match "fast_socks5=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// A writer that queues up to `lines` lines for one thread writing them to
/// `out` in batches, dropping lines (and counting them) when it is full;
/// the thread calls `rest` after each batch.
fn queued<W: Write + Send + 'static>(
    out: W,
    lines: usize,
    rest: Box<dyn FnMut() + Send>,
) -> (NonBlocking, WorkerGuard) {
    let out = Resting {
        out: BufWriter::with_capacity(BATCH_BYTES, out),
        rest,
    };
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(lines)
        .thread_name("pacer-log")
        .finish(out)
}

/// The writer thread's output: `out`, and a rest after each flush (the
/// thread flushes once it has emptied the queue).
struct Resting<W> {
    out: W,
    rest: Box<dyn FnMut() + Send>,
}

impl<W: Write> Write for Resting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let flushed = self.out.flush();
        (self.rest)();
        flushed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// The far end of the writer: each write it got, the first one held
    /// until the test lets it go on.
    struct Stalled {
        writes: Arc<Mutex<Vec<String>>>,
        first: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>,
    }

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some((stalled, go_on)) = self.first.take() {
                let _ = stalled.send(());
                let _ = go_on.recv();
            }
            let text = String::from_utf8_lossy(buf).into_owned();
            self.writes.lock().expect("lock").push(text);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The test's side of a [`Stalled`] end.
    struct Held {
        /// The writes it got.
        writes: Arc<Mutex<Vec<String>>>,
        /// Signalled once the first write is being held.
        stalled: mpsc::Receiver<()>,
        /// Lets the first write go on.
        go_on: mpsc::Sender<()>,
    }

    fn stalled() -> (Stalled, Held) {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let (stalled_tx, stalled) = mpsc::channel();
        let (go_on, go_on_rx) = mpsc::channel();
        let out = Stalled {
            writes: writes.clone(),
            first: Some((stalled_tx, go_on_rx)),
        };
        let held = Held {
            writes,
            stalled,
            go_on,
        };
        (out, held)
    }

    #[test]
    fn a_full_queue_drops_lines_without_waiting_and_counts_them() {
        let (out, held) = stalled();
        let (mut writer, guard) = queued(out, 2, Box::new(|| {}));
        writer.write_all(b"line 1\n").expect("queued");
        held.stalled
            .recv()
            .expect("the writer is held in line 1's write");
        for n in 2..=10 {
            writer
                .write_all(format!("line {n}\n").as_bytes())
                .expect("never an error, never a wait");
        }
        assert_eq!(writer.error_counter().dropped_lines(), 7, "2 queued");
        held.go_on.send(()).expect("let the writer go on");
        drop(guard);
        let written = held.writes.lock().expect("lock").concat();
        assert_eq!(
            written, "line 1\nline 2\nline 3\n",
            "the queue is written at exit"
        );
    }

    #[test]
    fn what_queued_up_meanwhile_is_written_at_once() {
        let (out, held) = stalled();
        let (mut writer, guard) = queued(out, QUEUE_LINES, Box::new(|| {}));
        writer.write_all(b"first\n").expect("queued");
        held.stalled
            .recv()
            .expect("the writer is held in its first write");
        for n in 0..100 {
            writer
                .write_all(format!("line {n}\n").as_bytes())
                .expect("queued");
        }
        held.go_on.send(()).expect("let the writer go on");
        drop(guard);
        let writes = held.writes.lock().expect("lock").clone();
        assert_eq!(writes.len(), 2, "one write per batch");
        assert_eq!(writes[1].lines().count(), 100);
        assert_eq!(writer.error_counter().dropped_lines(), 0);
    }

    /// Long enough for a thread to be scheduled on a loaded machine.
    const WITHIN: Duration = Duration::from_secs(10);

    #[test]
    fn lines_sent_while_the_writer_rests_go_out_in_one_write() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let out = Stalled {
            writes: writes.clone(),
            first: None,
        };
        let (resting_tx, resting) = mpsc::channel();
        let (go_on, go_on_rx) = mpsc::channel::<()>();
        let rest = Box::new(move || {
            let _ = resting_tx.send(());
            let _ = go_on_rx.recv();
        });
        let (mut writer, guard) = queued(out, QUEUE_LINES, rest);
        writer.write_all(b"first\n").expect("queued");
        resting
            .recv_timeout(WITHIN)
            .expect("the writer rests after its first batch");
        assert_eq!(
            writes.lock().expect("lock").concat(),
            "first\n",
            "written before the rest"
        );
        for n in 0..100 {
            writer
                .write_all(format!("line {n}\n").as_bytes())
                .expect("queued");
        }
        go_on.send(()).expect("let the writer go on");
        resting
            .recv_timeout(WITHIN)
            .expect("the writer rests after its second batch");
        let batches = writes.lock().expect("lock").clone();
        assert_eq!(batches.len(), 2, "one write for the lines sent meanwhile");
        assert_eq!(batches[1].lines().count(), 100);
        drop(go_on);
        drop(guard);
    }
}
