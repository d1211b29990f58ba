//! One access line per request or tunnel, written from its context through
//! `tracing` (target `pacer::access`, level INFO). Nothing is formatted when
//! that level is off.

use std::fmt;

use super::context::{RequestContext, CLIENT_CLOSED};

/// Whether access lines are being written.
fn enabled() -> bool {
    tracing::enabled!(target: "pacer::access", tracing::Level::INFO)
}

/// The upstream as the access line shows it: `host:port`, `direct`, or
/// `-` when no route was tried (refused or abandoned before routing).
pub fn upstream_label(ctx: &RequestContext) -> &str {
    match (&ctx.upstream, ctx.attempts) {
        (_, 0) => "-",
        (Some(upstream), _) => upstream,
        (None, _) => "direct",
    }
}

/// Writes the access line for a finished request or tunnel that matched
/// the actions named `actions`.
pub fn record(ctx: &RequestContext, actions: &[&str]) {
    if !enabled() {
        return;
    }
    let account = ctx.account.as_deref().unwrap_or("-");
    let host = ctx
        .target
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_else(|| "-".to_owned());
    tracing::info!(
        target: "pacer::access",
        id = %ctx.id,
        listener = ctx.listener.as_str(),
        client = %ctx.peer,
        account,
        actions = %ActionList(actions),
        method = ctx.method.as_ref().map_or("-", |m| m.as_str()),
        host,
        status = %Status(ctx),
        waited_ms = ctx.waited.as_millis() as u64,
        upstream = upstream_label(ctx),
        attempts = ctx.attempts,
        bytes_up = ctx.bytes_up,
        bytes_down = ctx.bytes_down,
        intercepted = ctx.intercepted.is_some(),
        tunnel = %Tunnel(ctx.intercepted),
        duration_ms = ctx.started.elapsed().as_millis() as u64,
    );
}

/// The status as the access line shows it: the HTTP status (or SOCKS5
/// reply), or `client_closed` for a request whose client left before it
/// was answered.
struct Status<'a>(&'a RequestContext);

impl fmt::Display for Status<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.status, self.0.outcome) {
            (0, CLIENT_CLOSED) => f.write_str(CLIENT_CLOSED),
            (status, _) => status.fmt(f),
        }
    }
}

/// The id of an intercepted tunnel, `-` for none, formatted lazily.
struct Tunnel(Option<crate::wire::request_id::RequestId>);

impl fmt::Display for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Action names joined by commas, `-` for none, formatted lazily.
struct ActionList<'a>(&'a [&'a str]);

impl std::fmt::Display for ActionList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_listed_or_a_dash() {
        assert_eq!(ActionList(&[]).to_string(), "-");
        assert_eq!(ActionList(&["send", "all_x"]).to_string(), "send,all_x");
    }
}
