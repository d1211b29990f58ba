//! Telemetry: one [`context::RequestContext`] per request or tunnel,
//! filled in stage by stage, and what is made of it when it closes: the
//! access line ([`access_log`]), the Prometheus series ([`metrics`]) and
//! the recent history the admin API's `/v1/stats` reads ([`history`]); the
//! log output itself, off the request threads ([`logging`]).
//! It observes and never decides.

pub mod access_log;
pub mod context;
pub mod handles;
pub mod history;
pub mod logging;
pub mod metrics;

/// What the telemetry tests share: a snapshot of a minimal config, and
/// the context of a request served with it.
#[cfg(test)]
mod testing {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::egress::target::Target;
    use crate::egress::tls::TlsClient;
    use crate::egress::upstream::EgressSettings;
    use crate::state::snapshot::Snapshot;
    use crate::state::store::Stored;
    use crate::telemetry::context::{ListenerKind, RequestContext};

    /// The snapshot of a config with one listener and one policy.
    pub fn snapshot() -> Arc<Snapshot> {
        let toml = "[[listeners]]\nprotocol = \"http\"\naddr = \"127.0.0.1:0\"\n\
                    [policies.standard_policy]\n";
        let config = crate::config::parse(toml, &|_| None).expect("config");
        let egress = Arc::new(EgressSettings {
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            tls: TlsClient::new(&config.tls).expect("tls"),
            pools: 1,
        });
        Arc::new(
            Snapshot::build(&config, &Stored::default(), None, None, &egress).expect("snapshot"),
        )
    }

    /// A `POST` of `acct-1` to `api.example.com:443`, answered 200.
    pub fn served(snapshot: &Arc<Snapshot>) -> RequestContext {
        let peer = "127.0.0.1:40000".parse().expect("addr");
        let mut ctx = RequestContext::new(snapshot.clone(), ListenerKind::Http, peer);
        ctx.account = Some(Arc::from("acct-1"));
        ctx.method = Some(http::Method::POST);
        ctx.target = Some(Target::new("api.example.com", 443));
        ctx.succeeded(200);
        ctx
    }
}
