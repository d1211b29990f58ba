//! A load run: a fixed number of workers, each looping over transactions
//! (keep-alive, or a new connection/tunnel per request) until the
//! [`Schedule`] says stop. The schedule bounds every loop by time (warmup +
//! duration) and, with `--requests`, by count; each transaction is bounded
//! by `--timeout`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{LoadSettings, Plan};
use crate::report::{Report, Stats};
use crate::wire::{self, Conn, ErrorKind, Exchange, Outcome};

/// After an error, a worker pauses this long so a dead peer is not spun on.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// When workers may start transactions, and whether those are measured.
struct Schedule {
    measured_from: Instant,
    end: Instant,
    remaining: Option<AtomicI64>,
}

/// What the schedule allows next.
enum Ticket {
    /// Warmup: run, do not record.
    Warmup,
    /// Run and record.
    Measured,
}

impl Schedule {
    fn new(settings: LoadSettings) -> Schedule {
        let start = Instant::now();
        let measured_from = start + settings.warmup;
        Schedule {
            measured_from,
            end: measured_from + settings.duration,
            remaining: settings
                .requests
                .map(|n| AtomicI64::new(i64::try_from(n).unwrap_or(i64::MAX))),
        }
    }

    fn next(&self) -> Option<Ticket> {
        let now = Instant::now();
        if now >= self.end {
            return None;
        }
        if now < self.measured_from {
            return Some(Ticket::Warmup);
        }
        if let Some(remaining) = &self.remaining {
            if remaining.fetch_sub(1, Ordering::Relaxed) <= 0 {
                return None;
            }
        }
        Some(Ticket::Measured)
    }
}

/// Runs the load and merges what every worker measured.
pub async fn load(plan: Plan, settings: LoadSettings) -> Report {
    let plan = Arc::new(plan);
    let schedule = Arc::new(Schedule::new(settings));
    let workers: Vec<_> = (0..plan.connections)
        .map(|_| tokio::spawn(worker(plan.clone(), schedule.clone())))
        .collect();
    let mut stats = Vec::with_capacity(workers.len());
    for handle in workers {
        // A worker that panicked contributes nothing; the others still count.
        if let Ok(s) = handle.await {
            stats.push(s);
        }
    }
    Report::new(plan.door.name(), stats, schedule.measured_from)
}

async fn worker(plan: Arc<Plan>, schedule: Arc<Schedule>) -> Stats {
    let mut stats = Stats::new();
    let mut slot: Option<Conn> = None;
    while let Some(ticket) = schedule.next() {
        let measured = matches!(ticket, Ticket::Measured);
        let started = Instant::now();
        let outcome = tokio::time::timeout(plan.timeout, transaction(&plan, &mut slot))
            .await
            .unwrap_or(Err(ErrorKind::Timeout));
        match outcome {
            Ok((exchange, opened)) if measured => {
                stats.success(started, exchange);
                if opened {
                    stats.opened();
                }
            }
            Ok(_) => {}
            Err(kind) => {
                slot = None;
                if measured {
                    stats.error(kind);
                }
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    stats
}

/// One request: over the worker's keep-alive connection (opened when there
/// is none or the last one closed), or over a new connection or tunnel.
/// Returns the exchange and whether a connection was opened for it.
async fn transaction(plan: &Plan, slot: &mut Option<Conn>) -> Outcome<(Exchange, bool)> {
    if plan.fresh {
        let mut conn = wire::open(plan).await?;
        let exchange = wire::exchange(&mut conn, wire::request(plan, true), plan.min_body).await?;
        return Ok((exchange, true));
    }
    if let Some(conn) = slot.as_mut() {
        if conn.usable().await {
            match wire::exchange(conn, wire::request(plan, false), plan.min_body).await {
                // A peer may close a keep-alive connection without saying so
                // (tinyproxy does): like browsers and hyper's pooled client,
                // retry the GET once on a new connection.
                Err(ErrorKind::Closed) => {}
                other => return other.map(|exchange| (exchange, false)),
            }
        }
    }
    let conn = slot.insert(wire::open(plan).await?);
    let exchange = wire::exchange(conn, wire::request(plan, false), plan.min_body).await?;
    Ok((exchange, true))
}
