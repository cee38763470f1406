//! What every front door reads off a request the same way: its ID (set by the server's
//! request-ID layer, or the caller's `x-request-id`), a bearer token, the client's address.

use std::{convert::Infallible, net::SocketAddr};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap},
};

use crate::config::HttpConfig;

pub const REQUEST_ID: &str = "x-request-id";

/// The request's ID, for logs, the audit trail and the reference shown to people.
#[derive(Debug, Clone, Default)]
pub struct RequestId(pub Option<String>);

impl RequestId {
    pub fn of(headers: &HeaderMap) -> RequestId {
        RequestId(
            headers
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        )
    }

    /// The ID as a reference a person can quote, `-` when there is none.
    pub fn reference(&self) -> &str {
        self.0.as_deref().unwrap_or("-")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(RequestId::of(&parts.headers))
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The client's address for per-address limits: the TCP peer, or the first entry of the
/// configured proxy header.
pub fn client_ip(config: &HttpConfig, headers: &HeaderMap, peer: SocketAddr) -> String {
    config
        .client_ip_header
        .as_deref()
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| peer.ip().to_string())
}

/// The configured body limit, put on every request by the server, for error messages.
#[derive(Clone, Copy, Default)]
pub struct BodyLimit(pub usize);

/// What a client is told of an internal error; the detail goes to the log only.
pub const INTERNAL_MESSAGE: &str =
    "internal error; the server log has the details under this response's x-request-id";
