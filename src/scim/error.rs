//! The SCIM error: RFC 7644 §3.12 bodies with `scimType`, and how store and core errors
//! map to them.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

use super::patch::PatchError;
use crate::{provisioning, request::INTERNAL_MESSAGE, store};

pub const CONTENT_TYPE: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM failure: the HTTP status, an RFC 7644 `scimType` where one applies, and a detail.
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// Seconds for `Retry-After` on a 429 or 503.
    pub retry_after: Option<i64>,
    /// The transaction lost a race a replay may win (the server replays it).
    pub lost_race: bool,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
            lost_race: false,
        }
    }

    pub(super) fn rate_limited(seconds: i64) -> Self {
        ScimError {
            retry_after: Some(seconds),
            ..ScimError::new(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                format!("too many requests with this token; retry in {seconds} s"),
            )
        }
    }

    pub(super) fn unauthorized(detail: &str) -> Self {
        ScimError::new(StatusCode::UNAUTHORIZED, None, detail)
    }

    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ScimError::new(
            StatusCode::NOT_FOUND,
            None,
            format!("{what} {id:?} not found"),
        )
    }
}

impl From<PatchError> for ScimError {
    fn from(err: PatchError) -> Self {
        ScimError::bad(err.scim_type, err.detail)
    }
}

impl From<provisioning::Error> for ScimError {
    fn from(err: provisioning::Error) -> Self {
        match err {
            provisioning::Error::Store(e) => e.into(),
            // An account the org may not link is taken, as far as this IdP can know.
            provisioning::Error::Refused(r) => {
                let scim_type = (r.code == "email_unverified_link").then_some("uniqueness");
                ScimError::new(StatusCode::CONFLICT, scim_type, r.message)
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            // RFC 7644 §3.12: the status is a string.
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = scim_type.into();
        }
        let mut response = scim_json(self.status, body);
        if self.lost_race {
            response.extensions_mut().insert(store::LostRace);
        }
        if let Some(seconds) = self.retry_after {
            // An integer, which Okta honours (it waits minutes otherwise).
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall SCIM\""),
            );
        }
        response
    }
}

impl From<store::Error> for ScimError {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::NotFound(what) => {
                ScimError::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
            }
            store::Error::Conflict { code, message } => {
                // Only a duplicate is `uniqueness`; other conflicts (the last admin) are not.
                let scim_type =
                    matches!(code, "uniqueness" | "email_taken").then_some("uniqueness");
                ScimError::new(StatusCode::CONFLICT, scim_type, message)
            }
            store::Error::Invalid(message) => {
                ScimError::new(StatusCode::BAD_REQUEST, Some("invalidValue"), message)
            }
            other if other.is_unavailable() => ScimError {
                retry_after: Some(store::RETRY_AFTER_SECONDS as i64),
                ..ScimError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "the service is unavailable for a moment (its database cannot be reached); retry shortly",
                )
            },
            other if other.is_retryable() => ScimError {
                lost_race: true,
                ..ScimError::new(
                    StatusCode::CONFLICT,
                    None,
                    "a concurrent change got in the way; retry",
                )
            },
            other => {
                tracing::error!(detail = %other, "SCIM request failed");
                ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, INTERNAL_MESSAGE)
            }
        }
    }
}

pub fn scim_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
