//! One error type for the admin API, rendered as `{"error": {"code", "message"}}`.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Well-formed, but the world does not allow it yet (e.g. the DNS record is missing).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// A service rollcall depends on failed (e.g. a DNS lookup).
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    #[error("this endpoint does not support that method")]
    MethodNotAllowed,
    #[error("request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database is unreachable: 503 with `Retry-After`.
    #[error(
        "the service is unavailable for a moment (its database cannot be reached); retry shortly"
    )]
    Unavailable,
    /// A concurrent change won a race; the server replays the request before giving up.
    #[error("a concurrent change got in the way; retry")]
    LostRace,
    /// The detail goes to the log only; the client sees a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use crate::request::INTERNAL_MESSAGE;

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_input`, `not_found`, `last_admin`, …
    pub code: String,
    pub message: String,
}

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Error::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Error::Upstream { code, .. } => (StatusCode::BAD_GATEWAY, code),
            Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Error::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Error::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::LostRace => (StatusCode::CONFLICT, "concurrent_change"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                INTERNAL_MESSAGE.to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(store::RETRY_AFTER_SECONDS),
                );
            }
            StatusCode::CONFLICT if code == "concurrent_change" => {
                response.extensions_mut().insert(store::LostRace);
            }
            _ => {}
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall\""),
            );
        }
        response
    }
}

impl From<store::Error> for Error {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::NotFound(what) => Error::NotFound(format!("{what} not found")),
            store::Error::Conflict { code, message } => Error::Conflict { code, message },
            store::Error::Invalid(message) => Error::BadRequest(message),
            other if other.is_unavailable() => Error::Unavailable,
            other if other.is_retryable() => Error::LostRace,
            other => Error::Internal(other.to_string()),
        }
    }
}

/// Fallback for paths no route serves.
pub async fn not_found() -> Error {
    Error::NotFound("no such endpoint".into())
}

/// Fallback for a known path asked with a method it does not serve.
pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

impl From<crate::admin::Error> for Error {
    fn from(err: crate::admin::Error) -> Self {
        use crate::admin::Error as A;
        match err {
            A::NotFound(message) => Error::NotFound(message),
            A::Forbidden(message) => Error::Forbidden(message),
            A::Invalid(message) => Error::BadRequest(message),
            A::Conflict { code, message } => Error::Conflict { code, message },
            A::Unprocessable { code, message } => Error::Unprocessable { code, message },
            A::Upstream { code, message } => Error::Upstream { code, message },
            A::Store(e) => e.into(),
        }
    }
}

impl From<crate::provisioning::Error> for Error {
    fn from(err: crate::provisioning::Error) -> Self {
        match err {
            crate::provisioning::Error::Store(e) => e.into(),
            crate::provisioning::Error::Refused(r) => Error::Conflict {
                code: r.code,
                message: r.message,
            },
        }
    }
}
