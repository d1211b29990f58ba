//! Classification and admission, shared by requests and tunnels: the
//! request's actions from its snapshot's classifier, then the account's
//! limits through the [`crate::policy::limit::Limiter`]. The grant is
//! held by the request's close-out.

use super::close::CloseOut;
use super::Engine;
use crate::policy::classify::RequestShape;
use crate::policy::limit::{AdmitError, Request};
use crate::state::accounts::Account;
use crate::wire::error::ProxyError;

/// Classifies the request as `shape` and admits it for `account`, or
/// refuses it.
pub async fn admit(
    engine: &Engine,
    close: &mut CloseOut,
    account: &Account,
    shape: RequestShape<'_>,
) -> Result<(), ProxyError> {
    engine.shutdown.ensure_open()?;
    close.ctx.actions = close.ctx.snapshot.classifier.classify(shape);
    let policy = account.settings.load().policy.clone();
    let request = Request {
        account: &account.id,
        local: &account.limiter,
        policy: &policy,
        actions: &close.ctx.actions,
        clock: &engine.clock,
    };
    match engine.limiter.admit(request).await {
        Ok(grant) => {
            close.hold(grant);
            Ok(())
        }
        Err(AdmitError::Refused(refusal)) => {
            close.ctx.waited = refusal.waited;
            Err(ProxyError::RateLimited {
                account: account.id.clone(),
                refusal: Box::new(refusal),
            })
        }
        Err(AdmitError::Unavailable(detail)) => Err(ProxyError::StoreUnavailable(detail)),
    }
}
