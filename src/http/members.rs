//! Members of an org: list, inspect, promote/demote, suspend, set teams, remove.

use axum::{extract::State, http::StatusCode, Json};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Principal,
    error::{Error, ErrorBody, Result},
    extract::{self, Path, Query},
};
use crate::{
    admin::members as commands,
    state::AppState,
    store::members::{self, ListQuery, Member, Status},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get, update, remove))
        .routes(routes!(replace_teams))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Case-insensitive part of an email address or display name.
    q: Option<String>,
    status: Option<Status>,
    /// `next_cursor` from the previous page.
    cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberPage {
    pub data: Vec<Member>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub(super) fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(50),
        Some(n @ 1..=200) => Ok(n),
        Some(n) => Err(Error::BadRequest(format!(
            "limit must be between 1 and 200, got {n}"
        ))),
    }
}

#[utoipa::path(get, path = "/orgs/{org}/members", tag = "members", params(("org" = String, Path), ListParams),
    responses((status = 200, body = MemberPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Json<MemberPage>> {
    let limit = page_limit(params.limit)?;
    let after = params
        .cursor
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c.as_bytes())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| Error::BadRequest("cursor is not one this API handed out".into()))
        })
        .transpose()?;
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    let query = ListQuery {
        search: params.q,
        status: params.status,
        after,
        limit,
    };
    let (data, next) = members::list(&mut tx, org.id, &query).await?;
    Ok(Json(MemberPage {
        data,
        next_cursor: next.map(|key| URL_SAFE_NO_PAD.encode(key)),
    }))
}

#[utoipa::path(get, path = "/orgs/{org}/members/{user_id}", tag = "members",
    params(("org" = String, Path), ("user_id" = i64, Path)),
    responses((status = 200, body = Member), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, user_id)): Path<(String, i64)>,
) -> Result<Json<Member>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    Ok(Json(members::require(&mut tx, org.id, user_id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberChanges {
    /// Promote (`true`) or demote (`false`).
    pub is_admin: Option<bool>,
    /// `suspended` cuts access at once and keeps the membership; `active` restores it.
    pub status: Option<Status>,
}

#[utoipa::path(patch, path = "/orgs/{org}/members/{user_id}", tag = "members", request_body = MemberChanges,
    params(("org" = String, Path), ("user_id" = i64, Path)),
    responses((status = 200, body = Member), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "would leave the organization without an admin", body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, user_id)): Path<(String, i64)>,
    extract::Json(changes): extract::Json<MemberChanges>,
) -> Result<Json<Member>> {
    if changes.is_admin.is_none() && changes.status.is_none() {
        return Err(Error::BadRequest(
            "nothing to change: send is_admin and/or status".into(),
        ));
    }
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let member = commands::update(
        &mut tx,
        &admin,
        &org,
        user_id,
        changes.is_admin,
        changes.status,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(member))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamIds {
    pub team_ids: Vec<i64>,
}

#[utoipa::path(put, path = "/orgs/{org}/members/{user_id}/teams", tag = "members", request_body = TeamIds,
    params(("org" = String, Path), ("user_id" = i64, Path)),
    responses((status = 200, body = Member), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replace_teams(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, user_id)): Path<(String, i64)>,
    extract::Json(input): extract::Json<TeamIds>,
) -> Result<Json<Member>> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let after = commands::set_teams(&mut tx, &admin, &org, user_id, &input.team_ids).await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[utoipa::path(delete, path = "/orgs/{org}/members/{user_id}", tag = "members",
    params(("org" = String, Path), ("user_id" = i64, Path)),
    responses((status = 204, description = "removed; the member lost access with this response"),
              (status = 404, body = ErrorBody),
              (status = 409, description = "last admin", body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, user_id)): Path<(String, i64)>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    commands::remove(&mut tx, &admin, &org, user_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
