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

/// Query parameters whose values are secrets or one-time credentials: they never reach a log.
const SECRET_PARAMETERS: [&str; 10] = [
    "code",
    "state",
    "id_token",
    "access_token",
    "token",
    "samlresponse",
    "samlrequest",
    "relaystate",
    "session_state",
    "client_secret",
];

/// A request's path and query as logs show it: the values of credential-bearing parameters
/// (an OIDC callback's `code`, a SAML `RelayState`, …) replaced by `…`.
pub fn loggable(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_string();
    };
    let shown: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMETERS.contains(&name.to_ascii_lowercase().as_str()) => {
                format!("{name}=…")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{}?{}", uri.path(), shown.join("&"))
}

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn logs_never_carry_codes_or_relay_states() {
        let uri = "/oidc/callback?code=0.AXoA-secret&state=abc&session_state=s"
            .parse()
            .unwrap();
        assert_eq!(
            loggable(&uri),
            "/oidc/callback?code=…&state=…&session_state=…"
        );
        let uri = "/scim/v2/acme/Users?filter=userName%20eq%20%22a%22&count=5"
            .parse()
            .unwrap();
        assert_eq!(
            loggable(&uri),
            "/scim/v2/acme/Users?filter=userName%20eq%20%22a%22&count=5"
        );
        assert_eq!(loggable(&"/healthz".parse().unwrap()), "/healthz");
    }
}
