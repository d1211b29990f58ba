//! What a run measured: per-worker [`Stats`] (latency histogram in
//! nanoseconds, bytes, errors by kind), merged into a [`Report`] printed for
//! people or as one JSON line for scripts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::wire::{ErrorKind, Exchange};

/// The longest latency recorded exactly (longer ones saturate): 60 s.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// A latency histogram with 3 significant digits, in nanoseconds.
fn histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant bounds are valid")
}

/// One worker's measurements.
pub struct Stats {
    latency: Histogram<u32>,
    bytes: u64,
    errors: BTreeMap<ErrorKind, u64>,
    connections: u64,
    last_done: Option<Instant>,
}

impl Stats {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Stats {
            latency: histogram(),
            bytes: 0,
            errors: BTreeMap::new(),
            connections: 0,
            last_done: None,
        }
    }

    /// A measured transaction that started at `started`.
    pub fn success(&mut self, started: Instant, exchange: Exchange) {
        let nanos = exchange.done.duration_since(started).as_nanos();
        self.latency
            .saturating_record(u64::try_from(nanos).unwrap_or(u64::MAX));
        self.bytes += exchange.bytes;
        self.last_done = Some(exchange.done);
    }

    /// A measured failure.
    pub fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_default() += 1;
        self.last_done = Some(Instant::now());
    }

    /// A connection (or tunnel) was opened during the measured phase.
    pub fn opened(&mut self) {
        self.connections += 1;
    }

    fn merge(&mut self, other: Stats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.bytes += other.bytes;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.connections += other.connections;
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// A finished load run.
pub struct Report {
    /// `http`, `connect`, `socks5`, `direct`.
    pub mode: &'static str,
    /// Workers.
    pub workers: usize,
    /// Merged measurements.
    stats: Stats,
    /// From the start of the measured phase to its last completion.
    elapsed: Duration,
}

impl Report {
    /// Merges the workers' stats; the measured phase began at `measured_from`.
    pub fn new(mode: &'static str, workers: Vec<Stats>, measured_from: Instant) -> Report {
        let count = workers.len();
        let mut total = Stats::new();
        for stats in workers {
            total.merge(stats);
        }
        let elapsed = total
            .last_done
            .map(|t| t.saturating_duration_since(measured_from))
            .unwrap_or_default();
        Report {
            mode,
            workers: count,
            stats: total,
            elapsed,
        }
    }

    /// Successful transactions.
    pub fn requests(&self) -> u64 {
        self.stats.latency.len()
    }

    fn errors(&self) -> u64 {
        self.stats.errors.values().sum()
    }

    fn per_second(&self, n: f64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            n / secs
        } else {
            0.0
        }
    }

    fn micros_at(&self, quantile: f64) -> f64 {
        if self.requests() == 0 {
            return 0.0;
        }
        self.stats.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn error_map(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .stats
            .errors
            .iter()
            .map(|(k, n)| (k.name().to_owned(), json!(n)))
            .collect();
        Value::Object(map)
    }

    /// One JSON object on one line.
    pub fn json(&self) -> String {
        let requests = self.requests();
        json!({
            "mode": self.mode,
            "connections": self.workers,
            "requests": requests,
            "errors_total": self.errors(),
            "errors": self.error_map(),
            "connections_opened": self.stats.connections,
            "elapsed_s": round3(self.elapsed.as_secs_f64()),
            "rps": round3(self.per_second(requests as f64)),
            "bytes": self.stats.bytes,
            "mbps": round3(self.per_second(self.stats.bytes as f64) / 1e6),
            "p50_us": round3(self.micros_at(0.5)),
            "p99_us": round3(self.micros_at(0.99)),
            "p999_us": round3(self.micros_at(0.999)),
            "max_us": round3(self.stats.latency.max() as f64 / 1000.0),
        })
        .to_string()
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        let requests = self.requests();
        let mut out = format!(
            "{} x{}: {} requests in {:.2}s, {} new connections in the measured phase\n  \
             {:.0} requests/s, {:.2} MB/s\n  \
             latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us\n",
            self.mode,
            self.workers,
            requests,
            self.elapsed.as_secs_f64(),
            self.stats.connections,
            self.per_second(requests as f64),
            self.per_second(self.stats.bytes as f64) / 1e6,
            self.micros_at(0.5),
            self.micros_at(0.99),
            self.micros_at(0.999),
            self.stats.latency.max() as f64 / 1000.0,
        );
        if self.stats.errors.is_empty() {
            out.push_str("  errors: none\n");
        } else {
            let list: Vec<String> = self
                .stats
                .errors
                .iter()
                .map(|(k, n)| format!("{} {n}", k.name()))
                .collect();
            out.push_str(&format!("  errors: {}\n", list.join(", ")));
        }
        out
    }
}

/// Three decimals, enough for every figure printed.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
