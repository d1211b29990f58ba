//! Prometheus metrics (prometheus-client, served by the admin API's
//! `/metrics`): requests and tunnels by listener, action and outcome;
//! throttle refusals and pace waits by limit kind; upstream attempts and
//! failures; open connections; bytes, and of them those spliced; log lines
//! dropped. It also holds the [`History`] that each finished request feeds
//! alongside its series.
//! Labels come from closed sets (listeners, configured actions, envelope
//! types, limit kinds), so cardinality is bounded by the config; the
//! per-account series exist only with `[admin] account_metrics = true`.
//! The request and upstream-attempt counters are counted through handles
//! resolved once per label set ([`super::handles`]).

use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::context::{ListenerKind, RequestContext};
use super::handles::Handles;
use super::history::History;
use crate::policy::limit::HitKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: &'static str,
    action: String,
    outcome: &'static str,
    intercepted: &'static str,
}

/// The labels of a request series other than its action.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct RequestSlot {
    listener: &'static str,
    outcome: &'static str,
    intercepted: &'static str,
}

impl RequestSlot {
    fn labels(self, action: &str) -> RequestLabels {
        RequestLabels {
            listener: self.listener,
            action: action.to_owned(),
            outcome: self.outcome,
            intercepted: self.intercepted,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    listener: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamFailureLabels {
    upstream: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
    outcome: &'static str,
}

type WaitHistogram = Family<LimitLabels, Histogram, fn() -> Histogram>;

/// Every metric pacer exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_handles: Handles<RequestSlot>,
    refusals: Family<LimitLabels, Counter>,
    pace_waits: WaitHistogram,
    pace_lateness: Histogram,
    connections: Family<ListenerLabels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    bytes: Family<BytesLabels, Counter<u64, AtomicU64>>,
    spliced_bytes: Counter<u64, AtomicU64>,
    upstream_attempts: Family<UpstreamLabels, Counter>,
    upstream_handles: Handles<()>,
    upstream_failures: Family<UpstreamFailureLabels, Counter>,
    backoff_pauses: Family<ActionLabels, Counter>,
    accounts: Option<Family<AccountLabels, Counter>>,
    history: History,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn wait_histogram() -> Histogram {
    // 1 ms to about 9 minutes.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

impl Metrics {
    /// The metrics, with per-account series if `per_account`.
    pub fn new(per_account: bool) -> Self {
        let mut registry = Registry::with_prefix("pacer");
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests and tunnels by listener, action (`all` counts each once) and outcome",
            requests.clone(),
        );
        let refusals = Family::default();
        registry.register(
            "throttle_refusals",
            "Requests refused by a limit, by kind",
            refusals.clone(),
        );
        let pace_waits: WaitHistogram = Family::new_with_constructor(wait_histogram);
        registry.register(
            "pace_wait_seconds",
            "Time paced requests waited for admission, by the limit that held them",
            pace_waits.clone(),
        );
        // 0.1 ms to about 3 s.
        let pace_lateness = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "pace_lateness_seconds",
            "How long after its limits allowed it a paced request left pacer (head written or tunnel open)",
            pace_lateness.clone(),
        );
        let connections = Family::default();
        registry.register(
            "open_connections",
            "Open client connections",
            connections.clone(),
        );
        let bytes = Family::default();
        registry.register(
            "bytes",
            "Bytes relayed, up (client to destination) and down",
            bytes.clone(),
        );
        let spliced_bytes = Counter::default();
        registry.register(
            "spliced_bytes",
            "Tunnel bytes (of pacer_bytes) relayed by splice(2), without a copy through pacer",
            spliced_bytes.clone(),
        );
        let upstream_attempts = Family::default();
        registry.register(
            "upstream_attempts",
            "Attempts to leave through an upstream (pool member host:port, custom, or direct)",
            upstream_attempts.clone(),
        );
        let upstream_failures = Family::default();
        registry.register(
            "upstream_failures",
            "Failed attempts by upstream and reason",
            upstream_failures.clone(),
        );
        let backoff_pauses = Family::default();
        registry.register(
            "backoff_pauses",
            "Pauses started by the platform's own refusals (backoff), by paused action",
            backoff_pauses.clone(),
        );
        registry.register_collector(Box::new(LogDrops));
        let accounts = per_account.then(|| {
            let family = Family::default();
            registry.register(
                "account_requests",
                "Requests per account and outcome",
                family.clone(),
            );
            family
        });
        Metrics {
            registry,
            requests,
            request_handles: Handles::default(),
            refusals,
            pace_waits,
            pace_lateness,
            connections,
            bytes,
            spliced_bytes,
            upstream_attempts,
            upstream_handles: Handles::default(),
            upstream_failures,
            backoff_pauses,
            accounts,
            history: History::default(),
        }
    }

    /// Counts one backoff pause started for `action`.
    pub fn backoff_pause(&self, action: &str) {
        let labels = ActionLabels {
            action: action.to_owned(),
        };
        self.backoff_pauses.get_or_create(&labels).inc();
    }

    /// Counts one attempt through `upstream`.
    pub fn upstream_attempt(&self, upstream: &str) {
        self.upstream_handles.inc((), upstream, || {
            let labels = UpstreamLabels {
                upstream: upstream.to_owned(),
            };
            self.upstream_attempts.get_or_create(&labels).clone()
        });
    }

    /// Counts one failed attempt through `upstream`.
    pub fn upstream_failure(&self, upstream: &str, reason: &'static str) {
        let labels = UpstreamFailureLabels {
            upstream: upstream.to_owned(),
            reason,
        };
        self.upstream_failures.get_or_create(&labels).inc();
    }

    /// Registers the fleet's gauges (in fleet mode only):
    /// `pacer_fleet_store_up` and `pacer_fleet_config_mismatch`.
    pub fn fleet_gauges(&mut self) -> FleetGauges {
        let gauges = FleetGauges::default();
        self.registry.register(
            "fleet_store_up",
            "1 while the fleet store (Redis) answers within its timeout, else 0",
            gauges.store_up.clone(),
        );
        self.registry.register(
            "fleet_config_mismatch",
            "1 while another live instance of the fleet runs different actions, policies or upstreams",
            gauges.config_mismatch.clone(),
        );
        gauges
    }

    /// The recent history of requests and refusals.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Counts a request or tunnel that finished at `at_ms` (Unix
    /// milliseconds), in the series and in the history.
    pub fn observe(&self, ctx: &RequestContext, actions: &[&str], at_ms: i64) {
        self.history.record(ctx, actions, at_ms);
        let listener = ctx.listener.as_str();
        let outcome = ctx.outcome;
        let slot = RequestSlot {
            listener,
            outcome,
            intercepted: if ctx.intercepted.is_some() {
                "true"
            } else {
                "false"
            },
        };
        for action in std::iter::once(&"all").chain(actions) {
            self.request_handles.inc(slot, action, || {
                let labels = slot.labels(action);
                self.requests.get_or_create(&labels).clone()
            });
        }
        if let Some(kind) = ctx.refused_by {
            self.refusals
                .get_or_create(&LimitLabels {
                    kind: kind_label(kind),
                })
                .inc();
        }
        if let (Some(kind), false) = (ctx.held_by, ctx.waited.is_zero()) {
            let labels = LimitLabels {
                kind: kind_label(kind),
            };
            self.pace_waits
                .get_or_create(&labels)
                .observe(ctx.waited.as_secs_f64());
        }
        if let Some(lateness) = ctx.lateness {
            self.pace_lateness.observe(lateness.as_secs_f64());
        }
        for (direction, count) in [("up", ctx.bytes_up), ("down", ctx.bytes_down)] {
            if count > 0 {
                let labels = BytesLabels {
                    listener,
                    direction,
                };
                self.bytes.get_or_create(&labels).inc_by(count);
            }
        }
        if ctx.bytes_spliced > 0 {
            self.spliced_bytes.inc_by(ctx.bytes_spliced);
        }
        if let (Some(family), Some(account)) = (&self.accounts, &ctx.account) {
            let labels = AccountLabels {
                account: account.to_string(),
                outcome,
            };
            family.get_or_create(&labels).inc();
        }
    }

    /// Counts an open client connection until the guard drops.
    pub fn connection(&self, listener: ListenerKind) -> ConnectionGauge {
        let gauge = self
            .connections
            .get_or_create(&ListenerLabels {
                listener: listener.as_str(),
            })
            .clone();
        gauge.inc();
        ConnectionGauge(gauge)
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// `pacer_access_log_dropped_total`: log lines dropped because the log
/// writer fell behind ([`super::logging`]), read at each scrape.
#[derive(Debug)]
struct LogDrops;

impl Collector for LogDrops {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let dropped = ConstCounter::new(super::logging::dropped_lines());
        let metric = encoder.encode_descriptor(
            "access_log_dropped",
            "Log lines (access lines, mostly) dropped rather than wait for a full log queue",
            None,
            dropped.metric_type(),
        )?;
        dropped.encode(metric)
    }
}

/// An open connection, counted until dropped.
#[derive(Debug)]
pub struct ConnectionGauge(Gauge<i64, std::sync::atomic::AtomicI64>);

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn kind_label(kind: HitKind) -> &'static str {
    match kind {
        HitKind::Rolling { .. } => "rolling",
        HitKind::Daily => "daily_cap",
        HitKind::Gap { .. } => "protection_gap",
        HitKind::Concurrency => "concurrency",
        HitKind::Batch { .. } => "batch",
        HitKind::Persisting => "persisting",
        HitKind::Backoff { .. } => "backoff",
    }
}

/// The fleet's gauges.
#[derive(Debug, Clone, Default)]
pub struct FleetGauges {
    /// `pacer_fleet_store_up`.
    pub store_up: Gauge,
    /// `pacer_fleet_config_mismatch`.
    pub config_mismatch: Gauge,
}
