//! The bearer tokens an org's identity provider uses for SCIM provisioning.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Principal,
    error::{ErrorBody, Result},
    extract::{self, Path},
};
use crate::{
    admin::scim_tokens as commands,
    state::AppState,
    store::scim_tokens::{self, ScimToken},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

#[utoipa::path(get, path = "/orgs/{org}/scim-tokens", tag = "scim", params(("org" = String, Path)),
    responses((status = 200, body = Vec<ScimToken>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<Vec<ScimToken>>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    Ok(Json(scim_tokens::list(&mut tx, org.id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScimToken {
    /// Which identity provider it is for, e.g. "Okta production".
    pub name: String,
    /// The SSO connection of the same identity provider: its group mappings apply to the
    /// groups this token pushes, and its sign-ins find the people it pushes.
    pub connection_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedScimToken {
    #[serde(flatten)]
    pub token: ScimToken,
    /// The token itself. Shown this once; rollcall keeps only its hash.
    pub secret: String,
}

#[utoipa::path(post, path = "/orgs/{org}/scim-tokens", tag = "scim", request_body = NewScimToken, params(("org" = String, Path)),
    responses((status = 201, body = CreatedScimToken), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    extract::Json(input): extract::Json<NewScimToken>,
) -> Result<(StatusCode, Json<CreatedScimToken>)> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let (token, secret) =
        commands::create(&mut tx, &admin, &org, input.connection_id, &input.name).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedScimToken { token, secret }),
    ))
}

#[utoipa::path(delete, path = "/orgs/{org}/scim-tokens/{token_id}", tag = "scim",
    params(("org" = String, Path), ("token_id" = i64, Path)),
    responses((status = 204, description = "revoked; the IdP's next request with it is refused"),
              (status = 404, body = ErrorBody)))]
async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    commands::revoke(&mut tx, &admin, &org, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
