//! Egress: how a request or tunnel leaves pacer.
//!
//! - [`target`]: where it goes (scheme, host, port).
//! - [`dial`]: reaching a destination directly under `connect_timeout`.
//! - [`upstream`]: reaching it through an HTTP, HTTPS or SOCKS5 proxy.
//! - [`tls`]: the TLS client, over any stream (to `https` proxies, and to
//!   `https://` origins).
//! - [`stream`]: the destination stream either way, and why an attempt
//!   failed ([`stream::EgressError`]).
//! - [`route`]: which way an account's requests leave (its own upstream,
//!   its country pool with strategy, cooldown and failover, or direct);
//!   [`geo`]: an address's registered country.
//! - [`forward`]: plain HTTP over pooled connections, one pool per route;
//!   [`replay`]: a request kept for the next upstream until its body goes;
//!   [`reuse`]: whether a pooled connection failed on reuse, unanswered.
//! - [`relay`]: tunnels, with half-close, idle timeout and byte counts,
//!   spliced between plain sockets on Linux;
//!   [`prefix`]: bytes read ahead, replayed before a socket;
//!   [`pass`]: the writes a stream wrapper passes to the stream it wraps.
//!
//! Errors here are egress errors ([`dial::DialError`],
//! [`upstream::UpstreamError`], [`route::RouteError`],
//! [`forward::OriginError`]); the wire layer maps them to envelopes.

pub mod connector;
pub mod deny;
pub mod dial;
pub mod error;
pub mod forward;
pub mod geo;
pub mod pass;
pub mod prefix;
pub mod relay;
pub mod replay;
pub mod reuse;
pub mod route;
pub mod stream;
pub mod target;
pub mod tls;
pub mod upstream;
