//! Snapshots for the benches: built from a config text or from runtime
//! accounts, with egress settings that never dial anything.

use std::sync::Arc;
use std::time::Duration;

use pacer::egress::tls::TlsClient;
use pacer::egress::upstream::EgressSettings;
use pacer::state::snapshot::Snapshot;
use pacer::state::store::Stored;

/// The snapshot of `config` (TOML) with `stored` runtime state.
pub fn build(config: &str, stored: &Stored) -> Snapshot {
    let config = match pacer::config::parse(config, &|_| None) {
        Ok(config) => config,
        Err(errors) => panic!("bench config: {errors:?}"),
    };
    let egress = Arc::new(EgressSettings {
        connect_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        tls: TlsClient::new(&config.tls).expect("tls"),
        pools: 1,
    });
    Snapshot::build(&config, stored, None, None, &egress).expect("snapshot")
}
