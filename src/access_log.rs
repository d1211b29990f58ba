//! One access line per request or tunnel, written from its context through
//! `tracing` (target `pacer::access`, level INFO). Nothing is formatted when
//! that level is off.

use crate::context::RequestContext;

/// The upstream as the access line shows it: `host:port`, or `direct`.
pub fn upstream_label(ctx: &RequestContext) -> &str {
    ctx.upstream.as_deref().unwrap_or("direct")
}

/// Writes the access line for a finished request or tunnel.
pub fn record(ctx: &RequestContext) {
    if !tracing::enabled!(target: "pacer::access", tracing::Level::INFO) {
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
        method = %ctx.method,
        host,
        status = ctx.status,
        waited_ms = ctx.waited.as_millis() as u64,
        upstream = upstream_label(ctx),
        attempts = ctx.attempts,
        bytes_up = ctx.bytes_up,
        bytes_down = ctx.bytes_down,
        duration_ms = ctx.started.elapsed().as_millis() as u64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ListenerKind;

    #[test]
    fn the_upstream_is_its_address_or_direct() {
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let mut ctx = RequestContext::new(ListenerKind::Http, peer, http::Method::GET);
        assert_eq!(upstream_label(&ctx), "direct");
        ctx.upstream = Some("127.0.0.1:3128".into());
        assert_eq!(upstream_label(&ctx), "127.0.0.1:3128");
    }
}
