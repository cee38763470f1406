//! SSO connections, their access grants and group-to-team mappings, and the dry run.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::Principal,
    error::{Error, ErrorBody, Result},
    extract::{self, Path},
};
use crate::{
    admin::connections as commands,
    connections::{prepare, shown},
    provisioning::{self, Decision, ExternalIdentity, IdpGroup},
    state::AppState,
    store::{
        connections::{self as stored, Connection, Kind},
        grants::{self, Grant, GroupRef, Mapping, Match},
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(list_grants, create_grant))
        .routes(routes!(delete_grant))
        .routes(routes!(list_mappings, create_mapping))
        .routes(routes!(delete_mapping))
        .routes(routes!(explain))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnection {
    pub kind: Kind,
    pub name: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Protocol settings; see the SAML and OIDC documentation.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub settings: Value,
}

fn default_true() -> bool {
    true
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionChanges {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

#[utoipa::path(get, path = "/orgs/{org}/connections", tag = "connections", params(("org" = String, Path)),
    responses((status = 200, body = Vec<Connection>), (status = 404, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<Vec<Connection>>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    let list = stored::list(&mut tx, org.id).await?;
    Ok(Json(list.into_iter().map(shown).collect()))
}

#[utoipa::path(post, path = "/orgs/{org}/connections", tag = "connections", request_body = NewConnection,
    params(("org" = String, Path)),
    responses((status = 201, body = Connection), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(slug): Path<String>,
    extract::Json(input): extract::Json<NewConnection>,
) -> Result<(StatusCode, Json<Connection>)> {
    let settings = prepare(&state, input.kind, input.settings, None)
        .await
        .map_err(Error::BadRequest)?;
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let conn = commands::create(
        &mut tx,
        &admin,
        &org,
        input.kind,
        &input.name,
        input.enabled,
        settings,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(conn)))
}

#[utoipa::path(get, path = "/orgs/{org}/connections/{connection_id}", tag = "connections",
    params(("org" = String, Path), ("connection_id" = i64, Path)),
    responses((status = 200, body = Connection), (status = 404, body = ErrorBody)))]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Json<Connection>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    Ok(Json(shown(stored::require(&mut tx, org.id, id).await?)))
}

#[utoipa::path(patch, path = "/orgs/{org}/connections/{connection_id}", tag = "connections",
    request_body = ConnectionChanges, params(("org" = String, Path), ("connection_id" = i64, Path)),
    responses((status = 200, body = Connection), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
    extract::Json(input): extract::Json<ConnectionChanges>,
) -> Result<Json<Connection>> {
    let mut tx = state.store.begin().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    let current = stored::require(&mut tx, org.id, id).await?;
    let settings = match input.settings {
        Some(new) => Some(
            prepare(&state, current.kind, new, Some(&current.settings.0))
                .await
                .map_err(Error::BadRequest)?,
        ),
        None => None,
    };
    let changes = stored::Changes {
        name: input.name,
        enabled: input.enabled,
        settings,
    };
    let after = commands::update(&mut tx, &principal.admin(), &org, id, changes).await?;
    tx.commit().await?;
    Ok(Json(after))
}

#[utoipa::path(delete, path = "/orgs/{org}/connections/{connection_id}", tag = "connections",
    params(("org" = String, Path), ("connection_id" = i64, Path)),
    responses((status = 204, description = "deleted with its grants and mappings; members stay"),
              (status = 404, body = ErrorBody)))]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    #[serde(rename = "match")]
    pub matches: Match,
    #[serde(default)]
    pub team_ids: Vec<i64>,
    #[serde(default)]
    pub is_admin: bool,
}

#[utoipa::path(get, path = "/orgs/{org}/connections/{connection_id}/grants", tag = "connections",
    params(("org" = String, Path), ("connection_id" = i64, Path)),
    responses((status = 200, body = Vec<Grant>), (status = 404, body = ErrorBody)))]
async fn list_grants(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Json<Vec<Grant>>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    stored::require(&mut tx, org.id, id).await?;
    Ok(Json(grants::list_grants(&mut tx, org.id, id).await?))
}

