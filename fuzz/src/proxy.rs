//! The proxy the stateful targets drive: [`pacer::server::App`] built once
//! per fuzzing process from [`CONFIG`], its state in memory. Every way
//! out, an account's own upstream or the pool's, is a closed port on
//! loopback, so nothing a fuzzer asks for is ever reached (and names are
//! resolved by the upstream, never by pacer); `fuzz/run.sh` also runs the
//! targets in a network namespace of their own.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use pacer::policy::limit::clock::Clock;
use pacer::server::App;

/// The admin API key of [`CONFIG`].
pub const ADMIN_KEY: &str = "fuzz-key";

/// Accounts, policies, an account type with ceilings, one action and a
/// pool: enough for every admin body and SOCKS5 credential to mean
/// something.
pub const CONFIG: &str = r#"
[server]
header_read_timeout = "2s"
idle_timeout = "5s"
connect_timeout = "1s"
max_header_bytes = 4096

[[listeners]]
protocol = "socks5"
addr = "127.0.0.1:0"

[admin]
addr = "127.0.0.1:0"
api_keys = ["fuzz-key"]

[state]
path = "memory"

[[actions]]
name = "send_message"
methods = ["POST"]
hosts = ["api.example.com", "*.example.com"]
paths = ["/v1/messages", "/v1/messages/*"]

[policies.standard_policy]
name = "Standard"
free = true
mode = "pace"
max_wait = "1s"
[policies.standard_policy.limits]
send_message_per_minute = 30
send_message = 1000
all_per_second = 20
batch = 50
batch_hours = 0.25

[policies.premium]
name = "Premium"
free = false
mode = "reject"
[policies.premium.limits]
send_message_per_minute = 60

[account_types.sync]
policy = "standard_policy"
[account_types.sync.max]
batch = 50
send_message = 300
batch_hours = 4

[[accounts]]
id = "acct-1"
secret = "s3cret"
type = "sync"
upstream = "socks5://127.0.0.1:1"

[[accounts]]
id = "acct-2"
secret = "pw"
plan = "paid"
country = "US"

[[upstreams]]
url = "http://u:p@127.0.0.1:1"
country = "US"

[[upstreams]]
url = "socks5://127.0.0.1:1"
country = "DE"
"#;

/// The proxy of [`CONFIG`], built on first use.
pub fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let config = pacer::config::parse(CONFIG, &|_| None).expect("the fuzz config is valid");
        crate::block_on(async { App::new(&config, Clock::system(), 1, Vec::new()) })
            .expect("the fuzz proxy starts")
    })
}

/// The peer every fuzzed client connects from.
pub fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000))
}

/// The control plane of [`app`].
pub fn control() -> Arc<pacer::control::Control> {
    app().control.clone()
}
