//! The command line and its checks. Parsing gives [`Cli`]; [`Job::from_mode`]
//! turns it into a validated [`Plan`] (addresses resolved, loopback enforced,
//! wire bytes prebuilt) plus the settings of a load run or an idle hold.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use clap::{Args, Parser, Subcommand, ValueEnum};
use http::{HeaderValue, Uri};

/// The largest response body `--bulk` expects at least: 1 MiB.
pub const BULK_BYTES: u64 = 1024 * 1024;
/// The time cap of a `--requests` run when no `--duration` is given.
const REQUESTS_TIME_CAP: Duration = Duration::from_secs(600);
/// The longest run or hold accepted, so every loop ends.
const MAX_RUN: Duration = Duration::from_secs(3600);

/// Load generator for forward proxies (HTTP absolute-form, CONNECT, SOCKS5)
/// over loopback, with the origin reached directly as the ceiling.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    after_help = "Examples (through cargo; the built binary takes the same arguments):\n  \
cargo bench --bench loadgen -- http --proxy 127.0.0.1:8080 --auth demo:demo --target http://127.0.0.1:8000/small -c 64 --duration 10s\n  \
cargo bench --bench loadgen -- direct --target http://127.0.0.1:8000/small -c 64 --duration 10s\n  \
cargo bench --bench loadgen -- socks5 --proxy 127.0.0.1:1080 --auth demo:demo --target http://127.0.0.1:8000/1m --bulk -c 4\n  \
cargo bench --bench loadgen -- idle --via connect --proxy 127.0.0.1:8080 --auth demo:demo --target http://127.0.0.1:8000/small -c 1000 --hold 20s\n\n\
Only loopback addresses are accepted for --proxy and --target."
)]
pub struct Cli {
    /// What to drive.
    #[command(subcommand)]
    pub mode: Option<Mode>,
    /// Passed by `cargo bench` to every bench target; ignored.
    #[arg(long, global = true, hide = true)]
    pub bench: bool,
}

/// The doors a load run can go through.
#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Absolute-form GET through an HTTP proxy; keep-alive, one connection per worker.
    Http(LoadArgs),
    /// Short CONNECT tunnels: connect, CONNECT, one request over the tunnel, close.
    Connect(LoadArgs),
    /// Short SOCKS5 tunnels (username/password with --auth): one request, close.
    Socks5(LoadArgs),
    /// The same requests straight to the origin: the ceiling.
    Direct(LoadArgs),
    /// Open N connections (or tunnels), one request each, then hold them idle.
    Idle(IdleArgs),
}

/// Options every mode takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// The proxy, HOST:PORT on loopback (http, connect, socks5; idle unless --via direct).
    #[arg(long)]
    pub proxy: Option<String>,
    /// Proxy credentials USER:PASS (HTTP Basic, or SOCKS5 RFC 1929).
    #[arg(long)]
    pub auth: Option<String>,
    /// The resource fetched, an http:// URL on loopback.
    #[arg(long)]
    pub target: String,
    /// Concurrent connections (workers), fixed for the whole run.
    #[arg(long, short = 'c', default_value_t = 64)]
    pub connections: usize,
    /// Deadline of one transaction (connect, handshakes, request, body).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print one JSON line instead of the human report.
    #[arg(long)]
    pub json: bool,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Options of the load modes.
#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Measured time, e.g. 10s (default 10s; with --requests, a cap of 600s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Measured requests in total; the run ends at this count or the duration.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Unmeasured time before the measured run.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Bulk transfer: every response must carry at least 1 MiB (else error
    /// `short_body`); point --target at a 1 MiB resource.
    #[arg(long)]
    pub bulk: bool,
    /// A new connection per request (`Connection: close`) in http and direct
    /// modes; connect and socks5 open a new tunnel per request unless
    /// --keep-tunnel.
    #[arg(long)]
    pub fresh: bool,
    /// connect and socks5: keep one tunnel per worker for the whole run and
    /// send keep-alive requests through it (measures the relay, not setup).
    #[arg(long)]
    pub keep_tunnel: bool,
}

/// Options of the idle mode.
#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Which door the idle connections use: keep-alive HTTP through the
    /// proxy, CONNECT or SOCKS5 tunnels, or keep-alive straight to the origin.
    #[arg(long, value_enum, default_value = "http")]
    pub via: Door,
    /// How long to hold the connections once all are open.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub hold: Duration,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    pub open_parallel: usize,
    /// Deadline for opening all connections.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub open_timeout: Duration,
}

/// How the load generator reaches the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Door {
    /// Absolute-form through an HTTP proxy.
    Http,
    /// A CONNECT tunnel through an HTTP proxy.
    Connect,
    /// A SOCKS5 tunnel.
    Socks5,
    /// Straight to the origin.
    Direct,
}

