//! The cost the recent history (`telemetry::history`, read by
//! `GET /v1/stats`) adds to each request's close-out: recording a served
//! and a refused request, on one thread and on two sharing the history,
//! against the whole metrics observation of the same request (Prometheus
//! series plus history) as the baseline.
//!
//! `cargo bench --bench history`

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use divan::{black_box, Bencher};
use pacer::egress::target::Target;
use pacer::state::store::Stored;
use pacer::telemetry::context::{ListenerKind, RequestContext};
use pacer::telemetry::history::History;
use pacer::telemetry::metrics::Metrics;

#[path = "support/snapshot.rs"]
mod support;

fn main() {
    divan::main();
}

fn context(refused: bool) -> RequestContext {
    let toml = "[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n\
                [policies.standard_policy]\n";
    let snapshot = support::build(toml, &Stored::default());
    let peer = "127.0.0.1:40000".parse().expect("addr");
    let mut ctx = RequestContext::new(Arc::new(snapshot), ListenerKind::Http, peer);
    ctx.account = Some(Arc::from("acct-1"));
    ctx.method = Some(http::Method::POST);
    ctx.target = Some(Target::new("api.example.com", 443));
    ctx.succeeded(200);
    if refused {
        ctx.status = 429;
        ctx.outcome = "rate_limited";
        ctx.refused_limit = Some(Arc::from("send_message_per_minute"));
    }
    ctx
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[divan::bench(args = [false, true], threads = [1, 2])]
fn metrics_observe(bencher: Bencher, refused: bool) {
    let metrics = Metrics::new(false);
    let ctx = context(refused);
    bencher.bench(|| metrics.observe(black_box(&ctx), &["send_message"], now_ms()));
}

#[divan::bench(args = [false, true], threads = [1, 2])]
fn history_record(bencher: Bencher, refused: bool) {
    let history = History::default();
    let ctx = context(refused);
    bencher.bench(|| history.record(black_box(&ctx), &["send_message"], now_ms()));
}
