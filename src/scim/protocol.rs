//! SCIM's protocol details shared by every resource: request bodies and their limits,
//! ETags and `If-Match`, resource responses, `meta`, and ids in URLs.

use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::Response,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{
    client::ScimClient,
    error::{scim_json, ScimError, CONTENT_TYPE},
};
use crate::state::AppState;

/// Larger request bodies are refused with 413 before they are parsed: SCIM's own cap, or
/// the server's (`http.max_body_bytes`) when that is lower.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

pub fn max_payload(state: &AppState) -> usize {
    MAX_PAYLOAD.min(state.config.http.max_body_bytes)
}

/// A SCIM request body: `application/scim+json` or `application/json`, at most
/// [`max_payload`] bytes (413 beyond), a JSON object (400 `invalidSyntax` otherwise).
pub struct ScimBody(pub Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ScimError> {
        let max = max_payload(state);
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if let Some(ct) = &content_type {
            if ct != CONTENT_TYPE && ct != "application/json" {
                return Err(ScimError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    None,
                    format!("send {CONTENT_TYPE} or application/json, not {ct}"),
                ));
            }
        }
        let too_large = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > max);
        let payload_too_large = || {
            ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("request bodies are limited to {max} bytes"),
            )
        };
        if too_large {
            return Err(payload_too_large());
        }
        let body = axum::body::to_bytes(request.into_body(), max)
            .await
            .map_err(|_| payload_too_large())?;
        parse_json(&body).map(ScimBody)
    }
}

fn parse_json(body: &Bytes) -> Result<Value, ScimError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// `W/"3"`: a weak ETag from the resource's version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Honours `If-Match`: the write goes ahead only when the resource is still at a version
/// the client names (or `*`); otherwise 412.
pub fn check_if_match(headers: &HeaderMap, version: i64) -> Result<(), ScimError> {
    let Some(wanted) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let wanted = wanted.to_str().unwrap_or_default();
    let current = version.to_string();
    let matches = wanted
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == current);
    if matches {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!(
                "the resource has changed: it is at version {}, not {wanted}",
                etag(version)
            ),
        ))
    }
}

/// A resource response with its `ETag` and, for a create, `Location`.
pub fn resource_response(status: StatusCode, body: Value, version: i64) -> Response {
    let location = body["meta"]["location"].as_str().map(str::to_string);
    let mut response = scim_json(status, body);
    if let Ok(tag) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED {
        if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    response
}

pub fn base_url(state: &AppState, client: &ScimClient) -> String {
    format!(
        "{}/scim/v2/{}",
        state.config.public_base_url.trim_end_matches('/'),
        client.org.slug
    )
}

pub fn meta(
    resource_type: &str,
    location: String,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    version: i64,
) -> Value {
    json!({
        "resourceType": resource_type,
        "created": created.to_rfc3339_opts(SecondsFormat::Millis, true),
        "lastModified": modified.to_rfc3339_opts(SecondsFormat::Millis, true),
        "location": location,
        "version": etag(version),
    })
}

/// The longest a string attribute may be. Identifiers rollcall indexes or keys on (userName,
/// externalId, displayName, the parts of a name) get [`MAX_KEY_LENGTH`]; any other string
/// [`MAX_TEXT_LENGTH`]. docs/scim.md lists them.
pub const MAX_KEY_LENGTH: usize = 256;
pub const MAX_TEXT_LENGTH: usize = 2048;

/// The one length check every User and Group field passes, whichever of POST, PUT, PATCH or
/// Bulk brought it: `invalidValue` naming the attribute.
pub fn check_length(attribute: &str, value: &str, max: usize) -> Result<(), ScimError> {
    let length = value.chars().count();
    if length > max {
        return Err(ScimError::bad(
            "invalidValue",
            format!("{attribute} is {length} characters long; at most {max} are accepted"),
        ));
    }
    Ok(())
}
