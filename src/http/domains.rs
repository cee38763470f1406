//! Email domains an org claims, and their verification by DNS TXT record.

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
    admin::domains as commands,
    state::AppState,
    store::domains::{self, Domain},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, claim))
        .routes(routes!(get, delete))
        .routes(routes!(verify))
}

/// A domain with what the org's DNS admin must publish to prove it.
#[derive(Serialize, ToSchema)]
pub struct DomainView {
    #[serde(flatten)]
    pub domain: Domain,
    /// `verified` or `pending`.
    pub status: &'static str,
    /// Publish a TXT record with this name …
    pub txt_record_name: String,
    /// … and this value, then call verify.
    pub txt_record_value: String,
}

impl From<Domain> for DomainView {
    fn from(domain: Domain) -> Self {
        DomainView {
            status: if domain.verified_at.is_some() {
                "verified"
            } else {
                "pending"
            },
            txt_record_name: domain.txt_name(),
            txt_record_value: domain.txt_value(),
            domain,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub domain: String,
}

#[utoipa::path(get, path = "/orgs/{org}/domains", tag = "domains", params(("org" = String, Path)),
    responses((status = 200, body = Vec<DomainView>), (status = 404, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<Vec<DomainView>>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    let list = domains::list(&mut tx, org.id).await?;
    Ok(Json(list.into_iter().map(DomainView::from).collect()))
}

#[utoipa::path(post, path = "/orgs/{org}/domains", tag = "domains", request_body = NewDomain, params(("org" = String, Path)),
    responses((status = 201, body = DomainView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn claim(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    extract::Json(input): extract::Json<NewDomain>,
) -> Result<(StatusCode, Json<DomainView>)> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let domain = commands::claim(&mut tx, &admin, &org, &input.domain).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(domain.into())))
}

#[utoipa::path(get, path = "/orgs/{org}/domains/{domain_id}", tag = "domains",
    params(("org" = String, Path), ("domain_id" = i64, Path)),
    responses((status = 200, body = DomainView), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Json<DomainView>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    Ok(Json(domains::require(&mut tx, org.id, id).await?.into()))
}

#[utoipa::path(delete, path = "/orgs/{org}/domains/{domain_id}", tag = "domains",
    params(("org" = String, Path), ("domain_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, description = "used by a grant", body = ErrorBody)))]
async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    commands::delete(&mut tx, &admin, &org, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Looks up the TXT record now and marks the domain verified when it carries the value.
#[utoipa::path(post, path = "/orgs/{org}/domains/{domain_id}/verify", tag = "domains",
    params(("org" = String, Path), ("domain_id" = i64, Path)),
    responses((status = 200, body = DomainView),
              (status = 409, description = "verified by another organization", body = ErrorBody),
              (status = 422, description = "the TXT record is not there (yet)", body = ErrorBody),
              (status = 502, description = "the DNS lookup failed", body = ErrorBody)))]
async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Json<DomainView>> {
    let verified =
        commands::verify(&state.store, &state.dns, &principal.admin(), &slug, id).await?;
    Ok(Json(verified.into()))
}
