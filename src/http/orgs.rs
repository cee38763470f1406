//! An org's own settings, and its audit trail.

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Principal,
    error::{Error, ErrorBody, Result},
    extract::{self, Path, Query},
    members::page_limit,
};
use crate::state::AppState;
use crate::store::{
    audit::{self, AuditEvent},
    orgs::{Org, OrgChanges},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get, update))
        .routes(routes!(audit_trail))
}

#[utoipa::path(get, path = "/orgs/{org}", tag = "orgs", params(("org" = String, Path)),
    responses((status = 200, body = Org), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<Org>> {
    let mut tx = state.store.read().await?;
    Ok(Json(principal.admin_of(&mut tx, &slug).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    pub name: Option<String>,
    pub require_2fa: Option<bool>,
    pub sso_enforced: Option<bool>,
}

#[utoipa::path(patch, path = "/orgs/{org}", tag = "orgs", request_body = OrgSettings, params(("org" = String, Path)),
    responses((status = 200, body = Org), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    extract::Json(input): extract::Json<OrgSettings>,
) -> Result<Json<Org>> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let changes = OrgChanges {
        name: input.name,
        require_2fa: input.require_2fa,
        sso_enforced: input.sso_enforced,
    };
    let after = crate::admin::orgs::update(&mut tx, &admin, &org, changes).await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// `next_cursor` from the previous page.
    cursor: Option<i64>,
    /// Page size, 1–200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub data: Vec<AuditEvent>,
    pub next_cursor: Option<i64>,
}

#[utoipa::path(get, path = "/orgs/{org}/audit", tag = "orgs", params(("org" = String, Path), AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn audit_trail(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>> {
    let limit = page_limit(params.limit)?;
    if params.cursor.is_some_and(|c| c < 1) {
        return Err(Error::BadRequest(
            "cursor must be a positive event id".into(),
        ));
    }
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    let filter = audit::Filter::default();
    let mut data = audit::list(&mut tx, org.id, &filter, params.cursor, limit + 1).await?;
    let next_cursor = if data.len() as i64 > limit {
        data.truncate(limit as usize);
        data.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(AuditPage { data, next_cursor }))
}
