//! The admin API's error enum and its one mapping to the wire (SPEC
//! section 8), with no catch-all arm.

use http::StatusCode;

use crate::control::shared::KeepError;
use crate::state::store::StoreError;
use crate::wire::error::WireCode;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No API key.
    #[error("an API key is required (Authorization: Token KEY, Bearer KEY, or X-API-KEY)")]
    MissingKey,
    /// The API key is not one of pacer's.
    #[error("the API key was not accepted")]
    InvalidKey,
    /// The body is over 64 KiB.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not JSON (or not an object).
    #[error("the body is not a JSON object: {0}")]
    MalformedJson(String),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingParameter(String),
    /// A field has a wrong value.
    #[error("invalid `{field}`: {reason}")]
    InvalidParameter {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A page of more than the API lists at once.
    #[error("limit {0} is above the maximum {1}")]
    LimitTooHigh(usize, usize),
    /// The request cannot be done on this resource (a config account
    /// changed as a runtime one).
    #[error("{0}")]
    InvalidRequest(String),
    /// No such account (or path).
    #[error("{0}")]
    NotFound(String),
    /// The account's plan does not allow it.
    #[error("{0}")]
    InsufficientPrivileges(String),
    /// A proxy to be saved could not be reached or failed its handshake.
    #[error("{0}")]
    ProxyUnreachable(String),
    /// A proxy to be saved refused its credentials.
    #[error("{0}")]
    ProxyCredentials(String),
    /// The store could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A runtime change could not be kept (embedded or fleet store).
    #[error(transparent)]
    Keep(#[from] KeepError),
    /// A background task of the request failed (it panicked, or pacer is
    /// stopping).
    #[error("the request could not be completed: {0}")]
    Internal(String),
}

impl From<tokio::task::JoinError> for AdminError {
    fn from(err: tokio::task::JoinError) -> Self {
        AdminError::Internal(err.to_string())
    }
}

fn code(status: StatusCode, kind: &'static str, title: &'static str) -> WireCode {
    WireCode {
        status,
        kind,
        title,
    }
}

impl AdminError {
    /// Status, envelope type and title.
    pub fn wire_code(&self) -> WireCode {
        match self {
            AdminError::MissingKey => code(
                StatusCode::UNAUTHORIZED,
                "errors/missing_credentials",
                "Unauthorized",
            ),
            AdminError::InvalidKey => code(
                StatusCode::UNAUTHORIZED,
                "errors/invalid_credentials",
                "Unauthorized",
            ),
            AdminError::TooLarge(_) => code(
                StatusCode::BAD_REQUEST,
                "errors/content_too_large",
                "Bad Request",
            ),
            AdminError::MalformedJson(_) => code(
                StatusCode::BAD_REQUEST,
                "errors/malformed_request",
                "Bad Request",
            ),
            AdminError::MissingParameter(_) => code(
                StatusCode::BAD_REQUEST,
                "errors/missing_parameters",
                "Bad Request",
            ),
            AdminError::InvalidParameter { .. } => code(
                StatusCode::BAD_REQUEST,
                "errors/invalid_parameters",
                "Bad Request",
            ),
            AdminError::LimitTooHigh(..) => code(
                StatusCode::BAD_REQUEST,
                "errors/limit_too_high",
                "Bad Request",
            ),
            AdminError::InvalidRequest(_) => code(
                StatusCode::BAD_REQUEST,
                "errors/invalid_request",
                "Bad Request",
            ),
            AdminError::NotFound(_) => code(
                StatusCode::NOT_FOUND,
                "errors/resource_not_found",
                "Not Found",
            ),
            AdminError::InsufficientPrivileges(_) => code(
                StatusCode::FORBIDDEN,
                "errors/insufficient_privileges",
                "Forbidden",
            ),
            AdminError::ProxyUnreachable(_) => {
                code(StatusCode::BAD_GATEWAY, "errors/proxy_error", "Bad Gateway")
            }
            AdminError::ProxyCredentials(_) => code(
                StatusCode::UNAUTHORIZED,
                "errors/invalid_proxy_credentials",
                "Unauthorized",
            ),
            AdminError::Store(_) | AdminError::Keep(_) | AdminError::Internal(_) => code(
                StatusCode::SERVICE_UNAVAILABLE,
                "errors/service_unavailable",
                "Service Unavailable",
            ),
        }
    }

    /// An invalid field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AdminError::InvalidParameter {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_background_task_is_a_5xx_envelope() {
        let failed = tokio::spawn(async { panic!("boom") })
            .await
            .expect_err("the task panicked");
        let code = AdminError::from(failed).wire_code();
        assert_eq!(code.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(code.kind, "errors/service_unavailable");
    }
}
