//! Email domains an org claims, and their verification by DNS TXT record.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Principal,
    error::{Error, ErrorBody, Result},
    extract::{self, Path},
};
use crate::state::AppState;
use crate::store::{
    audit::Event,
    domains::{self, Domain},
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
    let org = principal.admin_of(&mut tx, &slug).await?;
    let domain = domains::claim(&mut tx, org.id, &input.domain).await?;
    principal
        .record(
            &mut tx,
            Event::new(org.id, "domain.claimed", "domain", &domain.domain).after(&domain),
        )
        .await?;
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
    let org = principal.admin_of(&mut tx, &slug).await?;
    let domain = domains::delete(&mut tx, org.id, id).await?;
    principal
        .record(
            &mut tx,
            Event::new(org.id, "domain.deleted", "domain", &domain.domain).before(&domain),
        )
        .await?;
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
    // Look the record up outside any transaction: DNS can take seconds.
    let domain = {
        let mut tx = state.store.read().await?;
        let org = principal.admin_of(&mut tx, &slug).await?;
        domains::require(&mut tx, org.id, id).await?
    };
    if domain.verified_at.is_some() {
        return Ok(Json(domain.into()));
    }
    let (name, expected) = (domain.txt_name(), domain.txt_value());
    let found = state.dns.txt(&name).await.map_err(|err| {
        tracing::warn!(%name, %err, "domain verification lookup failed");
        Error::Upstream {
            code: "dns_lookup_failed",
            message: format!("looking up TXT {name} failed: {err}; try again later"),
        }
    })?;
    if !found.iter().any(|v| v.trim() == expected) {
        let seen = if found.is_empty() {
            "no TXT record".to_string()
        } else {
            format!("TXT records {found:?}")
        };
        return Err(Error::Unprocessable {
            code: "domain_not_verified",
            message: format!(
                "{name} has {seen}; publish a TXT record with the value {expected:?} and try again"
            ),
        });
    }
    let mut tx = state.store.begin().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    let verified = domains::mark_verified(&mut tx, org.id, id, "dns").await?;
    principal
        .record(
            &mut tx,
            Event::new(org.id, "domain.verified", "domain", &verified.domain).after(&verified),
        )
        .await?;
    tx.commit().await?;
    Ok(Json(verified.into()))
}
