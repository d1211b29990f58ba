//! pacer: a forward proxy that identifies the automation account behind
//! each request, paces it by the account's policy, routes it through the
//! account's upstream, and answers every refusal with one JSON envelope.
//!
//! # Layout, in request order
//!
//! - [`listener`]: accept loop and connection admission (`max_connections`);
//!   [`listener::http`] (absolute-form + CONNECT, first-head checks,
//!   keep-alive watchdog) and [`listener::socks5`] parse their protocol.
//! - [`auth`]: credentials to an [`auth::Account`], in constant time.
//! - [`pipeline`]: the driver every entry point calls: classify > admit >
//!   route > dial > relay | forward.
//! - [`route`]: which way an account's requests leave (its own upstream,
//!   its country pool with strategy, cooldown and failover, or direct);
//!   [`geo`]: an address's registered country.
//! - [`target`]: where a request goes; [`dial`]: reaching it directly under
//!   `connect_timeout`; [`upstream`]: reaching it through an HTTP, HTTPS or
//!   SOCKS5 proxy; [`egress`]: the stream either way.
//! - [`forward`]: plain HTTP over pooled connections, one pool per route;
//!   [`replay`]: a request kept for the next upstream until its body goes;
//!   [`relay`]: tunnels, with half-close, idle timeout and byte counts.
//! - [`error`]: the boundary's error enum and its one wire mapping (HTTP
//!   status and envelope type, SOCKS5 reply); [`problem`]: the envelope;
//!   [`body`]: response bodies that close out a request.
//! - [`context`]: one value per request or tunnel; [`access_log`]: its line.
//! - [`app`]: the shared [`app::App`] handle and the [`app::Server`] that
//!   binds and runs the listeners; [`threads`]: one single-threaded
//!   runtime per core serving them; [`shutdown`]: stop signal and grace.
//! - [`config`]: `pacer.toml`, from file shape to a validated config;
//!   [`ca`]: `pacer ca init`.

pub mod access_log;
pub mod accounts;
pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod ca;
pub mod classify;
pub mod config;
pub mod context;
pub mod dial;
pub mod egress;
pub mod error;
pub mod forward;
pub mod geo;
pub mod limit;
pub mod listener;
pub mod metrics;
pub mod persist;
pub mod pipeline;
pub mod prefix;
pub mod problem;
pub mod relay;
pub mod reload;
pub mod replay;
pub mod route;
pub mod runtime;
pub mod shutdown;
pub mod store;
pub mod target;
pub mod threads;
pub mod upstream;
