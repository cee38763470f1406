//! The SCIM endpoint's HTTP edge: bearer-token authentication tied to the org in the URL,
//! the RFC 7644 §3.12 error body, and the discovery documents.

use axum::{
    extract::{FromRequestParts, Path, State},
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, get},
    Json, Router,
};
use serde_json::{json, Value};

use crate::{
    http::{auth::bearer, error::INTERNAL_MESSAGE, AppState},
    store::{self, credentials, orgs, scim_tokens, scim_tokens::ScimToken},
};

pub const CONTENT_TYPE: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/scim/v2/{org}/ServiceProviderConfig",
            get(service_provider_config).fallback(method_not_allowed),
        )
        // Unknown SCIM paths answer in SCIM's error shape, after authentication, so that an
        // IdP's "test connection" reports a useful reason rather than an admin-API body.
        .route("/scim/v2/{org}/{*rest}", any(no_such_resource))
}

/// A SCIM failure: the HTTP status, an RFC 7644 `scimType` where one applies, and a detail.
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
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
        }
    }

    fn unauthorized(detail: &str) -> Self {
        ScimError::new(StatusCode::UNAUTHORIZED, None, detail)
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
            store::Error::Conflict { message, .. } => {
                ScimError::new(StatusCode::CONFLICT, Some("uniqueness"), message)
            }
            store::Error::Invalid(message) => {
                ScimError::new(StatusCode::BAD_REQUEST, Some("invalidValue"), message)
            }
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

/// The identity provider calling: a SCIM token of the org named in the URL.
pub struct ScimClient {
    pub org: orgs::Org,
    pub token: ScimToken,
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let secret = bearer(parts).map(str::to_string).ok_or_else(|| {
            ScimError::unauthorized(
                "authentication required: send Authorization: Bearer <SCIM token>",
            )
        })?;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint"))?;
        let slug = params
            .iter()
            .find(|(name, _)| name == "org")
            .map(|(_, value)| value.as_str())
            .unwrap_or_default();
        let mut tx = state.store.read().await?;
        let found = scim_tokens::authenticate(&mut tx, &secret).await?;
        let org = match &found {
            Some((org_id, _)) => orgs::by_id(&mut tx, *org_id).await?,
            None => None,
        };
        drop(tx);
        // One answer for a bad token and for a good token used on another org's URL, so a
        // token reveals nothing about which other orgs exist.
        let (token, org) = match (found, org) {
            (Some((_, token)), Some(org)) if org.slug == slug => (token, org),
            _ => {
                return Err(ScimError::unauthorized(
                    "invalid or revoked SCIM token, or a token of another organization",
                ))
            }
        };
        if credentials::is_stale(token.last_used_at, chrono::Utc::now()) {
            // Best effort: a failed last-used update must not fail the IdP's request.
            let touched = async {
                let mut tx = state.store.begin().await?;
                scim_tokens::touch(&mut tx, token.id).await?;
                tx.commit().await
            };
            if let Err(err) = touched.await {
                tracing::warn!(%err, "could not record SCIM token use");
            }
        }
        Ok(ScimClient { org, token })
    }
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "this SCIM endpoint does not support that method",
    )
}

async fn no_such_resource(_client: ScimClient) -> ScimError {
    ScimError::new(
        StatusCode::NOT_FOUND,
        None,
        "no such SCIM resource; rollcall does not serve Users and Groups yet",
    )
}

/// RFC 7643 §5. It states what this build serves, and nothing more: features flip to
/// `supported: true` as their endpoints land, so an IdP never relies on one that is missing.
async fn service_provider_config(State(state): State<AppState>, client: ScimClient) -> Response {
    let location = format!(
        "{}/scim/v2/{}/ServiceProviderConfig",
        state.config.public_base_url.trim_end_matches('/'),
        client.org.slug
    );
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": false},
            "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": false, "maxResults": 0},
            "changePassword": {"supported": false},
            "sort": {"supported": false},
            "etag": {"supported": false},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A SCIM token created for this organization in rollcall's admin API",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": location},
        }),
    )
}
