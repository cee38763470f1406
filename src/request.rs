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

/// Where a request carries a NUL character (U+0000), named as its front door names the field:
/// `path`, a query parameter, a form field, or a JSON path such as `emails[0].value`. No
/// front door accepts one: PostgreSQL cannot store it, and where SQLite can, it cuts names
/// short in other systems. `None` when the request has none.
pub fn nul_field(uri: &axum::http::Uri, content_type: &str, body: &[u8]) -> Option<String> {
    let encoded = |bytes: &[u8]| contains(bytes, b"%00");
    if encoded(uri.path().as_bytes()) {
        return Some("path".into());
    }
    if let Some(query) = uri.query() {
        if encoded(query.as_bytes()) {
            return url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, v)| k.contains('\0') || v.contains('\0'))
                .map(|(k, _)| format!("query parameter {k}"));
        }
    }
    // Cheap first: most bodies hold no NUL in any encoding.
    if !body.contains(&0) && !contains(body, b"\\u0000") && !encoded(body) {
        return None;
    }
    let content_type = content_type.to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let found = url::form_urlencoded::parse(body)
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
            .map(|(k, _)| k.replace('\0', "\\0"));
        return found.or_else(|| body.contains(&0).then(|| "body".into()));
    }
    if content_type.contains("json") {
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
            return json_nul(&value, String::new());
        }
    }
    body.contains(&0).then(|| "body".into())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn json_nul(value: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value;
    let name = |at: &str| {
        if at.is_empty() {
            "body".to_string()
        } else {
            at.to_string()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(name(&at)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| json_nul(item, format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let path = if at.is_empty() {
                key.replace('\0', "\\0")
            } else {
                format!("{at}.{}", key.replace('\0', "\\0"))
            };
            if key.contains('\0') {
                return Some(path);
            }
            json_nul(item, path)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{loggable, nul_field};

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

    #[test]
    fn nul_characters_are_found_and_named() {
        let uri = |s: &str| s.parse::<axum::http::Uri>().unwrap();
        let json = "application/scim+json";
        let none = |u: &str, ct: &str, b: &str| nul_field(&uri(u), ct, b.as_bytes());
        assert_eq!(none("/a", json, r#"{"userName":"a"}"#), None);
        assert_eq!(
            none("/a", json, r#"{"name":{"givenName":"A\u0000"}}"#).as_deref(),
            Some("name.givenName")
        );
        assert_eq!(
            none(
                "/a",
                json,
                r#"{"Operations":[{"op":"add"},{"value":["x","\u0000"]}]}"#
            )
            .as_deref(),
            Some("Operations[1].value[1]")
        );
        assert_eq!(none("/a", json, r#""\u0000""#).as_deref(), Some("body"));
        assert_eq!(
            none(
                "/a",
                "application/x-www-form-urlencoded",
                "csrf=1&name=Ops%00"
            )
            .as_deref(),
            Some("name")
        );
        assert_eq!(
            none("/a?filter=x%00", json, "").as_deref(),
            Some("query parameter filter")
        );
        assert_eq!(none("/Users/%00", json, "").as_deref(), Some("path"));
        assert_eq!(
            nul_field(&uri("/a"), "text/plain", b"a\0b").as_deref(),
            Some("body")
        );
        // "%00" as text in a JSON body is not a NUL.
        assert_eq!(none("/a", json, r#"{"displayName":"100%00"}"#), None);
    }
}
