//! Trying a custom proxy before it is saved (`PATCH /v1/accounts/{id}`):
//! connect (and TLS for `https`), the SOCKS5 auth handshake, or for
//! `http`/`https` a CONNECT to `routing.probe_target`, through the same
//! dialers requests use. No connection or handshake → 502
//! `errors/proxy_error`; credentials refused → 401
//! `errors/invalid_proxy_credentials`; any other answer counts as reachable.

use std::sync::Arc;

use super::error::AdminError;
use crate::config::UpstreamUrl;
use crate::control::Control;
use crate::egress::target::Target;
use crate::egress::upstream::{Endpoint, UpstreamErrorKind};

/// Succeeds when `url` is a proxy pacer can use.
pub async fn try_proxy(app: &Arc<Control>, url: &UpstreamUrl) -> Result<(), AdminError> {
    let endpoint = Endpoint::new(url.clone(), app.engine.egress.clone());
    let (host, port) = &app.boot_config.routing.probe_target;
    let Err(err) = endpoint.tunnel(&Target::new(host, *port)).await else {
        return Ok(());
    };
    match err.kind {
        UpstreamErrorKind::CredentialsRejected(_) => {
            Err(AdminError::ProxyCredentials(err.to_string()))
        }
        UpstreamErrorKind::Destination { .. } => Ok(()),
        UpstreamErrorKind::Connect(_)
        | UpstreamErrorKind::TimedOut(_)
        | UpstreamErrorKind::Broken(_) => Err(AdminError::ProxyUnreachable(err.to_string())),
    }
}
