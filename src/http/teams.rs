//! Teams of an org and their members.

use axum::{extract::State, http::StatusCode, Json};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Principal,
    error::{Error, ErrorBody, Result},
    extract::{self, Path},
};
use crate::{
    admin::teams as commands,
    state::AppState,
    store::teams::{self, Team, TeamMember},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, rename, delete))
        .routes(routes!(list_members))
        .routes(routes!(add_member, remove_member))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamInput {
    pub name: String,
}

#[utoipa::path(get, path = "/orgs/{org}/teams", tag = "teams", params(("org" = String, Path)),
    responses((status = 200, body = Vec<Team>), (status = 404, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<Vec<Team>>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    Ok(Json(teams::list(&mut tx, org.id).await?))
}

#[utoipa::path(post, path = "/orgs/{org}/teams", tag = "teams", request_body = TeamInput, params(("org" = String, Path)),
    responses((status = 201, body = Team), (status = 400, body = ErrorBody),
              (status = 409, description = "name taken", body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    extract::Json(input): extract::Json<TeamInput>,
) -> Result<(StatusCode, Json<Team>)> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let team = commands::create(&mut tx, &admin, &org, &input.name).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(team)))
}

#[utoipa::path(get, path = "/orgs/{org}/teams/{team_id}", tag = "teams",
    params(("org" = String, Path), ("team_id" = i64, Path)),
    responses((status = 200, body = Team), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, team_id)): Path<(String, i64)>,
) -> Result<Json<Team>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    Ok(Json(teams::require(&mut tx, org.id, team_id).await?))
}

#[utoipa::path(patch, path = "/orgs/{org}/teams/{team_id}", tag = "teams", request_body = TeamInput,
    params(("org" = String, Path), ("team_id" = i64, Path)),
    responses((status = 200, body = Team), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rename(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, team_id)): Path<(String, i64)>,
    extract::Json(input): extract::Json<TeamInput>,
) -> Result<Json<Team>> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let after = commands::rename(&mut tx, &admin, &org, team_id, &input.name).await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[utoipa::path(delete, path = "/orgs/{org}/teams/{team_id}", tag = "teams",
    params(("org" = String, Path), ("team_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, team_id)): Path<(String, i64)>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    commands::delete(&mut tx, &admin, &org, team_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/orgs/{org}/teams/{team_id}/members", tag = "teams",
    params(("org" = String, Path), ("team_id" = i64, Path)),
    responses((status = 200, body = Vec<TeamMember>), (status = 404, body = ErrorBody)))]
async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, team_id)): Path<(String, i64)>,
) -> Result<Json<Vec<TeamMember>>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    Ok(Json(teams::members(&mut tx, org.id, team_id).await?))
}

#[utoipa::path(put, path = "/orgs/{org}/teams/{team_id}/members/{user_id}", tag = "teams",
    params(("org" = String, Path), ("team_id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 201, description = "added"), (status = 204, description = "was already in the team"),
              (status = 404, description = "no such team, or the user is not a member of the organization", body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, team_id, user_id)): Path<(String, i64, i64)>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    if !commands::add_member(&mut tx, &admin, &org, team_id, user_id).await? {
        return Ok(StatusCode::NO_CONTENT);
    }
    tx.commit().await?;
    Ok(StatusCode::CREATED)
}

#[utoipa::path(delete, path = "/orgs/{org}/teams/{team_id}/members/{user_id}", tag = "teams",
    params(("org" = String, Path), ("team_id" = i64, Path), ("user_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, team_id, user_id)): Path<(String, i64, i64)>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    if !commands::remove_member(&mut tx, &admin, &org, team_id, user_id).await? {
        return Err(Error::NotFound(format!(
            "user {user_id} is not in team {team_id}"
        )));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
