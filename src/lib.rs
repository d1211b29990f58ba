//! pacer: a forward proxy that identifies the automation account behind
//! each request, paces it by the account's policy, routes it through the
//! account's upstream, and answers every refusal with one JSON envelope.
//!
//! # Layers
//!
//! The crate is a stack of layers. Each top-level module is one layer and
//! may import only the layers listed for it in [`LAYERS`] (all of them
//! below it); a test (`tests/layers.rs`) reads every `crate::` path in
//! `src/` and fails on an import that points up or sideways. Bottom-up:
//!
//! 1. [`config`]: `pacer.toml`, from file shape to a validated
//!    [`config::Config`]. *Invariant: knows no other layer.*
//! 2. [`shutdown`]: the stop signal, the task tracker and the grace
//!    deadline. *Invariant: knows no other layer.*
//! 3. [`policy`]: what an account may do: credentials ([`policy::auth`]),
//!    actions ([`policy::classify`]) and admission ([`policy::limit`]).
//!    *Invariant: no I/O, no HTTP status codes, no egress.*
//! 4. [`egress`]: how traffic leaves: targets, direct dials, upstream
//!    proxy protocols, TLS towards proxies and origins, route selection,
//!    plain-HTTP forwarding with replay, the tunnel relay. *Invariant:
//!    knows nothing of accounts' limits; returns its own errors, never
//!    wire errors.*
//! 5. [`state`]: what is known about accounts: the immutable
//!    [`state::snapshot::Snapshot`] a reload swaps whole, accounts with
//!    their runtime changes, the embedded store and usage persistence.
//!    *Invariant: no HTTP, no listeners.*
//! 6. [`wire`]: how pacer speaks to clients: the one error enum of the
//!    proxy boundary and its single mapping to HTTP status, envelope type
//!    and SOCKS5 reply; the envelope; response bodies; request ids.
//!    *Invariant: the only layer below the pipeline that knows status
//!    codes.*
//! 7. [`telemetry`]: one context per request or tunnel, its access line,
//!    the Prometheus metrics. *Invariant: observes, never decides.*
//! 8. [`intercept`]: the local CA for TLS interception.
//!    *Invariant: knows nothing of requests.*
//! 9. [`fleet`]: a fleet's shared store (Redis): admission through one
//!    script per request behind [`policy::limit::SharedLimiter`], runtime
//!    changes and cooldowns shared, the store's health. *Invariant: counts,
//!    stores and notifies; decides nothing the policy layer decides.*
//! 10. [`pipeline`]: the driver. One entry per request
//!     ([`pipeline::request`]), one per tunnel ([`pipeline::tunnel`], where
//!     interception is decided), one attempt loop over hops
//!     ([`pipeline::attempt`]), one close-out ([`pipeline::close`]); HTTP/1
//!     served on any stream ([`pipeline::http`]). The request path reads
//!     only the [`pipeline::Engine`]. *Invariant: every request or tunnel
//!     ends in exactly one close-out.*
//! 11. [`ingress`]: accept loops, the connection limit, one runtime per
//!     core, the HTTP listener's first-head checks and watchdog, the SOCKS5
//!     handshake. *Invariant: parses protocols, decides nothing.*
//! 12. [`control`]: the control plane: the admin API and reload, with the
//!     store and the admin write lock ([`control::Control`]).
//!     *Invariant: never on a request's path.*
//! 13. [`server`]: [`server::App`] (engine plus control) and the
//!     [`server::Server`] that binds, runs and drains. `main.rs` is the
//!     command line only.

/// What each top-level module may import (`crate::X` paths outside test
/// code). Enforced by `tests/layers.rs`; the order is the layer order.
pub const LAYERS: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("shutdown", &[]),
    ("policy", &["config"]),
    ("egress", &["config"]),
    ("state", &["config", "policy", "egress"]),
    ("wire", &["config", "shutdown", "policy", "egress"]),
    (
        "telemetry",
        &["config", "policy", "egress", "state", "wire"],
    ),
    ("intercept", &["config"]),
    (
        "fleet",
        &["config", "policy", "egress", "state", "telemetry"],
    ),
    (
        "pipeline",
        &[
            "config",
            "shutdown",
            "policy",
            "egress",
            "state",
            "wire",
            "telemetry",
            "intercept",
        ],
    ),
    (
        "ingress",
        &[
            "config",
            "shutdown",
            "policy",
            "egress",
            "state",
            "wire",
            "telemetry",
            "pipeline",
        ],
    ),
    (
        "control",
        &[
            "config",
            "shutdown",
            "policy",
            "egress",
            "state",
            "wire",
            "telemetry",
            "fleet",
            "pipeline",
            "ingress",
        ],
    ),
    (
        "server",
        &[
            "config",
            "shutdown",
            "policy",
            "egress",
            "state",
            "wire",
            "telemetry",
            "intercept",
            "fleet",
            "pipeline",
            "ingress",
            "control",
        ],
    ),
];

pub mod config;
pub mod control;
pub mod egress;
pub mod fleet;
pub mod ingress;
pub mod intercept;
pub mod pipeline;
pub mod policy;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod wire;
