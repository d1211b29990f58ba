//! The request entry: one plain HTTP request of an identified account,
//! classify > admit > route > forward, answered with the origin's response
//! (whose body carries the close-out to its end) or an envelope. The
//! listener and, later, the requests inside an intercepted tunnel all come
//! through [`serve`].

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::admit::admit;
use super::attempt::{reach, Attempt, Reached};
use super::close::CloseOut;
use super::feedback;
use super::Engine;
use crate::egress::forward::{prepare_request, upgrade_of};
use crate::egress::relay::relay;
use crate::egress::replay::ReplayableRequest;
use crate::egress::target::Target;
use crate::policy::classify::RequestShape;
use crate::state::accounts::Account;
use crate::wire::body::ProxyBody;
use crate::wire::error::ProxyError;
use crate::wire::problem;

/// The header telling how long a paced request waited.
const WAITED: &str = "x-pacer-waited";

/// A response of the request path.
pub type ProxyResponse = Response<ProxyBody<CloseOut>>;

/// Serves one plain request of `account` to `target`.
pub async fn serve(
    engine: &Arc<Engine>,
    mut close: CloseOut,
    account: &Account,
    mut request: Request<Incoming>,
    target: Target,
) -> ProxyResponse {
    let client_upgrade = upgrade_of(request.headers()).map(|_| hyper::upgrade::on(&mut request));
    match forward(engine, &mut close, account, request, target).await {
        Ok(mut response) => {
            feedback::heed(engine, &close.ctx, account, &response).await;
            close.ctx.succeeded(response.status().as_u16());
            let waited = close.ctx.waited;
            if let (StatusCode::SWITCHING_PROTOCOLS, Some(client)) =
                (response.status(), client_upgrade)
            {
                let origin = hyper::upgrade::on(&mut response);
                spawn_upgraded(engine, close, client, origin);
                return with_waited(response.map(|_| ProxyBody::empty()), waited);
            }
            close.streaming();
            with_waited(response.map(|body| ProxyBody::origin(body, close)), waited)
        }
        Err(err) => refuse(close, &err),
    }
}

/// Relays an upgraded exchange (a WebSocket) once both sides have
/// switched, until it ends; then the request is closed out.
fn spawn_upgraded(engine: &Engine, mut close: CloseOut, client: OnUpgrade, origin: OnUpgrade) {
    engine.shutdown.spawn(async move {
        let (Ok(client), Ok(origin)) = (client.await, origin.await) else {
            tracing::debug!(id = %close.ctx.id, "an upgrade did not complete");
            return;
        };
        let settings = close.engine().relay_settings();
        let (client, origin) = (TokioIo::new(client), TokioIo::new(origin));
        let outcome = relay(client, origin, settings, std::future::pending()).await;
        close.ctx.bytes_up += outcome.up;
        close.ctx.bytes_down += outcome.down;
        drop(close);
    });
}

/// Answers a request with the envelope of `err`, closing it out.
pub fn refuse(mut close: CloseOut, err: &ProxyError) -> ProxyResponse {
    close.failed(err, err.wire_code().status.as_u16());
    problem::error_response(err, close.ctx.id)
}

/// Adds `X-Pacer-Waited: <ms>` to the response of a request that was paced.
pub fn with_waited(mut response: ProxyResponse, waited: Duration) -> ProxyResponse {
    if !waited.is_zero() {
        let millis = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        response
            .headers_mut()
            .insert(WAITED, HeaderValue::from(millis));
    }
    response
}

async fn forward(
    engine: &Engine,
    close: &mut CloseOut,
    account: &Account,
    mut request: Request<Incoming>,
    target: Target,
) -> Result<Response<Incoming>, ProxyError> {
    close.ctx.target = Some(target.clone());
    engine.deny.check_target(&target)?;
    let host = target.host_str();
    let shape = RequestShape {
        method: request.method(),
        host: &host,
        path: Some(request.uri().path()),
    };
    admit(engine, close, account, shape).await?;
    prepare_request(&mut request)
        .map_err(|_| ProxyError::MalformedRequest("request URI has no usable host"))?;
    let mut request = ReplayableRequest::new(request);
    close.uploading(request.uploaded());
    match reach(
        engine,
        close,
        &account.id,
        &target,
        Attempt::Request(&mut request),
    )
    .await?
    {
        Reached::Response(response) => Ok(response),
        Reached::Tunnel(_) => Err(ProxyError::MalformedRequest(
            "a request got a tunnel answer",
        )),
    }
}