impl Door {
    /// The mode's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Door::Http => "http",
            Door::Connect => "connect",
            Door::Socks5 => "socks5",
            Door::Direct => "direct",
        }
    }
}

/// Proxy credentials, prebuilt for both protocols.
#[derive(Debug)]
pub struct Credentials {
    /// `Basic base64(user:pass)`.
    pub basic: HeaderValue,
    /// The RFC 1929 request: version, user, password.
    pub socks: Bytes,
}

/// The resource fetched.
#[derive(Debug)]
pub struct Target {
    /// Where the origin listens.
    pub addr: SocketAddr,
    /// `host:port`, for `Host` and CONNECT.
    pub authority: HeaderValue,
    /// The absolute URI (proxy requests).
    pub absolute: Uri,
    /// The origin-form URI (direct and tunnelled requests).
    pub origin_form: Uri,
}

/// Everything a transaction needs, validated once.
#[derive(Debug)]
pub struct Plan {
    /// The door.
    pub door: Door,
    /// A new connection per request.
    pub fresh: bool,
    /// The proxy (none for direct).
    pub proxy: Option<SocketAddr>,
    /// Credentials, if any.
    pub auth: Option<Credentials>,
    /// The resource.
    pub target: Target,
    /// The CONNECT request head.
    pub connect_head: Bytes,
    /// The SOCKS5 CONNECT request.
    pub socks_connect: Bytes,
    /// Workers or idle connections.
    pub connections: usize,
    /// Deadline of one transaction.
    pub timeout: Duration,
    /// Smallest acceptable body (`--bulk`), else 0.
    pub min_body: u64,
}

/// How long a load run goes.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    /// Unmeasured lead time.
    pub warmup: Duration,
    /// Measured time (or the cap of a request-count run).
    pub duration: Duration,
    /// Measured request count, if bounded by count.
    pub requests: Option<u64>,
}

/// How an idle hold goes.
#[derive(Debug, Clone, Copy)]
pub struct IdleSettings {
    /// Hold time once all are open.
    pub hold: Duration,
    /// Parallel opens.
    pub open_parallel: usize,
    /// Deadline of the open phase.
    pub open_timeout: Duration,
}

/// A validated command.
#[derive(Debug)]
pub enum Job {
    /// A load run.
    Load(Plan, LoadSettings),
    /// An idle hold.
    Idle(Plan, IdleSettings),
}

/// Output options.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON line.
    pub json: bool,
    /// Runtime threads.
    pub threads: Option<usize>,
}

impl Job {
    /// Validates `mode` into a job and its output options.
    pub fn from_mode(mode: Mode) -> Result<(Job, Output), String> {
        match mode {
            Mode::Http(args) => load_job(Door::Http, args),
            Mode::Connect(args) => load_job(Door::Connect, args),
            Mode::Socks5(args) => load_job(Door::Socks5, args),
            Mode::Direct(args) => load_job(Door::Direct, args),
            Mode::Idle(args) => idle_job(args),
        }
    }
}

fn output(common: &CommonArgs) -> Output {
    Output {
        json: common.json,
        threads: common.threads,
    }
}

fn load_job(door: Door, args: LoadArgs) -> Result<(Job, Output), String> {
    let tunnel = matches!(door, Door::Connect | Door::Socks5);
    if args.fresh && tunnel {
        return Err("--fresh is the default in connect and socks5 modes".into());
    }
    if args.keep_tunnel && !tunnel {
        return Err("--keep-tunnel is for connect and socks5 modes".into());
    }
    let duration = match (args.duration, args.requests) {
        (Some(d), _) => d,
        (None, Some(_)) => REQUESTS_TIME_CAP,
        (None, None) => Duration::from_secs(10),
    };
    check_span("--duration", duration)?;
    check_span("--warmup", args.warmup)?;
    if args.requests == Some(0) {
        return Err("--requests must be at least 1".into());
    }
    let fresh = args.fresh || (tunnel && !args.keep_tunnel);
    let min_body = if args.bulk { BULK_BYTES } else { 0 };
    let plan = plan(door, fresh, min_body, &args.common)?;
    let settings = LoadSettings {
        warmup: args.warmup,
        duration,
        requests: args.requests,
    };
    Ok((Job::Load(plan, settings), output(&args.common)))
}

fn idle_job(args: IdleArgs) -> Result<(Job, Output), String> {
    check_span("--hold", args.hold)?;
    check_span("--open-timeout", args.open_timeout)?;
    if args.open_parallel == 0 {
        return Err("--open-parallel must be at least 1".into());
    }
    let plan = plan(args.via, false, 0, &args.common)?;
    let settings = IdleSettings {
        hold: args.hold,
        open_parallel: args.open_parallel,
        open_timeout: args.open_timeout,
    };
    Ok((Job::Idle(plan, settings), output(&args.common)))
}

