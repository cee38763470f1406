//! The Invitations tab: send (one to a hundred addresses), list by status, resend, revoke,
//! clean up expired.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Principal,
    error::{Error, ErrorBody, Result},
    extract::{self, Path, Query},
    members::page_limit,
};
use crate::{
    admin::invitations as commands,
    invitations::{AddressResult, Request},
    state::AppState,
    store::invitations::{self as store_invitations, Invitation, Status},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, send, clean_up))
        .routes(routes!(get, revoke))
        .routes(routes!(resend))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendInvitations {
    /// 1 to 100 addresses; each gets its own invitation and email.
    pub emails: Vec<String>,
    #[serde(default)]
    pub team_ids: Vec<i64>,
    #[serde(default)]
    pub is_admin: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SendResults {
    /// One entry per address, in the order sent.
    pub results: Vec<AddressResult>,
}

#[utoipa::path(post, path = "/orgs/{org}/invitations", tag = "invitations", request_body = SendInvitations,
    params(("org" = String, Path)),
    responses((status = 200, description = "per-address results; invalid addresses do not stop valid ones", body = SendResults),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn send(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    extract::Json(input): extract::Json<SendInvitations>,
) -> Result<Json<SendResults>> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let request = Request {
        emails: &input.emails,
        team_ids: &input.team_ids,
        is_admin: input.is_admin,
    };
    let results = commands::send(&mut tx, &state.config, &admin, &org, request).await?;
    tx.commit().await?;
    Ok(Json(SendResults { results }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<Status>,
    /// `next_cursor` from the previous page.
    cursor: Option<i64>,
    /// Page size, 1–200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct InvitationPage {
    /// Newest first, each with where its latest email stands (`delivery`).
    pub data: Vec<Invitation>,
    pub next_cursor: Option<i64>,
}

#[utoipa::path(get, path = "/orgs/{org}/invitations", tag = "invitations", params(("org" = String, Path), ListParams),
    responses((status = 200, body = InvitationPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<InvitationPage>> {
    let limit = page_limit(params.limit)?;
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    let mut data =
        store_invitations::list(&mut tx, org.id, params.status, params.cursor, limit + 1).await?;
    let next_cursor = if data.len() as i64 > limit {
        data.truncate(limit as usize);
        data.last().map(|i| i.id)
    } else {
        None
    };
    Ok(Json(InvitationPage { data, next_cursor }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CleanUpParams {
    /// Must be `expired`: only expired invitations are cleaned up this way.
    status: Status,
}

#[derive(Serialize, ToSchema)]
pub struct CleanedUp {
    pub deleted: u64,
}

/// Clean up expired invitations in one call.
#[utoipa::path(delete, path = "/orgs/{org}/invitations", tag = "invitations", params(("org" = String, Path), CleanUpParams),
    responses((status = 200, body = CleanedUp), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn clean_up(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(params): Query<CleanUpParams>,
) -> Result<Json<CleanedUp>> {
    if params.status != Status::Expired {
        return Err(Error::BadRequest(
            "only expired invitations can be deleted in bulk: use ?status=expired".into(),
        ));
    }
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let deleted = commands::delete_expired(&mut tx, &admin, &org).await?;
    tx.commit().await?;
    Ok(Json(CleanedUp { deleted }))
}

#[utoipa::path(get, path = "/orgs/{org}/invitations/{invitation_id}", tag = "invitations",
    params(("org" = String, Path), ("invitation_id" = i64, Path)),
    responses((status = 200, body = Invitation), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Json<Invitation>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    Ok(Json(store_invitations::require(&mut tx, org.id, id).await?))
}

#[utoipa::path(post, path = "/orgs/{org}/invitations/{invitation_id}/resend", tag = "invitations",
    params(("org" = String, Path), ("invitation_id" = i64, Path)),
    responses((status = 200, description = "a new link and expiry; the old link no longer works", body = Invitation),
              (status = 404, body = ErrorBody), (status = 409, description = "accepted or revoked", body = ErrorBody)))]
async fn resend(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Json<Invitation>> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let invitation = commands::resend(&mut tx, &state.config, &admin, &org, id).await?;
    tx.commit().await?;
    Ok(Json(invitation))
}

#[utoipa::path(delete, path = "/orgs/{org}/invitations/{invitation_id}", tag = "invitations",
    params(("org" = String, Path), ("invitation_id" = i64, Path)),
    responses((status = 204, description = "revoked; its link no longer works"), (status = 404, body = ErrorBody),
              (status = 409, description = "already accepted or revoked", body = ErrorBody)))]
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
