//! The caller's own identity and personal API tokens.

use axum::{extract::State, http::StatusCode, Json};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{auth::Principal, error::Result, extract};
use crate::state::AppState;
use crate::store::{
    credentials::{self, ApiToken},
    members::{self, OrgAccess},
    now,
    users::User,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub user: User,
    /// Orgs the caller is an active member of and may act in with this credential, with
    /// admin flag and teams: what a host application needs to decide access. Orgs that
    /// enforce single sign-on appear only for credentials from a single sign-on.
    pub orgs: Vec<OrgAccess>,
}

/// Who am I: the introspection endpoint.
#[utoipa::path(get, path = "/me", tag = "me",
    responses((status = 200, body = Me), (status = 401, body = super::error::ErrorBody)))]
async fn whoami(State(state): State<AppState>, principal: Principal) -> Result<Json<Me>> {
    let mut tx = state.store.read().await?;
    let mut orgs = members::of_user(&mut tx, principal.user.id).await?;
    // An org that enforces single sign-on is not this credential's to act in.
    let sso = principal.credential.method().satisfies_sso();
    orgs.retain(|o| sso || !o.sso_enforced);
    Ok(Json(Me {
        user: principal.user,
        orgs,
    }))
}

#[utoipa::path(get, path = "/me/tokens", tag = "me",
    responses((status = 200, body = Vec<ApiToken>), (status = 401, body = super::error::ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<ApiToken>>> {
    let mut tx = state.store.read().await?;
    Ok(Json(
        credentials::list_tokens(&mut tx, principal.user.id).await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// Days until the token stops working; none means it works until revoked.
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    /// The token itself. Shown this once; rollcall keeps only its hash.
    pub secret: String,
}

#[utoipa::path(post, path = "/me/tokens", tag = "me", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = super::error::ErrorBody),
              (status = 401, body = super::error::ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    extract::Json(input): extract::Json<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>)> {
    if input.expires_in_days == Some(0) {
        return Err(super::error::Error::BadRequest(
            "expires_in_days must be at least 1".into(),
        ));
    }
    let expires_at = input
        .expires_in_days
        .map(|days| now() + Duration::days(days.min(3650).into()));
    let mut tx = state.store.begin().await?;
    let (token, secret) =
        crate::admin::me::create_token(&mut tx, &principal.admin(), &input.name, expires_at)
            .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(CreatedToken { token, secret })))
}

#[utoipa::path(delete, path = "/me/tokens/{id}", tag = "me",
    params(("id" = i64, Path, description = "token id")),
    responses((status = 204), (status = 404, body = super::error::ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    extract::Path(id): extract::Path<i64>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    crate::admin::me::revoke_token(&mut tx, &principal.admin(), id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