#[utoipa::path(post, path = "/orgs/{org}/connections/{connection_id}/grants", tag = "connections",
    request_body = NewGrant, params(("org" = String, Path), ("connection_id" = i64, Path)),
    responses((status = 201, body = Grant),
              (status = 400, description = "unverified domain, unknown team, malformed match", body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn create_grant(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
    extract::Json(input): extract::Json<NewGrant>,
) -> Result<(StatusCode, Json<Grant>)> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let grant = commands::create_grant(
        &mut tx,
        &admin,
        &org,
        id,
        &input.matches,
        &input.team_ids,
        input.is_admin,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

#[utoipa::path(delete, path = "/orgs/{org}/connections/{connection_id}/grants/{grant_id}", tag = "connections",
    params(("org" = String, Path), ("connection_id" = i64, Path), ("grant_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_grant(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id, grant_id)): Path<(String, i64, i64)>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    commands::delete_grant(&mut tx, &admin, &org, id, grant_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMapping {
    pub group: GroupRef,
    pub team_ids: Vec<i64>,
}

#[utoipa::path(get, path = "/orgs/{org}/connections/{connection_id}/group-mappings", tag = "connections",
    params(("org" = String, Path), ("connection_id" = i64, Path)),
    responses((status = 200, body = Vec<Mapping>), (status = 404, body = ErrorBody)))]
async fn list_mappings(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<Json<Vec<Mapping>>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    stored::require(&mut tx, org.id, id).await?;
    Ok(Json(grants::list_mappings(&mut tx, org.id, id).await?))
}

#[utoipa::path(post, path = "/orgs/{org}/connections/{connection_id}/group-mappings", tag = "connections",
    request_body = NewMapping, params(("org" = String, Path), ("connection_id" = i64, Path)),
    responses((status = 201, body = Mapping), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "the group is already mapped", body = ErrorBody)))]
async fn create_mapping(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
    extract::Json(input): extract::Json<NewMapping>,
) -> Result<(StatusCode, Json<Mapping>)> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    let mapping =
        commands::create_mapping(&mut tx, &admin, &org, id, &input.group, &input.team_ids).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(mapping)))
}

#[utoipa::path(delete, path = "/orgs/{org}/connections/{connection_id}/group-mappings/{mapping_id}", tag = "connections",
    params(("org" = String, Path), ("connection_id" = i64, Path), ("mapping_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_mapping(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id, mapping_id)): Path<(String, i64, i64)>,
) -> Result<StatusCode> {
    let mut tx = state.store.begin().await?;
    let admin = principal.admin();
    let org = admin.org(&mut tx, &slug).await?;
    commands::delete_mapping(&mut tx, &admin, &org, id, mapping_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A sample sign-in, as the IdP would send it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleIdentity {
    pub email: Option<String>,
    /// The IdP's stable subject, to test user grants and existing links.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub groups: Vec<IdpGroup>,
}

#[derive(Serialize, ToSchema)]
pub struct Explanation {
    /// Whether this person would be let in.
    pub allowed: bool,
    #[serde(flatten)]
    pub decision: Decision,
}

/// Dry run: what a sign-in with this identity would do, without changing anything.
#[utoipa::path(post, path = "/orgs/{org}/connections/{connection_id}/explain", tag = "connections",
    request_body = SampleIdentity, params(("org" = String, Path), ("connection_id" = i64, Path)),
    responses((status = 200, body = Explanation), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn explain(
    State(state): State<AppState>,
    principal: Principal,
    Path((slug, id)): Path<(String, i64)>,
    extract::Json(sample): extract::Json<SampleIdentity>,
) -> Result<Json<Explanation>> {
    let mut tx = state.store.read().await?;
    let org = principal.admin_of(&mut tx, &slug).await?;
    stored::require(&mut tx, org.id, id).await?;
    let identity = ExternalIdentity {
        connection_id: id,
        subject: sample.subject.unwrap_or_default(),
        email: sample.email,
        groups: sample.groups,
        ..Default::default()
    };
    let decision = provisioning::decide(&mut tx, &identity)
        .await
        .map_err(|e| match e {
            provisioning::Error::Store(err) => err.into(),
            provisioning::Error::Refused(r) => super::error::Error::BadRequest(r.message),
        })?;
    Ok(Json(Explanation {
        allowed: decision.refusal.is_none(),
        decision,
    }))
}