fn check_span(flag: &str, span: Duration) -> Result<(), String> {
    if span > MAX_RUN {
        return Err(format!("{flag} is longer than the 1h this tool allows"));
    }
    Ok(())
}

fn plan(door: Door, fresh: bool, min_body: u64, common: &CommonArgs) -> Result<Plan, String> {
    if common.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let proxy = match (door, &common.proxy) {
        (Door::Direct, Some(_)) => return Err("direct mode takes no --proxy".into()),
        (Door::Direct, None) => None,
        (_, Some(p)) => Some(loopback_addr(p, "--proxy")?),
        (_, None) => return Err(format!("{} mode needs --proxy HOST:PORT", door.name())),
    };
    let auth = common.auth.as_deref().map(credentials).transpose()?;
    let target = target(&common.target)?;
    let connect_head = connect_head(&target, auth.as_ref());
    let socks_connect = socks_connect(target.addr);
    Ok(Plan {
        door,
        fresh,
        proxy,
        auth,
        target,
        connect_head,
        socks_connect,
        connections: common.connections,
        timeout: common.timeout,
        min_body,
    })
}

/// `10s`, `500ms`, `2m`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))
}

/// A `HOST:PORT` whose host is a loopback address or `localhost`.
fn loopback_addr(text: &str, flag: &str) -> Result<SocketAddr, String> {
    let bare = text
        .trim_start_matches("http://")
        .trim_start_matches("socks5://")
        .trim_end_matches('/');
    let (host, port) = bare
        .rsplit_once(':')
        .ok_or_else(|| format!("{flag} {text:?}: expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{flag} {text:?}: bad port"))?;
    let ip = loopback_ip(host).ok_or_else(|| refuse(flag, text))?;
    Ok(SocketAddr::new(ip, port))
}

/// The address of a loopback host: an IP literal in 127.0.0.0/8 or ::1, or
/// `localhost`. Names other than `localhost` are not resolved.
fn loopback_ip(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = literal.parse().ok()?;
    ip.is_loopback().then_some(ip)
}

fn refuse(flag: &str, text: &str) -> String {
    format!(
        "{flag} {text:?} is not a loopback address: this tool only ever drives \
         127.0.0.0/8, ::1 or localhost"
    )
}

fn target(text: &str) -> Result<Target, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("--target {text:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--target {text:?}: only http:// URLs are fetched"));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("--target {text:?}: no host"))?;
    let ip = loopback_ip(host).ok_or_else(|| refuse("--target", text))?;
    let port = uri.port_u16().unwrap_or(80);
    let authority = HeaderValue::from_str(&format!("{host}:{port}"))
        .map_err(|_| format!("--target {text:?}: bad host"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let origin_form: Uri = path
        .parse()
        .map_err(|e| format!("--target {text:?}: {e}"))?;
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        authority,
        absolute: uri,
        origin_form,
    })
}

fn credentials(text: &str) -> Result<Credentials, String> {
    let (user, pass) = text.split_once(':').ok_or("--auth expects USER:PASS")?;
    if user.is_empty() || user.len() > 255 || pass.len() > 255 {
        return Err("--auth: user must be 1-255 bytes and password at most 255".into());
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let basic = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| "--auth: not a valid header value")?;
    let mut socks = Vec::with_capacity(3 + user.len() + pass.len());
    socks.push(0x01);
    socks.push(user.len() as u8);
    socks.extend_from_slice(user.as_bytes());
    socks.push(pass.len() as u8);
    socks.extend_from_slice(pass.as_bytes());
    Ok(Credentials {
        basic,
        socks: Bytes::from(socks),
    })
}

fn connect_head(target: &Target, auth: Option<&Credentials>) -> Bytes {
    let authority = String::from_utf8_lossy(target.authority.as_bytes());
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if let Some(auth) = auth {
        let basic = String::from_utf8_lossy(auth.basic.as_bytes());
        head.push_str(&format!("Proxy-Authorization: {basic}\r\n"));
    }
    head.push_str("\r\n");
    Bytes::from(head)
}

/// SOCKS5 CONNECT to an IP address (RFC 1928 section 4).
fn socks_connect(addr: SocketAddr) -> Bytes {
    let mut request = vec![0x05, 0x01, 0x00];
    match addr.ip() {
        IpAddr::V4(ip) => {
            request.push(0x01);
            request.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            request.push(0x04);
            request.extend_from_slice(&ip.octets());
        }
    }
    request.extend_from_slice(&addr.port().to_be_bytes());
    Bytes::from(request)
}
